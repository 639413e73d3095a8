"""DAgger's mixture policy (Ross et al. 2011): the rollouts that fill T act with the teacher in a share of the
episodes and with the student in the others, so that T holds the states the teacher visits as well as the
student's own."""
from __future__ import annotations

import math

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from trl_accel import keys


def teacher_episodes(episode_index: torch.Tensor, share: float) -> torch.Tensor:
    """Whether the teacher acts in each stream's episode ``episode_index`` (0, 1, ...): in ``share`` of the
    episodes, spread evenly (episode i is the teacher's when ``floor((i + 1) * share) > floor(i * share)``).

    >>> teacher_episodes(torch.arange(6), 0.5).tolist()
    [False, True, False, True, False, True]
    >>> teacher_episodes(torch.arange(4), 0.0).tolist(), teacher_episodes(torch.arange(4), 1.0).tolist()
    ([False, False, False, False], [True, True, True, True])
    """
    index = episode_index.to(torch.float64)
    return torch.floor((index + 1) * share) > torch.floor(index * share)


class EpisodeMixture(TensorDictModuleBase):
    """Acts with ``teacher`` in ``share`` of each env stream's episodes and with ``student`` in the others.

    Reads what both read, and ``is_init`` [*B, 1] (TorchRL's ``InitTracker``), which starts a stream's next
    episode; writes ``action`` [*B, A] (the executed one: the teacher's in its episodes) and whatever else the two
    write (a recurrent teacher's next state, so its memory is kept in the student's episodes too). Both run at
    every step. Stateful: it counts each stream's episodes from its first call.
    Meant for deterministic rollouts that fill T (``stage1.bc_data=dagger``), not for gradient steps."""

    def __init__(self, student: TensorDictModuleBase, teacher: TensorDictModuleBase, share: float):
        super().__init__()
        if not 0.0 <= share <= 1.0 or math.isnan(share):
            raise ValueError(f"share must be in [0, 1], got {share}.")
        self.student, self.teacher, self.share = student, teacher, share
        self.in_keys = list(dict.fromkeys([*student.in_keys, *teacher.in_keys, keys.IS_INIT]))
        self.out_keys = list(dict.fromkeys([*student.out_keys, *teacher.out_keys]))
        self.episode_index: torch.Tensor | None = None

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        started = tensordict.get(keys.IS_INIT).reshape(tensordict.batch_size)
        if self.episode_index is None:
            self.episode_index = torch.full(started.shape, -1, dtype=torch.long, device=started.device)
        self.episode_index = self.episode_index + started.long()
        teacher_acts = teacher_episodes(self.episode_index.clamp_min(0), self.share)
        student_action = self.student(tensordict).get(keys.ACTION).clone()
        teacher_action = self.teacher(tensordict).get(keys.ACTION)
        mixed = torch.where(teacher_acts.unsqueeze(-1), teacher_action, student_action)
        return tensordict.set(keys.ACTION, mixed)
