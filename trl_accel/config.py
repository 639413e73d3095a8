"""Checks on a run's configuration, made before any training starts."""
from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from trl_accel.envs.make import check_env_available
from trl_accel.envs.maniskill import OBS_MODES, SIM_BACKENDS, is_maniskill_config, vulkan_available
from trl_accel.envs.pomdp import check_pomdp
from trl_accel.stages.acceleration import BC_DATA_SOURCES, BC_TARGETS
from trl_accel.stages.learners import ALGORITHMS
from trl_accel.stages.switch import SWITCH_RULES

MODES = ("accelerate", "accelerator_only", "transformer_only")
#: The backbone's names for the TD3 baselines.
MODE_ALIASES = {"mlp_td3": "accelerator_only", "transformer_td3": "transformer_only"}
ACCELERATORS = ("mlp", "lstm")
BC_LOSSES = ("mse", "likelihood")


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
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got '{name}'.")
    return torch.device(name)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first problem found in ``cfg``."""
    _require(cfg.mode in MODES or cfg.mode in MODE_ALIASES,
             f"mode must be one of {MODES} (or the older {tuple(MODE_ALIASES)}), got '{cfg.mode}'.")
    algorithm = cfg.get("algorithm", "td3")
    _require(algorithm in ALGORITHMS, f"algorithm must be one of {ALGORITHMS}, got '{algorithm}'.")
    _require(cfg.mode not in MODE_ALIASES or algorithm == "td3",
             f"mode={cfg.mode} names a TD3 baseline; with SAC use mode={MODE_ALIASES.get(cfg.mode)}.")
    if is_maniskill_config(cfg.env):
        _check_maniskill(cfg)
    else:
        try:
            check_env_available(cfg.env.name)
            check_pomdp(cfg.env.name, cfg.env.get("pomdp"))
        except ValueError as err:
            raise ConfigError(str(err)) from err
    resolve_device(str(cfg.device))
    _require(cfg.transformer.context_len >= 1,
             f"transformer.context_len must be >= 1 (the window holds the current observation), got {cfg.transformer.context_len}.")
    _check_accelerator(cfg.accelerator)
    batch = cfg[algorithm].batch_size
    _require(batch >= 1, f"{algorithm}.batch_size must be >= 1, got {batch}.")
    seq_len = cfg.accelerator.seq_len if cfg.accelerator.type == "lstm" else 1
    algorithm_batch = f"{algorithm}.batch_size"
    stage2_batch = "stage2.batch_size" if cfg.stage2.get("batch_size") else algorithm_batch
    for buffer_key, batch_key in (("stage1.buffer_size", algorithm_batch), ("stage2.buffer_size", stage2_batch),
                                  ("baseline.buffer_size", algorithm_batch)):
        size, section_batch = OmegaConf.select(cfg, buffer_key), OmegaConf.select(cfg, batch_key)
        steps = section_batch * seq_len
        _require(steps <= size, f"a batch of {batch_key}={section_batch} "
                 f"{'sequences' if seq_len > 1 else 'transitions'} ({steps} steps) does not fit in "
                 f"{buffer_key} ({size}): lower {batch_key} or raise {buffer_key}.")
    stage1 = cfg.stage1
    _require(stage1.bc_data in BC_DATA_SOURCES, f"stage1.bc_data must be one of {BC_DATA_SOURCES}, got '{stage1.bc_data}'.")
    _require(stage1.bc_target in BC_TARGETS, f"stage1.bc_target must be one of {BC_TARGETS}, got '{stage1.bc_target}'.")
    _require(not (stage1.bc_data == "dagger" and stage1.bc_target == "executed"),
             "stage1.bc_data=dagger labels the transformer's own actions with the accelerator: use stage1.bc_target=accelerator.")
    _require(stage1.bc_batch_size <= stage1.bc_every,
             f"stage1.bc_batch_size ({stage1.bc_batch_size}) is larger than the trajectory buffer (stage1.bc_every={stage1.bc_every}).")
    _require(stage1.get("bc_loss", "mse") in BC_LOSSES, f"stage1.bc_loss must be one of {BC_LOSSES}, got '{stage1.get('bc_loss')}'.")
    _require(stage1.get("bc_loss", "mse") == "mse" or algorithm == "sac",
             "stage1.bc_loss=likelihood needs a stochastic transformer: use recipes/sac_accelerate.py, or bc_loss=mse.")
    _require(stage1.get("ascent_weight", 0.0) >= 0, f"stage1.ascent_weight must be >= 0 (0 turns ascent off), got {stage1.get('ascent_weight')}.")
    _require(stage1.switch.rule in SWITCH_RULES, f"stage1.switch.rule must be one of {SWITCH_RULES}, got '{stage1.switch.rule}'.")
    for name in ("stage1.steps", "stage1.random_steps", "stage2.steps", "eval.every", "checkpoint.every"):
        section, key = name.split(".")
        _require(cfg[section][key] >= 0, f"{name} must be >= 0, got {cfg[section][key]}.")
    _require(cfg.eval.episodes >= 1, f"eval.episodes must be >= 1, got {cfg.eval.episodes}.")
    if cfg.stage2.init_from is not None:
        _require(cfg.mode == "accelerate", "stage2.init_from is for mode=accelerate.")
        _require(Path(cfg.stage2.init_from).is_file(),
                 f"stage2.init_from='{cfg.stage2.init_from}' does not exist. Point it at a stage-one checkpoint "
                 "(RUN_DIR/checkpoints/stage1.pt).")
    if cfg.resume is not None:
        path = Path(cfg.resume)
        _require(path.is_file() or (path / "checkpoints" / "last.pt").is_file(),
                 f"resume='{cfg.resume}' is neither a checkpoint file nor a run directory with checkpoints/last.pt.")


def _check_maniskill(cfg: DictConfig) -> None:
    """ManiSkill tasks: the package and a Vulkan device present, and options this wrapper supports."""
    env = cfg.env
    _require(env.obs_mode in OBS_MODES, f"env.obs_mode must be one of {OBS_MODES}, got '{env.obs_mode}'.")
    _require(env.sim_backend in SIM_BACKENDS, f"env.sim_backend must be one of {SIM_BACKENDS}, got '{env.sim_backend}'.")
    _require(env.num_envs >= 1, f"env.num_envs must be >= 1, got {env.num_envs}.")
    _require(cfg.frames_per_batch % env.num_envs == 0,
             f"frames_per_batch ({cfg.frames_per_batch}) must be a multiple of env.num_envs ({env.num_envs}): "
             f"each collector batch holds the same number of steps from every env.")
    _require(env.get("pomdp") is None, "env.pomdp is for the MuJoCo tasks; ManiSkill tasks are fully observed here.")
    _require(not (cfg.accelerator.type == "lstm" and env.num_envs > 1),
             "accelerator=lstm samples sequences from one env's stream: use env.num_envs=1 with it.")
    available, reason = vulkan_available()
    _require(available, f"{env.name} cannot run here: {reason}")


def _check_accelerator(acc: DictConfig) -> None:
    _require(acc.get("type") in ACCELERATORS, f"accelerator must be one of {ACCELERATORS} (accelerator=mlp|lstm), got '{acc.get('type')}'.")
    if acc.type == "lstm":
        _require(acc.seq_len >= 2, f"accelerator.seq_len must be >= 2, got {acc.seq_len}.")
        _require(0 <= acc.burn_in < acc.seq_len,
                 f"accelerator.burn_in must be in [0, accelerator.seq_len={acc.seq_len}), got {acc.burn_in}.")


def check_checkpoint_shapes(checkpoint_shapes: dict, env_shapes: dict, path: str) -> None:
    """Raise :class:`ConfigError` when a checkpoint was made for other observation/action sizes."""
    if checkpoint_shapes != env_shapes:
        raise ConfigError(f"The checkpoint '{path}' was made for {checkpoint_shapes}, but this env and config give "
                          f"{env_shapes}. Use the same env and transformer.context_len as the run that wrote it.")
