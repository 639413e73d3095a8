"""Checks on the on-policy recipe's configuration, made before anything is built: each bad value is one
:class:`~trl_accel.config.ConfigError` saying what would be valid."""
from __future__ import annotations

from numbers import Real

from omegaconf import DictConfig, OmegaConf
from torchrl.data import Bounded, Composite, OneHot
from torchrl.envs import EnvBase

from trl_accel import keys
from trl_accel.config import ConfigError, resolve_device
from trl_accel.modules.trajectory import CORES, valid_token_parts
from trl_accel.onpolicy.envs import (
    ONPOLICY_TASKS,
    env_options,
    episode_length,
    make_onpolicy_env,
    missing_package,
)
from trl_accel.stages.switch import SWITCH_RULES

MODES = ("scratch", "accelerate")
VALUE_LOSSES = ("mse", "hl_gauss")
STAGE_TWO_CRITICS = ("accelerator", "fresh")
LOGGERS = ("csv", "tensorboard", "wandb", "none")


def _int(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}.")
    return value


def _real(value, name: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        brackets = ("(" if low_open else "[", ")" if high_open else "]")
        raise ConfigError(f"{name} must be a number in {brackets[0]}{low}, {high}{brackets[1]}, got {value!r}.")
    return float(value)


def rollout_length(cfg: DictConfig) -> int:
    """``rollout_len``, or the env's episode length when it is null."""
    return episode_length(cfg.env) if cfg.rollout_len is None else int(cfg.rollout_len)


def check_policy(policy: DictConfig, name: str) -> None:
    """The network settings of ``policy`` (or of the accelerator, ``name`` its key)."""
    kind = policy.get("kind", "gru")
    if kind not in CORES:
        raise ConfigError(f"{name}.kind must be one of {', '.join(CORES)}, got '{kind}'.")
    for key in ("d_model", "n_layers", "d_ff"):
        _int(policy.get(key), f"{name}.{key}")
    tokens = list(policy.tokens)
    if not valid_token_parts(tokens):
        raise ConfigError(f"{name}.tokens must be [observation] followed by any of prev_action, prev_reward, got {tokens}.")
    if kind == "transformer":
        heads, kv_heads = _int(policy.n_heads, f"{name}.n_heads"), _int(policy.n_kv_heads, f"{name}.n_kv_heads")
        if policy.d_model % heads or heads % kv_heads:
            raise ConfigError(f"{name}.d_model ({policy.d_model}) must divide by n_heads ({heads}), and n_heads by "
                              f"n_kv_heads ({kv_heads}).")
        if (policy.d_model // heads) % 2:
            raise ConfigError(f"rotary positions need an even head size: {name}.d_model // n_heads = "
                              f"{policy.d_model // heads}.")
        if policy.context_len is not None:
            _int(policy.context_len, f"{name}.context_len", 2)


def validate_ppo_config(cfg: DictConfig) -> DictConfig:
    """Check ``cfg`` (the composed ``ppo_transformer`` config); return it unchanged or raise :class:`ConfigError`."""
    if cfg.mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got '{cfg.mode}'.")
    _int(cfg.seed, "seed", 0)
    resolve_device(str(cfg.device))
    if cfg.env.name not in ONPOLICY_TASKS:
        raise ConfigError(f"env.name must be one of {', '.join(ONPOLICY_TASKS)} for this recipe, got '{cfg.env.name}'.")
    package = missing_package(cfg.env)
    if package is not None:
        raise ConfigError(f"env={cfg.env.name} needs the '{package}' package: pip install -e .[{package}]")
    accepted = list(ONPOLICY_TASKS[cfg.env.name].options)
    unknown = sorted(set(env_options(cfg.env)) - set(accepted))
    if unknown:
        raise ConfigError(f"env.options.{unknown[0]} is not an option of {cfg.env.name}: it takes {', '.join(accepted)}.")
    num_envs = _int(cfg.num_envs, "num_envs")
    if cfg.rollout_len is not None:
        _int(cfg.rollout_len, "rollout_len")
    _int(cfg.env_steps, "env_steps")
    check_policy(cfg.policy, "policy")
    ppo = cfg.ppo
    _int(ppo.epochs, "ppo.epochs")
    minibatches = _int(ppo.minibatches, "ppo.minibatches")
    if minibatches > num_envs:
        raise ConfigError(f"ppo.minibatches ({minibatches}) must be at most num_envs ({num_envs}): minibatches split "
                          "the agents' trajectories, never time.")
    _real(ppo.clip_epsilon, "ppo.clip_epsilon", 0.0, 1.0, low_open=True, high_open=True)
    _real(ppo.entropy_coeff, "ppo.entropy_coeff", 0.0, 1.0)
    _real(ppo.critic_coeff, "ppo.critic_coeff", 0.0, 100.0, low_open=True)
    _real(ppo.gamma, "ppo.gamma", 0.0, 1.0, low_open=True)
    _real(ppo.lmbda, "ppo.lmbda", 0.0, 1.0)
    _real(ppo.lr, "ppo.lr", 0.0, 1.0, low_open=True)
    _real(ppo.weight_decay, "ppo.weight_decay", 0.0, 1.0)
    _int(ppo.warmup_updates, "ppo.warmup_updates", 0)
    _real(ppo.max_grad_norm, "ppo.max_grad_norm", 0.0, 1e6, low_open=True)
    value = cfg.value
    if value.loss not in VALUE_LOSSES:
        raise ConfigError(f"value.loss must be one of {', '.join(VALUE_LOSSES)}, got '{value.loss}'.")
    _int(value.hidden, "value.hidden")
    if value.loss == "hl_gauss":
        _int(value.bins, "value.bins", 2)
        _real(value.min, "value.min", -1e9, 1e9)
        _real(value.max, "value.max", -1e9, 1e9)
        if not value.max > value.min:
            raise ConfigError(f"value.max ({value.max}) must exceed value.min ({value.min}).")
    if cfg.mode == "accelerate":
        acc = cfg.accelerate
        _int(acc.switch_steps, "accelerate.switch_steps")
        per_rollout = num_envs * rollout_length(cfg)
        switch_at = -(-acc.switch_steps // per_rollout) * per_rollout  # training moves in whole rollouts
        if switch_at >= cfg.env_steps:
            raise ConfigError(f"accelerate.switch_steps ({acc.switch_steps}) must leave stage two steps: with rollouts of "
                              f"{per_rollout} env steps the switch comes at {switch_at}, not below env_steps "
                              f"({cfg.env_steps}).")
        if cfg.policy.kind != "transformer":
            raise ConfigError(f"mode=accelerate teaches a transformer: use policy=transformer (got policy={cfg.policy.kind}).")
        _int(acc.bc_epochs, "accelerate.bc_epochs")
        _real(acc.bc_lr, "accelerate.bc_lr", 0.0, 1.0, low_open=True)
        switch = acc.switch
        if switch.rule not in SWITCH_RULES:
            raise ConfigError(f"accelerate.switch.rule must be one of {', '.join(SWITCH_RULES)}, got '{switch.rule}'.")
        if switch.rule == "auto" and cfg.eval.every == 0:
            raise ConfigError("accelerate.switch.rule=auto judges at each evaluation: set eval.every > 0.")
        _real(switch.fraction, "accelerate.switch.fraction", 0.0, 10.0)
        _int(switch.patience, "accelerate.switch.patience")
        _int(switch.plateau_evals, "accelerate.switch.plateau_evals", 0)
        _real(switch.min_improvement, "accelerate.switch.min_improvement", 0.0, 10.0)
        if acc.critic not in STAGE_TWO_CRITICS:
            raise ConfigError(f"accelerate.critic must be one of {', '.join(STAGE_TWO_CRITICS)}, got '{acc.critic}'.")
        if acc.teacher.get("kind", "gru") != "gru":
            raise ConfigError(f"accelerate.teacher is a GRU accelerator: kind gru, got '{acc.teacher.kind}'.")
        check_policy(acc.teacher, "accelerate.teacher")
    _int(cfg.eval.every, "eval.every", 0)
    _int(cfg.eval.episodes, "eval.episodes")
    _int(cfg.eval.seed, "eval.seed", 0)
    _int(cfg.checkpoint.every, "checkpoint.every", 0)
    if cfg.logger.backend not in LOGGERS:
        raise ConfigError(f"logger.backend must be one of {', '.join(LOGGERS)}, got '{cfg.logger.backend}'.")
    for key in ("ppo.normalize_advantage", "quiet", "overwrite"):
        if not isinstance(OmegaConf.select(cfg, key), bool):
            raise ConfigError(f"{key} must be true or false, got {OmegaConf.select(cfg, key)!r}.")
    try:  # the env's own checks (grid size, view, ...), on a single agent
        env = make_onpolicy_env(cfg.env, num_envs=1, seed=0)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"env.options: {err}") from None
    check_spaces(env, cfg.env.name)
    return cfg


def check_spaces(env: EnvBase, name: str) -> None:
    """The policies act on one-hot discrete actions or bounded continuous ones, and read a flat observation."""
    action = env.full_action_spec[keys.ACTION]
    observation = env.observation_spec.get(keys.OBSERVATION, None)
    continuous = isinstance(action, Bounded) and action.dtype.is_floating_point
    if not (isinstance(action, OneHot) or continuous) or len(action.shape) != len(env.batch_size) + 1:
        raise ConfigError(f"env {name}: the policies take one discrete action (one-hot) or a bounded vector, "
                          f"not {type(action).__name__} of shape {tuple(action.shape)}: choose another task.")
    if observation is None or isinstance(observation, Composite) or len(observation.shape) != len(env.batch_size) + 1:
        raise ConfigError(f"env {name}: the policies read a flat observation vector under '{keys.OBSERVATION}'; "
                          "this task's observation is not one: choose another task.")


__all__ = ["MODES", "STAGE_TWO_CRITICS", "VALUE_LOSSES", "check_policy", "check_spaces", "rollout_length",
           "validate_ppo_config"]
