"""Learning curves of the on-policy recipe on the grid memory task: transformer vs GRU vs MLP, and accelerated PPO
against PPO from scratch; per seed, unsmoothed, over env steps and over wall time.

Each variant and seed is one run of ``recipes/ppo_transformer.py`` (in its own process, one at a time) in
``OUT/<variant>_seed<k>/``; then ``OUT/curves.csv`` (one row per evaluation: variant, seed, env steps, wall time,
return), ``OUT/curves_steps.png`` and ``OUT/curves_time.png`` (one line per seed), and a table on stdout: the final
return per seed and the mean env-steps/s.

    python benchmarks/ppo_grid_memory.py --seeds 0 1                              # 15x15 grid, 4M steps each
    python benchmarks/ppo_grid_memory.py --seeds 0 1 --variants transformer mlp \\
        -- env=grid_memory_small experiment=quick env_steps=1000000             # the CI-sized task

Variants: ``transformer``, ``gru``, ``mlp`` (PPO from scratch), ``accelerate`` (GRU accelerator, then the
transformer; the accelerator's critic carries over) and ``accelerate_fresh`` (a fresh critic in stage two).
Everything after ``--`` is passed to every run as Hydra overrides.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "transformer": ["policy=transformer"],
    "gru": ["policy=gru"],
    "mlp": ["policy=mlp"],
    "accelerate": ["policy=transformer", "mode=accelerate", "accelerate.critic=accelerator"],
    "accelerate_fresh": ["policy=transformer", "mode=accelerate", "accelerate.critic=fresh"],
}


def run_variant(variant: str, seed: int, out: Path, overrides: list[str]) -> dict:
    run_dir = out / f"{variant}_seed{seed}"
    command = [sys.executable, "recipes/ppo_transformer.py", *VARIANTS[variant], f"seed={seed}", "quiet=true",
               *overrides, f"hydra.run.dir={run_dir}", "overwrite=true"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"error: {variant} seed {seed} failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    return json.loads((run_dir / "summary.json").read_text())


def curve(summary: dict) -> list[tuple[int, float, float]]:
    """(env steps, wall time, return) of the transformer (or the policy of a scratch run) at each evaluation."""
    key = f"{summary['policy']}_return"
    points = {}
    for record in summary["evaluations"]:
        if record.get(key) is not None:
            points[record["env_steps"]] = (record["env_steps"], record["wall_time_s"], record[key])
    return sorted(points.values())


def plot(rows: list[dict], out: Path, axis_key: str, label: str) -> Path:
    figure, axis = plt.subplots(figsize=(7, 4))
    colours = {}
    for (variant, _), points in group(rows).items():
        first = variant not in colours  # one legend entry per variant
        colour = colours.setdefault(variant, f"C{len(colours)}")
        axis.plot([p[axis_key] for p in points], [p["return"] for p in points], color=colour, marker="o", markersize=2,
                  linewidth=1, label=variant if first else None)
    axis.set_xlabel(label)
    axis.set_ylabel("evaluation return (per seed, unsmoothed)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path = out / f"curves_{'steps' if axis_key == 'env_steps' else 'time'}.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def group(rows: list[dict]) -> dict[tuple[str, int], list[dict]]:
    out: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        out.setdefault((row["variant"], row["seed"]), []).append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=["transformer", "gru", "mlp"], choices=sorted(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ppo_grid_memory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, table = [], []
    for variant in args.variants:
        for seed in args.seeds:
            summary = run_variant(variant, seed, args.out, overrides)
            for env_steps, wall_time, value in curve(summary):
                rows.append({"variant": variant, "seed": seed, "env_steps": env_steps, "wall_time_s": wall_time,
                             "return": value})
            table.append((variant, seed, summary["final_return"], summary["steps_per_s"], summary["wall_time_s"]))
            print(f"{variant} seed={seed} final_return={summary['final_return']:.2f} "
                  f"steps_per_s={summary['steps_per_s']:.0f} wall_time_s={summary['wall_time_s']:.0f}", flush=True)
    with open(args.out / "curves.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["variant", "seed", "env_steps", "wall_time_s", "return"])
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out, "env_steps", "env steps")
    plot(rows, args.out, "wall_time_s", "wall time (s)")
    print(f"written to {args.out}: curves.csv, curves_steps.png, curves_time.png")


if __name__ == "__main__":
    main()
