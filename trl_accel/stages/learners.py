"""Choosing the off-policy algorithm: TD3 or SAC learners behind one interface."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Protocol

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


def settings_of(algorithm: str, settings: Mapping[str, Any] | TD3Settings | SACSettings) -> TD3Settings | SACSettings:
    """``settings`` as the algorithm's settings dataclass; a mapping must name only its fields."""
    cls = {"td3": TD3Settings, "sac": SACSettings}[algorithm]
    if isinstance(settings, cls):
        return settings
    if not isinstance(settings, Mapping):
        raise TypeError(f"settings must be a {cls.__name__} or a mapping of its fields, got {type(settings).__name__}.")
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(f"Unknown {algorithm} settings {unknown}; {cls.__name__} has {known}.")
    return cls(**settings)


def make_learner(algorithm: str, actor: TensorDictModule, critics: list[TensorDictModule], action_spec: TensorSpec, *,
                 settings: Mapping[str, Any] | TD3Settings | SACSettings,
                 compile: bool = False, cudagraphs: bool = False) -> TD3Learner | SACLearner:
    """A :class:`TD3Learner` (``settings``: a :class:`TD3Settings` or the ``td3`` config section) or a
    :class:`SACLearner` (a :class:`SACSettings` or the ``sac`` section). ``compile``: ``torch.compile`` the loss
    computations; ``cudagraphs``: capture each update's steps as CUDA graphs (CUDA only, fixed batch shapes)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got '{algorithm}'.")
    learner = TD3Learner if algorithm == "td3" else SACLearner
    return learner(actor, critics, action_spec, settings_of(algorithm, settings), compile=compile,
                   cudagraphs=cudagraphs)


def make_collection_policy(algorithm: str, actor: TensorDictModule, action_spec: TensorSpec,
                           settings: Mapping[str, Any] | TD3Settings | SACSettings) -> TensorDictModuleBase:
    """What acts during training: TD3's actor plus Gaussian noise; SAC's actor samples by itself."""
    if algorithm == "td3":
        return make_exploration_policy(actor, action_spec, settings_of(algorithm, settings).exploration_noise)
    return actor
