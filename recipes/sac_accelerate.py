"""Accelerated transformer with SAC: the same stages as ``td3_accelerate.py`` with ``SACLoss``
(tanh-normal actors, automatic entropy tuning); the transformer clones the accelerator's mean action.
The config is ``td3_accelerate.yaml`` with ``algo=sac``.

    python recipes/sac_accelerate.py experiment=quick
    python recipes/sac_accelerate.py env=hopper_pomdp accelerator=lstm
    python recipes/sac_accelerate.py stage1.bc_loss=likelihood               # clone by log-likelihood
    python recipes/sac_accelerate.py mode=accelerator_only                   # baseline: MLP (or LSTM) SAC
"""
from __future__ import annotations

from pathlib import Path

from trl_accel.recipe import main

if __name__ == "__main__":
    main(Path(__file__).resolve().parent / "config", "sac_accelerate")
