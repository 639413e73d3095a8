"""Throughput of the recurrent accelerator, CPU: env-steps/s of the learning phase of the recipe's recurrent TD3
(`mode=accelerator_only accelerator=lstm|gru` on velocity-masked Pendulum) side by side with the plain
single-file PyTorch recurrent TD3 loop (`plain_recurrent_td3.py`) with the same sizes (the twin critics
sharing one recurrent trunk, or `--no-shared-critic-trunk` one each, in both; sequences of `--seq-len`,
`--batch-size` of them per update, one update per env step) and the same number of threads. Each variant
runs in its own process, in turn, `--reps` times; the ratio is taken pair by pair within a repetition and
the median reported. One row per variant:
`<variant> <steps/s> <ratio>`.

    .venv/bin/python benchmarks/recurrent_throughput.py --cells lstm gru --random-steps 1000 --steps 1000 --reps 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["device=cpu", "quiet=true", "eval.every=0", "eval.episodes=1", "checkpoint.every=0", "logger.backend=none"]


def plain_command(cell: str, args: argparse.Namespace, result: Path) -> list[str]:
    return [sys.executable, str(ROOT / "benchmarks" / "plain_recurrent_td3.py"), "--env", "Pendulum-v1",
            "--mask-velocity", "--cell", cell,
            "--shared-critic-trunk" if args.shared_critic_trunk else "--no-shared-critic-trunk", "--hidden", str(args.hidden),
            "--head-layers", *map(str, args.head_layers), "--seq-len", str(args.seq_len),
            "--batch-size", str(args.batch_size), "--total-steps", str(args.random_steps + args.steps),
            "--learning-starts", str(args.random_steps), "--eval-every", "0", "--eval-episodes", "0",
            "--threads", str(args.threads), "--out", str(result)]


def recipe_command(cell: str, args: argparse.Namespace, run_dir: Path) -> list[str]:
    heads = ",".join(map(str, args.head_layers))
    return [sys.executable, str(ROOT / "recipes" / "td3_accelerate.py"), "env=pendulum_pomdp", f"accelerator={cell}",
            "mode=accelerator_only", *COMMON, f"stage1.random_steps={args.random_steps}", f"stage1.steps={args.steps}",
            "stage2.steps=0", f"accelerator.hidden_size={args.hidden}", f"accelerator.hidden_sizes=[{heads}]",
            f"accelerator.seq_len={args.seq_len}", f"accelerator.batch_size={args.batch_size}",
            f"accelerator.shared_critic_trunk={str(args.shared_critic_trunk).lower()}",
            f"hydra.run.dir={run_dir}"]


def steps_per_s(variant: str, cell: str, args: argparse.Namespace, out: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if variant == "plain":
        result = out / f"plain_{cell}.json"
        subprocess.run(plain_command(cell, args, result), check=True, capture_output=True, text=True, env=env)
        return json.loads(result.read_text())["learning_steps_per_s"]
    run_dir = out / f"recipe_{cell}"
    subprocess.run(recipe_command(cell, args, run_dir), check=True, capture_output=True, text=True, env=env)
    return json.loads((run_dir / "summary.json").read_text())["learning_steps_per_s"]["accelerator_only"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    parser.add_argument("--random-steps", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1000, help="learning steps timed per variant")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--head-layers", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per update")
    parser.add_argument("--shared-critic-trunk", action=argparse.BooleanOptionalAction, default=True,
                        help="the twin critics share one recurrent trunk (both variants)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of every variant")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recurrent_throughput.json")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {cell: [] for cell in args.cells}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for cell in args.cells:
                out = Path(tmp) / f"rep{rep}"
                out.mkdir(exist_ok=True)
                plain = steps_per_s("plain", cell, args, out)
                recipe = steps_per_s("recipe", cell, args, out)
                runs[cell].append({"plain": plain, "recipe": recipe, "ratio": recipe / plain})
                print(f"rep {rep} {cell}: plain {plain:.1f}, recipe {recipe:.1f} steps/s", flush=True)
    print(f"\nvelocity-masked Pendulum-v1, {args.steps} learning steps after {args.random_steps} random, "
          f"{args.reps} reps, {args.threads} threads (CPU); ratio = recipe / plain recurrent TD3")
    table = {}
    for cell, rows in runs.items():
        table[f"plain_{cell}"] = {"steps_per_s_median": statistics.median(r["plain"] for r in rows)}
        table[f"{cell}_td3"] = {"steps_per_s_median": statistics.median(r["recipe"] for r in rows),
                                "ratio_median": statistics.median(r["ratio"] for r in rows),
                                "ratio_min": min(r["ratio"] for r in rows), "ratio_max": max(r["ratio"] for r in rows)}
        print(f"plain_{cell} {table[f'plain_{cell}']['steps_per_s_median']:.1f} 1.00")
        print(f"{cell}_td3 {table[f'{cell}_td3']['steps_per_s_median']:.1f} {table[f'{cell}_td3']['ratio_median']:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "table": table, "runs": runs},
                                   indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
