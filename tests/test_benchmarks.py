"""Every benchmark script runs end to end at a tiny size (the figures themselves live in benchmarks/README.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT, TINY

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_script(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV,
                            check=False)
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


def test_ppo_throughput_benchmark_prints_a_row_per_configuration():
    stdout = run_script("benchmarks/ppo_throughput.py", "--agents", "8", "--layers", "1", "2", "--rollout-len", "8",
                        "--size", "7", "--d-model", "16", "--minibatches", "2", "--repeats", "1")
    rows = [line.split() for line in stdout.splitlines() if "rollout_steps_per_s=" in line]
    assert [row[0] for row in rows] == ["transformer", "transformer", "gru", "gru", "mlp"]
    assert all(float(field.split("=")[1]) > 0 for row in rows for field in row[3:])


def test_ppo_grid_memory_benchmark_writes_per_seed_curves(tmp_path):
    stdout = run_script("benchmarks/ppo_grid_memory.py", "--variants", "transformer", "accelerate", "--seeds", "0",
                        "--out", str(tmp_path), "--", "env=grid_memory_small", "env.options.episode_steps=8",
                        "num_envs=4", "env_steps=128", "eval.every=64", "eval.episodes=4", "ppo.minibatches=2",
                        "policy.d_model=16", "policy.d_ff=32", "accelerate.teacher.d_model=16",
                        "accelerate.switch_steps=64", "device=cpu")
    rows = (tmp_path / "curves.csv").read_text().splitlines()
    assert rows[0] == "variant,seed,env_steps,wall_time_s,return" and len(rows) == 1 + 2 + 2
    assert (tmp_path / "curves_steps.png").is_file() and (tmp_path / "curves_time.png").is_file()
    assert "transformer seed=0 final_return=" in stdout and "accelerate seed=0" in stdout


def test_context_scaling_benchmark_prints_a_line_per_context():
    stdout = run_script("benchmarks/context_scaling.py", "--env", "Pendulum-v1", "--contexts", "3", "8",
                        "--collect-steps", "20", "--updates", "2", "--batch-size", "16", "--fill", "100", "--threads", "1")
    rows = [line for line in stdout.splitlines() if line.startswith("K=")]
    assert [row.split()[0] for row in rows] == ["K=3", "K=8"]
    assert all(float(field.split("=")[1]) > 0 for row in rows for field in row.split()[1:])


def test_plain_td3_reference_runs_and_reports(tmp_path):
    out = tmp_path / "plain_td3.json"
    run_script("benchmarks/plain_td3.py", "--env", "Pendulum-v1", "--total-steps", "300", "--learning-starts", "200",
               "--batch-size", "32", "--eval-episodes", "1", "--threads", "1", "--out", str(out))
    report = json.loads(out.read_text())
    assert report["total_steps"] == 300 and report["learning_steps_per_s"] > 0 and report["eval_return"] is not None


def test_collector_scaling_benchmark_prints_a_row_per_variant(tmp_path):
    sizes = [o for o in TINY if o.startswith(("env.", "algo.", "accelerator."))]
    stdout = run_script("benchmarks/collector_scaling.py", "--env", "pendulum", "--random-steps", "100", "--steps",
                        "100", "--out", str(tmp_path), *sizes)
    results = json.loads((tmp_path / "results.json").read_text())
    variants = ["workers=1", "workers=2,sync=true", "workers=2,sync=false"]
    assert [row["variant"] for row in results["rows"]] == variants and results["reference"] == "workers=1"
    assert [row["collector"]["workers"] for row in results["rows"]] == [1, 2, 2]
    assert all(row["env_steps"] == 200 and row["steps_per_s"] > 0 for row in results["rows"])
    rows = [line.split() for line in stdout.splitlines() if line.split()[:1] and line.split()[0] in variants]
    assert [row[0] for row in rows] == variants and float(rows[0][2]) == 1.0
    assert all(float(row[1]) > 0 and float(row[2]) > 0 and float(row[3]) > 0 for row in rows)
