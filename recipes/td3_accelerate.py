"""Accelerated transformer with TD3: stage one (accelerator + behaviour cloning), the switch,
stage two (transformer fine-tuned with the accelerator's critics), and the baselines.

    python recipes/td3_accelerate.py experiment=quick
    python recipes/td3_accelerate.py experiment=paper_mujoco env=hopper seed=1
    python recipes/td3_accelerate.py env=hopper_pomdp accelerator=lstm        # POMDP with the LSTM accelerator
    python recipes/td3_accelerate.py stage1.ascent_weight=0.1                 # BC + ascent on the critic
    python recipes/td3_accelerate.py mode=accelerator_only env=hopper         # baseline: the accelerator from scratch
    python recipes/td3_accelerate.py resume=outputs/RUN_DIR                   # continue a stopped run

The experiment itself (build -> stage one -> switch -> stage two -> summary) is
:func:`trl_accel.experiment.run_experiment`; the command line's checks and exit statuses are
:mod:`trl_accel.recipe`'s.
"""
from __future__ import annotations

from pathlib import Path

from trl_accel.experiment import run_experiment
from trl_accel.recipe import main

CONFIG_DIR = Path(__file__).resolve().parent / "config"

__all__ = ["CONFIG_DIR", "run_experiment"]

if __name__ == "__main__":
    main(CONFIG_DIR, "td3_accelerate")
