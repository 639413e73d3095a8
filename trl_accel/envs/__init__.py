"""Environments with context windows."""
from trl_accel.envs.context import MASK_KEY, OBSERVATION_KEY, WINDOW_KEY, WindowMask, context_window_transforms
from trl_accel.envs.make import KNOWN_ENVS, EnvConfigError, check_env_available, episode_limit, make_env

__all__ = [
    "KNOWN_ENVS",
    "MASK_KEY",
    "OBSERVATION_KEY",
    "WINDOW_KEY",
    "EnvConfigError",
    "WindowMask",
    "check_env_available",
    "context_window_transforms",
    "episode_limit",
    "make_env",
]
