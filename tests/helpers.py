"""Helpers shared by the test files: synthetic BC pairs and transitions, the deterministic action."""
from __future__ import annotations

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModuleBase
from torchrl.envs import ExplorationType, set_exploration_type

from trl_accel import keys


def window_pairs(n: int, *, obs_dim: int, action_dim: int, context_len: int) -> TensorDict:
    """``n`` BC pairs: a window (its first position padding for a quarter of them), its ``window_mask``,
    ``observation`` (the window's last entry), ``is_init`` (False) and an ``action`` in [-0.8, 0.8]."""
    window_mask = torch.ones(n, context_len, dtype=torch.bool)
    window_mask[: n // 4, 0] = False
    window = torch.randn(n, context_len, obs_dim) * window_mask.unsqueeze(-1)
    return TensorDict({keys.OBSERVATION_WINDOW: window, keys.WINDOW_MASK: window_mask, keys.OBSERVATION: window[:, -1],
                       keys.IS_INIT: torch.zeros(n, 1, dtype=torch.bool),
                       keys.ACTION: torch.rand(n, action_dim) * 1.6 - 0.8}, batch_size=[n])


def transitions(n: int, *, obs_dim: int, action_dim: int, context_len: int, terminated: bool = False,
                truncated: bool = False) -> TensorDict:
    """``n`` random transitions with windows, for TD3 and SAC losses."""
    def step_keys() -> dict:
        return {keys.OBSERVATION: torch.randn(n, obs_dim), keys.OBSERVATION_WINDOW: torch.randn(n, context_len, obs_dim),
                keys.WINDOW_MASK: torch.ones(n, context_len, dtype=torch.bool)}

    done = torch.full((n, 1), terminated or truncated)
    return TensorDict({**step_keys(), keys.ACTION: torch.rand(n, action_dim) * 2 - 1,
                       "next": {**step_keys(), keys.REWARD: torch.randn(n, 1), keys.DONE: done,
                                keys.TERMINATED: torch.full((n, 1), terminated),
                                keys.TRUNCATED: torch.full((n, 1), truncated)}},
                      batch_size=[n])


def mean_action(actor: TensorDictModuleBase, batch: TensorDict) -> torch.Tensor:
    """The actor's deterministic action on ``batch`` (a stochastic actor's mean action), without gradients."""
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        return actor(batch.select(*actor.in_keys, strict=False))[keys.ACTION]
