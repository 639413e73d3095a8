"""Throughput on a MuJoCo task, CPU: env-steps/s of the learning phase of MLP TD3 (the baseline), stage
one and stage two, each against a plain single-file PyTorch loop doing the same arithmetic: MLP TD3 and
stage one against the plain MLP TD3 loop (`plain_td3.py`, variant `plain`), stage two against the plain
transformer-TD3 loop with the same transformer, critics and 20k replay buffer (`plain_transformer_td3.py`,
variant `plain_transformer`), all with Table 1's hyperparameters. Each variant runs in its own process, in
turn, `--reps` times; the ratios are taken pair by pair within a repetition and the medians reported, one
row per variant: `<variant> <steps/s> <ratio>`. Also the peak memory (RSS) of each, stage two's with a 20k
replay buffer.

    .venv/bin/python benchmarks/throughput.py --env halfcheetah --random-steps 1000 --steps 3000 --reps 3

``--algo sac`` measures the SAC recipe (``sac_accelerate.py``: MLP SAC ``mlp_sac``, stage one, stage two with
``transformer=table1_sac``) against the plain SAC loop (``plain_sac.py``, an MLP actor for ``plain``, the same
transformer for ``plain_transformer``).

    .venv/bin/python benchmarks/throughput.py --algo sac --env halfcheetah --random-steps 1000 --steps 3000 --reps 3

``--num-envs N`` runs the recipe's variants on ``env.num_envs=N`` copies in one gymnasium vector env (one TorchRL
step, one policy call for all N; the same updates per env step, ``frames_per_batch`` 50 steps per batch as before);
the plain loops stay on one env, as they are written.

    .venv/bin/python benchmarks/throughput.py --env halfcheetah --random-steps 1000 --steps 3000 --reps 2 --num-envs 5

``stage1_bf16`` is stage one with the transformer's BC forward under bfloat16 autocast (``stage1.bc_precision=bfloat16``),
against the same plain loop.

``--device cuda`` runs every variant and plain loop on the GPU; recipe overrides after ``--`` go to the recipe's
variants only, so that the CUDA graphs and ``torch.compile`` are measured against the same plain loops:

    .venv/bin/python benchmarks/throughput.py --device cuda --variants mlp_td3 stage2 -- cudagraphs=true
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
ALGOS = ("td3", "sac")


def recipe(algo: str) -> list[str]:
    """The command that runs the recipe of ``algo``."""
    return [sys.executable, str(ROOT / "recipes" / f"{algo}_accelerate.py")]


def references(algo: str) -> dict[str, str]:
    """Each variant of ``algo`` and the plain loop it is measured against (in the order they run)."""
    return {"plain": "plain", "plain_transformer": "plain_transformer", f"mlp_{algo}": "plain", "stage1": "plain",
            "stage1_bf16": "plain", "stage2": "plain_transformer"}


#: The stage-two replay size of the recipe's variant and of its plain reference.
STAGE_TWO_BUFFER = 20_000
COMMON = ["quiet=true", "eval.every=0", "eval.episodes=1", "checkpoint.every=0", "logger.backend=none"]


def recipe_variant(algo: str, env: str, random_steps: int, steps: int, out: Path, name: str,
                   num_envs: int = 1, device: str = "cpu", overrides: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """The recipe's command for one variant (on ``num_envs`` vectorised env copies, on ``device``, with the extra
    recipe ``overrides``) and the stage whose throughput it measures."""
    base = [*recipe(algo), f"env={env}", f"device={device}", *COMMON, f"stage1.random_steps={random_steps}",
            f"hydra.run.dir={out / name}", f"env.num_envs={num_envs}"]
    if name.startswith("mlp_"):
        return [*base, "mode=accelerator_only", f"stage1.steps={steps}", "stage2.steps=0", *overrides], "accelerator_only"
    if name.startswith("stage1"):  # T as large as the schedule allows (Table 1: 2000), so that BC rounds are timed
        bc_every = min(2000, steps)
        precision = ["stage1.bc_precision=bfloat16"] if name == "stage1_bf16" else []
        return [*base, f"stage1.steps={steps}", "stage2.steps=0", f"stage1.bc_every={bc_every}",
                f"stage1.bc_batch_size={min(256, bc_every)}", *precision, *overrides], "stage1"
    return [*base, "stage1.steps=0", f"stage2.steps={steps}", f"stage2.buffer_size={STAGE_TWO_BUFFER}",
            *overrides], "stage2"


def plain_command(name: str, args: argparse.Namespace, result: Path) -> list[str]:
    """The command of a plain loop (``plain``: MLP TD3 or SAC; ``plain_transformer``: transformer TD3 or SAC, 20k
    replay)."""
    extra = ["--buffer-size", str(STAGE_TWO_BUFFER)] if name == "plain_transformer" else []
    if args.algo == "sac":
        script = "plain_sac.py"
        extra += ["--actor", "transformer" if name == "plain_transformer" else "mlp"]
    else:
        script = "plain_td3.py" if name == "plain" else "plain_transformer_td3.py"
    return [sys.executable, str(ROOT / "benchmarks" / script), "--env", args.gym_id, "--device", args.device,
            "--total-steps", str(args.random_steps + args.steps), "--learning-starts", str(args.random_steps),
            "--eval-episodes", "0", *extra, "--out", str(result)]


def run_variant(name: str, args: argparse.Namespace, out: Path) -> dict:
    """Run one variant in its own process: its learning-phase steps/s and peak RSS."""
    if name in ("plain", "plain_transformer"):
        result = out / f"{name}.json"
        subprocess.run(plain_command(name, args, result), check=True, capture_output=True, text=True)
        report = json.loads(result.read_text())
        return {"steps_per_s": report["learning_steps_per_s"], "peak_rss_mib": report["peak_rss_mib"]}
    command, stage = recipe_variant(args.algo, args.env, args.random_steps, args.steps, out, name, args.num_envs,
                                    args.device, tuple(args.overrides))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last_line = (done.stderr.strip().splitlines() or [""])[-1]
        raise SystemExit(f"{name} failed (exit status {done.returncode}): {last_line}")
    summary = json.loads((out / name / "summary.json").read_text())
    return {"steps_per_s": summary["learning_steps_per_s"][stage], "peak_rss_mib": summary["peak_rss_mib"]}


def summarise(runs: dict[str, list[dict]], algo: str = "td3") -> dict[str, dict]:
    """Per variant: median steps/s, and the median (min, max) of its ratios to its reference, rep by rep."""
    table = {}
    for name, rows in runs.items():
        reference = references(algo)[name]
        ratios = [r["steps_per_s"] / p["steps_per_s"] for r, p in zip(rows, runs[reference], strict=True)]
        table[name] = {"reference": reference, "steps_per_s_median": statistics.median(r["steps_per_s"] for r in rows),
                       "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                       "peak_rss_mib_max": max(r["peak_rss_mib"] for r in rows)}
    return table


def print_table(table: dict[str, dict], args: argparse.Namespace) -> None:
    """One row per variant, ``<variant> <steps/s> <ratio>``, then the ratio's spread, its reference and peak RSS."""
    copies = f", the recipe on {args.num_envs} vectorised env copies" if args.num_envs > 1 else ""
    extra = f", the recipe with {' '.join(args.overrides)}" if args.overrides else ""
    print(f"\n{args.algo.upper()}, {args.gym_id}{copies}{extra}, {args.steps} learning steps after {args.random_steps} "
          f"random, {args.reps} reps ({args.device.upper()}); ratio = steps/s / its plain reference's, rep by rep, median")
    for name, row in table.items():
        print(f"{name} {row['steps_per_s_median']:.1f} {row['ratio_median']:.2f}   "
              f"(min-max {row['ratio_min']:.2f}-{row['ratio_max']:.2f}, x {row['reference']}, "
              f"peak RSS {row['peak_rss_mib_max']:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=ALGOS, default="td3", help="the recipe and its plain references")
    parser.add_argument("--env", default="halfcheetah", help="env group of the recipe")
    parser.add_argument("--random-steps", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=3000, help="learning steps timed per variant")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=None,
                        help="what to run (each one's plain reference is added); default: all of --algo's")
    parser.add_argument("--num-envs", type=int, default=1,
                        help="env copies the recipe's variants step together (env.num_envs); the plain loops use one")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where every variant runs")
    parser.add_argument("--out", type=Path, default=None,
                        help="the results' JSON (default: benchmarks/results/throughput[_sac].json)")
    parser.add_argument("overrides", nargs="*", help="recipe overrides for the recipe's variants (after --)")
    args = parser.parse_args()
    if args.num_envs < 1 or 50 % args.num_envs:
        parser.error(f"--num-envs must divide the recipe's frames_per_batch (50), got {args.num_envs}")
    if args.out is None:
        suffix = "" if args.algo == "td3" else f"_{args.algo}"
        args.out = ROOT / "benchmarks" / "results" / f"throughput{suffix}.json"
    from trl_accel.envs import KNOWN_ENVS

    args.gym_id = KNOWN_ENVS[args.env]
    known = references(args.algo)
    chosen = args.variants or list(known)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(f"unknown variant(s) {unknown} for --algo {args.algo}; choose among {list(known)}")
    wanted = {*chosen, *(known[name] for name in chosen)}
    variants = [name for name in known if name in wanted]
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for name in variants:
                runs[name].append(run_variant(name, args, Path(tmp) / f"rep{rep}"))
                print(f"rep {rep} {name:17s} {runs[name][-1]['steps_per_s']:7.1f} steps/s", flush=True)
    table = summarise(runs, args.algo)
    print_table(table, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"algo": args.algo, "env": args.gym_id, "random_steps": args.random_steps, "steps": args.steps,
                                    "num_envs": args.num_envs, "device": args.device, "overrides": args.overrides,
                                    "reps": args.reps, "table": table, "runs": runs}, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
