"""Replay buffers of single transitions or of sequences (recurrent actors and critics)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from torchrl.data import LazyTensorStorage, ReplayBuffer, SliceSampler
from torchrl.envs import Transform

from trl_accel import keys


@dataclass
class SequenceSettings:
    """How recurrent learners sample: ``seq_len`` consecutive steps of one episode per sequence, the
    first ``burn_in`` of which only warm up the recurrent state (no loss on them)."""

    seq_len: int = 8
    burn_in: int = 2


class SequenceView(Transform):
    """Replay-buffer transform: a flat sample of ``B * seq_len`` steps -> ``[B, seq_len]``, plus
    ``loss_mask`` [B, seq_len] (``False`` on the first ``burn_in`` steps), which TorchRL's losses
    honour once their ``loss_mask_key`` is set to it."""

    def __init__(self, seq_len: int, burn_in: int = 0):
        super().__init__()
        if not 0 <= burn_in < seq_len:
            raise ValueError(f"burn_in must be in [0, seq_len), got burn_in={burn_in}, seq_len={seq_len}.")
        self.seq_len, self.burn_in = seq_len, burn_in

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        sequences = tensordict.reshape(-1, self.seq_len)
        mask = torch.ones(sequences.shape, dtype=torch.bool, device=sequences.device)
        mask[:, : self.burn_in] = False
        return sequences.set(keys.LOSS_MASK, mask)

    def _call(self, tensordict: TensorDictBase) -> TensorDictBase:
        return self.forward(tensordict)


def make_replay_buffer(size: int, batch_size: int, device: torch.device | str = "cpu",
                       sequences: SequenceSettings | None = None) -> ReplayBuffer:
    """Uniform replay of ``batch_size`` transitions, or, with ``sequences``, of ``batch_size``
    sequences that never cross an episode's end (TorchRL's ``SliceSampler`` on ``("next", "done")``),
    returned as ``[batch_size, seq_len]`` with a ``loss_mask``."""
    storage = LazyTensorStorage(size, device=device)
    if sequences is None:
        return ReplayBuffer(storage=storage, batch_size=batch_size)
    sampler = SliceSampler(slice_len=sequences.seq_len, end_key=("next", "done"), strict_length=True)
    return ReplayBuffer(storage=storage, sampler=sampler, batch_size=batch_size * sequences.seq_len,
                        transform=SequenceView(sequences.seq_len, sequences.burn_in))
