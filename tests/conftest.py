"""Shared helpers: the recipe's config composed in-process, and small model sizes for fast tests."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from trl_accel import loop

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "recipes" / "config"
sys.path.insert(0, str(ROOT / "recipes"))

#: A schedule of a few hundred steps with small networks: exercises every part of the recipe.
TINY = [
    "experiment=quick", "device=cpu", "quiet=true", "env.max_episode_steps=50",
    "stage1.random_steps=200", "stage1.steps=300", "stage2.steps=200", "stage1.bc_every=100",
    "stage1.bc_batch_size=50", "stage1.bc_epochs=2", "algo.batch_size=64", "eval.every=250", "eval.episodes=2",
    "checkpoint.every=100", "transformer.d_model=32", "transformer.d_ff=64", "accelerator.hidden_sizes=[32,32]",
]


#: The tiny schedule for the SAC recipe, and the small LSTM accelerator on the masked Pendulum.
TINY_SAC = [*TINY, "algo.batch_size=64"]
TINY_LSTM = ["env=pendulum_pomdp", "accelerator=lstm", "accelerator.hidden_size=16", "accelerator.hidden_sizes=[16]",
             "accelerator.seq_len=4", "accelerator.burn_in=1", "accelerator.batch_size=16"]


def run_killed_after_a_checkpoint(monkeypatch, run, when) -> list[dict]:
    """Calls ``run()`` with each checkpoint followed by ``when(saved)`` (``saved``: the run states of the checkpoints
    written so far, the last one's included); the first time it is true, a ``KeyboardInterrupt`` right after that
    checkpoint simulates a kill. Checks that the run was killed; returns ``saved``."""
    saved, original_save = [], loop.Run.save

    def save_then_kill(self, name, payload, **kwargs):
        path = original_save(self, name, payload, **kwargs)
        saved.append(self.state.state_dict())
        if when(saved):
            raise KeyboardInterrupt("simulated kill right after a checkpoint")
        return path

    monkeypatch.setattr(loop.Run, "save", save_then_kill)
    try:
        with pytest.raises(KeyboardInterrupt):
            run()
    finally:
        monkeypatch.setattr(loop.Run, "save", original_save)
    return saved


def compose_config(*overrides: str, recipe: str = "td3_accelerate"):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=recipe, overrides=list(overrides))


@pytest.fixture
def tiny_config():
    return lambda *extra: compose_config(*TINY, *extra)


@pytest.fixture
def tiny_sac_config():
    return lambda *extra: compose_config(*TINY_SAC, *extra, recipe="sac_accelerate")
