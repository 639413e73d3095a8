"""Recurrent against memoryless accelerators on a partially observed task: per-seed, unsmoothed learning curves.

Each (accelerator, view, seed) is one run of the recipe's accelerator alone (``mode=accelerator_only``: TD3 or SAC
from scratch with the accelerator's networks), in its own process, in ``OUT/<accelerator>_<view>_seed<s>/`` (a
finished run is read back, a stopped one resumed from its last checkpoint). The view is the env's ``env.pomdp``
(``positions_only``: the ``-P`` tasks, ``velocities_only``: ``-V``). Then ``OUT/curves.csv`` (one row per
evaluation: accelerator, view, seed, env steps, wall time, return, unsmoothed), ``OUT/curves.png`` (return over env
steps, one panel per view, a line per accelerator and seed) and one line per run on stdout:

    <accelerator> <view> seed=<s> random=<r> final=<r> best=<r> last_eval=<r> steps_per_s=<x> wall_s=<t>

``final`` is the run's closing evaluation (on fresh seeds), ``last_eval`` the periodic evaluation at the last
env-step count, ``best`` the best periodic one.

    python benchmarks/pomdp_curves.py --env pendulum_pomdp --accelerators lstm mlp \\
        --views positions_only velocities_only --seeds 0 1 --steps 20000 --jobs 2

Everything after ``--`` is passed to every run as Hydra overrides; ``<accelerator>:<override>`` (e.g.
``mlp:accelerator.lr=3e-4``) to that accelerator's runs only. ``--jobs 2`` runs two at a time, one core and one
thread each, the recurrent runs (the longest) first.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from lanes import ROOT, overrides_for, run_grid, run_recipe, unknown_owners, write_csv

ACCELERATORS = ("lstm", "gru", "mlp")
VIEWS = ("positions_only", "velocities_only")
FIELDS = ["accelerator", "view", "seed", "env_steps", "wall_time_s", "return"]


def run(accelerator: str, view: str, seed: int, args: argparse.Namespace, core: int | None) -> dict:
    """One accelerator-only run (or its summary, if it already finished)."""
    overrides = [f"env={args.env}", f"env.pomdp={view}", f"accelerator={accelerator}", "mode=accelerator_only",
                 f"seed={seed}", f"stage1.random_steps={args.random_steps}",
                 f"stage1.steps={args.steps - args.random_steps}", "stage2.steps=0",
                 f"baseline.buffer_size={args.steps}", f"eval.every={args.eval_every}",
                 f"eval.episodes={args.eval_episodes}", f"checkpoint.every={args.checkpoint_every}",
                 *overrides_for(accelerator, args.overrides)]
    return run_recipe(f"{args.recipe}_accelerate.py", overrides, args.out / f"{accelerator}_{view}_seed{seed}", core,
                      f"{accelerator} {view} seed {seed}")


def curve(summary: dict) -> list[dict]:
    """The periodic evaluations of the accelerator, in env-step order (the closing one is ``final_return``)."""
    name = f"{summary['accelerator']}_return"
    evaluations = [record for record in summary["evaluations"] if record.get(name) is not None]
    periodic = evaluations[:-1] if evaluations else []  # the last record is the closing evaluation
    return [{"env_steps": record["env_steps"], "wall_time_s": record["wall_time_s"], "return": record[name]}
            for record in periodic]


def plot(rows: list[dict], views: list[str], random_returns: dict[str, list[float]], path: Path) -> None:
    """Return over env steps, one panel per view, a line per (accelerator, seed); the random policy's return dashed."""
    figure, axes = plt.subplots(1, len(views), figsize=(6 * len(views), 4.5), squeeze=False)
    for column, view in enumerate(views):
        axis = axes[0][column]
        for accelerator, seed in sorted({(row["accelerator"], row["seed"]) for row in rows if row["view"] == view}):
            points = [row for row in rows if (row["accelerator"], row["view"], row["seed"]) == (accelerator, view, seed)]
            axis.plot([p["env_steps"] for p in points], [p["return"] for p in points], label=f"{accelerator} seed {seed}")
        for value in random_returns.get(view, []):
            axis.axhline(value, color="grey", linestyle="--", linewidth=0.8)
        axis.set_title(f"env.pomdp={view} (dashed: random policy)")
        axis.set_xlabel("env steps")
        axis.set_ylabel("deterministic return")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)  # one figure per call: a long benchmark never holds more


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="td3", choices=("td3", "sac"))
    parser.add_argument("--env", default="pendulum_pomdp", help="env group of a partially observed task")
    parser.add_argument("--accelerators", nargs="+", default=["lstm", "mlp"], choices=ACCELERATORS)
    parser.add_argument("--views", nargs="+", default=list(VIEWS), choices=VIEWS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=20000, help="env steps per run, the random ones included")
    parser.add_argument("--random-steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--checkpoint-every", type=int, default=2000)
    parser.add_argument("--jobs", type=int, choices=[1, 2], default=1, help="runs at a time (2: one core each)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pomdp_curves")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after --)")
    args = parser.parse_args()
    if not 0 <= args.random_steps < args.steps:
        parser.error(f"--random-steps must be in [0, --steps), got {args.random_steps} with --steps {args.steps}")
    if args.eval_every < 1 or args.eval_episodes < 1:
        parser.error(f"--eval-every and --eval-episodes must be >= 1, got {args.eval_every}, {args.eval_episodes}")
    for override in unknown_owners(args.overrides, ACCELERATORS):
        parser.error(f"unknown accelerator in override '{override}'; choose among {list(ACCELERATORS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    # the recurrent runs first: with two lanes the memoryless ones fill in after them
    accelerators = sorted(args.accelerators, key=lambda name: name == "mlp")
    grid = [(a, v, s) for a in accelerators for v in args.views for s in args.seeds]
    summaries = run_grid(grid, lambda cell, core: run(*cell, args, core), args.jobs)

    rows, random_returns = [], {}
    for (accelerator, view, seed), summary in zip(grid, summaries, strict=True):
        points = curve(summary)
        rows += [{"accelerator": accelerator, "view": view, "seed": seed, "env_steps": p["env_steps"],
                  "wall_time_s": round(p["wall_time_s"], 1), "return": round(p["return"], 1)} for p in points]
        random_returns.setdefault(view, []).append(summary["random_return"])
        returns = [p["return"] for p in points]
        steps_per_s = summary["learning_steps_per_s"].get("accelerator_only")
        print(f"{accelerator} {view} seed={seed} random={summary['random_return']:.1f} "
              f"final={summary['final_return']:.1f} best={max(returns, default=float('nan')):.1f} "
              f"last_eval={returns[-1] if returns else float('nan'):.1f} "
              f"steps_per_s={steps_per_s if steps_per_s is not None else float('nan'):.1f} "
              f"wall_s={summary['wall_time_s']:.0f}", flush=True)
    write_csv(args.out / "curves.csv", FIELDS, rows)
    plot(rows, args.views, random_returns, args.out / "curves.png")
    print(f"written to {args.out}: curves.csv, curves.png")


if __name__ == "__main__":
    main()
