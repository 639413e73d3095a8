"""The on-policy recipe's envs: batched pure-torch tasks with the keys its policies read.

Each env gets ``step_count`` (the rotary position), ``is_init``, ``prev_action``/``prev_reward`` (the token's
other parts) and ``episode_reward`` (the running return); the policy's memory primers are appended after.
"""
from __future__ import annotations

import inspect

import torch
from omegaconf import DictConfig, OmegaConf
from torchrl.envs import (
    Compose,
    EnvBase,
    InitTracker,
    RewardSum,
    StepCounter,
    TransformedEnv,
)

from trl_accel.envs.cue_reach import CueReachEnv
from trl_accel.envs.grid_memory import GridMemoryEnv
from trl_accel.envs.previous import PreviousActionReward

#: The tasks of the on-policy recipe and their env classes (batch size ``[num_envs]``, pure torch).
ONPOLICY_TASKS = {"grid_memory": GridMemoryEnv, "cue_reach": CueReachEnv}


def env_options(env_cfg: DictConfig) -> dict:
    return dict(OmegaConf.to_container(env_cfg.options, resolve=True) or {}) if env_cfg.get("options") else {}


def episode_length(env_cfg: DictConfig) -> int:
    """The task's episode length: ``env.options.episode_steps`` or the env class's default."""
    env_class = ONPOLICY_TASKS[env_cfg.name]
    default = inspect.signature(env_class.__init__).parameters["episode_steps"].default
    return int(env_options(env_cfg).get("episode_steps", default))


def make_onpolicy_env(env_cfg: DictConfig, *, num_envs: int, seed: int, device: torch.device | str = "cpu") -> TransformedEnv:
    """``env_cfg.name`` with ``env_cfg.options`` as keywords, ``num_envs`` agents, seeded; raises ``ValueError``
    (the env's own message) for a bad option."""
    base: EnvBase = ONPOLICY_TASKS[env_cfg.name](num_envs=num_envs, device=device, seed=seed, **env_options(env_cfg))
    return TransformedEnv(base, Compose(StepCounter(), InitTracker(), PreviousActionReward(), RewardSum()))


__all__ = ["ONPOLICY_TASKS", "env_options", "episode_length", "make_onpolicy_env"]
