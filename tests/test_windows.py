"""Context windows: content, padding mask, episode boundaries, training = evaluation."""
from __future__ import annotations

import torch
from torchrl.collectors import Collector

from trl_accel.envs import make_env
from trl_accel.envs.context import window_mask_from_step_count

K = 4


def assert_windows_consistent(steps) -> None:
    """Every window ends with the current observation, holds the episode's previous observations in
    order, and is zero and masked before the episode's first step."""
    steps = steps.reshape(-1)
    window, mask, obs = steps["observation_window"], steps["window_mask"], steps["observation"]
    step_count = steps["step_count"].squeeze(-1)
    assert torch.equal(window[:, -1], obs)
    for t in range(steps.numel()):
        n_real = min(int(step_count[t]) + 1, K)
        assert mask[t].tolist() == [False] * (K - n_real) + [True] * n_real
        assert torch.all(window[t, : K - n_real] == 0)
        for back in range(1, n_real):
            assert torch.equal(window[t, K - 1 - back], obs[t - back])


def test_window_mask_marks_only_real_positions():
    mask = window_mask_from_step_count(torch.tensor([[0], [1], [2], [7]]), 3)
    assert mask.tolist() == [[False, False, True], [False, True, True], [True, True, True], [True, True, True]]


def test_window_never_crosses_episode_boundary_in_collector():
    env = make_env("Pendulum-v1", K, seed=0, max_episode_steps=7)
    collector = Collector(env, None, frames_per_batch=30, total_frames=30)
    batch = next(iter(collector))
    collector.shutdown()
    assert batch["next", "done"].sum() >= 3, "the batch should span several episodes"
    assert_windows_consistent(batch)
    first_steps = batch["step_count"].squeeze(-1) == 0
    assert (batch["window_mask"][first_steps].sum(-1) == 1).all()


def test_evaluation_env_builds_the_same_windows_as_training():
    eval_env = make_env("Pendulum-v1", K, seed=0, max_episode_steps=6, num_envs=2)
    rollout = eval_env.rollout(14, break_when_any_done=False)
    for env_index in range(2):
        assert_windows_consistent(rollout[env_index])


def test_truncation_is_not_termination():
    env = make_env("Pendulum-v1", K, seed=0, max_episode_steps=5)
    rollout = env.rollout(5)
    assert rollout["next", "truncated"][-1].item() and not rollout["next", "terminated"][-1].item()
