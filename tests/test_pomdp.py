"""POMDP observation masks: kept indices against the simulator state, specs, windows, configs, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tensordict import TensorDict
from torchrl.data import Bounded, Unbounded
from torchrl.envs.utils import check_env_specs

from trl_accel.envs import (
    OBSERVATION_LAYOUTS,
    POMDP_MODES,
    EnvConfigError,
    ObservationMask,
    check_pomdp,
    kept_indices,
    make_env,
)
from trl_accel.envs.make import make_base_env

ENV_CONFIG_DIR = Path(__file__).resolve().parents[1] / "recipes" / "config" / "env"

#: Root coordinates that gymnasium leaves out of the observation by default (x; x and y for Ant).
EXCLUDED_ROOT_COORDS = {"HalfCheetah-v5": 1, "Hopper-v5": 1, "Walker2d-v5": 1, "Ant-v5": 2, "InvertedPendulum-v5": 0}
MUJOCO_ENVS = tuple(EXCLUDED_ROOT_COORDS)
FULL_OBS_DIM = {"InvertedPendulum-v5": 4, "HalfCheetah-v5": 17, "Hopper-v5": 11, "Walker2d-v5": 17, "Ant-v5": 105, "Pendulum-v1": 3}


def masked_observation_of_state(env_name: str, mode: str, set_state) -> torch.Tensor:
    """Build the masked env, reset it, call ``set_state(unwrapped)`` and mask the gymnasium observation
    with the env's own transforms (DoubleToFloat, then ObservationMask)."""
    env = make_base_env(env_name, seed=0, pomdp=mode)
    env.reset()
    unwrapped = env.base_env._env.unwrapped
    set_state(unwrapped)
    raw = TensorDict({"observation": torch.as_tensor(unwrapped._get_obs())}, batch_size=[])
    observation = env.transform(raw)["observation"]
    env.close()
    return observation


@pytest.mark.parametrize("env_name", MUJOCO_ENVS)
@pytest.mark.parametrize("mode", POMDP_MODES)
def test_kept_part_matches_simulator_state(env_name: str, mode: str):
    state: dict[str, np.ndarray] = {}

    def set_state(unwrapped):
        # Distinct values; velocities inside [-10, 10] because Hopper and Walker2d clip them there.
        state["qpos"] = 0.1 * np.arange(unwrapped.model.nq)
        state["qvel"] = 1.0 + 0.5 * np.arange(unwrapped.model.nv)
        unwrapped.set_state(state["qpos"], state["qvel"])

    observation = masked_observation_of_state(env_name, mode, set_state)
    expected = state["qvel"] if mode == "velocities_only" else state["qpos"][EXCLUDED_ROOT_COORDS[env_name]:]
    assert observation.dtype == torch.float32
    assert torch.equal(observation, torch.as_tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize("mode", POMDP_MODES)
def test_pendulum_keeps_angle_or_angular_velocity(mode: str):
    theta, theta_dot = 0.7, -3.0

    def set_state(unwrapped):
        unwrapped.state = np.array([theta, theta_dot])

    observation = masked_observation_of_state("Pendulum-v1", mode, set_state)
    expected = [np.cos(theta), np.sin(theta)] if mode == "positions_only" else [theta_dot]
    assert torch.allclose(observation, torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize("env_name", [*MUJOCO_ENVS, "Pendulum-v1"])
def test_masked_env_is_the_full_env_restricted_to_kept_indices(env_name: str):
    full = make_base_env(env_name, seed=3)
    zero_action = full.action_spec.zero()

    def policy(td):
        return td.set("action", zero_action.clone())

    reference = full.rollout(3, policy, break_when_any_done=False)
    for mode in POMDP_MODES:
        masked = make_base_env(env_name, seed=3, pomdp=mode)
        rollout = masked.rollout(3, policy, break_when_any_done=False)
        kept = kept_indices(env_name, mode)
        assert torch.equal(rollout["observation"], reference["observation"][..., kept])
        assert torch.equal(rollout["next", "observation"], reference["next", "observation"][..., kept])
        masked.close()
    full.close()


@pytest.mark.parametrize("env_name", [*MUJOCO_ENVS, "Pendulum-v1"])
def test_layout_parts_are_disjoint_and_cover_positions_then_velocities(env_name: str):
    position, velocity = OBSERVATION_LAYOUTS[env_name]["position"], OBSERVATION_LAYOUTS[env_name]["velocity"]
    assert position[0] == 0 and position[1] == velocity[0] and velocity[1] <= FULL_OBS_DIM[env_name]
    if env_name != "Ant-v5":  # Ant's contact forces follow the velocities and belong to neither part
        assert velocity[1] == FULL_OBS_DIM[env_name]


@pytest.mark.parametrize("env_name, mode", [("Ant-v5", "velocities_only"), ("Pendulum-v1", "positions_only"),
                                            ("Pendulum-v1", "velocities_only")])
def test_masked_spec_shape_type_and_dtype(env_name: str, mode: str):
    env = make_base_env(env_name, seed=0, pomdp=mode)
    spec = env.observation_spec["observation"]
    assert spec.shape == (len(kept_indices(env_name, mode)),)
    assert spec.dtype == torch.float32
    if env_name == "Pendulum-v1":
        assert isinstance(spec, Bounded)
        bound = [1.0, 1.0] if mode == "positions_only" else [8.0]
        assert spec.space.high.tolist() == bound and spec.space.low.tolist() == [-b for b in bound]
    else:
        assert isinstance(spec, Unbounded)
    check_env_specs(env)


@pytest.mark.parametrize("env_name, mode", [("Pendulum-v1", "positions_only"), ("HalfCheetah-v5", "velocities_only")])
@pytest.mark.parametrize("num_envs", [1, 2])
def test_make_env_windows_have_masked_dim(env_name: str, mode: str, num_envs: int):
    K = 4
    env = make_env(env_name, K, seed=0, max_episode_steps=5, num_envs=num_envs, pomdp=mode)
    dim = len(kept_indices(env_name, mode))
    batch = () if num_envs == 1 else (num_envs,)
    assert env.observation_spec["observation_window"].shape == (*batch, K, dim)
    rollout = env.rollout(3)
    assert rollout["observation_window"].shape == (*batch, 3, K, dim)
    assert torch.equal(rollout["observation_window"][..., -1, :], rollout["observation"])
    env.close()


def test_no_pomdp_keeps_full_observation():
    env = make_env("Pendulum-v1", 4, seed=0, max_episode_steps=5)
    assert env.observation_spec["observation_window"].shape == (4, 3)
    env.close()


def test_unknown_mode_lists_modes():
    with pytest.raises(EnvConfigError, match="Unknown POMDP mode 'flicker'.*velocities_only, positions_only"):
        kept_indices("Hopper-v5", "flicker")
    with pytest.raises(EnvConfigError, match="Unknown POMDP mode"):
        make_env("Hopper-v5", 4, pomdp="flicker")


def test_env_without_layout_lists_envs_with_one():
    with pytest.raises(EnvConfigError, match="No observation layout for 'Swimmer-v5'.*HalfCheetah-v5"):
        check_pomdp("Swimmer-v5", "positions_only")
    with pytest.raises(EnvConfigError, match="No observation layout"):
        make_env("Swimmer-v5", 4, pomdp="positions_only")
    check_pomdp("Swimmer-v5", None)


def test_observation_mask_rejects_bad_indices():
    for indices in ([], [-1, 0], [1, 1]):
        with pytest.raises(ValueError, match="distinct, non-negative"):
            ObservationMask(indices)


def test_observation_mask_rejects_index_out_of_range():
    from torchrl.envs import GymEnv, TransformedEnv

    with pytest.raises(EnvConfigError, match="out of range for an observation of size 3"):
        TransformedEnv(GymEnv("Pendulum-v1"), ObservationMask([0, 3])).observation_spec


def test_env_configs_declare_a_valid_pomdp_mode():
    expected = {"halfcheetah_pomdp": "velocities_only", "hopper_pomdp": "velocities_only",
                "ant_pomdp": "velocities_only", "walker2d_pomdp": "velocities_only",
                "pendulum_pomdp": "positions_only", "inverted_pendulum_pomdp": "positions_only"}
    for path in sorted(ENV_CONFIG_DIR.glob("*.yaml")):
        text = path.read_text()
        assert text.startswith(("# @package env", "# @package _global_")), path.name
        cfg = OmegaConf.load(path)
        if text.startswith("# @package _global_"):  # a task that also sets other sections (the transformer's window)
            cfg = cfg.env
        assert set(cfg) >= {"name", "max_episode_steps", "pomdp"}, path.name
        assert cfg.pomdp == expected.get(path.stem), path.name
        check_pomdp(cfg.name, cfg.pomdp)
