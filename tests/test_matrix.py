"""The algorithm matrix through the recipes: {MLP, LSTM} x {TD3, SAC} x {BC, BC + ascent}, MDP and POMDP."""
from __future__ import annotations

import json

import pytest
import torch
from td3_accelerate import run_experiment

from tests.conftest import TINY_LSTM, run_killed_after_a_checkpoint

TOTAL = 200 + 300 + 200


@pytest.mark.parametrize("recipe, extra", [
    ("td3", [*TINY_LSTM, "accelerator.inputs=[observation]", "stage1.ascent_weight=0.1"]),
    ("sac", []),
    ("sac", [*TINY_LSTM, "accelerator.inputs=[observation]", "algo.batch_size=16", "stage1.ascent_weight=0.1", "stage1.bc_loss=likelihood"]),
], ids=["td3-lstm-ascent", "sac-mlp-bc", "sac-lstm-ascent-likelihood"])
def test_accelerated_runs_write_the_same_summary(tiny_config, tiny_sac_config, tmp_path, recipe, extra):
    config = tiny_config if recipe == "td3" else tiny_sac_config
    summary = run_experiment(config(*extra), tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["algorithm"] == recipe and written["env_steps"] == TOTAL and written["switch_step"] == 500
    for key in ("accelerator_return", "transformer_return"):
        assert isinstance(written["stage1"][key], float)
    assert isinstance(summary["stage2"]["transformer_return"], float)
    scalars = tmp_path / "metrics" / "scalars" / "train"
    assert (scalars / "loss_bc.csv").read_text().strip()
    if "stage1.ascent_weight=0.1" in extra:
        assert (scalars / "loss_ascent.csv").read_text().strip()
    if recipe == "sac":
        assert (scalars / "loss_alpha.csv").read_text().strip()
        stage_one = torch.load(tmp_path / "checkpoints" / "stage1.pt", weights_only=False)
        stage_two = torch.load(tmp_path / "checkpoints" / "stage2.pt", weights_only=False)
        assert "log_alpha" in stage_one["accelerator_learner"]["loss"] and "log_alpha" in stage_two["stage_two_learner"]["loss"]


def test_pomdp_env_masks_the_observation(tiny_config, tmp_path):
    summary = run_experiment(tiny_config(*TINY_LSTM, "stage2.steps=0", "stage1.steps=100"), tmp_path)
    stage_one = torch.load(tmp_path / "checkpoints" / "stage1.pt", weights_only=False)
    assert stage_one["shapes"]["obs_dim"] == 2 and summary["pomdp"] == "positions_only"


@pytest.mark.parametrize("recipe", ["td3", "sac"])
def test_lstm_baseline_from_scratch(tiny_config, tiny_sac_config, tmp_path, recipe):
    config = tiny_config if recipe == "td3" else tiny_sac_config
    extra = ["algo.batch_size=16"] if recipe == "sac" else []
    summary = run_experiment(config(*TINY_LSTM, *extra, "mode=accelerator_only"), tmp_path)
    assert summary["switch_step"] is None and isinstance(summary["final_return"], float)
    assert all("lstm_return" in record for record in summary["evaluations"])


def test_lstm_run_resumes_after_a_crash(tiny_config, tmp_path, monkeypatch):
    run_killed_after_a_checkpoint(monkeypatch, lambda: run_experiment(tiny_config(*TINY_LSTM), tmp_path),
                                  when=lambda saved: len(saved) == 2)
    # as on the command line: only resume= is given, the run's own config (LSTM) is kept
    summary = run_experiment(tiny_config(f"resume={tmp_path}"), overrides=[f"resume={tmp_path}"])
    assert summary["env_steps"] == TOTAL and summary["accelerator"] == "lstm"
