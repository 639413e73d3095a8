"""Rollout and update throughput of the on-policy recipe's policies on the grid memory task, in env-steps/s.

One line per configuration:

    <policy> agents=<N> layers=<L> rollout_steps_per_s=<x> update_steps_per_s=<y>

* rollout: ``collect_rollout`` of ``--rollout-len`` steps of N agents (KV cache for the transformer, carried GRU
  state), environment included;
* update: one PPO epoch over that rollout (``--minibatches`` minibatches of whole trajectories, forward, backward,
  AdamW step), counted in the rollout's env steps per second of update.

    python benchmarks/ppo_throughput.py                       # 256 and 1024 agents, 1 and 2 layers, CPU
    python benchmarks/ppo_throughput.py --device cuda --bf16  # on a CUDA machine, bf16 autocast

Each figure is the best of ``--repeats`` timings after one warm-up; run it alone on an idle machine.
"""
from __future__ import annotations

import argparse
import time

import torch
from omegaconf import OmegaConf

from trl_accel.modules.trajectory import make_trajectory_actor_critic
from trl_accel.onpolicy.envs import make_onpolicy_env
from trl_accel.onpolicy.loss import make_ppo_loss, ppo_update
from trl_accel.onpolicy.rollout import add_advantages, collect_rollout


def measure(policy: str, agents: int, layers: int, args: argparse.Namespace) -> tuple[float, float]:
    device = torch.device(args.device)
    env_cfg = OmegaConf.create({"name": "grid_memory", "options": {"size": args.size, "episode_steps": args.rollout_len}})
    env = make_onpolicy_env(env_cfg, num_envs=agents, seed=0, device=device)
    model = make_trajectory_actor_critic(
        env.observation_spec["observation"].shape[-1], env.action_spec_unbatched.to(device), core=policy,
        d_model=args.d_model, context_len=args.rollout_len, n_layers=layers, n_heads=4, n_kv_heads=1,
        d_ff=4 * args.d_model, value_hidden=2 * args.d_model).to(device)
    for primer in model.env_primers():
        env.append_transform(primer)
    policy_module = model.rollout_policy()
    loss = make_ppo_loss(model.actor(), model.critic(), clip_epsilon=0.2, entropy_coeff=0.01, critic_coeff=0.5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    carry = env.reset()
    rollout_times, update_times = [], []
    for _ in range(args.repeats + 1):
        started = time.perf_counter()
        with autocast:
            rollout, carry, bootstrap = collect_rollout(env, policy_module, carry, args.rollout_len,
                                                        memory_keys=model.memory_keys)
        rollout = rollout.float() if args.bf16 else rollout
        if device.type == "cuda":
            torch.cuda.synchronize()
        rollout_times.append(time.perf_counter() - started)
        add_advantages(rollout, bootstrap.float(), gamma=0.99, lmbda=0.95)
        started = time.perf_counter()
        with autocast:
            ppo_update(loss, optimizer, scheduler, rollout, epochs=1, minibatches=args.minibatches, max_grad_norm=0.5)
        if device.type == "cuda":
            torch.cuda.synchronize()
        update_times.append(time.perf_counter() - started)
    frames = agents * args.rollout_len
    return frames / min(rollout_times[1:]), frames / min(update_times[1:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", nargs="+", default=["transformer", "gru", "mlp"])
    parser.add_argument("--agents", nargs="+", type=int, default=[256, 1024])
    parser.add_argument("--layers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rollout-len", type=int, default=128)
    parser.add_argument("--size", type=int, default=15)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    for policy in args.policies:
        for agents in args.agents:
            for layers in args.layers if policy != "mlp" else [1]:
                rollout, update = measure(policy, agents, layers, args)
                print(f"{policy} agents={agents} layers={layers} rollout_steps_per_s={rollout:.0f} "
                      f"update_steps_per_s={update:.0f}", flush=True)


if __name__ == "__main__":
    main()
