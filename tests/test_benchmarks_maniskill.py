"""The ManiSkill benchmark scripts run end to end at a tiny size (the figures live in benchmarks/README.md).

Skipped, as the other ManiSkill tests are, when mani_skill is not installed or SAPIEN finds no Vulkan device.
"""
from __future__ import annotations

import json

import pytest

from tests.test_benchmarks import run_script
from trl_accel.envs.maniskill import maniskill_available, vulkan_available

if not maniskill_available():
    pytest.skip("mani_skill is not installed: run `bash scripts/setup_maniskill.sh`", allow_module_level=True)
VULKAN_OK, VULKAN_REASON = vulkan_available()
if not VULKAN_OK:
    pytest.skip(VULKAN_REASON, allow_module_level=True)


def test_maniskill_throughput_benchmark_reports_both_sides(tmp_path):
    out = tmp_path / "maniskill_throughput.json"
    stdout = run_script("benchmarks/maniskill_throughput.py", "--env", "PushCube-v1", "--obs-mode", "state",
                        "--num-envs", "1", "--steps", "5", "--warmup", "1", "--reps", "1", "--out", str(out))
    (row,) = json.loads(out.read_text())
    assert row["raw_steps_per_s"] > 0 and row["torchrl_steps_per_s"] > 0 and row["ratio"] > 0
    assert "| state | 1 |" in stdout


def test_rgb_training_cost_benchmark_times_every_variant(tmp_path):
    stdout = run_script("benchmarks/rgb_training_cost.py", "--env", "pushcube", "--random-steps", "16", "--steps", "64",
                        "--out", str(tmp_path), "env.image_size=36", "encoder.feature_dim=16", "algo.batch_size=8",
                        "stage1.bc_batch_size=8", "stage1.bc_epochs=1", "transformer.d_model=16", "transformer.d_ff=32",
                        "accelerator.hidden_sizes=[16]")
    rows = [line for line in stdout.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    assert len(rows) == 3, stdout
    assert all(float(row.split("|")[2]) > 0 for row in rows)
