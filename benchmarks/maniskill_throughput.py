"""Env throughput on a ManiSkill task: env-steps/s of random actions through the TorchRL env (with the
training transforms: step counter, reward sum, context windows, pixel windows in rgb mode) and, side by
side in the same run, through the raw ManiSkill env(s) with the same settings (the plain reference: a
loop of ``env.step`` on torch actions, resetting a copy when its episode hits the limit).

With ``sim_backend=physx_cpu`` ManiSkill simulates one copy per env, so both sides step ``num_envs``
ManiSkill envs in a Python loop; the ratio is the cost of the TorchRL layer.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/maniskill_throughput.py --env PushCube-v1 \\
        --obs-mode state --num-envs 1 4 16 --steps 200 --reps 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def raw_steps_per_s(env_id: str, obs_mode: str, num_envs: int, steps: int, warmup: int, kwargs: dict) -> float:
    """Random actions straight into ManiSkill (``num_envs`` single-copy envs on the CPU sim)."""
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401

    sims = [gym.make(env_id, num_envs=1, obs_mode=obs_mode, **kwargs).unwrapped for _ in range(num_envs)]
    limit = gym.spec(env_id).max_episode_steps
    try:
        for j, sim in enumerate(sims):
            sim.reset(seed=j)
        low = torch.as_tensor(sims[0].single_action_space.low)
        high = torch.as_tensor(sims[0].single_action_space.high)

        def run(n: int) -> None:
            for _ in range(n):
                actions = low + (high - low) * torch.rand(num_envs, 1, low.shape[-1])
                for sim, action in zip(sims, actions):
                    sim.step(action)
                    if sim.elapsed_steps[0] >= limit:
                        sim.reset()

        run(warmup)
        start = time.perf_counter()
        run(steps)
        return num_envs * steps / (time.perf_counter() - start)
    finally:
        for sim in sims:
            sim.close()


def torchrl_steps_per_s(env_id: str, obs_mode: str, num_envs: int, steps: int, warmup: int, context_len: int,
                        kwargs: dict) -> float:
    """Random actions through :func:`make_maniskill_training_env`, auto-resetting as a collector does."""
    from trl_accel.envs.maniskill import make_maniskill_training_env

    env = make_maniskill_training_env(env_id, num_envs, context_len, obs_mode=obs_mode, seed=0, **kwargs)
    try:
        td = env.reset()

        def run(n: int) -> Any:
            nonlocal td
            for _ in range(n):
                td["action"] = env.action_spec.rand()
                _, td = env.step_and_maybe_reset(td)

        run(warmup)
        start = time.perf_counter()
        run(steps)
        return num_envs * steps / (time.perf_counter() - start)
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="PushCube-v1", help="ManiSkill task id")
    parser.add_argument("--obs-mode", nargs="+", default=["state"], choices=["state", "rgb"])
    parser.add_argument("--num-envs", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--steps", type=int, default=200, help="batched steps timed per configuration")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--reps", type=int, default=2, help="repetitions per configuration (medians reported)")
    parser.add_argument("--context-len", type=int, default=16, help="K of the windows in the TorchRL env")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--control-mode", default="pd_joint_delta_pos")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "maniskill_throughput.json")
    args = parser.parse_args()

    rows = []
    for obs_mode in args.obs_mode:
        for num_envs in args.num_envs:
            render = "none" if obs_mode == "state" else ("gpu" if torch.cuda.is_available() else "cpu")
            raw_kwargs = dict(sim_backend="physx_cpu", render_backend=render, control_mode=args.control_mode,
                              sensor_configs=dict(width=args.image_size, height=args.image_size))
            torchrl_kwargs = dict(control_mode=args.control_mode, image_size=args.image_size)
            raws, wrappeds = [], []
            for rep in range(args.reps):  # alternate the order, so that a busy spell hits both sides
                first_raw = rep % 2 == 0
                if first_raw:
                    raws.append(raw_steps_per_s(args.env, obs_mode, num_envs, args.steps, args.warmup, raw_kwargs))
                wrappeds.append(torchrl_steps_per_s(args.env, obs_mode, num_envs, args.steps, args.warmup,
                                                    args.context_len, torchrl_kwargs))
                if not first_raw:
                    raws.append(raw_steps_per_s(args.env, obs_mode, num_envs, args.steps, args.warmup, raw_kwargs))
            raw, wrapped = statistics.median(raws), statistics.median(wrappeds)
            ratios = [w / r for w, r in zip(wrappeds, raws)]
            rows.append(dict(env=args.env, obs_mode=obs_mode, num_envs=num_envs, raw_steps_per_s=raw,
                             torchrl_steps_per_s=wrapped, ratio=statistics.median(ratios),
                             ratio_min=min(ratios), ratio_max=max(ratios), raw_all=raws, torchrl_all=wrappeds))
            print(f"{obs_mode} num_envs={num_envs}: raw {raw:.1f}, torchrl {wrapped:.1f} env-steps/s", flush=True)

    print(f"\n{args.env}, physx_cpu, {args.steps} steps x {args.reps} reps, context_len {args.context_len}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    print("| obs mode | num_envs | raw ManiSkill env-steps/s | TorchRL env env-steps/s | TorchRL / raw (min-max) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['obs_mode']} | {r['num_envs']} | {r['raw_steps_per_s']:.1f} | {r['torchrl_steps_per_s']:.1f} "
              f"| {r['ratio']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
