"""Faults survived: real SIGKILLs of a recipe at several points, SIGINT/SIGTERM, a diverging run, and the
consistency of a resumed run (counters, evaluations, metric rows, the trajectory buffer T)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY, compose_config
from trl_accel.checkpoint import CheckpointError
from trl_accel.config import ConfigError
from trl_accel.experiment import run_experiment
from trl_accel.loop import Run, RunState, TrainingDiverged, all_finite, finite_json

#: The tiny schedule with a checkpoint every 50 steps and a larger replay (slower checkpoint writes).
FAULT_RUN = [*TINY, "checkpoint.every=50", "frames_per_batch=25", "eval.every=100"]
TOTAL = 200 + 300 + 200


def start_recipe(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "recipes/td3_accelerate.py", *FAULT_RUN, *extra, f"hydra.run.dir={run_dir}"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def checkpoint_state(run_dir: Path) -> dict | None:
    try:
        return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["run_state"]
    except Exception:  # not written yet
        return None


def wait_for(condition, process: subprocess.Popen, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.002)
    return False


def metric_steps(run_dir: Path) -> dict[str, Counter]:
    return {str(path.relative_to(run_dir)): Counter(line.split(",")[0] for line in path.read_text().splitlines())
            for path in sorted((run_dir / "metrics").rglob("*.csv"))}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """The same run, never interrupted."""
    run_dir = tmp_path_factory.mktemp("reference")
    process = start_recipe(run_dir)
    assert process.wait(timeout=300) == 0, process.stderr.read()
    return run_dir


KILL_POINTS = {
    "before_the_first_checkpoint": lambda d: (d / "metrics" / "scalars" / "train").is_dir(),
    "in_stage_one": lambda d: (checkpoint_state(d) or {}).get("env_steps", 0) >= 300,
    "at_the_switch": lambda d: (d / "checkpoints" / "stage1.pt").is_file(),
    "in_stage_two": lambda d: (checkpoint_state(d) or {}).get("stage") == "stage2",
    "while_a_checkpoint_is_written": lambda d: (d / "checkpoints" / "last.pt.tmp").exists()
    and (checkpoint_state(d) or {}).get("env_steps", 0) >= 100,
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_sigkill_at_any_point_then_resume_finishes_the_run_consistently(reference_run, tmp_path, point):
    process = start_recipe(tmp_path)
    wait_for(lambda: KILL_POINTS[point](tmp_path), process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    if not (tmp_path / "checkpoints" / "last.pt").is_file():
        pytest.fail(f"killed {point} before any checkpoint existed")
    resumed = subprocess.run([sys.executable, "recipes/td3_accelerate.py", f"resume={tmp_path}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    reference = json.loads((reference_run / "summary.json").read_text())
    assert summary["env_steps"] == TOTAL and summary["switch_step"] == reference["switch_step"] == 500
    schedule = [(e["env_steps"], e["stage"]) for e in summary["evaluations"]]
    assert schedule == [(e["env_steps"], e["stage"]) for e in reference["evaluations"]]  # none lost or duplicated
    assert metric_steps(tmp_path) == metric_steps(reference_run)  # each step's metrics logged once
    assert summary["bc_rounds"] == reference["bc_rounds"] == 3  # T survived the kill
    assert not (ROOT / "outputs").exists() or not any((ROOT / "outputs").rglob(tmp_path.name))


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_write_a_checkpoint_and_exit_cleanly(tmp_path, signum, status):
    process = start_recipe(tmp_path, "checkpoint.every=100000")  # no periodic checkpoint: the signal's is the only one
    assert wait_for(lambda: (tmp_path / "metrics" / "scalars" / "train" / "loss_qvalue.csv").is_file(), process)
    process.send_signal(signum)
    assert process.wait(timeout=120) == status
    stderr = process.stderr.read()
    assert stderr.strip().startswith(f"interrupted: stopped by {signal.Signals(signum).name} at env step")
    assert "Traceback" not in stderr
    state = checkpoint_state(tmp_path)
    assert state["env_steps"] > 200  # past the random start: the work was saved
    summary = run_experiment(compose_config(*FAULT_RUN, f"resume={tmp_path}"))
    assert summary["env_steps"] == TOTAL


@pytest.mark.parametrize("override, loss", [("algo.lr=1e8", "loss_"), ("stage1.bc_lr=1e12", "loss_bc")])
def test_a_diverging_run_stops_with_its_last_good_state(tmp_path, override, loss):
    cfg = compose_config(*TINY, override, "stage1.bc_epochs=20")
    with pytest.raises(TrainingDiverged, match=rf"training diverged in stage1 at env step \d+: train/{loss}\w* is (nan|inf)"):
        run_experiment(cfg, tmp_path)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    for name in ("accelerator_learner", "cloner"):
        if name in checkpoint:
            assert all(torch.isfinite(t).all() for t in checkpoint[name]["loss"].values() if t.is_floating_point())
    assert not (tmp_path / "summary.json").exists()


def test_non_finite_parameters_are_never_checkpointed(tmp_path):
    layer = torch.nn.Linear(2, 2)
    assert all_finite(layer)
    with torch.no_grad():
        layer.weight[0, 0] = math.nan
    run = Run(tmp_path, None, 10, eval_every=0, checkpoint_every=0, quiet=True)
    with pytest.raises(TrainingDiverged, match="a parameter of Linear is not finite"):
        run.save("last", {"layer": layer.state_dict()}, modules=(layer,))
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_summary_json_is_strict_with_non_finite_values_as_null(tmp_path):
    run = Run(tmp_path, None, 10, eval_every=0, checkpoint_every=0, quiet=True)
    run.write_json("summary.json", {"stage1": {"transformer_return": math.nan}, "x": [1.0, math.inf]})
    written = json.loads((tmp_path / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert written["stage1"]["transformer_return"] is None and written["x"] == [1.0, None]
    assert written["non_finite"] == {"stage1.transformer_return": "nan", "x[1]": "inf"}
    assert finite_json({"a": 1.5}, {}) == {"a": 1.5}


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A run stopped in stage one (checkpoint at 300 env steps)."""
    run_dir = tmp_path_factory.mktemp("stopped")
    run_experiment(compose_config(*TINY, "stage2.steps=200"), run_dir)
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert state["run_state"]["stage"] == "done"
    return run_dir


def test_resume_refuses_a_finished_run(stopped_run):
    with pytest.raises(ConfigError, match="this run has finished"):
        run_experiment(compose_config(*TINY, f"resume={stopped_run}"))


def make_interrupted_run(run_dir: Path, monkeypatch, stop_at: int) -> None:
    original = Run.save

    def save_then_stop(self, name, payload, **kwargs):
        path = original(self, name, payload, **kwargs)
        if self.state.env_steps >= stop_at:
            raise KeyboardInterrupt("simulated kill")
        return path

    monkeypatch.setattr(Run, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(compose_config(*TINY), run_dir)
    monkeypatch.setattr(Run, "save", original)


def test_resume_takes_a_longer_schedule_and_refuses_other_overrides(tmp_path, monkeypatch):
    make_interrupted_run(tmp_path, monkeypatch, stop_at=400)
    with pytest.raises(ConfigError, match=r"resume does not take algo.lr=0.1 \(the run was made with 0.0003\): it accepts"):
        run_experiment(compose_config(*TINY, f"resume={tmp_path}", "algo.lr=0.1"), overrides=[f"resume={tmp_path}", "algo.lr=0.1"])
    with pytest.raises(ConfigError, match="would end stage1 at 300 env steps, but it has already done 400"):
        run_experiment(compose_config(*TINY, f"resume={tmp_path}", "stage1.steps=100"),
                       overrides=[f"resume={tmp_path}", "stage1.steps=100"])
    summary = run_experiment(compose_config(*TINY, f"resume={tmp_path}", "stage2.steps=300"),
                             overrides=[f"resume={tmp_path}", "stage2.steps=300"])
    assert summary["env_steps"] == TOTAL + 100 and summary["config"]["stage2"]["steps"] == 300


def test_resume_continues_in_the_directory_it_is_given(tmp_path, monkeypatch):
    import shutil

    make_interrupted_run(tmp_path / "original", monkeypatch, stop_at=300)
    shutil.copytree(tmp_path / "original", tmp_path / "copy")
    summary = run_experiment(compose_config(*TINY, f"resume={tmp_path / 'copy'}"))
    assert summary["env_steps"] == TOTAL
    assert (tmp_path / "copy" / "summary.json").is_file()
    assert not (tmp_path / "original" / "summary.json").exists()


def test_a_missing_checkpoint_file_is_named(tmp_path):
    from trl_accel.checkpoint import load_checkpoint

    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")


def test_run_state_round_trips_whole():
    state = RunState(stage="stage1", stage_steps=5, env_steps=5, evaluations=[{"env_steps": 5}], random_return=-1.0)
    assert RunState.from_state_dict(state.state_dict()) == state
