"""Evaluate a run's saved policies again, on more episodes and on seeds no evaluation of the run used.

A stage-one checkpoint (``RUN_DIR/checkpoints/stage1.pt``) holds the accelerator and the transformer at the
switch; a stage-two one (``stage2.pt``) the fine-tuned transformer; a baseline's (``final.pt``, ``mode=accelerator_only``
or ``transformer_only``) the policy it trained. Each is rebuilt from the run's own config and
evaluated as the run evaluates (deterministic actions, one episode per env copy, each on its own seed), over
``--episodes`` episodes seeded from ``--first-seed`` on. One line per policy:
``<checkpoint> <policy> return_mean=<x> return_std=<y> episodes=<n>``; ``--out`` also writes them as JSON.

The run's evaluations are few episodes each (5 by default); where a policy's episodes split between success and
failure (a balanced or a swinging pendulum), one evaluation swings by hundreds. More episodes narrow that.

    .venv/bin/python benchmarks/reevaluate.py outputs/RUN/checkpoints/stage1.pt --episodes 100
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from trl_accel import keys
from trl_accel.checkpoint import load_checkpoint
from trl_accel.config import canonical_mode
from trl_accel.evaluation import evaluate_policy
from trl_accel.experiment import Agents, build_env, episode_steps
from trl_accel.objectives import BehaviourCloningLoss
from trl_accel.stages.learners import make_learner

#: What a checkpoint part holds: (part name, the policy it gives; a baseline's ``learner``: the one of its mode)
PARTS = (("accelerator_learner", "accelerator"), ("cloner", "transformer"), ("stage_two_learner", "transformer"),
         ("learner", None))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path, help="stage1.pt / stage2.pt / final.pt of one or more runs")
    p.add_argument("--episodes", type=int, default=100, help="episodes per policy (env copies stepped together)")
    p.add_argument("--first-seed", type=int, default=9_000_000, help="the first episode's seed (a run's own start at 1e6)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) if given")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error(f"--episodes must be >= 1, got {args.episodes}")
    for path in args.checkpoints:
        if not path.is_file():
            p.error(f"no checkpoint at {path}: pass RUN_DIR/checkpoints/stage1.pt, stage2.pt or final.pt")
    return args


def policies_of(checkpoint: dict, episodes: int) -> tuple[dict, object, int]:
    """The policies ``checkpoint`` holds ({name: module}, their weights loaded), the env that evaluates them
    (``episodes`` copies, as the run's evaluator builds it) and its episode length."""
    cfg = OmegaConf.create(checkpoint["config"])
    device = torch.device("cpu")
    env = build_env(cfg, device, num_envs=episodes)
    state_spec = env.observation_spec.get(keys.STATE, None)
    action_spec = env.action_spec_unbatched.to(device)
    agents = Agents(cfg, env.observation_spec[keys.OBSERVATION].shape[-1], action_spec, device,
                    state_dim=state_spec.shape[-1] if state_spec is not None else None)
    for transform in agents.env_transforms():  # what the agents need of the env, as build_env's extra_transforms
        env.append_transform(transform.clone())
    settings = {key: value for key, value in OmegaConf.to_container(cfg.algo).items() if key != "name" and value is not None}
    policies = {}
    for part, name in PARTS:
        if part not in checkpoint:
            continue
        name = name or ("accelerator" if canonical_mode(cfg.mode) == "accelerator_only" else "transformer")
        if part == "cloner":
            BehaviourCloningLoss(agents.transformer).load_state_dict(checkpoint[part]["loss"])
        else:
            actor = agents.accelerator if name == "accelerator" else agents.transformer
            make_learner(cfg.algo.name, actor, agents.critics, action_spec, settings=settings).loss.load_state_dict(
                checkpoint[part]["loss"])
        policies[name] = agents.accelerator if name == "accelerator" else agents.transformer_policy
    if not policies:
        print(f"error: the checkpoint holds none of {[part for part, _ in PARTS]}: pass stage1.pt, stage2.pt or final.pt",
              file=sys.stderr)
        raise SystemExit(2)
    return policies, env, episode_steps(cfg)


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results = []
    for path in args.checkpoints:
        policies, env, max_steps = policies_of(load_checkpoint(path), args.episodes)
        for name, policy in policies.items():
            result = evaluate_policy(env, policy, max_steps, args.first_seed)
            results.append({"checkpoint": str(path), "policy": name, **result})
            print(f"{path} {name} return_mean={result['return_mean']:.1f} return_std={result['return_std']:.1f} "
                  f"episodes={result['episodes']}", flush=True)
        env.close()
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
