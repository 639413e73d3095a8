"""Which teacher makes the transformer learn a partially observed task soonest: the privileged MLP accelerator
(it reads the full state) or the recurrent one (it remembers), for transformers with windows of K steps.

Each (teacher, K, seed) is one run of ``recipes/td3_accelerate.py`` with stage one only, in its own process, in
``OUT/<teacher>_K<k>_seed<s>/`` (a finished run is read back, not rerun: the script resumes where it stopped). Then
``OUT/curves.csv`` (one row per evaluation: teacher, K, seed, env steps, wall time, the accelerator's and the
transformer's returns, unsmoothed), ``OUT/curves.png`` (the transformer's return per seed, over env steps and over
wall time, one panel per teacher) and one line per run on stdout:

    <teacher> K=<k> seed=<s> steps_to_target=<n|never> seconds_to_target=<t|never> switch_accelerator=<r> switch_transformer=<r>

``steps_to_target`` is the first evaluation at which the transformer's return reaches ``--target``.

    python benchmarks/teachers.py --env pendulum_pomdp --teachers privileged lstm --contexts 3 16 64 --seeds 0 1 \\
        --target -400 --jobs 2 -- experiment=quick

Teachers: ``privileged`` (``accelerator.privileged=true``, the MLP on the state), ``lstm``, ``gru``, ``mlp`` (the
memoryless MLP on the observation, the floor). ``--jobs 2`` runs two at a time, one thread and one core each
(two torch processes that share the cores slow each other far more than twice). Everything after ``--`` is passed
to every run as Hydra overrides; ``<teacher>:<override>`` (e.g. ``lstm:accelerator.seq_len=32``) to that teacher's
runs only.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from lanes import ROOT, overrides_for, run_grid, run_recipe, unknown_owners, write_csv

TEACHERS = {
    "privileged": ["accelerator=mlp", "accelerator.privileged=true"],
    "lstm": ["accelerator=lstm"],
    "gru": ["accelerator=gru"],
    "mlp": ["accelerator=mlp"],
}
FIELDS = ["teacher", "context_len", "seed", "env_steps", "wall_time_s", "accelerator_return", "transformer_return"]


def run_dir(out: Path, teacher: str, context_len: int, seed: int) -> Path:
    return out / f"{teacher}_K{context_len}_seed{seed}"


def run(teacher: str, context_len: int, seed: int, args: argparse.Namespace, core: int | None) -> dict:
    """One stage-one run (or its summary, if it already finished)."""
    overrides = [f"env={args.env}", *TEACHERS[teacher], f"transformer.context_len={context_len}", f"seed={seed}",
                 "stage2.steps=0", "checkpoint.every=0", *overrides_for(teacher, args.overrides)]
    return run_recipe("td3_accelerate.py", overrides, run_dir(args.out, teacher, context_len, seed), core,
                      f"{teacher} K={context_len} seed {seed}")


def curve(summary: dict) -> list[dict]:
    """The stage-one evaluations, one per env-step count (the switch's, taken last, replaces the periodic one)."""
    points = {}
    for record in summary["evaluations"]:
        if record["stage"] == "stage1" and record.get("transformer_return") is not None:
            points[record["env_steps"]] = record
    return [points[step] for step in sorted(points)]


def first_reaching(points: list[dict], target: float) -> tuple[int | None, float | None]:
    """(env steps, wall time) of the first evaluation whose transformer return is at least ``target``."""
    for record in points:
        if record["transformer_return"] >= target:
            return record["env_steps"], record["wall_time_s"]
    return None, None


def plot(rows: list[dict], teachers: list[str], path: Path) -> None:
    """The transformer's return over env steps (top) and wall time (bottom), one panel per teacher, a line per
    (K, seed)."""
    figure, axes = plt.subplots(2, len(teachers), figsize=(5 * len(teachers), 7), squeeze=False)
    for column, teacher in enumerate(teachers):
        runs = sorted({(row["context_len"], row["seed"]) for row in rows if row["teacher"] == teacher})
        for context_len, seed in runs:
            points = [row for row in rows if (row["teacher"], row["context_len"], row["seed"]) == (teacher, context_len, seed)]
            label = f"K={context_len} seed {seed}"
            axes[0][column].plot([p["env_steps"] for p in points], [p["transformer_return"] for p in points], label=label)
            axes[1][column].plot([p["wall_time_s"] for p in points], [p["transformer_return"] for p in points], label=label)
        axes[0][column].set_title(f"teacher: {teacher}")
        axes[0][column].set_xlabel("env steps")
        axes[1][column].set_xlabel("wall time (s)")
        for row in (0, 1):
            axes[row][column].set_ylabel("transformer return")
            axes[row][column].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="pendulum_pomdp", help="env group of a partially observed task")
    parser.add_argument("--teachers", nargs="+", default=["privileged", "lstm"], choices=list(TEACHERS))
    parser.add_argument("--contexts", nargs="+", type=int, default=[3, 16, 64], help="the transformer's K")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--target", type=float, default=-400.0, help="the transformer return to reach")
    parser.add_argument("--jobs", type=int, choices=[1, 2], default=1, help="runs at a time (2: one core each)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "teachers")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after --)")
    args = parser.parse_args()
    if any(k < 1 for k in args.contexts):
        parser.error(f"--contexts must be >= 1, got {args.contexts}")
    for override in unknown_owners(args.overrides, list(TEACHERS)):
        parser.error(f"unknown teacher in override '{override}'; choose among {list(TEACHERS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    grid = [(t, k, s) for t in args.teachers for k in args.contexts for s in args.seeds]
    summaries = run_grid(grid, lambda cell, core: run(*cell, args, core), args.jobs)

    rows = []
    for (teacher, context_len, seed), summary in zip(grid, summaries, strict=True):
        points = curve(summary)
        rows += [{"teacher": teacher, "context_len": context_len, "seed": seed, "env_steps": p["env_steps"],
                  "wall_time_s": round(p["wall_time_s"], 1), "accelerator_return": round(p["accelerator_return"], 1),
                  "transformer_return": round(p["transformer_return"], 1)} for p in points]
        steps, seconds = first_reaching(points, args.target)
        switch = summary["stage1"]
        print(f"{teacher} K={context_len} seed={seed} steps_to_target={steps if steps is not None else 'never'} "
              f"seconds_to_target={f'{seconds:.0f}' if seconds is not None else 'never'} "
              f"switch_accelerator={switch['accelerator_return']:.1f} "
              f"switch_transformer={switch['transformer_return']:.1f}", flush=True)
    write_csv(args.out / "curves.csv", FIELDS, rows)
    plot(rows, args.teachers, args.out / "curves.png")
    print(f"written to {args.out}: curves.csv, curves.png (target {args.target})")


if __name__ == "__main__":
    main()
