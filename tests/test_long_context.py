"""Long contexts through the recipe: the memory task, the privileged accelerator, KV-cache rollouts end to end."""
from __future__ import annotations

import json

import pytest
import torch
from torchrl.data import Bounded

from tests.conftest import TINY, compose_config
from trl_accel import keys
from trl_accel.config import validate_config
from trl_accel.envs.make import make_env
from trl_accel.experiment import Agents, replay_keys, run_experiment
from trl_accel.modules.kv_cache import KV_CACHE, KV_MASK
from trl_accel.stages import make_learner


def config(*overrides: str):
    return validate_config(compose_config(*overrides))


def test_privileged_keys_never_reach_the_transformer():
    cfg = config("env=pendulum_pomdp", "accelerator.privileged=true")
    env = make_env("Pendulum-v1", 3, pomdp="positions_only", keep_state=True)
    assert env.observation_spec[keys.STATE].shape[-1] == 3 and env.observation_spec[keys.OBSERVATION].shape[-1] == 2
    agents = Agents(cfg, 2, Bounded(-2.0, 2.0, shape=(1,)), torch.device("cpu"), state_dim=3)
    assert agents.accelerator.in_keys == [keys.STATE]
    assert keys.STATE in agents.critics[0].in_keys
    network = next(module for module in agents.transformer.modules() if hasattr(module, "window_len"))
    assert network.embed.in_features == 2  # the transformer's tokens are the masked observations
    # the transformer declares ``state`` only as a pass-through for the critics of stage two: its output ignores it
    rollout = env.rollout(5)
    with torch.no_grad():
        action = agents.transformer(rollout.clone())[keys.ACTION]
        scrambled = rollout.clone().set(keys.STATE, torch.randn_like(rollout[keys.STATE]) * 100)
        assert torch.equal(agents.transformer(scrambled)[keys.ACTION], action)
    # stage two's replay stores the state for the critics and no window
    learner = make_learner("td3", agents.transformer, agents.critics, Bounded(-2.0, 2.0, shape=(1,)),
                           settings={key: value for key, value in cfg.algo.items() if key != "name" and value is not None})
    stored = replay_keys(learner.loss)(rollout)
    assert keys.STATE in stored and keys.OBSERVATION_WINDOW not in stored


@pytest.mark.parametrize("recipe_overrides", [
    ["accelerator.privileged=true"],
    ["accelerator.privileged=true", "stage1.bc_data=dagger"],
])
def test_cue_reach_with_cache_runs_both_stages(tmp_path, recipe_overrides):
    tiny = [override for override in TINY if not override.startswith("env.max_episode_steps")]
    cfg = config(*tiny, "env=cue_reach", "logger.backend=none", *recipe_overrides)
    summary = run_experiment(cfg, tmp_path / "run")
    assert summary["env_steps"] == 700
    assert "transformer_success" in summary["stage1"] and "transformer_success" in summary["stage2"]
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["config"]["transformer"]["rollout"] == "cache"
    # the cache is per-env state of the rollouts, never stored
    assert KV_CACHE not in str(saved) and KV_MASK not in str(saved)
