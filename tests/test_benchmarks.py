"""Every benchmark script runs end to end at a tiny size (the figures themselves live in benchmarks/README.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_script(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_throughput_benchmark_runs_every_variant(tmp_path):
    out = tmp_path / "throughput.json"
    stdout = run_script("benchmarks/throughput.py", "--env", "pendulum", "--random-steps", "100", "--steps", "100",
                        "--reps", "1", "--out", str(out))
    table = json.loads(out.read_text())["table"]
    assert set(table) == {"plain", "mlp_td3", "stage1", "stage2"}
    assert all(row["steps_per_s_median"] > 0 for row in table.values())
    assert "written to" in stdout


def test_fidelity_benchmark_runs_and_summarises(tmp_path):
    run_script("benchmarks/fidelity.py", "--env", "pendulum", "--seeds", "0", "--variants", "accelerate",
               "accelerator_only", "--random-steps", "100", "--stage1-steps", "100", "--stage2-steps", "50",
               "--eval-every", "100", "--eval-episodes", "1", "--out", str(tmp_path), "stage1.bc_every=100",
               "stage1.bc_batch_size=50", "transformer.d_model=16", "transformer.d_ff=32",
               "accelerator.hidden_sizes=[16,16]", "algo.batch_size=32")
    assert (tmp_path / "accelerate_seed0" / "summary.json").is_file()
    assert (tmp_path / "accelerator_only_seed0" / "summary.json").is_file()


def test_plain_recurrent_td3_reference_runs_and_reports(tmp_path):
    out = tmp_path / "plain_recurrent.json"
    run_script("benchmarks/plain_recurrent_td3.py", "--env", "Pendulum-v1", "--mask-velocity", "--cell", "gru",
               "--total-steps", "300", "--learning-starts", "200", "--seq-len", "16", "--batch-size", "4",
               "--hidden", "16", "--head-layers", "16", "--eval-every", "0", "--eval-episodes", "1", "--out", str(out))
    report = json.loads(out.read_text())
    assert report["learning_steps_per_s"] > 0 and len(report["evals"]) >= 1


def test_recurrent_throughput_benchmark_prints_a_row_per_variant(tmp_path):
    out = tmp_path / "recurrent_throughput.json"
    stdout = run_script("benchmarks/recurrent_throughput.py", "--cells", "gru", "--random-steps", "100", "--steps", "50",
                        "--reps", "1", "--hidden", "16", "--head-layers", "16", "--seq-len", "8", "--batch-size", "4",
                        "--threads", "1", "--out", str(out))
    table = json.loads(out.read_text())["table"]
    assert set(table) == {"plain_gru", "gru_td3"} and table["gru_td3"]["ratio_median"] > 0
    rows = [line.split() for line in stdout.splitlines() if line.startswith(("plain_gru ", "gru_td3 "))]
    assert [row[0] for row in rows] == ["plain_gru", "gru_td3"] and all(float(row[1]) > 0 for row in rows)
