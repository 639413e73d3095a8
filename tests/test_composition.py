"""The recipe's command-line contract: groups, presets, overrides; transformer options."""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded

from tests.conftest import compose_config
from trl_accel.config import validate_config
from trl_accel.modules import make_transformer_actor


def test_quick_preset_runs_on_any_env_group():
    cfg = compose_config("experiment=quick", "env=hopper")
    assert cfg.env.name == "Hopper-v5" and cfg.stage1.steps == 7000 and cfg.stage1.random_steps == 1000


def test_quick_preset_takes_the_masked_pendulums_own_schedule_with_td3():
    # experiment_task/quick_pendulum_pomdp_td3.yaml: loaded by the name ${experiment}_${env}_${algo}, after the groups.
    cfg = compose_config("experiment=quick", "env=pendulum_pomdp", "accelerator=gru")
    assert (cfg.stage1.steps, cfg.accelerator.seq_len, cfg.accelerator.batch_size) == (9000, 32, 64)
    sac = compose_config("experiment=quick", "env=pendulum_pomdp", "accelerator=gru", recipe="sac_accelerate")
    assert (sac.stage1.steps, sac.accelerator.seq_len, sac.accelerator.batch_size) == (7000, 64, 32)
    overridden = compose_config("experiment=quick", "env=pendulum_pomdp", "accelerator=lstm", "stage1.steps=5000",
                                "accelerator.seq_len=16")
    assert (overridden.stage1.steps, overridden.accelerator.seq_len) == (5000, 16)
    without_preset = compose_config("env=pendulum_pomdp", "accelerator=lstm")
    assert (without_preset.accelerator.seq_len, without_preset.accelerator.batch_size) == (64, 32)


def test_paper_preset_keeps_table_one():
    cfg = compose_config("experiment=paper_mujoco", "env=halfcheetah")
    assert cfg.env.name == "HalfCheetah-v5"
    assert (cfg.stage1.random_steps, cfg.stage1.buffer_size, cfg.stage2.buffer_size) == (25000, 500000, 100000)
    assert cfg.algo.name == "td3"
    assert (cfg.algo.gamma, cfg.algo.tau, cfg.algo.batch_size, cfg.algo.policy_delay) == (0.99, 0.005, 256, 2)
    assert (cfg.transformer.n_layers, cfg.transformer.n_heads, cfg.transformer.d_model,
            cfg.transformer.d_ff, cfg.transformer.context_len) == (1, 2, 256, 512, 3)


#: What each preset sets for the algorithm, whichever recipe loads it: presets come after the algo group.
PRESET_ALGO = {"quick": (0.99, 0.005, 256), "paper_mujoco": (0.99, 0.005, 256), "paper_maniskill": (0.8, 0.01, 600)}


@pytest.mark.parametrize("recipe, algorithm", [("td3_accelerate", "td3"), ("sac_accelerate", "sac")])
@pytest.mark.parametrize("preset", sorted(PRESET_ALGO))
def test_every_preset_overrides_the_algorithm_defaults_in_both_recipes(recipe, algorithm, preset):
    env = "env=pushcube" if preset == "paper_maniskill" else "env=hopper"
    cfg = compose_config(f"experiment={preset}", env, recipe=recipe)
    assert cfg.algo.name == algorithm
    assert (cfg.algo.gamma, cfg.algo.tau, cfg.algo.batch_size) == PRESET_ALGO[preset]
    assert validate_config(cfg).algo.name == algorithm or preset == "paper_maniskill"  # ManiSkill needs Vulkan


def test_command_line_overrides_beat_the_preset():
    cfg = compose_config("experiment=paper_maniskill", "env=pushcube", "algo.gamma=0.5", recipe="sac_accelerate")
    assert (cfg.algo.gamma, cfg.algo.batch_size) == (0.5, 600)


def test_env_name_overrides_the_gymnasium_id():
    assert compose_config("env=hopper", "env.name=Swimmer-v5").env.name == "Swimmer-v5"


def test_every_env_group_names_a_known_id():
    for group, gym_id in {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "ant": "Ant-v5",
                          "walker2d": "Walker2d-v5", "pendulum": "Pendulum-v1",
                          "inverted_pendulum": "InvertedPendulum-v5"}.items():
        assert compose_config(f"env={group}").env.name == gym_id


def test_transformer_variants_build_and_act():
    spec = Bounded(-2.0, 2.0, shape=(3,))
    window = torch.randn(4, 5, 7)
    for kwargs in ({"positions": "sinusoidal"}, {"n_heads": 4, "n_kv_heads": 1}, {"n_layers": 3}):
        actor = make_transformer_actor(7, spec, context_len=5, d_model=32, d_ff=64, **kwargs)
        td = TensorDict(observation_window=window, window_mask=torch.ones(4, 5, dtype=torch.bool),
                        observation=window[:, -1], batch_size=[4])
        action = actor(td)["action"]
        assert action.shape == (4, 3) and action.abs().max() <= 2.0
