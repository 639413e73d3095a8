"""The on-policy recipe's envs: batched tasks with the keys its policies read.

* ``grid_memory`` and ``cue_reach``: pure-torch TorchRL envs of batch size ``[num_envs]`` (this package's own);
* ``popgym``: a memory task of POPGym (``options.task``, e.g. ``RepeatPreviousEasy``, ``CountRecallEasy``), a
  maintained benchmark of partially observed tasks: ``num_envs`` copies in gymnasium's ``SyncVectorEnv`` with its
  auto-reset disabled, wrapped by TorchRL's ``GymWrapper`` (which then resets finished envs itself); its discrete
  observations arrive one-hot. Needs the ``popgym`` extra (``pip install -e .[popgym]``).

Each env gets ``step_count`` (the rotary position), ``is_init``, ``prev_action``/``prev_reward`` (the token's
other parts) and ``episode_reward`` (the running return); the policy's memory primers are appended after.
"""
from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass

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


def _popgym_class(task: str):
    import popgym.envs
    from popgym.core.env import POPGymEnv

    env_class = getattr(popgym.envs, str(task), None)
    if not (inspect.isclass(env_class) and issubclass(env_class, POPGymEnv)):
        raise ValueError(f"task must name a POPGym env class such as RepeatPreviousEasy or CountRecallEasy, got {task!r}.")
    return env_class


def _make_popgym(*, num_envs: int, device: torch.device | str, seed: int, task: str = "RepeatPreviousEasy") -> EnvBase:
    import gymnasium as gym
    from torchrl.envs import GymWrapper

    env_class = _popgym_class(task)
    vector = gym.vector.SyncVectorEnv([env_class for _ in range(num_envs)],
                                      autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    env = GymWrapper(vector, device=device)
    env.set_seed(seed)
    return env


@dataclass(frozen=True)
class OnPolicyTask:
    """How to build a task (``build(num_envs=, device=, seed=, **options)``), the options it takes, its episode
    length from its options, and the package it needs (``None``: none beyond ours)."""

    build: Callable[..., EnvBase]
    options: tuple[str, ...]
    episode_length: Callable[[dict], int]
    package: str | None = None


def _class_task(env_class: type) -> OnPolicyTask:
    parameters = inspect.signature(env_class.__init__).parameters
    default = parameters["episode_steps"].default
    return OnPolicyTask(env_class, tuple(p for p in parameters if p not in ("self", "num_envs", "device", "seed")),
                        lambda options: int(options.get("episode_steps", default)))


#: The tasks of the on-policy recipe.
ONPOLICY_TASKS = {
    "grid_memory": _class_task(GridMemoryEnv),
    "cue_reach": _class_task(CueReachEnv),
    "popgym": OnPolicyTask(_make_popgym, ("task",),
                           lambda options: int(_popgym_class(options.get("task", "RepeatPreviousEasy"))().max_episode_length),
                           package="popgym"),
}


def env_options(env_cfg: DictConfig) -> dict:
    return dict(OmegaConf.to_container(env_cfg.options, resolve=True) or {}) if env_cfg.get("options") else {}


def missing_package(env_cfg: DictConfig) -> str | None:
    """The package ``env_cfg.name`` needs and this environment lacks, if any."""
    package = ONPOLICY_TASKS[env_cfg.name].package
    return package if package is not None and importlib.util.find_spec(package) is None else None


def episode_length(env_cfg: DictConfig) -> int:
    """The task's episode length (for POPGym, its ``max_episode_length``)."""
    return ONPOLICY_TASKS[env_cfg.name].episode_length(env_options(env_cfg))


def make_onpolicy_env(env_cfg: DictConfig, *, num_envs: int, seed: int, device: torch.device | str = "cpu") -> TransformedEnv:
    """``env_cfg.name`` with ``env_cfg.options`` as keywords, ``num_envs`` agents, seeded; raises ``ValueError``
    (the env's own message) for a bad option."""
    base = ONPOLICY_TASKS[env_cfg.name].build(num_envs=num_envs, device=device, seed=seed, **env_options(env_cfg))
    return TransformedEnv(base, Compose(StepCounter(), InitTracker(), PreviousActionReward(), RewardSum()))


__all__ = ["ONPOLICY_TASKS", "OnPolicyTask", "env_options", "episode_length", "make_onpolicy_env", "missing_package"]
