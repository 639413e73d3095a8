"""Accelerated transformer with SAC: the same stages as ``td3_accelerate.py`` with ``SACLoss``
(tanh-normal actors, automatic entropy tuning); the transformer clones the accelerator's mean action.

    python recipes/sac_accelerate.py experiment=quick
    python recipes/sac_accelerate.py env=hopper_pomdp accelerator=lstm
    python recipes/sac_accelerate.py stage1.bc_loss=likelihood               # clone by log-likelihood
    python recipes/sac_accelerate.py mode=accelerator_only                   # baseline: MLP (or LSTM) SAC
"""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from td3_accelerate import main_with_errors


@hydra.main(config_path="config", config_name="sac_accelerate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    main_with_errors(cfg)


if __name__ == "__main__":
    main()
