"""``cue_reach``: specs, cue visibility, dynamics, partial resets, seeding, transforms and baselines."""
from __future__ import annotations

import doctest
import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs import Compose, InitTracker, RewardSum, StepCounter, TransformedEnv
from torchrl.envs.utils import check_env_specs

from trl_accel.envs import cue_reach
from trl_accel.envs.context import context_window_transforms
from trl_accel.envs.cue_reach import (
    MIN_GOAL_DISTANCE,
    CueReachEnv,
    make_cue_reach_env,
    memoryless_best_action,
    oracle_action,
    random_action,
    success_rate,
    velocity_continuation_action,
)
from trl_accel.envs.errors import EnvConfigError
from trl_accel.envs.previous import PreviousActionReward


def _policy(fn, **kwargs):
    """A plain ``(tensordict) -> action`` function as a rollout policy."""
    return lambda td: td.set("action", fn(td, **kwargs))


def _zero_policy(td):
    return td.set("action", torch.zeros(*td.shape, 2))


def _place(env: CueReachEnv, position, goal, t: int) -> None:
    """Put every env at ``position`` with ``goal`` at step ``t`` (white box, for hand-checked steps)."""
    env._s["position"].copy_(torch.tensor(position, dtype=torch.float32).expand(env.num_envs, 2))
    env._s["goal"].copy_(torch.tensor(goal, dtype=torch.float32).expand(env.num_envs, 2))
    env._s["t"].fill_(t)


def _step(env: CueReachEnv, action) -> TensorDict:
    td = TensorDict({"action": torch.tensor(action, dtype=torch.float32).expand(env.num_envs, 2)}, [env.num_envs])
    return env.step(td)["next"]


@pytest.mark.parametrize("num_envs", [1, 8])
def test_specs(num_envs):
    env = make_cue_reach_env(num_envs=num_envs, seed=0)
    check_env_specs(env)
    assert env.batch_size == torch.Size([num_envs])
    td = env.reset()
    assert td["observation"].shape == (num_envs, 6) and td["observation"].dtype == torch.float32
    assert td["state"].shape == (num_envs, 5) and td["state"].dtype == torch.float32
    assert td["success"].shape == (num_envs, 1) and td["success"].dtype == torch.bool
    assert env.action_spec.shape == (num_envs, 2)
    assert set(env.done_keys) == {"done", "terminated", "truncated"}


def test_doctest_examples():
    result = doctest.testmod(cue_reach, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("kwargs", [
    {"num_envs": 0}, {"episode_steps": 1}, {"cue_steps": 0}, {"cue_steps": 40}, {"episode_steps": 10, "cue_steps": 12},
    {"max_speed": 0.0}, {"max_speed": 3.0}, {"goal_radius": 0.0}, {"goal_radius": 0.5}, {"num_envs": 2.0},
])
def test_invalid_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError, match="must be"):
        make_cue_reach_env(**kwargs)


@pytest.mark.parametrize("cue_steps", [2, 5])
def test_goal_visible_exactly_during_the_cue_and_state_always_holds_it(cue_steps):
    env = make_cue_reach_env(num_envs=16, episode_steps=12, cue_steps=cue_steps, seed=1)
    rollout = env.rollout(12, _zero_policy)
    obs = torch.cat([rollout["observation"], rollout["next", "observation"][:, -1:]], dim=1)  # 13 observations
    state = torch.cat([rollout["state"], rollout["next", "state"][:, -1:]], dim=1)
    goal = state[:, :1, 2:4]
    assert torch.equal(state[..., 2:4], goal.expand_as(state[..., 2:4])), "the state holds the goal throughout"
    assert torch.equal(state[..., 0:2], obs[..., 0:2])
    assert (goal.abs() > 0).all()
    for t in range(13):
        visible = t < cue_steps
        expected = goal[:, 0] if visible else torch.zeros_like(goal[:, 0])
        assert torch.equal(obs[:, t, 2:4], expected), f"observation {t}"
        assert (obs[:, t, 4] == float(visible)).all()
        assert torch.allclose(obs[:, t, 5], torch.full((16,), t / 12)) and torch.equal(obs[:, t, 5], state[:, t, 4])


def test_reset_distribution():
    env = make_cue_reach_env(num_envs=4096, seed=2, drift_std=0.0)
    state = env.reset()["state"]
    start, goal = state[:, 0:2], state[:, 2:4]
    assert (start.abs() <= 1).all() and (goal.abs() <= 1).all()
    assert ((goal - start).norm(dim=-1) >= MIN_GOAL_DISTANCE).all()
    assert start.min() < -0.95 and start.max() > 0.95 and abs(start.mean()) < 0.05  # uniform, not a corner


def test_reward_and_success_on_hand_checked_steps():
    env = make_cue_reach_env(num_envs=2, seed=0, drift_std=0.0)  # cue_steps=2, max_speed=0.1, goal_radius=0.15
    env.reset()
    _place(env, (0.0, 0.0), (0.3, 0.4), t=1)  # the last cue step: reward 0 whatever the distance
    out = _step(env, (5.0, -5.0))  # clipped to (1, -1)
    assert torch.allclose(out["state"][:, 0:2], torch.tensor([0.1, -0.1]))
    assert (out["reward"] == 0).all() and not out["success"].any()
    assert (out["observation"][:, 2:5] == 0).all(), "the cue is gone at step 2"
    out = _step(env, (1.0, 1.0))  # after the cue: -distance from (0.2, 0.0) to (0.3, 0.4)
    assert torch.allclose(out["reward"], torch.full((2, 1), -math.sqrt(0.01 + 0.16)))
    assert not out["success"].any()
    _place(env, (0.25, 0.35), (0.3, 0.4), t=10)
    out = _step(env, (0.5, -0.5))  # to (0.3, 0.3): distance 0.1 < 0.15
    assert torch.allclose(out["reward"], torch.full((2, 1), -0.1)) and out["success"].all()
    out = _step(env, (-1.0, -1.0))  # to (0.2, 0.2): distance sqrt(0.05) > 0.15
    assert torch.allclose(out["reward"], torch.full((2, 1), -math.sqrt(0.05))) and not out["success"].any()


def test_position_is_clamped_at_the_arena_border():
    env = make_cue_reach_env(num_envs=3, seed=0, drift_std=0.0)
    env.reset()
    _place(env, (0.95, -0.97), (0.0, 0.0), t=5)
    assert torch.allclose(_step(env, (1.0, -1.0))["state"][:, 0:2], torch.tensor([1.0, -1.0]))
    rollout = env.rollout(40, lambda td: td.set("action", torch.tensor([[-1.0, 1.0]] * 3)))
    final = rollout["next", "state"][:, -1, 0:2]
    assert torch.equal(final, torch.tensor([[-1.0, 1.0]] * 3))
    assert (rollout["next", "observation"][..., 0:2].abs() <= 1).all()


@pytest.mark.parametrize("mask_shape", [(4, 1), (4,)])
def test_partial_reset_resets_only_masked_envs(mask_shape):
    env = make_cue_reach_env(num_envs=4, seed=3, drift_std=0.0)
    td = env.reset()
    for _ in range(5):
        td = env.step(td.set("action", torch.full((4, 2), 0.5)))["next"].clone()
    before = td.clone()
    mask = torch.tensor([True, False, True, False]).reshape(mask_shape)
    after = env.reset(td.clone().set("_reset", mask))
    reset, kept = torch.tensor([0, 2]), torch.tensor([1, 3])
    for key in ("observation", "state"):
        assert torch.equal(after[key][kept], before[key][kept])
        assert not torch.equal(after[key][reset], before[key][reset])
    assert (after["observation"][reset, 4:6] == torch.tensor([1.0, 0.0])).all(), "reset envs: cue on, progress 0"
    assert torch.equal(after["observation"][reset, 2:4], after["state"][reset, 2:4])
    # the kept envs go on from where they were at step 5 (TorchRL merges the reset output with the input
    # by the mask, so the env's own state is what this checks); the reset ones from their new start
    nxt = env.step(after.set("action", torch.zeros(4, 2)))["next"]
    assert torch.allclose(nxt["observation"][:, 5] * 40, torch.tensor([1.0, 6.0, 1.0, 6.0]))
    assert torch.equal(nxt["state"][:, 0:4], after["state"][:, 0:4])


def test_rollout_with_desynchronised_envs_resets_each_at_its_own_end():
    env = TransformedEnv(make_cue_reach_env(num_envs=3, episode_steps=6, seed=4), StepCounter())
    td = env.reset()
    td = env.step(td.set("action", torch.zeros(3, 2)))["next"]
    td = env.reset(td.set("_reset", torch.tensor([[True], [False], [False]])))  # env 0 is one step behind
    rollout = env.rollout(13, _zero_policy, auto_reset=False, tensordict=td, break_when_any_done=False)
    done = rollout["next", "done"].squeeze(-1)
    assert done[0].nonzero().squeeze(-1).tolist() == [5, 11]
    assert done[1].nonzero().squeeze(-1).tolist() == [4, 10] == done[2].nonzero().squeeze(-1).tolist()
    progress = rollout["observation"][..., 5] * 6
    assert torch.allclose(progress, rollout["step_count"].squeeze(-1).float())


def test_same_seed_same_episodes():
    def run(env):
        return env.rollout(100, _policy(oracle_action), break_when_any_done=False)  # spans 3 episodes

    a, b = run(make_cue_reach_env(num_envs=5, seed=7)), run(make_cue_reach_env(num_envs=5, seed=7))
    assert torch.equal(a["state"], b["state"]) and torch.equal(a["next", "reward"], b["next", "reward"])
    c = run(make_cue_reach_env(num_envs=5, seed=8))
    assert not torch.equal(a["state"], c["state"])
    env = make_cue_reach_env(num_envs=5, seed=8)
    env.set_seed(7)
    assert torch.equal(run(env)["state"], a["state"])


def test_episodes_are_truncated_at_episode_steps_never_terminated():
    env = make_cue_reach_env(num_envs=2, episode_steps=10, cue_steps=3, seed=0)
    assert env.rollout(100, _zero_policy).shape == (2, 10)
    rollout = env.rollout(30, _zero_policy, break_when_any_done=False)
    done = rollout["next", "done"].squeeze(-1)
    assert done.any(0).nonzero().squeeze(-1).tolist() == [9, 19, 29] and done.all(0)[[9, 19, 29]].all()
    assert torch.equal(done, rollout["next", "truncated"].squeeze(-1))
    assert not rollout["next", "terminated"].any()
    assert (rollout["observation"][:, [10, 20], 5] == 0).all() and (rollout["observation"][:, [10, 20], 4] == 1).all()


def test_composes_with_the_shared_transforms():
    k, steps = 3, 40
    env = TransformedEnv(make_cue_reach_env(num_envs=4, seed=5, drift_std=0.0),
                         Compose(InitTracker(), StepCounter(), RewardSum(), context_window_transforms(k),
                                 PreviousActionReward()))
    check_env_specs(env)
    rollout = env.rollout(2 * steps + 5, _policy(oracle_action), break_when_any_done=False)
    t = rollout["step_count"].squeeze(-1)
    assert torch.equal(t[0], torch.arange(2 * steps + 5) % steps)
    assert torch.allclose(rollout["observation"][..., 5] * steps, t.float())
    assert torch.equal(rollout["is_init"].squeeze(-1), t == 0)
    window = rollout["observation_window"]
    assert window.shape == (4, 2 * steps + 5, k, 6)
    assert torch.equal(window[:, :, -1], rollout["observation"])
    assert torch.equal(window[:, 1:steps, -2], rollout["observation"][:, : steps - 1])
    assert (window[:, steps, :-1] == 0).all() and torch.equal(rollout["window_mask"][:, steps], torch.tensor([[False, False, True]] * 4))
    # the window of the last observation of an episode holds no goal
    last_window = rollout["next", "observation_window"][:, steps - 1]
    assert (last_window[..., 2:5] == 0).all()
    # previous action and reward, zero at each episode's start
    first = t == 0
    assert (rollout["prev_action"][first] == 0).all() and (rollout["prev_reward"][first] == 0).all()
    assert torch.equal(rollout["prev_action"][:, 1:steps], rollout["action"][:, : steps - 1])
    assert torch.equal(rollout["prev_reward"][:, 1:steps], rollout["next", "reward"][:, : steps - 1])
    # the running return restarts with each episode
    rewards = rollout["next", "reward"][:, steps : 2 * steps]
    assert torch.allclose(rollout["next", "episode_reward"][:, 2 * steps - 1], rewards.sum(1), atol=1e-5)
    assert rollout["next", "success"][:, steps - 1].all() and rollout["next", "success"][:, 2 * steps - 1].all()


def test_defaults_make_the_goal_unreachable_while_visible():
    env = make_cue_reach_env(num_envs=2048, seed=6, drift_std=0.0)
    assert env.cue_steps * env.max_speed * math.sqrt(2) + env.goal_radius < MIN_GOAL_DISTANCE - 0.05
    assert env.episode_steps - env.cue_steps > 3 + 30  # a window of 3 never sees the cue late in the episode
    rollout = env.rollout(env.episode_steps, _policy(oracle_action))
    distance = (rollout["next", "state"][..., 0:2] - rollout["next", "state"][..., 2:4]).norm(dim=-1)
    assert (distance[:, : env.cue_steps] > env.goal_radius + 0.05).all(), "the fastest policy reaches no goal during the cue"
    assert (distance[:, -1] < 1e-5).all(), "but reaches every goal by the end"


def test_baseline_success_rates():
    env = make_cue_reach_env(num_envs=256, seed=0)
    torch.manual_seed(0)
    assert success_rate(env, oracle_action, 512) > 0.95
    assert success_rate(env, random_action, 512) < 0.06
    assert success_rate(env, memoryless_best_action, 512) < 0.08
    # the memoryless policy does find goals it is shown: the low rate is for want of memory (without drift,
    # which it could not correct after the cue either)
    assert success_rate(make_cue_reach_env(num_envs=256, cue_steps=39, seed=0, drift_std=0.0), memoryless_best_action, 256) > 0.95


def test_drift_defeats_a_relayed_velocity():
    """Repeating the previous action (or the velocity two positions give) would carry the agent to the goal
    without memory; the drift makes that miss, while the oracle steers against it."""
    relayed = TransformedEnv(make_cue_reach_env(num_envs=512, seed=0), PreviousActionReward())
    assert success_rate(relayed, velocity_continuation_action, 1024) < 0.25
    no_drift = TransformedEnv(make_cue_reach_env(num_envs=512, seed=0, drift_std=0.0), PreviousActionReward())
    assert success_rate(no_drift, velocity_continuation_action, 512) > 0.95


def test_drift_moves_positions_by_its_spread():
    env = make_cue_reach_env(num_envs=4096, seed=3, drift_std=0.05)
    td = env.reset()
    start = td["observation"][:, :2].clone()
    moved = env.step(td.set("action", torch.zeros(4096, 2)))["next", "observation"][:, :2] - start
    inside = (start.abs() < 0.8).all(-1)  # away from the border's clamp
    assert abs(moved[inside].std().item() - 0.05) < 0.005 and abs(moved[inside].mean().item()) < 0.005
    with pytest.raises(EnvConfigError):
        make_cue_reach_env(drift_std=0.2)


def test_success_rate_counts_last_steps_through_transforms():
    env = TransformedEnv(make_cue_reach_env(num_envs=8, seed=0, drift_std=0.0), Compose(StepCounter(), RewardSum()))
    assert success_rate(env, oracle_action, 20) == 1.0
    assert success_rate(env, lambda td: torch.zeros(*td.shape, 2), 20) == 0.0
    with pytest.raises(ValueError):
        success_rate(env, oracle_action, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda():
    env = make_cue_reach_env(num_envs=64, device="cuda", seed=0)
    check_env_specs(env)
    rollout = env.rollout(40, _policy(oracle_action))
    assert rollout.device.type == "cuda" and rollout["next", "success"][:, -1].all()
    again = make_cue_reach_env(num_envs=64, device="cuda", seed=0).rollout(40, _policy(oracle_action))
    assert torch.equal(rollout["state"], again["state"])
