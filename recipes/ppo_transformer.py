"""On-policy PPO of a transformer over whole rollouts, with KV-cache rollouts, on a grid memory task; the GRU
and MLP baselines through the same recipe; and accelerated PPO (a GRU accelerator teaches the transformer).

    python recipes/ppo_transformer.py experiment=quick env=grid_memory_small policy=transformer
    python recipes/ppo_transformer.py env=grid_memory policy=gru seed=1
    python recipes/ppo_transformer.py mode=accelerate accelerate.critic=fresh
    python recipes/ppo_transformer.py resume=outputs/ppo/RUN_DIR            # continue a stopped run

The run itself is :func:`trl_accel.onpolicy.experiment.run_ppo`; the command line's checks and exit statuses are
:mod:`trl_accel.recipe`'s (bad input: one ``error:`` line and status 2 before anything is built).
"""
from __future__ import annotations

from pathlib import Path

from trl_accel.onpolicy.config import validate_ppo_config
from trl_accel.onpolicy.experiment import run_ppo
from trl_accel.recipe import main

CONFIG_DIR = Path(__file__).resolve().parent / "ppo_config"

__all__ = ["CONFIG_DIR", "run_ppo"]

if __name__ == "__main__":
    main(CONFIG_DIR, "ppo_transformer", validate=validate_ppo_config, run=run_ppo)
