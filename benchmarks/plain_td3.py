"""Plain-PyTorch TD3 reference loop for the throughput benchmark: a single-file training loop in the
style of CleanRL's ``td3_continuous_action.py`` (explicit actor and twin Q networks, the TD3 target
computed inline, Polyak updates written out), using the same hyperparameters as the library's TD3
recipe (Table 1, MuJoCo column), so its learning-phase steps per second can be compared with the
TorchRL-based implementation. Run it with
``python benchmarks/plain_td3.py --env HalfCheetah-v5 --total-steps 100000 --seed 0 --device auto --out result.json``;
it prints one JSON line with the throughput, wall time, peak RSS and the deterministic evaluation return.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command-line flags (defaults are the TD3 recipe's MuJoCo hyperparameters)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", type=str, default="HalfCheetah-v5", help="Gymnasium environment id")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-steps", type=int, default=1_000_000, help="environment steps in total")
    p.add_argument("--learning-starts", type=int, default=25_000, help="uniform random actions before this step")
    p.add_argument("--buffer-size", type=int, default=500_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--tau", type=float, default=0.005)
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate for actor and critics")
    p.add_argument("--policy-noise", type=float, default=0.2, help="target smoothing noise (x action half-range)")
    p.add_argument("--noise-clip", type=float, default=0.5, help="target noise clip (x action half-range)")
    p.add_argument("--exploration-noise", type=float, default=0.1, help="behaviour noise (x action half-range)")
    p.add_argument("--policy-delay", type=int, default=2, help="actor/target update every N critic updates")
    p.add_argument("--device", type=str, default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) if given")
    p.add_argument("--eval-episodes", type=int, default=5, help="deterministic evaluation episodes at the end")
    p.add_argument("--out", type=str, default=None, help="also write the result JSON to this path")
    return p.parse_args(argv)


class Actor(nn.Module):
    """Deterministic policy: obs -> 256 -> 256 -> act, tanh output rescaled to the action bounds."""

    def __init__(self, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray) -> None:
        super().__init__()
        self.fc1 = nn.Linear(obs_dim, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc_mu = nn.Linear(256, act_dim)
        self.register_buffer("action_scale", torch.as_tensor((high - low) / 2.0, dtype=torch.float32))
        self.register_buffer("action_bias", torch.as_tensor((high + low) / 2.0, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(obs))
        x = F.relu(self.fc2(x))
        return torch.tanh(self.fc_mu(x)) * self.action_scale + self.action_bias


class QNetwork(nn.Module):
    """State-action value: (obs, act) -> 256 -> 256 -> 1."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(obs_dim + act_dim, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, 1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], dim=-1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class ReplayBuffer:
    """Ring buffer of preallocated tensors on the training device, sampled uniformly with torch.randint."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device) -> None:
        self.capacity, self.device = capacity, device
        self.obs = torch.empty((capacity, obs_dim), dtype=torch.float32, device=device)
        self.next_obs = torch.empty((capacity, obs_dim), dtype=torch.float32, device=device)
        self.actions = torch.empty((capacity, act_dim), dtype=torch.float32, device=device)
        self.rewards = torch.empty((capacity, 1), dtype=torch.float32, device=device)
        self.terminated = torch.empty((capacity, 1), dtype=torch.float32, device=device)
        self.pos, self.size = 0, 0

    def add(self, obs: np.ndarray, act: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool) -> None:
        """Store one transition, overwriting the oldest once full."""
        i = self.pos
        self.obs[i] = torch.as_tensor(obs, dtype=torch.float32)
        self.next_obs[i] = torch.as_tensor(next_obs, dtype=torch.float32)
        self.actions[i] = torch.as_tensor(act, dtype=torch.float32)
        self.rewards[i, 0] = float(reward)
        self.terminated[i, 0] = float(terminated)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """Return (obs, actions, rewards, next_obs, terminated) for a uniform random batch."""
        idx = torch.randint(0, self.size, (batch_size,), device=self.device)
        return self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx]


def resolve_device(name: str) -> torch.device:
    """Map 'auto' to cuda when available, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def evaluate(actor: Actor, env_id: str, seed: int, episodes: int, device: torch.device) -> float:
    """Mean undiscounted return of the noise-free policy over `episodes` episodes (env seeded seed+10_000+i)."""
    env = gym.make(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + 10_000 + i)
        done, ep_return = False, 0.0
        while not done:
            with torch.no_grad():
                act = actor(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))[0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(act)
            ep_return += float(reward)
            done = terminated or truncated
        returns.append(ep_return)
    env.close()
    return float(np.mean(returns))


def run(args: argparse.Namespace) -> dict:
    """Train TD3 for `args.total_steps` env steps and return the benchmark result dict."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)

    env = gym.make(args.env)
    env.action_space.seed(args.seed)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)

    actor = Actor(obs_dim, act_dim, low, high).to(device)
    qf1 = QNetwork(obs_dim, act_dim).to(device)
    qf2 = QNetwork(obs_dim, act_dim).to(device)
    target_actor = Actor(obs_dim, act_dim, low, high).to(device)
    qf1_target = QNetwork(obs_dim, act_dim).to(device)
    qf2_target = QNetwork(obs_dim, act_dim).to(device)
    target_actor.load_state_dict(actor.state_dict())
    qf1_target.load_state_dict(qf1.state_dict())
    qf2_target.load_state_dict(qf2.state_dict())
    for net in (target_actor, qf1_target, qf2_target):
        net.requires_grad_(False)
    q_optimizer = torch.optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=args.lr)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.lr)

    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, device)
    action_scale = actor.action_scale
    low_t = torch.as_tensor(low, device=device)
    high_t = torch.as_tensor(high, device=device)

    wall_start = time.perf_counter()
    learn_start: float | None = None
    obs, _ = env.reset(seed=args.seed)
    for global_step in range(args.total_steps):
        if global_step < args.learning_starts:
            action = env.action_space.sample()
        else:
            if learn_start is None:
                learn_start = time.perf_counter()
            with torch.no_grad():
                a = actor(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0))[0]
                a = a + torch.randn_like(a) * action_scale * args.exploration_noise
                action = a.clamp(low_t, high_t).cpu().numpy()

        next_obs, reward, terminated, truncated, _ = env.step(action)
        # Only true termination cuts the bootstrap; time-limit truncation still bootstraps from next_obs.
        rb.add(obs, action, reward, next_obs, terminated)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()

        if global_step >= args.learning_starts:
            b_obs, b_act, b_rew, b_next, b_term = rb.sample(args.batch_size)
            with torch.no_grad():
                noise = (torch.randn_like(b_act) * args.policy_noise).clamp(-args.noise_clip, args.noise_clip)
                next_act = (target_actor(b_next) + noise * action_scale).clamp(low_t, high_t)
                next_q = torch.min(qf1_target(b_next, next_act), qf2_target(b_next, next_act))
                target_q = b_rew + args.gamma * (1.0 - b_term) * next_q
            qf_loss = F.mse_loss(qf1(b_obs, b_act), target_q) + F.mse_loss(qf2(b_obs, b_act), target_q)
            q_optimizer.zero_grad()
            qf_loss.backward()
            q_optimizer.step()

            if global_step % args.policy_delay == 0:
                actor_loss = -qf1(b_obs, actor(b_obs)).mean()
                actor_optimizer.zero_grad()
                actor_loss.backward()
                actor_optimizer.step()
                # Polyak averaging of all three target networks.
                with torch.no_grad():
                    for net, target in ((actor, target_actor), (qf1, qf1_target), (qf2, qf2_target)):
                        for p, tp in zip(net.parameters(), target.parameters()):
                            tp.mul_(1.0 - args.tau).add_(p, alpha=args.tau)

    if device.type == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    env.close()
    eval_return = evaluate(actor, args.env, args.seed, args.eval_episodes, device) if args.eval_episodes > 0 else None
    return benchmark_result("plain_pytorch", args, device, wall_start=wall_start, learn_start=learn_start, end=end,
                            eval_return=eval_return)


def benchmark_result(impl: str, args: argparse.Namespace, device: torch.device, *, wall_start: float,
                     learn_start: float | None, end: float, eval_return: float | None) -> dict:
    """The result dict of a plain loop: its learning-phase env-steps/s (the steps after ``args.learning_starts``,
    timed from ``learn_start`` to ``end``), wall time, peak RSS and the final evaluation's return."""
    learning_steps = max(args.total_steps - args.learning_starts, 0)
    learning_time = end - learn_start if learn_start is not None else 0.0
    return {
        "impl": impl,
        "env": args.env,
        "seed": args.seed,
        "device": str(device),
        "total_steps": args.total_steps,
        "learning_starts": args.learning_starts,
        "learning_steps_per_s": learning_steps / learning_time if learning_time > 0 else None,
        "wall_time_s": end - wall_start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "eval_return": eval_return,
    }


def report(result: dict, out: str | None) -> None:
    """Print ``result`` as one JSON line and, with ``out``, write it there too."""
    line = json.dumps(result)
    print(line)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(line + "\n")


def main() -> None:
    """Command-line entry point: train, print one JSON line, optionally write it to --out."""
    args = parse_args()
    report(run(args), args.out)


if __name__ == "__main__":
    main()
