"""Environments with context windows."""
from trl_accel.envs.context import WindowMask, context_window_transforms
from trl_accel.envs.make import KNOWN_ENVS, EnvConfigError, check_env_available, episode_limit, make_env
from trl_accel.envs.maniskill import make_maniskill_env, make_maniskill_training_env, vulkan_available
from trl_accel.envs.pomdp import OBSERVATION_LAYOUTS, POMDP_MODES, ObservationMask, check_pomdp, kept_indices
from trl_accel.envs.previous import PreviousActionReward

__all__ = [
    "KNOWN_ENVS",
    "OBSERVATION_LAYOUTS",
    "POMDP_MODES",
    "EnvConfigError",
    "ObservationMask",
    "PreviousActionReward",
    "WindowMask",
    "check_env_available",
    "check_pomdp",
    "context_window_transforms",
    "episode_limit",
    "kept_indices",
    "make_env",
    "make_maniskill_env",
    "make_maniskill_training_env",
    "vulkan_available",
]
