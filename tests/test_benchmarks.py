"""Every benchmark script runs end to end at a tiny size (the figures themselves live in benchmarks/README.md)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import torch
from torchrl.data import Bounded

from tests.conftest import ROOT, TINY, compose_config
from trl_accel.modules import make_transformer_actor, make_twin_q_critics

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_script(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_throughput_benchmark_runs_every_variant(tmp_path):
    out = tmp_path / "throughput.json"
    stdout = run_script("benchmarks/throughput.py", "--env", "pendulum", "--random-steps", "100", "--steps", "100",
                        "--reps", "1", "--out", str(out))
    table = json.loads(out.read_text())["table"]
    variants = ["plain", "plain_transformer", "mlp_td3", "stage1", "stage1_bf16", "stage2"]
    assert list(table) == variants
    assert all(row["steps_per_s_median"] > 0 and row["ratio_median"] > 0 for row in table.values())
    assert [table[name]["reference"] for name in variants] == ["plain", "plain_transformer", "plain", "plain", "plain",
                                                               "plain_transformer"]
    assert table["plain"]["ratio_median"] == table["plain_transformer"]["ratio_median"] == 1.0
    rows = [line.split() for line in stdout.splitlines() if line.split()[:1] and line.split()[0] in variants]
    assert [row[0] for row in rows] == variants and all(float(row[1]) > 0 and float(row[2]) > 0 for row in rows)
    assert "written to" in stdout


def test_fidelity_benchmark_runs_and_summarises(tmp_path):
    run_script("benchmarks/fidelity.py", "--env", "pendulum", "--seeds", "0", "--variants", "accelerate",
               "accelerator_only", "--random-steps", "100", "--stage1-steps", "100", "--stage2-steps", "50",
               "--eval-every", "100", "--eval-episodes", "1", "--out", str(tmp_path), "stage1.bc_every=100",
               "stage1.bc_batch_size=50", "transformer.d_model=16", "transformer.d_ff=32",
               "accelerator.hidden_sizes=[16,16]", "algo.batch_size=32")
    assert (tmp_path / "accelerate_seed0" / "summary.json").is_file()
    assert (tmp_path / "accelerator_only_seed0" / "summary.json").is_file()


def test_plain_recurrent_td3_reference_runs_and_reports(tmp_path):
    out = tmp_path / "plain_recurrent.json"
    run_script("benchmarks/plain_recurrent_td3.py", "--env", "Pendulum-v1", "--mask-velocity", "--cell", "gru",
               "--total-steps", "300", "--learning-starts", "200", "--seq-len", "16", "--batch-size", "4",
               "--hidden", "16", "--head-layers", "16", "--eval-every", "0", "--eval-episodes", "1", "--out", str(out))
    report = json.loads(out.read_text())
    assert report["learning_steps_per_s"] > 0 and len(report["evals"]) >= 1


def test_throughput_benchmark_runs_the_recipe_on_vectorised_copies(tmp_path):
    out = tmp_path / "throughput.json"
    stdout = run_script("benchmarks/throughput.py", "--env", "pendulum", "--random-steps", "100", "--steps", "100",
                        "--reps", "1", "--variants", "mlp_td3", "--num-envs", "5", "--out", str(out))
    written = json.loads(out.read_text())
    assert written["num_envs"] == 5 and list(written["table"]) == ["plain", "mlp_td3"]
    assert written["table"]["mlp_td3"]["steps_per_s_median"] > 0
    assert "on 5 vectorised env copies" in stdout


def test_throughput_benchmark_passes_recipe_overrides_to_the_recipes_variants(tmp_path):
    out = tmp_path / "throughput.json"
    stdout = run_script("benchmarks/throughput.py", "--env", "pendulum", "--random-steps", "100", "--steps", "100",
                        "--reps", "1", "--variants", "mlp_td3", "--out", str(out), "--", "algo.batch_size=32")
    written = json.loads(out.read_text())
    assert written["overrides"] == ["algo.batch_size=32"] and written["device"] == "cpu"
    assert written["table"]["mlp_td3"]["steps_per_s_median"] > 0
    assert "the recipe with algo.batch_size=32" in stdout
    if not torch.cuda.is_available():  # an override the recipe refuses stops the benchmark with the recipe's line
        refused = subprocess.run([sys.executable, "benchmarks/throughput.py", "--env", "pendulum", "--random-steps",
                                  "100", "--steps", "100", "--reps", "1", "--variants", "mlp_td3", "--out",
                                  str(tmp_path / "refused.json"), "--", "cudagraphs=true"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=600, env=ENV)
        assert refused.returncode == 1
        assert "mlp_td3 failed (exit status 2): error: cudagraphs=true captures the updates" in refused.stderr


def test_env_step_benchmark_prints_a_line_per_layer():
    stdout = run_script("benchmarks/env_step.py", "--env", "pendulum", "--steps", "40", "--warmup", "5", "--reps", "1",
                        "--threads", "1")
    layers = ["gym", "torchrl_env", "torchrl_env_cpu", "double_to_float", "recipe_env", "plain_policy",
              "recipe_policy", "recipe_collector"]
    rows = [line.split() for line in stdout.splitlines() if line.split()[:1] and line.split()[0] in layers]
    assert [row[0] for row in rows] == layers and all(float(row[1]) > 0 for row in rows)


def test_recurrent_throughput_benchmark_prints_a_row_per_variant(tmp_path):
    out = tmp_path / "recurrent_throughput.json"
    stdout = run_script("benchmarks/recurrent_throughput.py", "--cells", "gru", "--random-steps", "100", "--steps", "50",
                        "--reps", "1", "--hidden", "16", "--head-layers", "16", "--seq-len", "8", "--batch-size", "4",
                        "--threads", "1", "--out", str(out))
    table = json.loads(out.read_text())["table"]
    assert set(table) == {"plain_gru", "gru_td3"} and table["gru_td3"]["ratio_median"] > 0
    rows = [line.split() for line in stdout.splitlines() if line.startswith(("plain_gru ", "gru_td3 "))]
    assert [row[0] for row in rows] == ["plain_gru", "gru_td3"] and all(float(row[1]) > 0 for row in rows)


def test_ppo_throughput_benchmark_prints_a_row_per_configuration():
    stdout = run_script("benchmarks/ppo_throughput.py", "--agents", "8", "--layers", "1", "2", "--rollout-len", "8",
                        "--size", "7", "--d-model", "16", "--minibatches", "2", "--repeats", "1")
    rows = [line.split() for line in stdout.splitlines() if "rollout_steps_per_s=" in line]
    assert [row[0] for row in rows] == ["transformer", "transformer", "gru", "gru", "mlp"]
    assert all(float(field.split("=")[1]) > 0 for row in rows for field in row[3:])


def test_ppo_grid_memory_benchmark_writes_per_seed_curves(tmp_path):
    stdout = run_script("benchmarks/ppo_grid_memory.py", "--variants", "transformer", "accelerate", "--seeds", "0",
                        "--out", str(tmp_path), "--", "env=grid_memory_small", "env.options.episode_steps=8",
                        "num_envs=4", "env_steps=128", "eval.every=64", "eval.episodes=4", "ppo.minibatches=2",
                        "policy.d_model=16", "policy.d_ff=32", "accelerate.teacher.d_model=16",
                        "accelerate.switch_steps=64", "device=cpu")
    rows = (tmp_path / "curves.csv").read_text().splitlines()
    assert rows[0] == "variant,seed,env_steps,wall_time_s,return" and len(rows) == 1 + 2 + 2
    assert (tmp_path / "curves_steps.png").is_file() and (tmp_path / "curves_time.png").is_file()
    assert "transformer seed=0 final_return=" in stdout and "accelerate seed=0" in stdout


def test_context_scaling_benchmark_prints_a_line_per_context():
    stdout = run_script("benchmarks/context_scaling.py", "--env", "Pendulum-v1", "--contexts", "3", "8",
                        "--collect-steps", "20", "--updates", "2", "--batch-size", "16", "--fill", "100", "--threads", "1")
    rows = [line for line in stdout.splitlines() if line.startswith("K=")]
    assert [row.split()[0] for row in rows] == ["K=3", "K=8"]
    assert all(float(field.split("=")[1]) > 0 for row in rows for field in row.split()[1:])


def test_sac_throughput_benchmark_runs_every_variant_against_the_plain_sac_loops(tmp_path):
    out = tmp_path / "throughput_sac.json"
    stdout = run_script("benchmarks/throughput.py", "--algo", "sac", "--env", "pendulum", "--random-steps", "100",
                        "--steps", "60", "--reps", "1", "--out", str(out))
    report = json.loads(out.read_text())
    variants = ["plain", "plain_transformer", "mlp_sac", "stage1", "stage1_bf16", "stage2"]
    assert report["algo"] == "sac" and list(report["table"]) == variants
    assert [report["table"][name]["reference"] for name in variants] == ["plain", "plain_transformer", "plain", "plain",
                                                                         "plain", "plain_transformer"]
    rows = [line.split() for line in stdout.splitlines() if line.split()[:1] and line.split()[0] in variants]
    assert [row[0] for row in rows] == variants and all(float(row[1]) > 0 and float(row[2]) > 0 for row in rows)


def test_plain_sac_has_the_recipes_networks_and_its_tanh_normal():
    """Its defaults are the SAC recipe's (``transformer=table1_sac``, MLP actor and critics, batch 256), its actors have
    the parameter counts of the recipe's, and its tanh-normal gives TorchRL's log-probabilities and mean action."""
    from tensordict.nn import NormalParamExtractor
    from torchrl.modules import TanhNormal

    from trl_accel.modules import make_mlp_actor

    plain = load_benchmark("plain_sac")
    args = plain.parse_args([])
    cfg = compose_config("env=halfcheetah", recipe="sac_accelerate")
    t, algo = cfg.transformer, cfg.algo
    assert (args.context_len, args.d_model, args.n_heads, args.d_ff, args.dropout) == (
        t.context_len, t.d_model, t.n_heads, t.d_ff, t.dropout)
    assert (args.batch_size, args.gamma, args.tau, args.lr, args.alpha_lr, args.alpha_init) == (
        algo.batch_size, algo.gamma, algo.tau, algo.lr, algo.alpha_lr, algo.alpha_init)
    assert args.hidden == list(cfg.accelerator.hidden_sizes) and algo.target_entropy == "auto"
    obs_dim, act_dim = 17, 6
    spec = Bounded(-2.0, 1.0, shape=(act_dim,))
    recipe_mlp = make_mlp_actor(obs_dim, spec, hidden_sizes=list(cfg.accelerator.hidden_sizes), stochastic=True)
    recipe_transformer = make_transformer_actor(obs_dim, spec, **{k: v for k, v in t.items() if k != "rollout"},
                                                stochastic=True)
    assert count(plain.MLPParams(obs_dim, act_dim, args.hidden)) == count(recipe_mlp)
    assert count(plain.TransformerParams(obs_dim, act_dim, args)) == count(recipe_transformer)

    # in float64: TorchRL's log_prob inverts the tanh of the action, which float32 does to ~0.03 only
    low, high = spec.space.low.double(), spec.space.high.double()
    policy = plain.TanhNormalPolicy(low, high)
    params = torch.randn(64, 2 * act_dim, dtype=torch.float64)
    torch.manual_seed(0)
    action, log_prob = policy.sample(params)
    loc, scale = NormalParamExtractor()(params)  # as the recipe's head (trl_accel.modules.heads) builds it
    dist = TanhNormal(loc, scale, low=low, high=high)
    assert torch.allclose(log_prob[:, 0], dist.log_prob(action), atol=1e-5)
    assert torch.allclose(policy.mean_action(params), dist.deterministic_sample, atol=1e-9)
    assert bool(((action >= low) & (action <= high)).all())


def test_plain_sac_reference_runs_and_reports_with_either_actor(tmp_path):
    for actor in ("mlp", "transformer"):
        out = tmp_path / f"plain_sac_{actor}.json"
        run_script("benchmarks/plain_sac.py", "--actor", actor, "--env", "Pendulum-v1", "--total-steps", "300",
                   "--learning-starts", "200", "--batch-size", "32", "--buffer-size", "250", "--d-model", "32",
                   "--d-ff", "64", "--hidden", "32", "32", "--eval-episodes", "1", "--threads", "1", "--out", str(out))
        report = json.loads(out.read_text())
        assert report["impl"] == f"plain_pytorch_sac_{actor}" and report["learning_steps_per_s"] > 0
        assert report["eval_return"] is not None


def test_plain_td3_reference_runs_and_reports(tmp_path):
    out = tmp_path / "plain_td3.json"
    run_script("benchmarks/plain_td3.py", "--env", "Pendulum-v1", "--total-steps", "300", "--learning-starts", "200",
               "--batch-size", "32", "--eval-episodes", "1", "--threads", "1", "--out", str(out))
    report = json.loads(out.read_text())
    assert report["total_steps"] == 300 and report["learning_steps_per_s"] > 0 and report["eval_return"] is not None


def test_collector_scaling_benchmark_prints_a_row_per_variant(tmp_path):
    sizes = [o for o in TINY if o.startswith(("env.", "algo.", "accelerator."))]
    stdout = run_script("benchmarks/collector_scaling.py", "--env", "pendulum", "--random-steps", "100", "--steps",
                        "100", "--out", str(tmp_path), *sizes)
    results = json.loads((tmp_path / "results.json").read_text())
    variants = ["workers=1", "workers=2,sync=true", "workers=2,sync=false"]
    assert [row["variant"] for row in results["rows"]] == variants and results["reference"] == "workers=1"
    assert [row["collector"]["workers"] for row in results["rows"]] == [1, 2, 2]
    assert all(row["env_steps"] == 200 and row["steps_per_s"] > 0 for row in results["rows"])
    rows = [line.split() for line in stdout.splitlines() if line.split()[:1] and line.split()[0] in variants]
    assert [row[0] for row in rows] == variants and float(rows[0][2]) == 1.0
    assert all(float(row[1]) > 0 and float(row[2]) > 0 and float(row[3]) > 0 for row in rows)


def load_benchmark(name: str):
    """A script of benchmarks/ as a module (the folder is no package; its scripts import each other)."""
    folder = str(ROOT / "benchmarks")
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module


def count(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def test_plain_transformer_td3_has_the_recipes_networks_and_settings():
    """Its defaults are the recipe's (``transformer=table1``, MLP critics, Table 1 TD3, batch 256), and its actor and
    critics have exactly the parameter counts of the recipe's stage-two actor and twin critics."""
    plain = load_benchmark("plain_transformer_td3")
    args = plain.parse_args([])
    cfg = compose_config("env=halfcheetah")
    t, algo = cfg.transformer, cfg.algo
    assert (args.context_len, args.d_model, args.n_heads, args.d_ff, args.dropout) == (
        t.context_len, t.d_model, t.n_heads, t.d_ff, t.dropout)
    assert (t.n_layers, t.positions, t.n_kv_heads, list(t.tokens), t.rollout) == (1, "learned", None, ["observation"], "window")
    assert args.critic_hidden == list(cfg.accelerator.hidden_sizes) and args.buffer_size == 20_000
    assert (args.batch_size, args.gamma, args.tau, args.lr, args.policy_noise, args.noise_clip, args.exploration_noise,
            args.policy_delay) == (algo.batch_size, algo.gamma, algo.tau, algo.lr, algo.policy_noise, algo.noise_clip,
                                   algo.exploration_noise, algo.policy_delay)
    obs_dim, act_dim = 17, 6
    low, high = -np.ones(act_dim, dtype=np.float32), np.ones(act_dim, dtype=np.float32)
    spec = Bounded(-1.0, 1.0, shape=(act_dim,))
    recipe_actor = make_transformer_actor(obs_dim, spec, **{k: v for k, v in t.items() if k != "rollout"},
                                          passthrough_keys=["observation"])
    recipe_critics = make_twin_q_critics(obs_dim, act_dim, hidden_sizes=list(cfg.accelerator.hidden_sizes))
    actor = plain.make_actor(args, obs_dim, act_dim, low, high)
    critics = [plain.QNetwork(obs_dim, act_dim, args.critic_hidden) for _ in range(2)]
    assert count(actor) == count(recipe_actor)
    assert [count(c) for c in critics] == [count(c) for c in recipe_critics]
    window, mask = torch.randn(4, 3, obs_dim), torch.tensor([[False, False, True], [False, True, True]] + [[True] * 3] * 2)
    assert actor(window, mask).shape == (4, act_dim) and bool(actor(window, mask).abs().max() <= 1.0)


def test_plain_transformer_td3_reference_runs_and_reports(tmp_path):
    out = tmp_path / "plain_transformer_td3.json"
    run_script("benchmarks/plain_transformer_td3.py", "--env", "Pendulum-v1", "--total-steps", "300",
               "--learning-starts", "200", "--batch-size", "32", "--buffer-size", "250", "--d-model", "32", "--d-ff",
               "64", "--critic-hidden", "32", "32", "--eval-episodes", "1", "--threads", "1", "--out", str(out))
    report = json.loads(out.read_text())
    assert report["total_steps"] == 300 and report["learning_steps_per_s"] > 0 and report["eval_return"] is not None
    assert report["impl"] == "plain_pytorch_transformer_td3" and report["peak_rss_mib"] > 0


def test_plain_transformer_td3_windows_come_from_the_flat_replay():
    """A window holds the episode's last K steps from storage, zero-padded and masked before its first step, and
    never a step the ring has overwritten."""
    plain = load_benchmark("plain_transformer_td3")
    rb = plain.WindowReplayBuffer(5, 1, 1, 3, torch.device("cpu"))
    first = 0
    for step in range(7):  # episodes start at steps 0 and 3; rows hold steps 5, 6, 2, 3, 4
        first = step if step in (0, 3) else first
        rb.add(np.array([float(step + 1)]), np.zeros(1), 0.0, np.array([float(step + 2)]), False, step, first)
    window, mask = rb.windows(torch.tensor([0, 1, 2, 3, 4]))
    assert window[..., 0].tolist() == [[4, 5, 6], [5, 6, 7], [0, 0, 3], [0, 0, 4], [0, 4, 5]]
    assert mask.tolist() == [[True] * 3, [True] * 3, [False, False, True], [False, False, True], [False, True, True]]


def test_stage_two_profile_prints_both_phases():
    stdout = run_script("benchmarks/profile_stage_two.py", "--env", "pendulum", "--fill", "100", "--updates", "3",
                        "--batches", "1", "--top", "5", "--threads", "1", "--", "transformer.d_model=32",
                        "transformer.d_ff=64", "accelerator.hidden_sizes=[32,32]", "algo.batch_size=32")
    assert "== stage-two update" in stdout and "== stage-two env steps" in stdout
    assert stdout.count("-- top 5 by") == 4


def test_accelerator_timing_prints_ms_per_update_and_env_step_on_copies():
    stdout = run_script("benchmarks/profile_stage_two.py", "--env", "pendulum", "--actor", "accelerator", "--timed",
                        "--fill", "100", "--updates", "3", "--batches", "2", "--threads", "1", "--",
                        "env.num_envs=2", "accelerator.hidden_sizes=[32,32]", "algo.batch_size=32")
    rows = [line for line in stdout.splitlines() if line.startswith("== accelerator")]
    assert len(rows) == 2 and "-- top" not in stdout
    assert rows[1].startswith("== accelerator env steps") and " 100 units, " in rows[1]
    assert all(float(row.split(", ")[-1].split()[0]) > 0 for row in rows)


def test_target_update_benchmark_prints_a_line_per_way():
    stdout = run_script("benchmarks/target_update.py", "--hidden", "8", "--steps", "20", "--threads", "1")
    rows = [line.split() for line in stdout.splitlines() if "us_per_step=" in line]
    assert [row[0] for row in rows] == ["torchrl_soft_update", "foreach_gathered_each_step", "foreach_gathered_once"]
    assert rows[0][2] == "ratio=1.00" and all(float(row[1].split("=")[1]) > 0 for row in rows)


def test_compile_benchmark_prints_a_line_per_shape():
    stdout = run_script("benchmarks/compile_transformer.py", "--d-model", "16", "--d-ff", "32", "--repeats", "4",
                        "--warmup", "1", "--threads", "1")
    rows = [line.split() for line in stdout.splitlines() if "eager_ms=" in line]
    assert [row[0] for row in rows] == ["collect_b1", "target_b256", "update_b256"]
    assert all(float(field.split("=")[1]) > 0 for row in rows for field in row[1:])


def test_teacher_comparison_writes_per_seed_curves_and_resumes(tmp_path):
    sizes = [o for o in TINY if not o.startswith(("stage2.", "checkpoint."))]
    lstm = ["lstm:accelerator.hidden_size=16", "lstm:accelerator.seq_len=4", "lstm:accelerator.burn_in=1",
            "lstm:accelerator.batch_size=16"]
    args = ["benchmarks/teachers.py", "--env", "pendulum_pomdp", "--teachers", "privileged", "lstm", "--contexts", "2",
            "4", "--seeds", "0", "--target", "-2000", "--jobs", "2", "--out", str(tmp_path), "--", *sizes, *lstm]
    stdout = run_script(*args)
    lines = [line.split() for line in stdout.splitlines() if "steps_to_target=" in line]
    assert [line[:3] for line in lines] == [["privileged", "K=2", "seed=0"], ["privileged", "K=4", "seed=0"],
                                            ["lstm", "K=2", "seed=0"], ["lstm", "K=4", "seed=0"]]
    assert all(line[3] == "steps_to_target=250" for line in lines)  # every return beats -2000 at the first evaluation
    rows = (tmp_path / "curves.csv").read_text().splitlines()
    assert rows[0] == "teacher,context_len,seed,env_steps,wall_time_s,accelerator_return,transformer_return"
    assert len(rows) == 1 + 4 * 2 and (tmp_path / "curves.png").is_file()
    assert run_script(*args) == stdout  # finished runs are read back, not rerun


def test_pomdp_curves_write_per_seed_curves_for_each_view_and_read_finished_runs_back(tmp_path):
    small = ["device=cpu", "env.max_episode_steps=50", "algo.batch_size=64", "accelerator.hidden_sizes=[16]",
             "lstm:accelerator.hidden_size=16", "lstm:accelerator.seq_len=4", "lstm:accelerator.burn_in=1",
             "lstm:accelerator.batch_size=16"]
    args = ["benchmarks/pomdp_curves.py", "--accelerators", "lstm", "mlp", "--seeds", "0", "--steps", "300",
            "--random-steps", "200", "--eval-every", "100", "--eval-episodes", "2", "--checkpoint-every", "100",
            "--jobs", "2", "--out", str(tmp_path), "--", *small]
    stdout = run_script(*args)
    lines = [line.split() for line in stdout.splitlines() if " seed=" in line]
    assert [line[:3] for line in lines] == [["lstm", "positions_only", "seed=0"], ["lstm", "velocities_only", "seed=0"],
                                            ["mlp", "positions_only", "seed=0"], ["mlp", "velocities_only", "seed=0"]]
    for line in lines:
        fields = dict(field.split("=") for field in line[3:])
        assert all(np.isfinite(float(fields[key])) for key in ("random", "final", "best", "last_eval", "steps_per_s"))
    summary = json.loads((tmp_path / "lstm_velocities_only_seed0" / "summary.json").read_text())
    assert (summary["accelerator"], summary["pomdp"], summary["env_steps"]) == ("lstm", "velocities_only", 300)
    rows = (tmp_path / "curves.csv").read_text().splitlines()
    assert rows[0] == "accelerator,view,seed,env_steps,wall_time_s,return"
    assert [row.split(",")[3] for row in rows[1:4]] == ["100", "200", "300"] and len(rows) == 1 + 4 * 3
    assert (tmp_path / "curves.png").is_file()
    assert run_script(*args) == stdout  # finished runs are read back, not rerun
    bad = subprocess.run([sys.executable, "benchmarks/pomdp_curves.py", "--steps", "100", "--random-steps", "100"],
                         cwd=ROOT, capture_output=True, text=True, env=ENV, check=False)
    assert bad.returncode == 2 and "--random-steps must be in [0, --steps)" in bad.stderr


def test_reevaluation_scores_the_saved_policies_like_the_run_does(tmp_path):
    from td3_accelerate import run_experiment

    summary = run_experiment(compose_config(*TINY, "logger.backend=none"), tmp_path / "run")
    checkpoints = tmp_path / "run" / "checkpoints"
    out = tmp_path / "reevaluated.json"
    # the run's own switch evaluation: its seeds, its episodes; the re-evaluation on those seeds scores the same
    first_seed = 1_000_000 + 2 * (len(summary["evaluations"]) - 2)  # the switch's is the last but one evaluation
    stdout = run_script("benchmarks/reevaluate.py", str(checkpoints / "stage1.pt"), str(checkpoints / "stage2.pt"),
                        "--episodes", "2", "--first-seed", str(first_seed), "--threads", "1", "--out", str(out))
    results = json.loads(out.read_text())
    assert [(row["policy"], row["episodes"]) for row in results] == [("accelerator", 2), ("transformer", 2),
                                                                      ("transformer", 2)]
    assert len([line for line in stdout.splitlines() if "return_mean=" in line]) == 3
    assert abs(results[0]["return_mean"] - summary["stage1"]["accelerator_return"]) < 1e-3
    assert abs(results[1]["return_mean"] - summary["stage1"]["transformer_return"]) < 1e-3


def test_reevaluation_scores_a_baselines_final_policy(tmp_path):
    from td3_accelerate import run_experiment

    summary = run_experiment(compose_config(*TINY, "mode=accelerator_only", "logger.backend=none"), tmp_path / "run")
    first_seed = 1_000_000 + 2 * (len(summary["evaluations"]) - 1)  # the final evaluation's seeds
    stdout = run_script("benchmarks/reevaluate.py", str(tmp_path / "run" / "checkpoints" / "final.pt"),
                        "--episodes", "2", "--first-seed", str(first_seed), "--threads", "1")
    line = next(line for line in stdout.splitlines() if "return_mean=" in line).split()
    assert line[1] == "accelerator"
    assert abs(float(line[2].split("=")[1]) - summary["final_return"]) < 0.1


def test_bc_step_benchmark_prints_a_line_per_repetition():
    stdout = run_script("benchmarks/bc_step.py", "--d-model", "16", "--d-ff", "32", "--batch-size", "8", "--repeats", "3",
                        "--warmup", "1", "--reps", "2", "--threads", "1")
    rows = [line.split() for line in stdout.splitlines() if "library_ms=" in line]
    assert len(rows) == 2 and all(row[0] == "threads=1" for row in rows)
    assert all(float(field.split("=")[1]) > 0 for row in rows for field in row[1:])
