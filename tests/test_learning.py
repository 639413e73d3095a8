"""The method learns: stage one brings the transformer near its accelerator (fails when it stops working)."""
from __future__ import annotations

from td3_accelerate import run_experiment

from tests.conftest import compose_config


def gains_over_random(summary: dict) -> tuple[float, float, float]:
    """(accelerator's gain, transformer's gain) over a random policy at the switch, and the random return."""
    random_return = summary["random_return"]
    return (summary["stage1"]["accelerator_return"] - random_return,
            summary["stage1"]["transformer_return"] - random_return, random_return)


def test_stage_one_brings_the_transformer_near_the_accelerator(tmp_path):
    # The quick schedule on Pendulum-v1: 1000 random steps, then 7000 steps of TD3 + behaviour cloning.
    cfg = compose_config("experiment=quick", "device=cpu", "quiet=true", "seed=0", "stage2.steps=0",
                         "eval.episodes=10", "eval.every=2000", "checkpoint.every=0", "logger.backend=none")
    summary = run_experiment(cfg, tmp_path)
    accelerator_gain, transformer_gain, random_return = gains_over_random(summary)
    assert accelerator_gain > 600, f"the accelerator did not learn: {summary['stage1']}, random {random_return:.0f}"
    assert transformer_gain > 500, f"the transformer stayed near random: {summary['stage1']}, random {random_return:.0f}"
    assert transformer_gain >= 0.7 * accelerator_gain, f"the transformer lags its accelerator: {summary['stage1']}"


def gain_of_baseline(tmp_path, name: str, *overrides: str) -> tuple[float, dict]:
    """The from-scratch accelerator's final gain over a random policy on the quick schedule, and its summary."""
    cfg = compose_config("experiment=quick", "mode=accelerator_only", "stage2.steps=0", "eval.episodes=10",
                         "eval.every=0", "checkpoint.every=0", "logger.backend=none", "device=cpu", "quiet=true",
                         "seed=0", *overrides)
    summary = run_experiment(cfg, tmp_path / name)
    return summary["final_return"] - summary["random_return"], summary


def test_recurrent_accelerator_learns_the_velocity_masked_pendulum(tmp_path):
    # Memory, end to end: on Pendulum-v1 with the angular velocity masked (a memoryless policy cannot settle the
    # pendulum), the LSTM TD3 accelerator of the quick schedule (1000 random + 7000 steps; the task's default
    # accelerator.lr=1e-3) gains at least 70% of what a full-observation MLP gains with the same budget, stage one
    # brings the transformer within 25% of its accelerator, and an MLP on the masked task stays below 30%.
    # Thresholds from seeds 0, 1, 2 (benchmarks/README.md, "POMDP Pendulum").
    full_gain, full = gain_of_baseline(tmp_path, "mlp_full", "env=pendulum", "accelerator.lr=1e-3")
    masked_gain, masked = gain_of_baseline(tmp_path, "mlp_masked", "env=pendulum_pomdp")
    cfg = compose_config("experiment=quick", "env=pendulum_pomdp", "accelerator=lstm", "stage2.steps=0",
                         "eval.episodes=10", "eval.every=2000", "checkpoint.every=0", "logger.backend=none",
                         "device=cpu", "quiet=true", "seed=0")
    summary = run_experiment(cfg, tmp_path / "lstm")
    lstm_gain, transformer_gain, random_return = gains_over_random(summary)
    report = (f"random {random_return:.0f}; MLP full obs {full['final_return']:.0f}, MLP masked "
              f"{masked['final_return']:.0f}; at the switch {summary['stage1']}")
    assert full_gain > 700, f"the full-observation reference did not learn: {report}"
    assert lstm_gain >= 0.7 * full_gain, f"the LSTM accelerator did not learn the masked task: {report}"
    assert transformer_gain >= 0.75 * lstm_gain, f"the transformer lags its recurrent accelerator: {report}"
    assert masked_gain < 0.3 * full_gain, f"a memoryless MLP should not solve the masked task: {report}"
