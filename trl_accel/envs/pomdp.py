"""Partially observable versions of MuJoCo and classic-control tasks through an explicit observation mask.

A POMDP mode keeps one part of the flat observation vector and drops the rest:

* ``velocities_only``: positions are masked, velocities kept (the setting of our reference paper);
* ``positions_only``: velocities are masked, positions kept (the ``-P`` convention of the POMDP
  literature, e.g. ``HalfCheetah-P``).

The position and velocity parts of each supported task are written down in
:data:`OBSERVATION_LAYOUTS`; :class:`ObservationMask` keeps the selected indices of ``observation``.
Parts that are neither positions nor velocities (Ant's contact forces) are dropped by both modes.
"""
from __future__ import annotations

from typing import Sequence

import torch
from tensordict import TensorDictBase
from torchrl.data import Bounded, Composite, TensorSpec, Unbounded
from torchrl.envs import Transform

from trl_accel.envs.errors import EnvConfigError

POMDP_MODES: tuple[str, ...] = ("velocities_only", "positions_only")

#: Which part of the observation each mode keeps.
_MODE_PART: dict[str, str] = {"velocities_only": "velocity", "positions_only": "position"}

#: Per gymnasium id, the half-open index ranges ``[start, stop)`` of the position part and the
#: velocity part of the observation, for the default constructor arguments (in particular
#: ``exclude_current_positions_from_observation=True`` for the MuJoCo tasks).
OBSERVATION_LAYOUTS: dict[str, dict[str, tuple[int, int]]] = {
    # obs (17) = qpos[1:] (8: rootz, rooty, 6 joint angles) | qvel (9: root x/z/angular, 6 joints)
    "HalfCheetah-v5": {"position": (0, 8), "velocity": (8, 17)},
    # obs (11) = qpos[1:] (5: rootz, rooty, 3 joint angles) | clip(qvel, -10, 10) (6)
    "Hopper-v5": {"position": (0, 5), "velocity": (5, 11)},
    # obs (17) = qpos[1:] (8: rootz, rooty, 6 joint angles) | clip(qvel, -10, 10) (9)
    "Walker2d-v5": {"position": (0, 8), "velocity": (8, 17)},
    # obs (105) = qpos[2:] (13: torso z, torso quaternion (4), 8 joint angles)
    #           | qvel (14: torso linear (3) and angular (3) velocity, 8 joints)
    #           | contact forces (78: cfrc_ext of the 13 bodies after the world body, 6 each).
    # The contact forces are neither positions nor velocities: both modes drop them.
    "Ant-v5": {"position": (0, 13), "velocity": (13, 27)},
    # obs (4) = qpos (2: cart position, pole angle) | qvel (2: cart velocity, pole angular velocity)
    "InvertedPendulum-v5": {"position": (0, 2), "velocity": (2, 4)},
    # obs (3) = cos(theta), sin(theta) | theta_dot
    "Pendulum-v1": {"position": (0, 2), "velocity": (2, 3)},
}


def check_pomdp(env_name: str, mode: str | None) -> None:
    """Raise :class:`EnvConfigError` unless ``mode`` is ``None`` or a mode with a layout for ``env_name``."""
    if mode is not None:
        kept_indices(env_name, mode)


def kept_indices(env_name: str, mode: str) -> list[int]:
    """The observation indices that POMDP ``mode`` keeps for gymnasium id ``env_name``."""
    if mode not in POMDP_MODES:
        raise EnvConfigError(
            f"Unknown POMDP mode '{mode}'. Available modes: {', '.join(POMDP_MODES)}. "
            "Set env.pomdp to one of them, or to null for the fully observed task."
        )
    if env_name not in OBSERVATION_LAYOUTS:
        raise EnvConfigError(
            f"No observation layout for '{env_name}', so it has no POMDP version. "
            f"Envs with a layout: {', '.join(OBSERVATION_LAYOUTS)}. Pick one of them, set env.pomdp=null, "
            "or add the layout to OBSERVATION_LAYOUTS in trl_accel/envs/pomdp.py."
        )
    start, stop = OBSERVATION_LAYOUTS[env_name][_MODE_PART[mode]]
    return list(range(start, stop))


def _masked_spec(spec: TensorSpec, indices: torch.Tensor) -> TensorSpec:
    """``spec`` restricted to ``indices`` of its last dim, with its type, dtype and device kept."""
    if indices.numel() and int(indices.max()) >= spec.shape[-1]:
        raise EnvConfigError(
            f"Observation mask index {int(indices.max())} is out of range for an observation of size "
            f"{spec.shape[-1]}. Build the env with its default arguments, which the layout assumes."
        )
    shape = (*spec.shape[:-1], indices.numel())
    if isinstance(spec, Bounded):
        low = spec.space.low.index_select(-1, indices.to(spec.space.low.device))
        high = spec.space.high.index_select(-1, indices.to(spec.space.high.device))
        return Bounded(low=low, high=high, shape=shape, dtype=spec.dtype, device=spec.device)
    if isinstance(spec, Unbounded):
        return Unbounded(shape=shape, dtype=spec.dtype, device=spec.device)
    raise TypeError(
        f"ObservationMask supports Bounded and Unbounded observation specs, got {type(spec).__name__}. "
        "Apply the mask to a continuous vector observation."
    )


class ObservationMask(Transform):
    """Keeps the given indices of the last dim of the observation and drops the others.

    TensorDict in: ``in_keys`` (default ``observation``), [*B, obs_dim].
    TensorDict out: ``out_keys`` (default: the in_keys, overwritten), [*B, len(indices)], same dtype.

    Applied on every step and on reset; the observation spec keeps its type (Bounded keeps the
    bounds of the kept entries, Unbounded stays Unbounded) and dtype, with the new last dim.
    """

    def __init__(self, indices: Sequence[int], in_keys: Sequence[str] | None = None,
                 out_keys: Sequence[str] | None = None):
        indices = list(indices)
        if not indices or min(indices) < 0 or len(set(indices)) != len(indices):
            raise ValueError(f"ObservationMask needs distinct, non-negative indices, got {indices}.")
        in_keys = list(in_keys) if in_keys is not None else ["observation"]
        super().__init__(in_keys=in_keys, out_keys=list(out_keys) if out_keys is not None else in_keys)
        self.register_buffer("indices", torch.tensor(indices, dtype=torch.long))

    def _apply_transform(self, observation: torch.Tensor) -> torch.Tensor:
        return observation.index_select(-1, self.indices.to(observation.device))

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._call(tensordict_reset)

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            observation_spec[out_key] = _masked_spec(observation_spec[in_key], self.indices)
        return observation_spec


def pomdp_transform(env_name: str, mode: str) -> ObservationMask:
    """The :class:`ObservationMask` of POMDP ``mode`` for gymnasium id ``env_name``."""
    return ObservationMask(kept_indices(env_name, mode))
