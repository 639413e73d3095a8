"""Fidelity, CPU-sized: the accelerated transformer against its accelerator at the switch, and after
stage two against MLP TD3 and the vanilla transformer given the same total env steps.

Each (variant, seed) runs the recipe in its own process into `--out/<variant>_seed<k>/`; a run that
already has a summary.json is read, not rerun, and a killed run is resumed from its last checkpoint,
so the script can be stopped and started again.

    .venv/bin/python benchmarks/fidelity.py --env hopper --seeds 0 1 \
        --random-steps 25000 --stage1-steps 60000 --stage2-steps 40000
    # POMDP Hopper with the LSTM accelerator, against LSTM TD3 from scratch
    .venv/bin/python benchmarks/fidelity.py --env hopper_pomdp --variants accelerate accelerator_only \
        --out benchmarks/results/pomdp_hopper accelerator=lstm
    # stage one only, BC + critic ascent (compare with the same command without the override)
    .venv/bin/python benchmarks/fidelity.py --env hopper --variants accelerate --stage2-steps 0 \
        --out benchmarks/results/ascent_hopper stage1.ascent_weight=0.1
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("accelerate", "accelerator_only", "transformer_only", "mlp_td3", "transformer_td3")


def run_one(variant: str, seed: int, args: argparse.Namespace) -> dict:
    run_dir = args.out / f"{variant}_seed{seed}"
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        command = [sys.executable, str(ROOT / "recipes" / f"{args.recipe}_accelerate.py"), f"env={args.env}", f"seed={seed}",
                   f"mode={variant}", "quiet=true", f"stage1.random_steps={args.random_steps}",
                   f"stage1.steps={args.stage1_steps}", f"stage2.steps={args.stage2_steps}",
                   f"eval.every={args.eval_every}", f"eval.episodes={args.eval_episodes}",
                   f"checkpoint.every={args.eval_every * 2}", f"hydra.run.dir={run_dir}", *args.overrides]
        if (run_dir / "checkpoints" / "last.pt").exists():
            command.append(f"resume={run_dir}")
        print(" ".join(command[1:]), flush=True)
        subprocess.run(command, check=True)
    return json.loads(summary_path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="hopper")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS[:1] + VARIANTS[3:]), choices=VARIANTS)
    parser.add_argument("--recipe", default="td3", choices=("td3", "sac"))
    parser.add_argument("--random-steps", type=int, default=25000)
    parser.add_argument("--stage1-steps", type=int, default=60000)
    parser.add_argument("--stage2-steps", type=int, default=40000)
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fidelity")
    parser.add_argument("overrides", nargs="*", help="extra recipe overrides, e.g. stage2.buffer_size=20000")
    args = parser.parse_args()

    rows = []
    for seed in args.seeds:
        for variant in args.variants:
            summary = run_one(variant, seed, args)
            rows.append((variant, seed, summary))
    print(f"\n{args.env}: {args.random_steps} random + {args.stage1_steps} stage-one + {args.stage2_steps} stage-two "
          f"env steps (baselines: the same total), deterministic returns over {args.eval_episodes} episodes")
    print(f"{'variant':<17}{'seed':>5}{'acc@switch':>12}{'tr@switch':>11}{'tr/acc':>8}{'final':>10}{'success':>9}{'wall s':>9}")
    for variant, seed, summary in rows:
        stage1 = summary.get("stage1") or {}
        acc, tr = stage1.get("accelerator_return"), stage1.get("transformer_return")
        final = summary["stage2"]["transformer_return"] if variant == "accelerate" else summary["final_return"]
        success = summary["stage2"].get("transformer_success") if variant == "accelerate" else summary.get("final_success")
        ratio = f"{tr / acc:.2f}" if acc and tr is not None and acc > 0 else "-"
        print(f"{variant:<17}{seed:>5}{acc if acc is not None else float('nan'):>12.0f}"
              f"{tr if tr is not None else float('nan'):>11.0f}{ratio:>8}{final:>10.1f}"
              f"{success if success is not None else float('nan'):>9.2f}{summary['wall_time_s']:>9.0f}")


if __name__ == "__main__":
    main()
