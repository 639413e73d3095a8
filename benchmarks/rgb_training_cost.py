"""Training cost per env step on an image-based ManiSkill task, CPU: stage one (MLP + CNN accelerator
learning, transformer cloning it) and stage two, against the vanilla transformer (with its CNN) trained
from scratch, the same recipe and hyperparameters. The paper's claim that acceleration cuts training time
on image tasks rests on stage one's steps being cheaper; this measures that per-step cost side by side.
Each variant runs in its own process, in turn; learning-phase env-steps/s are read from summary.json.

    .venv/bin/python benchmarks/rgb_training_cost.py --env pullcube --random-steps 100 --steps 300
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["device=cpu", "quiet=true", "eval.every=0", "eval.episodes=1", "checkpoint.every=0", "logger.backend=none",
          "env.obs_mode=rgb", "env.num_envs=1"]


def run(name: str, overrides: list[str], args: argparse.Namespace) -> dict:
    run_dir = args.out / name
    command = [sys.executable, str(ROOT / "recipes" / f"{args.recipe}_accelerate.py"), f"env={args.env}", *COMMON,
               f"stage1.random_steps={args.random_steps}", f"hydra.run.dir={run_dir}", *overrides, *args.overrides]
    print(" ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads((run_dir / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="pullcube")
    parser.add_argument("--recipe", default="td3", choices=("td3", "sac"))
    parser.add_argument("--random-steps", type=int, default=100)
    parser.add_argument("--steps", type=int, default=300, help="learning steps timed per variant")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rgb_training_cost")
    parser.add_argument("overrides", nargs="*", help="extra recipe overrides, e.g. algo.batch_size=64")
    args = parser.parse_args()

    accelerated = run("accelerate", [f"stage1.steps={args.steps}", f"stage2.steps={args.steps}",
                                     f"stage1.bc_every={max(args.steps // 2, 64)}"], args)
    scratch = run("transformer_only", ["mode=transformer_only", f"stage1.steps={args.steps}", "stage2.steps=0"], args)
    stage1 = accelerated["learning_steps_per_s"]["stage1"]
    stage2 = accelerated["learning_steps_per_s"]["stage2"]
    vanilla = scratch["learning_steps_per_s"]["transformer_only"]
    print(f"\n{args.env} rgb, {args.recipe}, {args.steps} learning steps per variant, env-steps/s of the learning phase:")
    print("| variant | steps/s | x vanilla transformer |\n|---|---|---|")
    for label, value in (("vanilla transformer from scratch", vanilla), ("stage one (accelerator + BC)", stage1),
                         ("stage two (transformer, carried critics)", stage2)):
        print(f"| {label} | {value:.2f} | {value / vanilla:.2f} |")


if __name__ == "__main__":
    main()
