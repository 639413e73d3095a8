"""DAgger's mixture policy: the teacher acts in a share of each stream's episodes, the student in the rest."""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

from trl_accel import keys
from trl_accel.stages.dagger import EpisodeMixture, teacher_episodes


class Constant(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return torch.full_like(observation[..., :1], self.value)


def constant_policy(value: float) -> TensorDictModule:
    return TensorDictModule(Constant(value), in_keys=[keys.OBSERVATION], out_keys=[keys.ACTION])


def step(is_init: list[bool]) -> TensorDict:
    n = len(is_init)
    return TensorDict({keys.OBSERVATION: torch.zeros(n, 3), keys.IS_INIT: torch.tensor(is_init).reshape(n, 1)}, [n])


@pytest.mark.parametrize("share, expected", [(0.0, [0] * 6), (0.5, [0, 1, 0, 1, 0, 1]), (1.0, [1] * 6),
                                             (1 / 3, [0, 0, 1, 0, 0, 1])])
def test_the_teacher_acts_in_its_share_of_the_episodes(share, expected):
    counts = teacher_episodes(torch.arange(6), share).long().tolist()
    assert counts == expected


def test_each_stream_counts_its_own_episodes_and_acts_throughout_each():
    mixture = EpisodeMixture(constant_policy(-1.0), constant_policy(1.0), share=0.5)
    # stream 0: episodes start at steps 0, 2 and 5; stream 1: at steps 0 and 4
    starts = [[True, True], [False, False], [True, False], [False, False], [False, True], [True, False]]
    actions = [mixture(step(row)).get(keys.ACTION).squeeze(-1).tolist() for row in starts]
    stream_0 = [row[0] for row in actions]
    stream_1 = [row[1] for row in actions]
    assert stream_0 == [-1.0, -1.0, 1.0, 1.0, 1.0, -1.0]  # episodes 0 (student), 1 (teacher), 2 (student)
    assert stream_1 == [-1.0, -1.0, -1.0, -1.0, 1.0, 1.0]  # episodes 0 (student), 1 (teacher)
    assert set(mixture.in_keys) == {keys.OBSERVATION, keys.IS_INIT} and mixture.out_keys == [keys.ACTION]


def test_the_share_must_be_a_fraction():
    with pytest.raises(ValueError, match="share must be in"):
        EpisodeMixture(constant_policy(0.0), constant_policy(1.0), share=1.5)
