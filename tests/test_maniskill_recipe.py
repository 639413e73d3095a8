"""ManiSkill tasks through the recipes: stage one on PushCube (state) shows a learning signal, success
rates reach the summary, rgb runs end to end. Skipped, with the reason, where no Vulkan device exists."""
from __future__ import annotations

import csv
import json

import pytest

from trl_accel.envs.maniskill import vulkan_available

AVAILABLE, REASON = vulkan_available()
if not AVAILABLE:
    pytest.skip(f"ManiSkill cannot run here: {REASON}", allow_module_level=True)

from td3_accelerate import run_experiment  # noqa: E402

MANISKILL = ["env=pushcube", "env.num_envs=2", "algo.gamma=0.8", "algo.tau=0.01", "eval.episodes=2"]


def read_scalar(run_dir, name: str) -> list[float]:
    with open(run_dir / "metrics" / "scalars" / "train" / f"{name}.csv") as handle:
        return [float(row[1]) for row in csv.reader(handle)]


def test_pushcube_stage_one_shows_a_learning_signal(tiny_config, tmp_path):
    """The accelerator's critic loss falls, and every BC round lowers the transformer's BC loss."""
    summary = run_experiment(tiny_config(*MANISKILL, "stage1.random_steps=200", "stage1.steps=1000", "stage2.steps=0",
                                         "stage1.bc_every=200", "eval.every=10000"), tmp_path)
    critic = read_scalar(tmp_path, "loss_qvalue")
    assert sum(critic[-5:]) / 5 < 0.6 * critic[0], critic
    first, last = read_scalar(tmp_path, "loss_bc_first_epoch"), read_scalar(tmp_path, "loss_bc_last_epoch")
    assert len(first) == 5 and all(end < start for start, end in zip(first, last)), (first, last)
    written = json.loads((tmp_path / "summary.json").read_text())
    for key in ("accelerator_success", "transformer_success"):
        assert 0.0 <= written["stage1"][key] <= 1.0
    assert summary["env"] == "PushCube-v1"


def test_pushcube_sac_both_stages_report_success(tiny_sac_config, tmp_path):
    summary = run_experiment(tiny_sac_config(*MANISKILL, "algo.gamma=0.8", "stage1.random_steps=100", "stage1.steps=100",
                                             "stage2.steps=100", "eval.every=1000"), tmp_path)
    assert 0.0 <= summary["stage2"]["transformer_success"] <= 1.0
    assert summary["env_steps"] == 300


def test_pullcube_rgb_runs_end_to_end(tiny_config, tmp_path):
    summary = run_experiment(tiny_config("env=pullcube", "env.obs_mode=rgb", "env.num_envs=1", "eval.episodes=1",
                                         "encoder.feature_dim=16", "algo.batch_size=8", "stage1.bc_batch_size=8",
                                         "stage1.random_steps=50", "stage1.steps=50", "stage1.bc_every=50",
                                         "stage2.steps=50", "eval.every=1000", "env.max_episode_steps=20"), tmp_path)
    assert summary["env_steps"] == 150 and "transformer_success" in summary["stage2"]
