"""Cost of the transformer's context length K: collection with the KV cache (batch 1) and one TD3 update on windows
built from replay (batch 256), on a MuJoCo task, CPU. One line per K:

    K=<k> collect_ms_per_step=<x> train_ms_per_update=<y>

``collect_ms_per_step``: a step of one env with the transformer acting through its KV cache (rotary positions,
Table 1's network), the env's own time included. ``train_ms_per_update``: one TD3 update of the transformer actor
and twin MLP critics on a batch of 256 steps whose windows (and next windows) are gathered from the replay
storage. With ``--window`` a second line per K times collection on the env-built window instead of the cache
(``# K=<k> window_collect_ms_per_step=<x>``).

    .venv/bin/python benchmarks/context_scaling.py --env HalfCheetah-v5 --contexts 3 16 64 256 --threads 2
"""
from __future__ import annotations

import argparse
import time

import torch
from torchrl.envs import ExplorationType, set_exploration_type

from trl_accel.envs.make import make_env
from trl_accel.modules import make_transformer_actor, make_twin_q_critics
from trl_accel.modules.kv_cache import cached_transformer_actor, kv_cache_primer
from trl_accel.modules.transformer import window_length
from trl_accel.stages import make_learner
from trl_accel.stages.sequences import make_replay_buffer
from trl_accel.stages.windows import StreamWindows, stored_instead_of_windows

TD3 = {"gamma": 0.99, "tau": 0.005, "lr": 3e-4, "policy_noise": 0.2, "noise_clip": 0.5, "exploration_noise": 0.1,
       "policy_delay": 2}


def collect_ms_per_step(env_name: str, actor, context_len: int, steps: int, cached: bool) -> float:
    """Milliseconds per env step of a rollout of ``steps`` (after one warm-up rollout)."""
    window = None if cached else window_length(context_len, 1, "rotary")
    env = make_env(env_name, window, seed=0)
    policy = actor
    if cached:
        env.append_transform(kv_cache_primer(actor))
        policy = cached_transformer_actor(actor)
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        env.rollout(20, policy, break_when_any_done=False)
        started = time.perf_counter()
        env.rollout(steps, policy, break_when_any_done=False)
        elapsed = time.perf_counter() - started
    env.close()
    return 1000 * elapsed / steps


def train_ms_per_update(env_name: str, actor, context_len: int, updates: int, batch_size: int, fill: int) -> float:
    """Milliseconds per TD3 update on replay windows, after ``fill`` random steps and a few warm-up updates."""
    env = make_env(env_name, None, seed=0)
    obs_dim = env.observation_spec["observation"].shape[-1]
    spec = env.action_spec_unbatched
    critics = make_twin_q_critics(obs_dim, spec.shape[-1])
    learner = make_learner("td3", actor, critics, spec, settings=TD3)
    replay = make_replay_buffer(fill, batch_size, windows=StreamWindows(context_len=context_len, num_streams=1,
                                                                       capacity=fill))
    wanted = stored_instead_of_windows([*learner.loss.in_keys, *(("next", key) for key in learner.loss.in_keys
                                                                  if isinstance(key, str))])
    rollout = env.rollout(fill, break_when_any_done=False)
    replay.extend(rollout.select(*wanted, strict=False))
    env.close()
    for _ in range(3):
        learner.update(replay.sample())
    started = time.perf_counter()
    for _ in range(updates):
        learner.update(replay.sample())
    return 1000 * (time.perf_counter() - started) / updates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5", help="gymnasium id")
    parser.add_argument("--contexts", type=int, nargs="+", default=[3, 16, 64, 256])
    parser.add_argument("--collect-steps", type=int, default=500)
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--fill", type=int, default=2000, help="random steps in the replay buffer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", action="store_true", help="also time collection on the env-built window")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for context_len in args.contexts:
        torch.manual_seed(0)
        env = make_env(args.env, None)
        obs_dim, spec = env.observation_spec["observation"].shape[-1], env.action_spec_unbatched
        env.close()
        actor = make_transformer_actor(obs_dim, spec, context_len=context_len, positions="rotary",
                                       passthrough_keys=["observation"])
        collect = collect_ms_per_step(args.env, actor, context_len, args.collect_steps, cached=True)
        train = train_ms_per_update(args.env, actor, context_len, args.updates, args.batch_size, args.fill)
        print(f"K={context_len} collect_ms_per_step={collect:.3f} train_ms_per_update={train:.2f}", flush=True)
        if args.window:
            window = collect_ms_per_step(args.env, actor, context_len, args.collect_steps, cached=False)
            print(f"# K={context_len} window_collect_ms_per_step={window:.3f}", flush=True)


if __name__ == "__main__":
    main()
