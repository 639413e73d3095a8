"""Context windows: the last K observations of an episode and which of them are real."""
from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.data import Bounded, Composite
from torchrl.envs import CatFrames, Compose, Transform, UnsqueezeTransform

from trl_accel import keys


def window_mask_from_step_count(step_count: torch.Tensor, context_len: int) -> torch.Tensor:
    """Mask of the real positions in a window of ``context_len`` ending at step ``step_count``.

    ``step_count`` has shape ``[*B, 1]`` (0 at the first observation of an episode); the result
    has shape ``[*B, K]`` with ``True`` where the position holds an observation of the current
    episode (the last ``min(step_count + 1, K)`` positions).
    """
    positions = torch.arange(context_len, device=step_count.device)
    first_real = (context_len - 1) - step_count.clamp(max=context_len - 1)
    return positions >= first_real


class WindowMask(Transform):
    """Writes ``window_mask`` ([*B, K], bool) from ``step_count`` ([*B, 1]).

    Must come after :class:`~torchrl.envs.StepCounter`. Because the mask is derived from the
    episode's own step counter, positions before the episode's first observation are never
    marked real, whatever the window holds there.
    """

    def __init__(self, context_len: int, step_count_key: str = keys.STEP_COUNT, window_mask_key: str = keys.WINDOW_MASK):
        super().__init__(in_keys=[step_count_key], out_keys=[window_mask_key])
        self.context_len = context_len

    def _call(self, next_tensordict: TensorDictBase) -> TensorDictBase:
        step_count = next_tensordict.get(self.in_keys[0])
        next_tensordict.set(self.out_keys[0], window_mask_from_step_count(step_count, self.context_len))
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return self._call(tensordict_reset)

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        count_spec = observation_spec[self.in_keys[0]]
        observation_spec[self.out_keys[0]] = Bounded(
            low=False,
            high=True,
            shape=(*count_spec.shape[:-1], self.context_len),
            dtype=torch.bool,
            device=count_spec.device,
        )
        return observation_spec


def context_window_transforms(context_len: int) -> Compose:
    """Transforms that add ``observation_window`` [*B, K, obs_dim] and ``window_mask`` [*B, K].

    Expects ``observation`` and ``step_count`` (add :class:`~torchrl.envs.StepCounter` first).
    Positions before an episode's start are zero-padded and masked out; :class:`CatFrames`
    clears its buffer on every (partial) reset, so a window never crosses an episode boundary.
    """
    return Compose(*frame_window(keys.OBSERVATION, keys.OBSERVATION_WINDOW, context_len, frame_dims=1), WindowMask(context_len))


def frame_window(in_key: str, out_key: str, context_len: int, frame_dims: int) -> list[Transform]:
    """``in_key`` [*B, *F] (``F``: ``frame_dims`` dims) -> ``out_key`` [*B, K, *F]: the episode's last K
    entries, zero before its first. :class:`CatFrames` clears its buffer on every (partial) reset."""
    if context_len < 1:
        raise ValueError(f"context_len must be >= 1, got {context_len}.")
    dim = -(frame_dims + 1)
    return [UnsqueezeTransform(dim, in_keys=[in_key], out_keys=[out_key]),
            CatFrames(N=context_len, dim=dim, in_keys=[out_key], padding="constant")]


__all__ = [
    "WindowMask",
    "context_window_transforms",
    "frame_window",
    "window_mask_from_step_count",
]
