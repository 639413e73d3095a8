"""Replay buffers of single transitions or of sequences (recurrent actors and critics)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import LazyTensorStorage, ReplayBuffer, SliceSampler
from torchrl.envs import Transform

from trl_accel import keys
from trl_accel.stages.windows import StreamWindows

START_STATES = ("stored", "zero")
#: Written by TorchRL's collector: one id per trajectory, whichever env it came from.
TRAJECTORY_KEY = ("collector", "traj_ids")
#: Written by TorchRL's ``SliceSampler(pad_output=True)``: False on the padding of a short sequence.
PADDING_MASK_KEY = ("collector", "mask")


@dataclass
class SequenceSettings:
    """How recurrent learners sample: ``seq_len`` consecutive steps of one trajectory per sequence (a shorter
    episode is padded, and the padding masked, never dropped), the first ``burn_in`` of which only warm up
    the recurrent state (no loss on them). ``start_state``: the actor starts each sequence from the recurrent
    state it had there during collection (``stored``, its ``state_keys``) or from zero (``zero``)."""

    seq_len: int = 64
    burn_in: int = 8
    start_state: str = "stored"
    state_keys: tuple[NestedKey, ...] = ()


class SequenceView(Transform):
    """Replay-buffer transform: a flat sample of ``B * seq_len`` steps -> ``[B, seq_len]``, plus ``loss_mask``
    [B, seq_len] (``False`` on the first ``burn_in`` steps and on padding), which TorchRL's losses honour once
    their ``loss_mask_key`` is set to it. ``zero_state_keys``: recurrent states set to zero (current and next),
    so that the module starts each sequence from zero."""

    def __init__(self, seq_len: int, burn_in: int = 0, zero_state_keys: tuple[NestedKey, ...] = ()):
        super().__init__()
        if not 0 <= burn_in < seq_len:
            raise ValueError(f"burn_in must be in [0, seq_len), got burn_in={burn_in}, seq_len={seq_len}.")
        self.seq_len, self.burn_in, self.zero_state_keys = seq_len, burn_in, tuple(zero_state_keys)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        sequences = tensordict.reshape(-1, self.seq_len)
        mask = torch.ones(sequences.shape, dtype=torch.bool, device=sequences.device)
        mask[:, : self.burn_in] = False
        real = sequences.get(PADDING_MASK_KEY, None)  # absent when no sequence needed padding
        if real is None:
            real = torch.ones_like(mask)
        sequences.set(PADDING_MASK_KEY, real.reshape(mask.shape))
        mask &= sequences.get(PADDING_MASK_KEY)
        for key in self.zero_state_keys:
            for nested in (key, ("next", key)):
                state = sequences.get(nested, None)
                if state is not None:
                    sequences.set(nested, torch.zeros_like(state))
        return sequences.set(keys.LOSS_MASK, mask)

    def _call(self, tensordict: TensorDictBase) -> TensorDictBase:
        return self.forward(tensordict)


class SequenceReplayBuffer(ReplayBuffer):
    """A ``ReplayBuffer`` that knows trajectories: its samples get their context windows from the storage
    (``windows``, a :class:`~trl_accel.stages.windows.StreamWindows`: each step stored once) and/or pass through
    a :class:`SequenceView` *with* the sampler's padding mask (TorchRL's ``SliceSampler(pad_output=True)``
    reports which steps are padding only in the sample's info, which a replay transform never sees).

    With ``windows``, :meth:`extend` takes a collector's flat, env-major batch (see
    :meth:`~trl_accel.stages.windows.StreamWindows.place`)."""

    def __init__(self, *, view: SequenceView | None = None, windows: StreamWindows | None = None, **kwargs):
        super().__init__(**kwargs)
        self.view, self.windows = view, windows

    def extend(self, data: TensorDictBase, **kwargs) -> torch.Tensor:
        if self.windows is None:
            return super().extend(data, **kwargs)
        data = self.windows.place(data.clone(False))
        rows = super().extend(data, **kwargs)
        self.windows.stored_at(data, rows)
        return rows

    def sample(self, batch_size: int | None = None, return_info: bool = False):
        data, info = super().sample(batch_size, return_info=True)
        real = info.get(PADDING_MASK_KEY) if isinstance(info, dict) else None
        if real is not None:
            data.set(PADDING_MASK_KEY, real)
        if self.windows is not None:
            data = self.windows.attach(data, self._storage._storage)
        if self.view is not None:
            data = self.view(data)
        return (data, info) if return_info else data

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.windows is not None:
            state["windows"] = self.windows.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        windows = state_dict.pop("windows", None)
        super().load_state_dict(state_dict)
        if self.windows is not None and windows is not None:
            self.windows.load_state_dict(windows)


def make_replay_buffer(size: int, batch_size: int, device: torch.device | str = "cpu",
                       sequences: SequenceSettings | None = None, windows: StreamWindows | None = None) -> ReplayBuffer:
    """Uniform replay of ``batch_size`` transitions, or, with ``sequences``, of ``batch_size`` sequences of
    ``seq_len`` steps cut from one trajectory each (TorchRL's ``SliceSampler`` on the collector's trajectory
    ids, so several envs' streams never mix; a shorter trajectory padded and masked), returned as
    ``[batch_size, seq_len]`` with a ``loss_mask``. A recurrent actor starts each sequence from the state stored
    at its first step (or zero, ``start_state=zero``). With ``windows`` each sampled step gets its context
    windows built from the storage (see :mod:`trl_accel.stages.windows`)."""
    storage = LazyTensorStorage(size, device=device)
    if sequences is None:
        if windows is None:
            return ReplayBuffer(storage=storage, batch_size=batch_size)
        return SequenceReplayBuffer(storage=storage, batch_size=batch_size, windows=windows)
    if sequences.start_state not in START_STATES:
        raise ValueError(f"start_state must be one of {START_STATES}, got '{sequences.start_state}'.")
    sampler = SliceSampler(slice_len=sequences.seq_len, traj_key=TRAJECTORY_KEY, strict_length=False, pad_output=True)
    zero_keys = sequences.state_keys if sequences.start_state == "zero" else ()
    return SequenceReplayBuffer(storage=storage, sampler=sampler, batch_size=batch_size * sequences.seq_len,
                                view=SequenceView(sequences.seq_len, sequences.burn_in, zero_keys), windows=windows)


__all__ = ["PADDING_MASK_KEY", "START_STATES", "SequenceReplayBuffer", "SequenceSettings", "SequenceView", "TRAJECTORY_KEY", "make_replay_buffer"]
