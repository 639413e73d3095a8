"""Deterministic evaluation over several episodes, each on its own seed."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from tensordict.nn import TensorDictModuleBase
from torchrl.envs import EnvBase, ExplorationType, set_exploration_type


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """Dropout and other train-only behaviour off inside the block; the previous mode restored after."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def in_first_episode(done: torch.Tensor) -> torch.Tensor:
    """Steps up to and including each row's first ``done``. Shapes: [N, T] -> [N, T] bool."""
    done = done.to(torch.int64)
    return (done.cumsum(-1) - done) == 0


def first_episode_returns(reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
    """Sum of rewards up to and including each row's first ``done``. Shapes: [N, T] -> [N]."""
    return (reward * in_first_episode(done)).sum(-1)


@torch.no_grad()
def evaluate_policy(env: EnvBase, policy: TensorDictModuleBase | None, max_steps: int, seed: int) -> dict[str, float]:
    """Run one episode in each of ``env``'s batch entries (a batched env gives several episodes at
    once), seeded ``seed``, ``seed + 1``, ...; deterministic actions, dropout off. ``policy=None``
    acts uniformly at random. Returns ``return_mean``, ``return_std`` and ``episodes``."""
    env.set_seed(seed)
    module = policy if policy is not None else torch.nn.Identity()
    with eval_mode(module), set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout = env.rollout(max_steps, policy, break_when_any_done=False, break_when_all_done=True)
    rollout = rollout.reshape(-1, rollout.shape[-1]) if rollout.ndim > 1 else rollout.unsqueeze(0)
    done = rollout["next", "done"].squeeze(-1)
    returns = first_episode_returns(rollout["next", "reward"].squeeze(-1), done)
    result = {"return_mean": returns.mean().item(), "return_std": returns.std(unbiased=False).item(),
              "episodes": returns.numel()}
    if ("next", "success") in rollout.keys(True):
        result.update(first_episode_success(rollout["next", "success"].squeeze(-1), done))
    return result


def first_episode_success(success: torch.Tensor, done: torch.Tensor) -> dict[str, float]:
    """Success rates of each row's first episode, as ManiSkill's baselines report them:
    ``success_once`` (succeeded at any step) and ``success_at_end`` (succeeded at its last step).
    Shapes: [N, T] -> two floats."""
    in_first = in_first_episode(done)
    last = in_first & done.bool()
    last[:, -1] |= ~done.any(-1)  # an episode cut by the step limit ends at the last column
    once = (success & in_first).any(-1).float().mean().item()
    at_end = (success & last).any(-1).float().mean().item()
    return {"success_once": once, "success_at_end": at_end}
