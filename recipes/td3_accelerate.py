"""Accelerated transformer with TD3: stage one (accelerator + behaviour cloning), the switch,
stage two (transformer fine-tuned with the accelerator's critics), and the baselines.

    python recipes/td3_accelerate.py experiment=quick
    python recipes/td3_accelerate.py experiment=paper_mujoco env=hopper seed=1
    python recipes/td3_accelerate.py env=hopper_pomdp accelerator=lstm        # POMDP with the LSTM accelerator
    python recipes/td3_accelerate.py stage1.ascent_weight=0.1                 # BC + ascent on the critic
    python recipes/td3_accelerate.py mode=accelerator_only env=hopper         # baseline: the accelerator from scratch
    python recipes/td3_accelerate.py resume=outputs/RUN_DIR                   # continue a killed run

The experiment itself (build -> stage one -> switch -> stage two -> summary) is
:func:`trl_accel.experiment.run_experiment`, shared with ``sac_accelerate.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from trl_accel.config import ConfigError
from trl_accel.experiment import run_experiment


def main_with_errors(cfg: DictConfig) -> None:
    """Run the experiment; a bad configuration exits with status 2 and one ``error:`` line."""
    try:
        run_experiment(cfg, Path(HydraConfig.get().runtime.output_dir))
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


@hydra.main(config_path="config", config_name="td3_accelerate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    main_with_errors(cfg)


__all__ = ["main", "main_with_errors", "run_experiment"]

if __name__ == "__main__":
    main()
