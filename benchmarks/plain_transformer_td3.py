"""Plain-PyTorch transformer-TD3 reference loop for the throughput benchmark: the stage-two reference.

A single-file training loop in the layout of ``plain_td3.py`` (CleanRL style: explicit networks, the TD3
target computed inline, Polyak updates written out) whose actor is the recipe's default stage-two actor
(``transformer=table1``): a context-window transformer over the last K=3 observations of the episode
(learned positions, 1 pre-LN layer, 2 heads, d_model 256, feed-forward 512, dropout 0.05 on the residual
branches of gradient steps only, the last block computing the last query only), a linear head and a tanh
scaled to the action box. The twin critics are the recipe's MLPs (observation and action -> 256 -> 256 -> 1).
The replay buffer stores each step once, as the recipe does, and builds a sample's windows from the flat
storage by index (a window never crosses an episode start, nor reads a step that was overwritten).
Hyperparameters are Table 1's (TD3, MuJoCo column), batch 256, replay 20k (the benchmark's stage-two size).

Only torch, numpy and gymnasium are used, so its learning-phase steps per second are those of the arithmetic
alone. Run it with
``python benchmarks/plain_transformer_td3.py --env HalfCheetah-v5 --total-steps 4000 --learning-starts 1000 --out result.json``;
it prints one JSON line with the throughput, wall time, peak RSS and the deterministic evaluation return.
"""
from __future__ import annotations

import argparse
import itertools
import random
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from plain_td3 import benchmark_result, report, resolve_device
from torch import nn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command-line flags (defaults: the TD3 recipe's MuJoCo settings, ``transformer=table1``)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", type=str, default="HalfCheetah-v5", help="Gymnasium environment id")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-steps", type=int, default=1_000_000, help="environment steps in total")
    p.add_argument("--learning-starts", type=int, default=25_000, help="uniform random actions before this step")
    p.add_argument("--buffer-size", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--tau", type=float, default=0.005)
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate for actor and critics")
    p.add_argument("--policy-noise", type=float, default=0.2, help="target smoothing noise (x action half-range)")
    p.add_argument("--noise-clip", type=float, default=0.5, help="target noise clip (x action half-range)")
    p.add_argument("--exploration-noise", type=float, default=0.1, help="behaviour noise (x action half-range)")
    p.add_argument("--policy-delay", type=int, default=2, help="actor/target update every N critic updates")
    p.add_argument("--context-len", type=int, default=3, help="K: observations in the window")
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-heads", type=int, default=2)
    p.add_argument("--d-ff", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.05)
    p.add_argument("--critic-hidden", type=int, nargs="+", default=[256, 256], help="the critics' hidden sizes")
    p.add_argument("--device", type=str, default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) if given")
    p.add_argument("--eval-episodes", type=int, default=5, help="deterministic evaluation episodes at the end")
    p.add_argument("--out", type=str, default=None, help="also write the result JSON to this path")
    return p.parse_args(argv)


def residual_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout on a gradient step only (training mode and gradients enabled), as the recipe's transformer."""
    if p == 0 or not (training and torch.is_grad_enabled()):
        return x
    return F.dropout(x, p, training=True)


class TransformerActor(nn.Module):
    """Window [B, K, obs] and mask [B, K] -> action [B, A]: embedding plus learned positions, one pre-LN block
    (2-head attention of the last query over the real keys, GELU feed-forward), final LayerNorm on the last
    token, linear head, tanh scaled to the action box."""

    def __init__(self, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray, *, context_len: int,
                 d_model: int, n_heads: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.head_dim, self.dropout = n_heads, d_model // n_heads, dropout
        self.embed = nn.Linear(obs_dim, d_model)
        self.positions = nn.Parameter(0.02 * torch.randn(context_len, d_model))
        self.attention_norm = nn.LayerNorm(d_model)
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.attention_out = nn.Linear(d_model, d_model)
        self.feed_forward_norm = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.final_norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, act_dim)
        self.register_buffer("action_scale", torch.as_tensor((high - low) / 2.0, dtype=torch.float32))
        self.register_buffer("action_bias", torch.as_tensor((high + low) / 2.0, dtype=torch.float32))

    def attend(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention of the last token over the window's real tokens (and itself): [B, K, d] -> [B, 1, d]."""
        batch, length, _ = x.shape
        query = self.query(x[:, -1:]).view(batch, 1, self.n_heads, self.head_dim).transpose(1, 2)
        key, value = self.key_value(x).view(batch, length, 2, self.n_heads, self.head_dim).unbind(2)
        allowed = mask.clone()
        allowed[:, -1] = True
        attended = F.scaled_dot_product_attention(query, key.transpose(1, 2), value.transpose(1, 2),
                                                  attn_mask=allowed[:, None, None, :])
        return self.attention_out(attended.transpose(1, 2).reshape(batch, 1, -1))

    def features(self, window: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The block's output at the last token, normalised: [B, d_model]."""
        x = self.embed(window) + self.positions
        x = x[:, -1:] + residual_dropout(self.attend(self.attention_norm(x), mask), self.dropout, self.training)
        x = x + residual_dropout(self.feed_forward(self.feed_forward_norm(x)), self.dropout, self.training)
        return self.final_norm(x[:, -1])

    def forward(self, window: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.features(window, mask))) * self.action_scale + self.action_bias


class QNetwork(nn.Module):
    """State-action value: (obs, act) -> hidden (ReLU) -> ... -> 1."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]) -> None:
        super().__init__()
        sizes = [obs_dim + act_dim, *hidden]
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(sizes):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, act], dim=-1))


class WindowReplayBuffer:
    """Ring buffer storing each step once (plus its global step and its episode's first step), sampled
    uniformly; a sample's windows of the last K observations are gathered from the storage by index."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, context_len: int, device: torch.device) -> None:
        self.capacity, self.context_len, self.device = capacity, context_len, device
        self.obs = torch.zeros((capacity, obs_dim), dtype=torch.float32, device=device)
        self.next_obs = torch.zeros((capacity, obs_dim), dtype=torch.float32, device=device)
        self.actions = torch.zeros((capacity, act_dim), dtype=torch.float32, device=device)
        self.rewards = torch.zeros((capacity, 1), dtype=torch.float32, device=device)
        self.terminated = torch.zeros((capacity, 1), dtype=torch.float32, device=device)
        self.step = torch.full((capacity,), -1, dtype=torch.long, device=device)
        self.first = torch.zeros((capacity,), dtype=torch.long, device=device)
        self.offsets = torch.arange(context_len - 1, -1, -1, device=device)
        self.pos, self.size = 0, 0

    def add(self, obs: np.ndarray, act: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool,
            step: int, first: int) -> None:
        """Store one transition (global ``step``, its episode's ``first`` step), overwriting the oldest once full."""
        i = self.pos
        self.obs[i] = torch.as_tensor(obs, dtype=torch.float32)
        self.next_obs[i] = torch.as_tensor(next_obs, dtype=torch.float32)
        self.actions[i] = torch.as_tensor(act, dtype=torch.float32)
        self.rewards[i, 0] = float(reward)
        self.terminated[i, 0] = float(terminated)
        self.step[i], self.first[i] = step, first
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def windows(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``idx`` [B] -> (window [B, K, obs] oldest first, zero-padded; real-step mask [B, K])."""
        rows = (idx.unsqueeze(1) - self.offsets) % self.capacity
        wanted = self.step[idx].unsqueeze(1) - self.offsets
        real = (self.step[rows] == wanted) & (wanted >= self.first[idx].unsqueeze(1))
        return self.obs[rows] * real.unsqueeze(-1), real

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """(window, mask, obs, actions, rewards, next_window, next_mask, next_obs, terminated) for a uniform batch."""
        idx = torch.randint(0, self.size, (batch_size,), device=self.device)
        window, mask = self.windows(idx)
        next_obs = self.next_obs[idx]
        next_window = torch.cat([window[:, 1:], next_obs.unsqueeze(1)], dim=1)
        next_mask = torch.cat([mask[:, 1:], torch.ones_like(mask[:, :1])], dim=1)
        return (window, mask, self.obs[idx], self.actions[idx], self.rewards[idx], next_window, next_mask, next_obs,
                self.terminated[idx])


class EnvWindow:
    """The acting window: the episode's last K observations (zero before its start) and their mask."""

    def __init__(self, context_len: int, obs_dim: int, device: torch.device) -> None:
        self.window = torch.zeros((1, context_len, obs_dim), device=device)
        self.mask = torch.zeros((1, context_len), dtype=torch.bool, device=device)

    def reset(self, obs: np.ndarray) -> None:
        self.window.zero_()
        self.mask.zero_()
        self.push(obs)

    def push(self, obs: np.ndarray) -> None:
        self.window = torch.roll(self.window, -1, dims=1)
        self.mask = torch.roll(self.mask, -1, dims=1)
        self.window[0, -1] = torch.as_tensor(obs, dtype=torch.float32)
        self.mask[0, -1] = True


def make_actor(args: argparse.Namespace, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray) -> TransformerActor:
    """The transformer actor of the flags."""
    return TransformerActor(obs_dim, act_dim, low, high, context_len=args.context_len, d_model=args.d_model,
                            n_heads=args.n_heads, d_ff=args.d_ff, dropout=args.dropout)


def evaluate(actor: TransformerActor, args: argparse.Namespace, device: torch.device) -> float:
    """Mean undiscounted return of the noise-free policy over ``args.eval_episodes`` episodes (seeded seed+10_000+i)."""
    env = gym.make(args.env)
    window = EnvWindow(args.context_len, int(np.prod(env.observation_space.shape)), device)
    returns = []
    for i in range(args.eval_episodes):
        obs, _ = env.reset(seed=args.seed + 10_000 + i)
        window.reset(obs)
        done, ep_return = False, 0.0
        while not done:
            with torch.no_grad():
                act = actor(window.window, window.mask)[0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(act)
            window.push(obs)
            ep_return += float(reward)
            done = terminated or truncated
        returns.append(ep_return)
    env.close()
    return float(np.mean(returns))


def polyak(pairs: tuple[tuple[nn.Module, nn.Module], ...], tau: float) -> None:
    """Soft update of every target network: θ' ← (1 - τ) θ' + τ θ."""
    with torch.no_grad():
        for net, target in pairs:
            for p, tp in zip(net.parameters(), target.parameters()):
                tp.mul_(1.0 - tau).add_(p, alpha=tau)


def run(args: argparse.Namespace) -> dict:
    """Train transformer TD3 for ``args.total_steps`` env steps and return the benchmark result dict."""
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

    actor = make_actor(args, obs_dim, act_dim, low, high).to(device)
    qf1, qf2 = (QNetwork(obs_dim, act_dim, args.critic_hidden).to(device) for _ in range(2))
    target_actor = make_actor(args, obs_dim, act_dim, low, high).to(device)
    qf1_target, qf2_target = (QNetwork(obs_dim, act_dim, args.critic_hidden).to(device) for _ in range(2))
    for net, target in ((actor, target_actor), (qf1, qf1_target), (qf2, qf2_target)):
        target.load_state_dict(net.state_dict())
        target.requires_grad_(False)
    q_optimizer = torch.optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=args.lr)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.lr)

    rb = WindowReplayBuffer(args.buffer_size, obs_dim, act_dim, args.context_len, device)
    window = EnvWindow(args.context_len, obs_dim, device)
    action_scale = actor.action_scale
    low_t, high_t = torch.as_tensor(low, device=device), torch.as_tensor(high, device=device)

    wall_start = time.perf_counter()
    learn_start: float | None = None
    obs, _ = env.reset(seed=args.seed)
    window.reset(obs)
    episode_first = 0
    for global_step in range(args.total_steps):
        if global_step < args.learning_starts:
            action = env.action_space.sample()
        else:
            if learn_start is None:
                learn_start = time.perf_counter()
            with torch.no_grad():
                a = actor(window.window, window.mask)[0]
                a = a + torch.randn_like(a) * action_scale * args.exploration_noise
                action = a.clamp(low_t, high_t).cpu().numpy()

        next_obs, reward, terminated, truncated, _ = env.step(action)
        # Only true termination cuts the bootstrap; time-limit truncation still bootstraps from next_obs.
        rb.add(obs, action, reward, next_obs, terminated, global_step, episode_first)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
            window.reset(obs)
            episode_first = global_step + 1
        else:
            window.push(obs)

        if global_step >= args.learning_starts:
            b_win, b_mask, b_obs, b_act, b_rew, b_next_win, b_next_mask, b_next, b_term = rb.sample(args.batch_size)
            with torch.no_grad():
                noise = (torch.randn_like(b_act) * args.policy_noise).clamp(-args.noise_clip, args.noise_clip)
                next_act = (target_actor(b_next_win, b_next_mask) + noise * action_scale).clamp(low_t, high_t)
                next_q = torch.min(qf1_target(b_next, next_act), qf2_target(b_next, next_act))
                target_q = b_rew + args.gamma * (1.0 - b_term) * next_q
            qf_loss = F.mse_loss(qf1(b_obs, b_act), target_q) + F.mse_loss(qf2(b_obs, b_act), target_q)
            q_optimizer.zero_grad()
            qf_loss.backward()
            q_optimizer.step()

            if global_step % args.policy_delay == 0:
                actor_loss = -qf1(b_obs, actor(b_win, b_mask)).mean()
                actor_optimizer.zero_grad()
                actor_loss.backward()
                actor_optimizer.step()
                polyak(((actor, target_actor), (qf1, qf1_target), (qf2, qf2_target)), args.tau)

    if device.type == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    env.close()
    eval_return = evaluate(actor, args, device) if args.eval_episodes > 0 else None
    return benchmark_result("plain_pytorch_transformer_td3", args, device, wall_start=wall_start,
                            learn_start=learn_start, end=end, eval_return=eval_return)


def main() -> None:
    """Command-line entry point: train, print one JSON line, optionally write it to --out."""
    args = parse_args()
    report(run(args), args.out)


if __name__ == "__main__":
    main()
