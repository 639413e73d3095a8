"""The grid memory env: specs, movement, reward and respawn, the local view, resets, seeding, baselines."""
from __future__ import annotations

import doctest

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from trl_accel.envs import grid_memory
from trl_accel.envs.grid_memory import (
    GridMemoryEnv,
    mean_episode_reward,
    oracle_policy,
    random_policy,
)

UP, DOWN, LEFT, RIGHT = range(4)
F, W = 0, 1  # floor, wall
#: A 7x7 hand-made grid: wall border, one inner wall at (3, 4) and one at (2, 1).
GRID = torch.tensor([
    [W, W, W, W, W, W, W],
    [W, F, F, F, F, F, W],
    [W, W, F, F, F, F, W],
    [W, F, F, F, W, F, W],
    [W, F, F, F, F, F, W],
    [W, F, F, F, F, F, W],
    [W, W, W, W, W, W, W],
])


def step(env: GridMemoryEnv, *moves: int) -> TensorDict:
    """One env step with the given move per env; returns the ``next`` tensordict."""
    action = torch.nn.functional.one_hot(torch.tensor(moves), 4).to(env.action_spec.dtype)
    return env.step(TensorDict(action=action, batch_size=env.batch_size))["next"]


def view_types(observation: torch.Tensor, view: int) -> torch.Tensor:
    """Tile type per view cell ``[N, view, view]`` from the flat one-hot observation (checks it is one-hot)."""
    cells = observation.view(observation.shape[0], view, view, 4)
    assert torch.equal(cells.sum(-1), torch.ones(cells.shape[:-1]))
    return cells.argmax(-1)


def hand_env(position, target, num_envs: int = 1, **kwargs) -> GridMemoryEnv:
    env = GridMemoryEnv(num_envs=num_envs, size=7, seed=0, **kwargs)
    env.set_state(GRID, torch.as_tensor(position), torch.as_tensor(target))
    return env


@pytest.mark.parametrize("num_envs", [1, 16])
def test_specs(num_envs):
    env = GridMemoryEnv(num_envs=num_envs, seed=0)
    check_env_specs(env, seed=0)
    assert env.observation_spec["observation"].shape == (num_envs, 5 * 5 * 4)
    assert env.action_spec.shape == (num_envs, 4)


@pytest.mark.parametrize("kwargs", [{"view": 4}, {"view": 0}, {"size": 4}, {"size": 64}, {"num_envs": 0},
                                    {"octaves": 0}, {"wall_fraction": 0.95}, {"episode_steps": 0}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match="must be"):
        GridMemoryEnv(**kwargs)


def test_generated_grids():
    env = GridMemoryEnv(num_envs=64, size=15, wall_fraction=0.3, seed=1)
    grid = env.grid
    walls = grid == W
    assert walls[:, 0].all() and walls[:, -1].all() and walls[:, :, 0].all() and walls[:, :, -1].all()
    assert torch.equal(walls[:, 1:-1, 1:-1].flatten(1).sum(1), torch.full((64,), round(0.3 * 13 * 13)))
    assert torch.equal((grid == 2).flatten(1).sum(1), torch.ones(64, dtype=torch.int64))
    rows = torch.arange(64)
    position, target = env._position, env._target
    assert (grid[rows, target[:, 0], target[:, 1]] == 2).all()
    assert (grid[rows, position[:, 0], position[:, 1]] == F).all()
    # the target is reachable from the start
    assert (env.distance_to_target()[rows, position[:, 0], position[:, 1]] < 15 * 15).all()
    assert len({tuple(g.flatten().tolist()) for g in grid}) == 64  # each env its own grid


def test_walls_block_movement():
    env = hand_env([3, 3], [1, 1])
    assert step(env, RIGHT)["position"].tolist() == [[3, 3]]  # inner wall at (3, 4)
    assert step(env, UP)["position"].tolist() == [[2, 3]]
    assert step(env, LEFT)["position"].tolist() == [[2, 2]]
    assert step(env, LEFT)["position"].tolist() == [[2, 2]]  # inner wall at (2, 1)
    env.set_state(GRID, torch.tensor([5, 5]), torch.tensor([1, 1]))
    assert step(env, DOWN)["position"].tolist() == [[5, 5]]  # border
    assert step(env, RIGHT)["position"].tolist() == [[5, 5]]
    out = step(env, UP)
    assert out["position"].tolist() == [[4, 5]] and out["reward"].item() == 0.0


def test_reaching_the_target_rewards_and_respawns():
    env = hand_env([[1, 2]] * 64, [[1, 1]] * 64, num_envs=64)
    grid = env.grid
    out = step(env, *[LEFT] * 64)
    assert torch.equal(out["reward"], torch.ones(64, 1))
    position = out["position"]
    rows = torch.arange(64)
    assert (GRID[position[:, 0], position[:, 1]] == F).all()
    assert ((position != torch.tensor([1, 1])).any(-1)).all()
    assert len({tuple(p) for p in position.tolist()}) > 5  # respawns are random
    assert torch.equal(env.grid, grid) and out["target"].tolist() == [[1, 1]] * 64
    assert (grid[rows, 1, 1] == 2).all()
    # the observation is the view at the respawn position
    expected = hand_env(position, [[1, 1]] * 64, num_envs=64)._output()["observation"]
    assert torch.equal(out["observation"], expected)
    # a later step away from the target gives nothing
    env.set_state(GRID, torch.tensor([1, 2]), torch.tensor([1, 1]))
    assert step(env, *[RIGHT] * 64)["reward"].sum() == 0


def test_view_at_a_corner_and_in_the_middle():
    O, T = 3, 2  # outside the grid, target
    env = hand_env([[1, 1], [3, 3]], [[1, 2], [5, 5]], num_envs=2)
    out = step(env, DOWN, UP)  # (1, 1) -> wall at (2, 1): stays; (3, 3) -> (2, 3)
    assert out["position"].tolist() == [[1, 1], [2, 3]]
    corner = torch.tensor([[O, O, O, O, O],
                           [O, W, W, W, W],
                           [O, W, F, T, F],   # the agent at the centre (1, 1)
                           [O, W, W, F, F],
                           [O, W, F, F, F]])
    middle = torch.tensor([[W, W, W, W, W],   # rows 0..4, columns 1..5
                           [F, F, F, F, F],
                           [W, F, F, F, F],   # the agent at the centre (2, 3)
                           [F, F, F, W, F],
                           [F, F, F, F, F]])
    types = view_types(out["observation"], 5)
    assert torch.equal(types[0], corner)
    assert torch.equal(types[1], middle)
    env.set_state(GRID, torch.tensor([[3, 3], [3, 3]]), torch.tensor([[5, 5], [4, 4]]))
    types = view_types(step(env, DOWN, DOWN)["observation"], 5)  # both at (4, 3): rows 2..6, columns 1..5
    assert types[0, 3, 4] == T and types[1, 2, 3] == T  # (5, 5) and (4, 4)
    assert (types[:, 4] == W).all()


def test_view_one_and_large_view():
    env = hand_env([3, 3], [1, 1], view=1)
    assert step(env, UP)["observation"].tolist() == [[1.0, 0.0, 0.0, 0.0]]
    env = hand_env([3, 3], [1, 1], view=9)
    types = view_types(step(env, UP)["observation"], 9)[0]  # at (2, 3): rows -2..6, columns -1..7
    assert (types[:2] == 3).all() and (types[:, 0] == 3).all() and (types[:, 8] == 3).all()
    expected = GRID.clone()
    expected[1, 1] = 2  # the target
    assert torch.equal(types[2:, 1:8], expected)


def test_partial_reset_changes_only_masked_envs():
    env = GridMemoryEnv(num_envs=6, seed=0)
    env.reset()
    for _ in range(3):
        step(env, *[UP] * 6)
    before = env.grid, env._position.clone(), env._target.clone(), env._steps.clone()
    mask = torch.tensor([True, False, False, True, False, False])
    out = env.reset(TensorDict(_reset=mask[:, None], batch_size=[6]))
    after = env.grid, env._position, env._target, env._steps
    for b, a in zip(before, after):
        assert torch.equal(a[~mask], b[~mask])
    assert all(not torch.equal(before[0][i], after[0][i]) for i in (0, 3))
    assert torch.equal(after[3], torch.tensor([0, 3, 3, 0, 3, 3]))
    assert torch.equal(out["position"][mask], env._position[mask])  # TorchRL merges the reset envs only
    env.reset(TensorDict(_reset=~mask, batch_size=[6]))  # a [N] mask
    assert torch.equal(env.grid[0], after[0][0]) and not torch.equal(env.grid[1], before[0][1])


def test_seeding_reproduces_grids_and_trajectories():
    def rollout(seed: int, env: GridMemoryEnv | None = None) -> TensorDict:
        env = env or GridMemoryEnv(num_envs=8, seed=seed)
        env.set_seed(seed)
        return env.rollout(40, random_policy(env, seed=seed), break_when_any_done=False)

    first, second = rollout(3), rollout(3)
    assert torch.equal(first["observation"], second["observation"])
    assert torch.equal(first["next", "position"], second["next", "position"])
    env = GridMemoryEnv(num_envs=8, seed=99)
    assert torch.equal(rollout(3, env)["observation"], first["observation"])  # set_seed on an existing env
    assert not torch.equal(rollout(4)["target"], first["target"])


def test_truncation_at_episode_steps():
    env = GridMemoryEnv(num_envs=4, episode_steps=5, seed=0)
    rollout = env.rollout(12, random_policy(env, seed=0), break_when_any_done=False)
    truncated = rollout["next", "truncated"][..., 0]
    expected = torch.zeros(12, dtype=torch.bool)
    expected[[4, 9]] = True
    assert torch.equal(truncated, expected.expand(4, 12))
    assert torch.equal(rollout["next", "done"], rollout["next", "truncated"])
    assert not rollout["next", "terminated"].any()
    # a new episode (new grid) after each truncation
    assert not torch.equal(rollout["target"][:, 4], rollout["target"][:, 5])
    assert torch.equal(rollout["target"][:, 0], rollout["target"][:, 4])


def test_oracle_collects_more_than_random():
    env = GridMemoryEnv(num_envs=32, episode_steps=64, seed=0)
    random_reward = mean_episode_reward(env, random_policy(env, seed=0), 32)
    oracle_reward = mean_episode_reward(env, oracle_policy(env), 32)
    assert oracle_reward > 4.0 and oracle_reward > 5 * random_reward + 2.0, (random_reward, oracle_reward)


def test_oracle_takes_shortest_paths():
    env = hand_env([5, 5], [1, 1])  # the inner walls do not block: 8 moves
    policy = oracle_policy(env)
    td = env.reset(TensorDict(_reset=torch.tensor([False]), batch_size=[1]))
    rewards = []
    for _ in range(8):
        td = env.step(policy(td))
        rewards.append(td["next", "reward"].item())
        td = td["next"]
    assert rewards == [0.0] * 7 + [1.0]


def test_set_state_rejects_bad_states():
    env = GridMemoryEnv(num_envs=1, size=7, seed=0)
    with pytest.raises(ValueError, match="floor"):
        env.set_state(GRID, torch.tensor([2, 1]), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="differ"):
        env.set_state(GRID, torch.tensor([1, 1]), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="grid must be"):
        env.set_state(GRID[:5], torch.tensor([1, 1]), torch.tensor([1, 2]))


def test_docstring_example():
    result = doctest.testmod(grid_memory, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda():
    env = GridMemoryEnv(num_envs=64, device="cuda", seed=0)
    check_env_specs(env, seed=0)
    rollout = env.rollout(64, oracle_policy(env), break_when_any_done=False)
    assert rollout.device.type == "cuda" and rollout["next", "reward"].sum(1).mean() > 4.0
