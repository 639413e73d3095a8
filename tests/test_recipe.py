"""The recipe end to end on a tiny schedule: outputs, baselines, data sources, resume, compile."""
from __future__ import annotations

import json

import pytest
import torch
from td3_accelerate import run_experiment

from tests.conftest import TINY_LSTM, run_killed_after_a_checkpoint

TOTAL = 200 + 300 + 200  # random + stage-one + stage-two steps in the tiny schedule


def test_accelerate_run_writes_summary_curves_metrics_and_checkpoints(tiny_config, tmp_path):
    summary = run_experiment(tiny_config(), tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    for key in ("env", "seed", "env_steps", "wall_time_s", "switch_step", "switch_reason"):
        assert key in written
    assert written["env_steps"] == TOTAL and written["switch_step"] == 500
    assert written["switch_reason"] == "fixed: reached stage1.steps"
    for key in ("accelerator_return", "transformer_return"):
        assert isinstance(written["stage1"][key], float)
    assert isinstance(written["stage2"]["transformer_return"], float)
    assert summary["stage2"] == written["stage2"]
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    for name in ("stage1.pt", "stage2.pt", "last.pt"):
        assert (tmp_path / "checkpoints" / name).is_file()
    scalars = tmp_path / "metrics" / "scalars"
    assert (scalars / "eval" / "transformer_return.csv").read_text().strip()
    assert (scalars / "train" / "loss_bc.csv").read_text().strip()


@pytest.mark.parametrize("mode, key", [("mlp_td3", "mlp_return"), ("transformer_td3", "transformer_return")])
def test_baselines_run_through_the_same_recipe(tiny_config, tmp_path, mode, key):
    summary = run_experiment(tiny_config(f"mode={mode}"), tmp_path)
    assert summary["env_steps"] == TOTAL and summary["switch_step"] is None
    assert isinstance(summary["final_return"], float)
    assert all(key in record for record in summary["evaluations"])


@pytest.mark.parametrize("source", ["evaluation", "dagger"])
def test_other_bc_data_sources_fill_the_trajectory_buffer(tiny_config, tmp_path, source):
    summary = run_experiment(tiny_config(f"stage1.bc_data={source}", "stage2.steps=0"), tmp_path)
    assert summary["bc_env_steps"] == 300  # one batch of bc_every=100 rollout steps per BC round
    assert (tmp_path / "metrics" / "scalars" / "train" / "loss_bc.csv").read_text().count("\n") == 3


def test_a_recurrent_teacher_labels_the_transformers_own_rollouts(tiny_config, tmp_path):
    # bc_data=dagger with an LSTM teacher: T gives the teacher each step's history (observation, previous action
    # and reward) and it labels the transformer's rollouts from the memory it rebuilds over them.
    # pendulum_pomdp's 3 final rounds (stage1.bc_final_rounds) follow stage one's 3.
    summary = run_experiment(tiny_config(*TINY_LSTM, "stage1.bc_data=dagger", "stage2.steps=0"), tmp_path)
    assert summary["bc_env_steps"] == 600
    bc_losses = (tmp_path / "metrics" / "scalars" / "train" / "loss_bc.csv").read_text().splitlines()
    assert len(bc_losses) == 6 and all(float(line.split(",")[1]) > 0 for line in bc_losses)


def test_dagger_rollouts_mix_in_the_teachers_episodes(tiny_config, tmp_path):
    # stage1.dagger_teacher_share=0.5 with an LSTM teacher: the rollouts act with the teacher in every other episode
    # (its memory carried through the student's episodes), and T is labelled as with the student's alone.
    summary = run_experiment(tiny_config(*TINY_LSTM, "stage1.bc_data=dagger", "stage1.dagger_teacher_share=0.5",
                                         "stage1.bc_final_rounds=0", "stage2.steps=0"), tmp_path)
    assert summary["bc_env_steps"] == 300
    bc_losses = (tmp_path / "metrics" / "scalars" / "train" / "loss_bc.csv").read_text().splitlines()
    assert len(bc_losses) == 3 and all(float(line.split(",")[1]) > 0 for line in bc_losses)


def test_final_bc_rounds_follow_the_accelerators_last_step(tiny_config, tmp_path):
    # stage1.bc_final_rounds=2: after the 3 rounds within stage one, 2 more on fresh rollouts of the transformer with
    # the teacher fixed (bc_every=100 steps each), before the switch; the env steps of the stage are unchanged.
    summary = run_experiment(tiny_config("stage1.bc_data=dagger", "stage1.bc_final_rounds=2", "stage2.steps=0"), tmp_path)
    assert (summary["bc_rounds"], summary["bc_final_rounds"], summary["bc_env_steps"]) == (5, 2, 500)
    assert summary["env_steps"] == summary["switch_step"] == 500
    bc_losses = (tmp_path / "metrics" / "scalars" / "train" / "loss_bc.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in bc_losses] == ["300", "400", "500", "500", "500"]


def test_a_crash_between_final_bc_rounds_resumes_the_rounds_left(tiny_config, tmp_path, monkeypatch):
    overrides = ("stage1.bc_data=dagger", "stage1.bc_final_rounds=2", "stage2.steps=0")
    run_killed_after_a_checkpoint(monkeypatch, lambda: run_experiment(tiny_config(*overrides), tmp_path),
                                  when=lambda saved: saved[-1]["bc_final_rounds"] == 1)
    at_crash = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert at_crash["run_state"]["bc_final_rounds"] == 1 and at_crash["run_state"]["switch_step"] is None
    summary = run_experiment(tiny_config(*overrides, f"resume={tmp_path}"), tmp_path / "ignored")
    assert (summary["bc_rounds"], summary["bc_final_rounds"], summary["bc_env_steps"]) == (5, 2, 500)
    assert summary["switch_step"] == 500 and summary["stage1"]["transformer_return"] is not None


@pytest.mark.parametrize("crash_at_save, stage, env_steps", [(3, "stage1", 300), (8, "stage2", 600)])
def test_resume_after_a_crash_continues_the_counters(tiny_config, tmp_path, monkeypatch, crash_at_save, stage, env_steps):
    saved = run_killed_after_a_checkpoint(monkeypatch, lambda: run_experiment(tiny_config(), tmp_path),
                                          when=lambda saved: len(saved) == crash_at_save)
    at_crash = saved[-1]
    assert at_crash["stage"] == stage and at_crash["env_steps"] == env_steps
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    learner_key = "accelerator_learner" if stage == "stage1" else "stage_two_learner"
    updates_at_crash = checkpoint[learner_key]["num_updates"]

    summary = run_experiment(tiny_config(f"resume={tmp_path}"), tmp_path / "ignored")
    assert summary["env_steps"] == TOTAL
    assert summary["switch_step"] == 500
    evaluations_before = [e for e in summary["evaluations"] if e["env_steps"] <= env_steps]
    assert len(evaluations_before) == len(at_crash["evaluations"])
    final = torch.load(tmp_path / "checkpoints" / f"{stage}.pt", weights_only=False)
    steps_left = (500 if stage == "stage1" else TOTAL) - env_steps
    assert final[learner_key]["num_updates"] == updates_at_crash + steps_left


def test_stage_two_can_start_from_a_stage_one_checkpoint(tiny_config, tmp_path):
    run_experiment(tiny_config("stage2.steps=0"), tmp_path / "first")
    summary = run_experiment(tiny_config(f"stage2.init_from={tmp_path / 'first' / 'checkpoints' / 'stage1.pt'}"),
                             tmp_path / "second")
    assert summary["switch_step"] == 500
    assert summary["env_steps"] == 200


def test_compiled_updates_run(tiny_config, tmp_path):
    summary = run_experiment(tiny_config("compile=true", "stage1.random_steps=100", "stage1.steps=100",
                                         "stage2.steps=100", "eval.every=1000", "eval.episodes=1"), tmp_path)
    assert summary["env_steps"] == 300
