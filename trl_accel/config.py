"""Checks on a run's configuration, made before anything is built: types and ranges from the schema
(:mod:`trl_accel.schema`), then the checks that relate several keys."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from trl_accel.collectors import ray_address_problem
from trl_accel.envs.make import TORCH_TASKS, check_env_available, episode_limit
from trl_accel.envs.maniskill import (
    default_max_episode_steps,
    is_maniskill_config,
    vulkan_available,
)
from trl_accel.envs.pomdp import check_pomdp
from trl_accel.modules.transformer import window_length
from trl_accel.schema import ExperimentConfig, check_ranges

MODES = ("accelerate", "accelerator_only", "transformer_only")
#: Accelerator types with a recurrent network (replay samples sequences).
RECURRENT = ("lstm", "gru")
#: The backbone's names for the TD3 baselines.
MODE_ALIASES = {"mlp_td3": "accelerator_only", "transformer_td3": "transformer_only"}
#: Logger backends and the package (and extra) each needs.
LOGGER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}


def canonical_mode(mode: str) -> str:
    return MODE_ALIASES.get(mode, mode)


class ConfigError(ValueError):
    """A configuration that cannot run, with what to change."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} was asked for, but no CUDA device is available. Use device=auto or device=cpu.")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got '{name}'.")
    return device


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def typed_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` merged into :class:`~trl_accel.schema.ExperimentConfig`: a value of the wrong type, or a key
    the schema does not know, raises :class:`ConfigError` naming the key."""
    try:
        plain = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), resolve=True)
        return OmegaConf.merge(OmegaConf.structured(ExperimentConfig), plain)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"{key}: {first}. Check the value of {key} (see the configuration reference in README.md).") from None


def validate_config(cfg: DictConfig) -> DictConfig:
    """Return the typed configuration, or raise :class:`ConfigError` for the first problem found."""
    cfg = typed_config(cfg)
    errors = check_ranges(cfg)
    _require(not errors, errors[0] if errors else "")
    algorithm = cfg.algo.name
    _require(cfg.mode not in MODE_ALIASES or algorithm == "td3",
             f"mode={cfg.mode} names a TD3 baseline; with SAC use mode={MODE_ALIASES.get(cfg.mode)}.")
    _check_algorithm(cfg.algo)
    _require(cfg.frames_per_batch % cfg.env.num_envs == 0,
             f"frames_per_batch ({cfg.frames_per_batch}) must be a multiple of env.num_envs ({cfg.env.num_envs}): "
             f"each collector batch holds the same number of steps from every env.")
    if is_maniskill_config(cfg.env):
        _check_maniskill(cfg)
    else:
        try:
            check_env_available(cfg.env.name)
            check_pomdp(cfg.env.name, cfg.env.pomdp)
        except ValueError as err:
            raise ConfigError(str(err)) from err
    _check_cudagraphs(cfg, resolve_device(str(cfg.device)))
    _check_transformer(cfg.transformer)
    _check_accelerator(cfg)
    _check_buffers(cfg)
    _check_stage_one(cfg)
    _check_logger(cfg.logger.backend)
    _check_collector(cfg)
    return cfg


def _check_cudagraphs(cfg: DictConfig, device: torch.device) -> None:
    """``cudagraphs=true`` needs a CUDA ``device`` (the run's, resolved) and batches of one shape (no recurrent
    accelerator)."""
    if not cfg.cudagraphs:
        return
    found = "device=auto found no CUDA device" if str(cfg.device) == "auto" else f"device={cfg.device}"
    _require(device.type == "cuda", f"cudagraphs=true captures the updates as CUDA graphs and needs a CUDA device, "
             f"but this run is on the CPU ({found}): set cudagraphs=false, or run on a CUDA machine.")
    _require(cfg.accelerator.type not in RECURRENT,
             f"cudagraphs=true with accelerator={cfg.accelerator.type}: the recurrent learner cuts its sequences at "
             f"episode starts, into shapes that change from batch to batch, which a CUDA graph cannot replay: set "
             f"cudagraphs=false.")


def _check_algorithm(algo: DictConfig) -> None:
    needed = {"td3": ("policy_noise", "noise_clip", "exploration_noise", "policy_delay"),
              "sac": ("alpha_lr", "alpha_init", "target_entropy")}[algo.name]
    missing = [key for key in needed if algo[key] is None]
    _require(not missing, f"algo={algo.name} needs algo.{missing[0] if missing else ''}: pick the group with algo={algo.name}.")
    if algo.name == "sac":
        entropy = algo.target_entropy
        numeric = isinstance(entropy, (int, float)) and not isinstance(entropy, bool)
        _require(entropy == "auto" or numeric,
                 f"algo.target_entropy must be 'auto' (= -action_dim) or a number, got {entropy!r}.")


def _check_transformer(t: DictConfig) -> None:
    _require(t.d_model % t.n_heads == 0,
             f"transformer.d_model ({t.d_model}) must be a multiple of transformer.n_heads ({t.n_heads}).")
    kv_heads = t.n_kv_heads or t.n_heads
    _require(t.n_heads % kv_heads == 0,
             f"transformer.n_heads ({t.n_heads}) must be a multiple of transformer.n_kv_heads ({kv_heads}).")
    if t.positions == "rotary":
        _require((t.d_model // t.n_heads) % 2 == 0,
                 f"transformer.positions=rotary needs an even head size, got d_model // n_heads = {t.d_model // t.n_heads}.")
    _require(len(t.tokens) > 0 and t.tokens[0] == "observation" and len(set(t.tokens)) == len(t.tokens),
             f"transformer.tokens must start with observation, then any of prev_action, prev_reward, each once; "
             f"got {list(t.tokens)}.")
    if t.rollout == "cache":
        _require(t.positions == "rotary",
                 f"transformer.rollout=cache needs transformer.positions=rotary (cached keys must not depend on the "
                 f"window slot), got positions={t.positions}.")
        _require(t.context_len >= 2, f"transformer.rollout=cache needs transformer.context_len >= 2, got {t.context_len}.")


def transformer_acts(cfg: DictConfig) -> bool:
    """Whether the transformer acts in the envs at all: not with ``mode=accelerator_only`` (the baseline, or its
    alias ``mlp_td3``)."""
    return canonical_mode(cfg.mode) != "accelerator_only"


def env_window(cfg: DictConfig) -> int | None:
    """The window the env builds for the transformer to act on: :func:`transformer_window`, or ``None`` where
    nothing acts on a window: with KV-cache rollouts (``transformer.rollout=cache``), or when the transformer
    never acts (:func:`transformer_acts`)."""
    return None if cfg.transformer.rollout == "cache" or not transformer_acts(cfg) else transformer_window(cfg)


def transformer_window(cfg: DictConfig) -> int:
    """Steps in the transformer's window (env-built or from replay): ``context_len``, or with rotary positions the
    receptive field of its sliding-window layers (see :func:`trl_accel.modules.transformer.window_length`)."""
    t = cfg.transformer
    return window_length(t.context_len, t.n_layers, t.positions)


#: ``accelerator.seq_len`` for whole episodes: sequences as long as the task's episode limit, from an episode's start.
WHOLE_EPISODES = -1


def episode_steps(cfg: DictConfig) -> int:
    """The episode length cap of ``cfg.env``: ``env.max_episode_steps``, else the task's registered limit."""
    if is_maniskill_config(cfg.env):
        return cfg.env.max_episode_steps or default_max_episode_steps(cfg.env.name)
    return episode_limit(cfg.env.name, cfg.env.max_episode_steps)


def sequence_length(cfg: DictConfig) -> int:
    """Steps per replayed sequence of a recurrent accelerator: ``accelerator.seq_len``, or with
    ``seq_len=-1`` the episode limit (each sequence then holds one whole episode, padded and masked)."""
    seq_len = cfg.accelerator.seq_len
    return episode_steps(cfg) if seq_len == WHOLE_EPISODES else seq_len


def _check_accelerator(cfg: DictConfig) -> None:
    acc = cfg.accelerator
    if acc.type in RECURRENT:
        for key in ("hidden_size", "inputs", "seq_len", "burn_in", "start_state"):
            _require(acc[key] is not None, f"accelerator={acc.type} needs accelerator.{key}: pick the group with "
                     f"accelerator={acc.type}.")
        _require(len(acc.inputs) > 0, "accelerator.inputs must name at least one of observation, prev_action, prev_reward.")
        unknown = sorted(set(acc.embedding or {}) - {"observation", "prev_action", "prev_reward"})
        _require(not unknown, f"accelerator.embedding has unknown inputs {unknown}: its keys are among observation, "
                 "prev_action, prev_reward.")
        _require(all(size >= 1 for size in (acc.embedding or {}).values()),
                 f"accelerator.embedding sizes must be >= 1, got {dict(acc.embedding)}.")
        _require(acc.seq_len == WHOLE_EPISODES or acc.seq_len >= 2,
                 f"accelerator.seq_len={acc.seq_len} is out of range: it must be >= 2, or {WHOLE_EPISODES} for whole episodes.")
        if acc.seq_len == WHOLE_EPISODES:
            _require(acc.burn_in < sequence_length(cfg), f"accelerator.burn_in ({acc.burn_in}) must be below the whole "
                     f"episodes' length ({sequence_length(cfg)} steps) with accelerator.seq_len={WHOLE_EPISODES}.")
        else:
            _require(acc.burn_in < acc.seq_len,
                     f"accelerator.burn_in must be in [0, accelerator.seq_len={acc.seq_len}), got {acc.burn_in}.")
    if acc.privileged:
        _require(acc.type == "mlp" and cfg.env.obs_mode != "rgb",
                 f"accelerator.privileged=true is for the MLP accelerator on state observations (it reads the full "
                 f"state in place of a memory), got accelerator={acc.type}"
                 f"{', env.obs_mode=rgb' if cfg.env.obs_mode == 'rgb' else ''}.")
        _require(cfg.env.pomdp is not None or cfg.env.name in TORCH_TASKS,
                 f"accelerator.privileged=true needs a partially observed task (env.pomdp set, or one of {TORCH_TASKS}), "
                 f"so that there is a hidden state to read; {cfg.env.name} is fully observed here.")


def _check_buffers(cfg: DictConfig) -> None:
    recurrent = cfg.accelerator.type in RECURRENT
    seq_len = sequence_length(cfg) if recurrent else 1
    algorithm_batch = "accelerator.batch_size" if recurrent and cfg.accelerator.batch_size else "algo.batch_size"
    stage2_batch = "stage2.batch_size" if cfg.stage2.batch_size else algorithm_batch
    for buffer_key, batch_key in (("stage1.buffer_size", algorithm_batch), ("stage2.buffer_size", stage2_batch),
                                  ("baseline.buffer_size", algorithm_batch)):
        size, section_batch = OmegaConf.select(cfg, buffer_key), OmegaConf.select(cfg, batch_key)
        steps = section_batch * seq_len
        _require(steps <= size, f"a batch of {batch_key}={section_batch} "
                 f"{'sequences' if seq_len > 1 else 'transitions'} ({steps} steps) does not fit in "
                 f"{buffer_key} ({size}): lower {batch_key} or raise {buffer_key}.")


def _check_stage_one(cfg: DictConfig) -> None:
    stage1, algorithm = cfg.stage1, cfg.algo.name
    _require(not (stage1.bc_data == "dagger" and stage1.bc_target == "executed"),
             "stage1.bc_data=dagger labels the transformer's own actions with the accelerator: use stage1.bc_target=accelerator.")
    _require(stage1.bc_batch_size <= stage1.bc_every,
             f"stage1.bc_batch_size ({stage1.bc_batch_size}) is larger than the trajectory buffer (stage1.bc_every={stage1.bc_every}).")
    _require(stage1.dagger_teacher_share == 0 or stage1.bc_data == "dagger",
             f"stage1.dagger_teacher_share={stage1.dagger_teacher_share} mixes the teacher into the transformer's own "
             f"rollouts: set stage1.bc_data=dagger, or leave the share at 0.")
    _require(stage1.bc_final_rounds == 0 or stage1.bc_data != "training",
             f"stage1.bc_final_rounds={stage1.bc_final_rounds} needs rollouts of its own after the accelerator's last step: "
             f"set stage1.bc_data=dagger (or evaluation), or leave bc_final_rounds at 0.")
    _require(stage1.bc_data == "training" or stage1.bc_every % cfg.env.num_envs == 0,
             f"stage1.bc_every ({stage1.bc_every}) must be a multiple of env.num_envs ({cfg.env.num_envs}) with "
             f"stage1.bc_data={stage1.bc_data}: each round's rollouts step every env copy as often.")
    _require(stage1.bc_loss == "mse" or algorithm == "sac",
             "stage1.bc_loss=likelihood needs a stochastic transformer: use recipes/sac_accelerate.py (algo=sac), or bc_loss=mse.")
    if cfg.accelerator.type in RECURRENT:
        previous = sorted({"prev_action", "prev_reward"} & set(cfg.accelerator.inputs))
        _require(stage1.ascent_weight == 0 or not previous,
                 f"stage1.ascent_weight > 0 evaluates the recurrent critic on the transformer's observation window, which "
                 f"holds no {previous[0] if previous else ''}: set accelerator.inputs=[observation] or stage1.ascent_weight=0.")
    _require(stage1.switch.rule != "auto" or cfg.eval.every > 0,
             "stage1.switch.rule=auto decides at evaluations: set eval.every > 0.")
    accelerating = canonical_mode(cfg.mode) == "accelerate" and cfg.stage2.init_from is None
    _require(not accelerating or stage1.steps == 0 or stage1.steps >= stage1.bc_every,
             f"stage1.steps ({stage1.steps}) is below stage1.bc_every ({stage1.bc_every}), so the transformer would never "
             "be cloned: raise stage1.steps or lower stage1.bc_every (stage1.steps=0 skips stage one's learning).")
    if cfg.stage2.init_from is not None:
        _require(canonical_mode(cfg.mode) == "accelerate", "stage2.init_from is for mode=accelerate.")
        _require(Path(cfg.stage2.init_from).is_file(),
                 f"stage2.init_from='{cfg.stage2.init_from}' does not exist. Point it at a stage-one checkpoint "
                 "(RUN_DIR/checkpoints/stage1.pt).")


def _check_logger(backend: str | None) -> None:
    if backend in LOGGER_PACKAGES:
        package, extra = LOGGER_PACKAGES[backend]
        _require(importlib.util.find_spec(package) is not None,
                 f"logger.backend={backend} needs the {package} package, which is not installed: "
                 f"pip install -e '.[{extra}]', or use logger.backend=csv.")


def _check_collector(cfg: DictConfig) -> None:
    """``collector.*``: batches that split evenly over the workers, the ``ray`` package for ``backend=ray``, and a
    cluster address that answers (checked within seconds, so that a wrong address fails instead of hanging)."""
    c = cfg.collector
    envs = cfg.env.num_envs
    if c.sync:
        _require(cfg.frames_per_batch % (c.workers * envs) == 0,
                 f"frames_per_batch ({cfg.frames_per_batch}) must be a multiple of collector.workers x env.num_envs "
                 f"({c.workers} x {envs}) with collector.sync=true: each batch holds the same number of steps from "
                 f"every env of every worker.")
    _require(c.workers == 1 or c.backend == "ray" or cfg.env.sim_backend != "physx_cuda",
             "collector.workers > 1 with env.sim_backend=physx_cuda: a GPU simulator steps all its envs in one "
             "process; raise env.num_envs instead, or use env.sim_backend=physx_cpu.")
    _require(c.ray_address is None or c.backend == "ray",
             f"collector.ray_address={c.ray_address} is for collector.backend=ray (got backend={c.backend}).")
    if c.backend == "ray":
        _require(importlib.util.find_spec("ray") is not None,
                 "collector.backend=ray needs the ray package, which is not installed: pip install -e .[ray] "
                 "(or use collector.backend=local).")
        if c.ray_address is not None:
            problem = ray_address_problem(c.ray_address)
            _require(problem is None, f"collector.ray_address={c.ray_address}: {problem}")


def _check_maniskill(cfg: DictConfig) -> None:
    """ManiSkill tasks: the package and a Vulkan device present, and options this wrapper supports."""
    env = cfg.env
    _require(env.sim_backend is not None, "env.sim_backend must be physx_cpu or physx_cuda for a ManiSkill task.")
    _require(env.pomdp is None, "env.pomdp is for the MuJoCo tasks; ManiSkill tasks are fully observed here.")
    available, reason = vulkan_available()
    _require(available, f"{env.name} cannot run here: {reason}")


def check_checkpoint_shapes(checkpoint_shapes: dict, env_shapes: dict, path: str) -> None:
    """Raise :class:`ConfigError` when a checkpoint was made for other observation/action sizes."""
    if checkpoint_shapes != env_shapes:
        raise ConfigError(f"The checkpoint '{path}' was made for {checkpoint_shapes}, but this env and config give "
                          f"{env_shapes}. Use the same env and transformer.context_len as the run that wrote it.")
