"""Rollouts of a step-mode policy over a batched env, and the advantages PPO learns from.

Each rollout starts with empty memory: its first step is marked ``is_init`` for every env, so the
transformer's KV cache and the GRU's state start from zero there, exactly as the sequence mode reads the
rollout in the update (an episode segment starts at ``is_init`` or at the rollout's first step). The
log-probabilities the update recomputes over the rollout are thus those of the policy that acted: the data
are on-policy whatever the rollout's length. With ``rollout_len`` a multiple of the episode length (the
grid task's default: one episode per rollout) nothing is lost; a shorter rollout cuts the memory at its
start (the seed's "training on part of a trajectory would make the data off-policy", avoided this way).
"""
from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.envs import EnvBase
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives.value.functional import generalized_advantage_estimate

from trl_accel import keys
from trl_accel.modules.trajectory import FEATURES, STATE_VALUE, TOKENS

ADVANTAGE, VALUE_TARGET = "advantage", "value_target"
#: Written by the step-mode policy, recomputed by the update: not kept in the rollout.
STEP_OUTPUTS = (TOKENS, FEATURES)


@torch.no_grad()
def collect_rollout(env: EnvBase, policy: TensorDictModuleBase, carry: TensorDictBase, steps: int, *,
                    memory_keys: tuple[str, ...] = ()) -> tuple[TensorDictBase, TensorDictBase, torch.Tensor]:
    """``steps`` steps of ``policy`` (sampling) from ``carry`` (the env's current step, ``[N]``).

    Returns the rollout ``[N, steps]`` (observations, actions, log-probabilities, values, ``next`` rewards and
    done flags; no memory and no features), the carry for the next rollout, and the value [N, 1] of the step
    after the last one, computed with the rollout's memory (the bootstrap of the last advantage)."""
    carry = carry.set(keys.IS_INIT, torch.ones_like(carry.get(keys.IS_INIT)))
    dropped = (*STEP_OUTPUTS, *memory_keys, *(("next", key) for key in memory_keys))
    rollout = []
    with set_exploration_type(ExplorationType.RANDOM):
        for _ in range(steps):
            step, carry = env.step_and_maybe_reset(policy(carry))
            rollout.append(step.exclude(*dropped))
        bootstrap = policy(carry.copy()).get(STATE_VALUE)
    return torch.stack(rollout, dim=1), carry, bootstrap


def add_advantages(rollout: TensorDictBase, bootstrap: torch.Tensor, *, gamma: float, lmbda: float) -> TensorDictBase:
    """Write ``advantage`` and ``value_target`` [N, T, 1] into ``rollout`` with TorchRL's GAE (TD(λ)), from the
    values the acting policy computed (``state_value``). An episode's end, the time limit included, ends its
    return: the task's objective is the return of its fixed-length episodes, so nothing is bootstrapped past
    it; the last step of the rollout bootstraps on ``bootstrap`` unless its episode ended there."""
    value = rollout.get(STATE_VALUE)
    next_value = torch.cat([value[:, 1:], bootstrap[:, None]], dim=1)
    done = rollout.get(("next", keys.DONE))
    advantage, target = generalized_advantage_estimate(gamma, lmbda, value, next_value, rollout.get(("next", keys.REWARD)),
                                                       done=done, terminated=done, time_dim=-2)
    return rollout.set(ADVANTAGE, advantage).set(VALUE_TARGET, target)


def episode_returns(rollout: TensorDictBase) -> torch.Tensor:
    """The returns [E] of the episodes that ended in ``rollout`` (``("next", "episode_reward")`` where done)."""
    done = rollout.get(("next", keys.DONE))[..., 0]
    return rollout.get(("next", keys.EPISODE_REWARD))[..., 0][done]


__all__ = ["ADVANTAGE", "VALUE_TARGET", "add_advantages", "collect_rollout", "episode_returns"]
