"""Throughput on a MuJoCo task, CPU: env-steps/s of the learning phase of MLP TD3 (the baseline), stage
one and stage two, side by side with the plain single-file PyTorch TD3 loop (`plain_td3.py`), all with
Table 1's hyperparameters. Each variant runs in its own process, in turn, `--reps` times; the ratios
are taken pair by pair within a repetition and the medians reported. Also the peak memory (RSS) of a
stage-two run with a 20k replay buffer.

    .venv/bin/python benchmarks/throughput.py --env halfcheetah --random-steps 1000 --steps 3000 --reps 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = [sys.executable, str(ROOT / "recipes" / "td3_accelerate.py")]
COMMON = ["device=cpu", "quiet=true", "eval.every=0", "eval.episodes=1", "checkpoint.every=0", "logger.backend=none"]


def recipe_variant(env: str, random_steps: int, steps: int, out: Path, name: str) -> tuple[list[str], str]:
    """The recipe's command for one variant and the stage whose throughput it measures."""
    base = [*RECIPE, f"env={env}", *COMMON, f"stage1.random_steps={random_steps}", f"hydra.run.dir={out / name}"]
    if name == "mlp_td3":
        return [*base, "mode=accelerator_only", f"stage1.steps={steps}", "stage2.steps=0"], "accelerator_only"
    if name == "stage1":  # T as large as the schedule allows (Table 1: 2000), so that BC rounds are timed
        bc_every = min(2000, steps)
        return [*base, f"stage1.steps={steps}", "stage2.steps=0", f"stage1.bc_every={bc_every}",
                f"stage1.bc_batch_size={min(256, bc_every)}"], "stage1"
    return [*base, "stage1.steps=0", f"stage2.steps={steps}", "stage2.buffer_size=20000"], "stage2"


def run_variant(name: str, args: argparse.Namespace, out: Path) -> dict:
    if name == "plain":
        result = out / "plain.json"
        command = [sys.executable, str(ROOT / "benchmarks" / "plain_td3.py"), "--env", args.gym_id, "--device", "cpu",
                   "--total-steps", str(args.random_steps + args.steps), "--learning-starts", str(args.random_steps),
                   "--eval-episodes", "0", "--out", str(result)]
        subprocess.run(command, check=True, capture_output=True, text=True)
        report = json.loads(result.read_text())
        return {"steps_per_s": report["learning_steps_per_s"], "peak_rss_mib": report["peak_rss_mib"]}
    command, stage = recipe_variant(args.env, args.random_steps, args.steps, out, name)
    subprocess.run(command, check=True, capture_output=True, text=True)
    summary = json.loads((out / name / "summary.json").read_text())
    return {"steps_per_s": summary["learning_steps_per_s"][stage], "peak_rss_mib": summary["peak_rss_mib"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="halfcheetah", help="env group of the recipe")
    parser.add_argument("--random-steps", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=3000, help="learning steps timed per variant")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "throughput.json")
    args = parser.parse_args()
    from trl_accel.envs import KNOWN_ENVS

    args.gym_id = KNOWN_ENVS[args.env]
    variants = ["plain", "mlp_td3", "stage1", "stage2"]
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for name in variants:
                runs[name].append(run_variant(name, args, Path(tmp) / f"rep{rep}"))
                print(f"rep {rep} {name:8s} {runs[name][-1]['steps_per_s']:7.1f} steps/s", flush=True)
    table = {}
    for name in variants:
        speeds = [r["steps_per_s"] for r in runs[name]]
        ratios = [r["steps_per_s"] / p["steps_per_s"] for r, p in zip(runs[name], runs["plain"])]
        table[name] = {"steps_per_s_median": statistics.median(speeds), "ratio_to_plain_median": statistics.median(ratios),
                       "ratio_min": min(ratios), "ratio_max": max(ratios),
                       "peak_rss_mib_max": max(r["peak_rss_mib"] for r in runs[name])}
    print(f"\n{args.gym_id}, {args.steps} learning steps after {args.random_steps} random, {args.reps} reps (CPU)")
    print(f"{'variant':<10}{'steps/s':>10}{'x plain':>10}{'(min-max)':>16}{'peak RSS MiB':>15}")
    for name, row in table.items():
        print(f"{name:<10}{row['steps_per_s_median']:>10.1f}{row['ratio_to_plain_median']:>10.2f}"
              f"{row['ratio_min']:>8.2f}-{row['ratio_max']:<7.2f}{row['peak_rss_mib_max']:>15.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"env": args.gym_id, "random_steps": args.random_steps, "steps": args.steps,
                                    "reps": args.reps, "table": table, "runs": runs}, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
