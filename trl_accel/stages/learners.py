"""Choosing the off-policy algorithm: TD3 or SAC learners behind one interface."""
from __future__ import annotations

from typing import Protocol

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from torchrl.data import TensorSpec
from torchrl.objectives import LossModule

from trl_accel.stages.sac import SACLearner, SACSettings
from trl_accel.stages.td3 import TD3Learner, TD3Settings, make_exploration_policy

ALGORITHMS = ("td3", "sac")


class Learner(Protocol):
    """What the online loop needs from a learner."""

    loss: LossModule
    num_updates: int

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def make_learner(algorithm: str, actor: TensorDictModule, critics: list[TensorDictModule], action_spec: TensorSpec,
                 settings: dict, compile: bool = False) -> TD3Learner | SACLearner:
    """A :class:`TD3Learner` (``settings`` = the ``td3`` config section) or :class:`SACLearner` (``sac``)."""
    if algorithm == "td3":
        return TD3Learner(actor, critics, action_spec, TD3Settings(**settings), compile=compile)
    if algorithm == "sac":
        return SACLearner(actor, critics, action_spec, SACSettings(**settings), compile=compile)
    raise ValueError(f"algorithm must be one of {ALGORITHMS}, got '{algorithm}'.")


def make_collection_policy(algorithm: str, actor: TensorDictModule, action_spec: TensorSpec,
                           settings: dict) -> TensorDictModuleBase:
    """What acts during training: TD3's actor plus Gaussian noise; SAC's actor samples by itself."""
    if algorithm == "td3":
        return make_exploration_policy(actor, action_spec, settings["exploration_noise"])
    return actor
