"""Collector scaling: learning-phase env-steps/s of the recipe (after the random start; evaluations and
checkpoints excluded) for several collector settings, against one worker stepping the env in this process.

Each variant is a comma-separated list of ``collector.*`` settings (``workers=2,sync=false``,
``workers=4,update_every=2``, ``workers=2,backend=ray``). The variants run one after another, in this process,
through :func:`trl_accel.experiment.run_experiment` (each into ``--out/<variant>/``, started over if it is
there); one row per variant: ``<variant> <steps/s> <ratio to workers=1> <wall s>``; ``--out/results.json``
holds the table. Extra recipe overrides go after the options, as in ``fidelity.py``. By default the baseline
``mode=accelerator_only`` (the collection + learning loop alone); ``--mode accelerate --stage stage1|stage2``
times one stage of the accelerated transformer.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/collector_scaling.py --env halfcheetah \\
        --random-steps 1000 --steps 3000
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/collector_scaling.py --env pushcube --recipe sac \\
        --variants workers=1 workers=2,sync=true workers=2,sync=false \\
        env.sim_backend=physx_cpu env.num_envs=4 frames_per_batch=200
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "recipes" / "config"
COMMON = ["device=cpu", "quiet=true", "eval.every=0", "eval.episodes=1", "checkpoint.every=0", "logger.backend=none",
          "overwrite=true"]
DEFAULT_VARIANTS = ("workers=1", "workers=2,sync=true", "workers=2,sync=false")
#: The variant the ratios are taken against, when it is among those run (else the first one).
REFERENCE = "workers=1"


def collector_overrides(variant: str) -> list[str]:
    """``workers=2,sync=false`` -> ``["collector.workers=2", "collector.sync=false"]``."""
    settings = [item.strip() for item in variant.split(",") if item.strip()]
    if not settings or any("=" not in item for item in settings):
        raise SystemExit(f"error: variant {variant!r} must be key=value[,key=value...] of collector.* "
                         "(e.g. workers=2,sync=false)")
    return [f"collector.{item}" for item in settings]


def schedule_overrides(args: argparse.Namespace) -> tuple[list[str], str]:
    """The mode and schedule overrides, and the stage whose throughput is read from ``summary.json``."""
    base = [f"env={args.env}", f"seed={args.seed}", f"stage1.random_steps={args.random_steps}"]
    if args.mode == "accelerator_only":
        return [*base, "mode=accelerator_only", f"stage1.steps={args.steps}", "stage2.steps=0"], "accelerator_only"
    if args.stage == "stage1":  # T as large as the schedule allows, so that BC rounds are timed
        bc_every = min(2000, args.steps)
        return [*base, "mode=accelerate", f"stage1.steps={args.steps}", "stage2.steps=0", f"stage1.bc_every={bc_every}",
                f"stage1.bc_batch_size={min(256, bc_every)}"], "stage1"
    return [*base, "mode=accelerate", "stage1.steps=0", f"stage2.steps={args.steps}"], "stage2"


def compose_variant(recipe: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=f"{recipe}_accelerate", overrides=overrides)


def run_variant(variant: str, args: argparse.Namespace) -> dict:
    """Run the recipe with ``variant``'s collector settings; its learning env-steps/s and wall time."""
    from trl_accel.experiment import run_experiment

    schedule, stage = schedule_overrides(args)
    overrides = [*COMMON, *schedule, *args.overrides, *collector_overrides(variant)]
    run_dir = args.out / variant.replace(",", "_").replace("=", "")
    started = time.perf_counter()
    summary = run_experiment(compose_variant(args.recipe, overrides), run_dir, overrides=overrides)
    wall = time.perf_counter() - started
    return {"variant": variant, "steps_per_s": summary["learning_steps_per_s"][stage], "wall_time_s": wall,
            "env_steps": summary["env_steps"], "collector": summary["collector"], "run_dir": str(run_dir)}


def add_ratios(rows: list[dict]) -> str:
    """Set each row's ``ratio`` to its steps/s over the reference variant's; return the reference's name."""
    reference = next((row for row in rows if row["variant"] == REFERENCE), rows[0])
    for row in rows:
        row["ratio"] = row["steps_per_s"] / reference["steps_per_s"]
    return reference["variant"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="halfcheetah", help="env group of the recipe")
    parser.add_argument("--recipe", default="td3", choices=("td3", "sac"))
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                        help="collector settings per variant, key=value[,key=value...] of collector.*")
    parser.add_argument("--mode", default="accelerator_only", choices=("accelerator_only", "accelerate"))
    parser.add_argument("--stage", default="stage1", choices=("stage1", "stage2"),
                        help="--mode accelerate: the stage that runs and is timed")
    parser.add_argument("--random-steps", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=3000, help="learning steps timed per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "collector_scaling")
    parser.add_argument("overrides", nargs="*", help="extra recipe overrides, e.g. env.sim_backend=physx_cpu")
    args = parser.parse_args(argv)
    for variant in args.variants:
        collector_overrides(variant)  # a malformed variant stops here, before any run
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = []
    for variant in args.variants:  # one after another: concurrent runs would share the cores
        rows.append(run_variant(variant, args))
        print(f"done {variant}: {rows[-1]['steps_per_s']:.1f} steps/s", file=sys.stderr, flush=True)
    reference = add_ratios(rows)
    stage = schedule_overrides(args)[1]
    print(f"\n{args.env} ({args.recipe}, {stage}): {args.steps} learning steps after {args.random_steps} random; "
          f"ratio against {reference}")
    print(f"{'variant':<28}{'steps/s':>10}{'ratio':>8}{'wall s':>9}")
    for row in rows:
        print(f"{row['variant']:<28} {row['steps_per_s']:>9.1f} {row['ratio']:>7.2f} {row['wall_time_s']:>8.1f}")
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"env": args.env, "recipe": args.recipe, "mode": args.mode, "stage": stage, "seed": args.seed,
               "random_steps": args.random_steps, "steps": args.steps, "overrides": args.overrides,
               "reference": reference, "rows": rows}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"written to {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
