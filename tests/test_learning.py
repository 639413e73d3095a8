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


def test_stage_one_learns_on_vectorised_env_copies(tmp_path):
    # The same schedule on 5 copies of Pendulum-v1 in one gymnasium vector env (env.num_envs=5: 10 steps of each
    # copy per collector batch, the same updates per env step). Measured on seeds 0/1/2, accelerator and
    # transformer at the switch: -159/-358, -173/-193, -167/-187 (one env: -157/-174, -190/-414, -183/-449).
    cfg = compose_config("experiment=quick", "device=cpu", "quiet=true", "seed=0", "stage2.steps=0", "env.num_envs=5",
                         "eval.episodes=10", "eval.every=2000", "checkpoint.every=0", "logger.backend=none")
    summary = run_experiment(cfg, tmp_path)
    accelerator_gain, transformer_gain, random_return = gains_over_random(summary)
    assert accelerator_gain > 600, f"the accelerator did not learn: {summary['stage1']}, random {random_return:.0f}"
    assert transformer_gain >= 0.6 * accelerator_gain, f"the transformer lags its accelerator: {summary['stage1']}"


def test_lstm_accelerator_learns_and_teaches_the_transformer(tmp_path):
    # The recurrent path end to end: LSTM actor and critics (embedded observation, previous action and reward)
    # on replayed sequences, the transformer cloning it. Pendulum-v1 (fully observed), 1000 random + 8000 steps.
    # Measured with these settings (2 threads, benchmarks/README.md, "The CI learning tests' budgets"), seeds 0/1/2,
    # gains over random at the switch: accelerator 924 / 1034 / 1049, transformer 461 / 1050 / 331. With 6000 steps
    # (before) seed 0's accelerator gained 548-579, under the mark, on this machine.
    cfg = compose_config("experiment=quick", "env=pendulum", "accelerator=lstm", "accelerator.hidden_size=64",
                         "accelerator.hidden_sizes=[64,64]", "accelerator.seq_len=16", "accelerator.burn_in=4",
                         "accelerator.batch_size=32", "eval.episodes=10", "stage1.steps=8000", "stage2.steps=0", "seed=0",
                         "device=cpu", "quiet=true", "checkpoint.every=0", "logger.backend=none")
    summary = run_experiment(cfg, tmp_path)
    accelerator_gain, transformer_gain, random_return = gains_over_random(summary)
    assert accelerator_gain > 600, f"the LSTM accelerator did not learn: {summary['stage1']}, random {random_return:.0f}"
    assert transformer_gain > 200, f"the transformer did not learn from it: {summary['stage1']}, random {random_return:.0f}"


def final_return(tmp_path, name: str, *overrides: str) -> tuple[float, float]:
    """(final return, random return) of a from-scratch accelerator on the quick schedule (1000 random + 7000 steps;
    9000 on `pendulum_pomdp` with TD3, experiment_task/quick_pendulum_pomdp_td3.yaml)."""
    cfg = compose_config("experiment=quick", "mode=accelerator_only", "stage2.steps=0", "eval.episodes=10",
                         "eval.every=0", "checkpoint.every=0", "logger.backend=none", "device=cpu", "quiet=true",
                         "seed=0", *overrides)
    summary = run_experiment(cfg, tmp_path / name)
    return summary["final_return"], summary["random_return"]


def test_recurrent_accelerator_learns_the_velocity_masked_pendulum_and_teaches_the_transformer(tmp_path):
    # Memory, end to end: on Pendulum-v1 with the angular velocity masked (a memoryless policy cannot settle the
    # pendulum) the README's quick command (LSTM TD3 accelerator with the task's quick schedule: 1000 random + 9000
    # steps in sequences of 32 x 64, accelerator.lr=1e-3, the transformer cloning it on its own rollouts) learns, the
    # transformer follows it at the switch, and an MLP on the masked observations does not learn; both MLPs get the
    # same 9000 steps. Measured (benchmarks/README.md, "The quick schedule on pendulum_pomdp"): seed 0, this test's
    # runs on 2 threads alone: the accelerator's gain 0.99 of the full-view MLP's, the transformer's 0.82 of the
    # accelerator's, the masked MLP's -0.27. Seeds 1 and 2 (one thread, 20 evaluation episodes): 1.09 / 0.90 / -0.18
    # and 1.19 / 0.98 / 0.07. The transformer's gain swings between BC rounds (seed 0: -423, -418, -1099 at 8k-10k,
    # -360 after the final rounds), so its mark keeps 0.12 of room under seed 0's 0.82, not the 0.07 of 0.75.
    cfg = compose_config("experiment=quick", "env=pendulum_pomdp", "accelerator=lstm", "stage2.steps=0", "device=cpu",
                         "quiet=true", "seed=0", "checkpoint.every=0", "logger.backend=none")
    summary = run_experiment(cfg, tmp_path / "accelerated")
    accelerator_gain, transformer_gain, random_return = gains_over_random(summary)
    same_budget = f"stage1.steps={cfg.stage1.steps}"  # the task's quick schedule: 9000
    full_view, full_random = final_return(tmp_path, "mlp_full_view", "env=pendulum", same_budget)
    masked_mlp, masked_random = final_return(tmp_path, "mlp_masked", "env=pendulum_pomdp", "accelerator.lr=3e-4",
                                             same_budget)
    full_view_gain, masked_mlp_gain = full_view - full_random, masked_mlp - masked_random
    assert accelerator_gain >= 0.7 * full_view_gain, (
        f"the LSTM accelerator did not learn the masked task: gain {accelerator_gain:.0f} against {full_view_gain:.0f} "
        f"with the velocity in view; {summary['stage1']}, random {random_return:.0f}")
    assert transformer_gain >= 0.7 * accelerator_gain, f"the transformer lags its accelerator: {summary['stage1']}"
    assert masked_mlp_gain < 0.3 * full_view_gain, (
        f"a memoryless MLP should not solve the masked task: gain {masked_mlp_gain:.0f} against {full_view_gain:.0f}")


def test_ppo_transformer_beats_the_mlp_on_the_grid_memory_task(tmp_path):
    """On-policy PPO on the 9x9 grid (64-step episodes, 64 agents), 750k env steps each (~2 min on 2 cores).

    Measured at 750k env steps (evaluation return, 128 fixed episodes, seeds 0/1/2): transformer 9.70/9.60/10.03,
    MLP 6.91/6.77/6.61 (random policy 0.61): the memory is worth ~3 rewards per episode. The test asks for half
    of that margin, and for the transformer to reach 8.5."""
    from ppo_transformer import run_ppo

    from tests.test_ppo_transformer import compose_ppo

    common = ["experiment=quick", "env=grid_memory_small", "env_steps=750000", "eval.every=0", "device=cpu", "quiet=true"]
    transformer = run_ppo(compose_ppo(*common, "policy=transformer"), tmp_path / "transformer")["final_return"]
    mlp = run_ppo(compose_ppo(*common, "policy=mlp"), tmp_path / "mlp")["final_return"]
    assert transformer >= 8.5, f"transformer {transformer:.2f} (measured 9.6-10.0 at this budget)"
    assert transformer >= mlp + 1.5, f"transformer {transformer:.2f} vs MLP {mlp:.2f}: memory should be worth ~3"


def cue_reach_run(tmp_path, name: str, *overrides: str) -> dict:
    """The quick schedule on ``cue_reach`` (1000 random + 7000 steps of stage one, 1000 of stage two) with the
    privileged MLP accelerator and a small transformer (d_model 64); 50 evaluation episodes at the switch and at the
    end only."""
    cfg = compose_config("experiment=quick", "env=cue_reach", "accelerator.privileged=true", "stage2.steps=1000",
                         "transformer.d_model=64", "transformer.d_ff=128", "eval.every=0", "eval.episodes=50",
                         "checkpoint.every=0", "logger.backend=none", "device=cpu", "quiet=true", "seed=0", *overrides)
    return run_experiment(cfg, tmp_path / name)


def test_transformer_recovers_the_hidden_goal_from_its_context_on_cue_reach(tmp_path):
    # Memory, end to end, off-policy: the privileged accelerator reads the goal in the state at every step; the
    # transformer sees it only in its first two observations. With a window over the whole episode (K=40, the
    # task's default, KV-cache rollouts) it follows its teacher; with K=3 it cannot (memoryless policies end on the
    # goal in at most 15% of episodes, velocity continuation included). Measured with 20 evaluation episodes at the
    # switch (benchmarks/README.md, "The memory task"), seeds 0/1/2: the K=40 transformer's gain in return over random
    # 1.00/1.00/0.99 of the accelerator's, its success at the last step 0.60/0.40/0.60 against the accelerator's
    # 0.65/0.40/0.75; K=3: return gain 0.60/0.48/0.37 of the accelerator's, success at the last step 0.00/0.00/0.05;
    # after 1000 steps of stage two the K=40 transformer keeps 0.92/0.97/1.02 of its gain at the switch.
    full = cue_reach_run(tmp_path, "k40")
    switch, end, random_return = full["stage1"], full["stage2"], full["random_return"]
    teacher_gain = switch["accelerator_return"] - random_return
    student_gain = switch["transformer_return"] - random_return
    assert teacher_gain > 25, f"the privileged accelerator did not learn: {switch}, random {random_return:.1f}"
    assert student_gain >= 0.85 * teacher_gain, f"the K=40 transformer lags its teacher: {switch}"
    assert switch["transformer_success_at_end"] >= 0.7 * switch["accelerator_success_at_end"] > 0.2, switch
    assert end["transformer_return"] - random_return >= 0.8 * student_gain, f"stage two lost it: {end} after {switch}"

    short = cue_reach_run(tmp_path, "k3", "transformer.context_len=3")["stage1"]
    assert short["transformer_return"] - random_return < 0.75 * teacher_gain, f"K=3 should not follow: {short}"
    assert short["transformer_success_at_end"] <= 0.2, f"K=3 should stay at the memoryless level: {short}"
