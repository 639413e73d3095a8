"""Training on ``env.num_envs`` copies of a gymnasium task in one gymnasium vector env: each copy steps as a single
env seeded like it would, finished episodes keep their last observation, and the recipe runs on them."""
from __future__ import annotations

import pytest
import torch
from td3_accelerate import run_experiment

from tests.conftest import TINY_LSTM
from trl_accel import keys
from trl_accel.config import ConfigError
from trl_accel.envs.make import make_env

COPIES, SEED, EPISODE = 3, 5, 7


def rollout_with(env, actions: torch.Tensor):
    """``env`` stepped with ``actions`` [steps, *batch, action_dim] from a reset: the stacked step tensordicts."""
    td, steps = env.reset(), []
    for action in actions:
        td.set(keys.ACTION, action)
        step, td = env.step_and_maybe_reset(td)
        steps.append(step.clone())
    return torch.stack(steps)


STEP_KEYS = (keys.OBSERVATION, keys.OBSERVATION_WINDOW, keys.IS_INIT, keys.STEP_COUNT, ("next", keys.OBSERVATION),
             ("next", keys.REWARD), ("next", keys.DONE), ("next", keys.TERMINATED), ("next", keys.EPISODE_REWARD))


def check_episodes_chain(steps) -> None:
    """Within an episode each step starts where the last ended; after a finished step a new episode starts (step
    count 0, ``is_init``) from another observation than the one the finished step ended on."""
    done = steps["next", keys.DONE][:-1].squeeze(-1)
    ended, started = steps["next", keys.OBSERVATION][:-1], steps[keys.OBSERVATION][1:]
    assert torch.equal(ended[~done], started[~done])
    assert not (ended[done] == started[done]).all(-1).any()
    assert steps[keys.IS_INIT][1:].squeeze(-1).eq(done).all()
    assert steps[keys.STEP_COUNT][1:].squeeze(-1)[done].eq(0).all()


@pytest.mark.parametrize("env_name, pomdp", [("Pendulum-v1", None), ("Pendulum-v1", "positions_only"),
                                             ("InvertedPendulum-v5", None)])
def test_each_copy_of_the_vector_env_steps_as_a_single_env_until_its_episode_ends(env_name, pomdp):
    # Pendulum's copies all end together (fixed length: TorchRL resets them all); InvertedPendulum's end apart
    # (each copy restarts from gymnasium's reset within the step).
    vector = make_env(env_name, 3, seed=SEED, max_episode_steps=EPISODE, num_envs=COPIES, pomdp=pomdp,
                      vectorise=True)
    assert vector.batch_size == torch.Size([COPIES])
    low, high = vector.action_spec.space.low[0], vector.action_spec.space.high[0]
    actions = low + (high - low) * torch.rand(6 * EPISODE, COPIES, *low.shape, generator=torch.Generator().manual_seed(0))
    together = rollout_with(vector, actions)
    done = together["next", keys.DONE].squeeze(-1)
    for copy in range(COPIES):
        alone = rollout_with(make_env(env_name, 3, seed=SEED + copy, max_episode_steps=EPISODE, pomdp=pomdp),
                             actions[:, copy])
        first_episode = int(alone["next", keys.DONE].squeeze(-1).nonzero()[0]) + 1
        for key in STEP_KEYS:
            torch.testing.assert_close(together[:, copy][key][:first_episode], alone[key][:first_episode],
                                       rtol=0, atol=0, msg=f"{key}, copy {copy}")
        check_episodes_chain(together[:, copy])
        assert done[:, copy].sum() >= 2
    if env_name.startswith("Inverted"):
        assert (done.any(1) & ~done.all(1)).any(), "some copies must end while others go on"
    else:
        assert done.any(1).eq(done.all(1)).all()


@pytest.mark.parametrize("overrides, message", [
    (["env.num_envs=3"], r"frames_per_batch \(50\) must be a multiple of env.num_envs \(3\)"),
    (["env.num_envs=5", "stage1.bc_data=dagger", "stage1.bc_every=102"],
     r"stage1.bc_every \(102\) must be a multiple of env.num_envs \(5\) with stage1.bc_data=dagger"),
])
def test_batches_must_split_over_the_copies(tiny_config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run_experiment(tiny_config(*overrides), None)


def test_rollouts_for_the_trajectory_buffer_run_on_copies_too(tiny_config, tmp_path):
    summary = run_experiment(tiny_config("env.num_envs=2", "stage1.bc_data=dagger", "stage2.steps=0"), tmp_path)
    assert summary["bc_env_steps"] == 300


@pytest.mark.parametrize("extra", [(), TINY_LSTM], ids=["mlp", "lstm"])
def test_the_recipe_runs_both_stages_on_vectorised_copies(tiny_config, tmp_path, extra):
    summary = run_experiment(tiny_config(*extra, "env.num_envs=2"), tmp_path)
    assert summary["env_steps"] == 200 + 300 + 200
    assert isinstance(summary["stage2"]["transformer_return"], float)
