"""Bad input gets one clear error before any training starts."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from td3_accelerate import run_experiment

from tests.conftest import ROOT
from trl_accel.checkpoint import save_checkpoint
from trl_accel.config import ConfigError, check_checkpoint_shapes, validate_config
from trl_accel.envs import make


def test_unknown_env_lists_the_known_ones(tiny_config):
    with pytest.raises(ConfigError, match="Unknown environment 'NoSuchEnv-v0'.*hopper \\(Hopper-v5\\)"):
        validate_config(tiny_config("env.name=NoSuchEnv-v0"))


def test_context_len_below_one_is_refused(tiny_config):
    with pytest.raises(ConfigError, match=r"transformer.context_len=0 is out of range: it must be >= 1"):
        validate_config(tiny_config("transformer.context_len=0"))


def test_batch_larger_than_buffer_is_refused(tiny_config):
    with pytest.raises(ConfigError, match=r"algo.batch_size=64 transitions \(64 steps\) does not fit in stage2.buffer_size \(10\)"):
        validate_config(tiny_config("stage2.buffer_size=10"))


def test_stage_two_from_a_missing_checkpoint_is_refused(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        validate_config(tiny_config(f"stage2.init_from={tmp_path / 'nope.pt'}"))


def test_stage_two_from_a_checkpoint_of_other_shapes_is_refused(tiny_config, tmp_path):
    path = save_checkpoint(tmp_path / "stage1.pt", {"shapes": {"obs_dim": 11, "action_dim": 3, "context_len": 3},
                                                    "accelerator_learner": {}, "cloner": {}, "run_state": {}})
    with pytest.raises(ConfigError, match="was made for .*obs_dim': 11"):
        run_experiment(tiny_config(f"stage2.init_from={path}"), tmp_path / "run")
    assert not (tmp_path / "run" / "summary.json").exists()


def test_checkpoint_shapes_must_match():
    check_checkpoint_shapes({"obs_dim": 3}, {"obs_dim": 3}, "x")
    with pytest.raises(ConfigError):
        check_checkpoint_shapes({"obs_dim": 3}, {"obs_dim": 4}, "x")


def test_missing_mujoco_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco", None)
    with pytest.raises(make.EnvConfigError, match=r"pip install 'gymnasium\[mujoco\]'"):
        make.check_env_available("Hopper-v5")


def test_cuda_asked_for_without_cuda_is_refused(tiny_config):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="no CUDA device"):
        validate_config(tiny_config("device=cuda"))


def test_recipe_prints_one_clear_error_and_exits_2():
    result = subprocess.run([sys.executable, "recipes/td3_accelerate.py", "env.name=NoSuchEnv-v0"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: Unknown environment 'NoSuchEnv-v0'")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("override, message", [
    ("accelerator.type=rnn", r"accelerator.type=.rnn. is out of range: it must be one of"),
    ("env.pomdp=velocity", r"env.pomdp=.velocity. is out of range: it must be one of"),
    ("stage1.ascent_weight=-1", r"stage1.ascent_weight=-1.0 is out of range: it must be >= 0"),
    ("stage1.bc_loss=likelihood", "needs a stochastic transformer"),
    ("mode=mlp_sac", "mode='mlp_sac' is out of range"),
])
def test_matrix_options_are_checked_before_training(tiny_config, override, message):
    with pytest.raises(ConfigError, match=message):
        run_experiment(tiny_config(override), None)


def test_lstm_sequences_must_fit_the_buffer(tiny_config):
    with pytest.raises(ConfigError, match=r"accelerator.batch_size=32 sequences \(2048 steps\) does not fit in stage2.buffer_size \(100\)"):
        run_experiment(tiny_config("accelerator=lstm", "stage2.buffer_size=100"), None)


@pytest.mark.parametrize("override, message", [
    ("frames_per_batch=45", r"frames_per_batch \(45\) must be a multiple of env.num_envs \(2\)"),
    ("env.obs_mode=depth", "env.obs_mode='depth' is out of range"),
])
def test_maniskill_options_are_checked_before_training(tiny_config, override, message):
    with pytest.raises(ConfigError, match=message):
        run_experiment(tiny_config("env=pushcube", "env.num_envs=2", override), None)


def test_maniskill_without_vulkan_names_the_fix(tiny_config, monkeypatch):
    from trl_accel import config
    from trl_accel.envs import maniskill

    reason = "SAPIEN finds no Vulkan device. " + maniskill._VULKAN_HINT  # the message a machine without one gets
    monkeypatch.setattr(config, "vulkan_available", lambda: (False, reason))
    with pytest.raises(ConfigError, match="PushCube-v1 cannot run here: .*bookworm-backports"):
        run_experiment(tiny_config("env=pushcube"), None)
