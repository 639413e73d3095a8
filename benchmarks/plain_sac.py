"""Plain-PyTorch SAC reference loop for the throughput benchmark, with an MLP or a transformer actor.

A single-file training loop in the layout of ``plain_td3.py`` (CleanRL style: explicit networks, the soft TD
target computed inline, Polyak updates written out) doing the arithmetic of the SAC recipe
(``recipes/sac_accelerate.py``, TorchRL's ``SACLoss``): a tanh-normal actor (the network's output split into a
location and a scale ``softplus(x + b) + 0.01`` equal to 1 at x = 0; the Normal squashed by tanh and
scaled to the action box), twin MLP critics (observation and action -> 256 -> 256 -> 1) with Polyak targets, automatic
entropy tuning (α = exp(log α), α₀ = 1, target entropy −A) and, every step, one Adam step of the critics, the actor
and log α on the sum of their three losses, then one soft target update.

``--actor mlp`` is the accelerator's MLP (observation -> 256 -> 256 -> 2A): the reference of MLP SAC and of stage
one. ``--actor transformer`` is the recipe's stage-two actor (``transformer=table1_sac``: the last K=5
observations, the body of ``plain_transformer_td3.py`` with a 2A head), its replay storing each step once and
building windows by index (from ``plain_transformer_td3.py``): the reference of stage two.

Only torch, numpy and gymnasium are used. Run it with
``python benchmarks/plain_sac.py --env HalfCheetah-v5 --actor transformer --total-steps 4000 --learning-starts 1000``;
it prints one JSON line with the throughput, wall time, peak RSS and the deterministic evaluation return.
"""
from __future__ import annotations

import argparse
import itertools
import math
import random
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from plain_td3 import ReplayBuffer, benchmark_result, report, resolve_device
from plain_transformer_td3 import (
    EnvWindow,
    QNetwork,
    TransformerActor,
    WindowReplayBuffer,
    polyak,
)
from torch import nn

#: The scale is softplus(x + SCALE_BIAS) + SCALE_MIN, 1 at x = 0 (TensorDict's ``biased_softplus_1.0``), then at
#: least SCALE_FLOOR (``NormalParamExtractor``'s ``scale_lb``).
SCALE_MIN, SCALE_FLOOR = 0.01, 1e-4
SCALE_BIAS = math.log(math.expm1(1.0 - SCALE_MIN))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command-line flags (defaults: the SAC recipe's MuJoCo settings, ``transformer=table1_sac``)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", type=str, default="HalfCheetah-v5", help="Gymnasium environment id")
    p.add_argument("--actor", choices=["mlp", "transformer"], default="mlp")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-steps", type=int, default=1_000_000, help="environment steps in total")
    p.add_argument("--learning-starts", type=int, default=25_000, help="uniform random actions before this step")
    p.add_argument("--buffer-size", type=int, default=500_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--tau", type=float, default=0.005)
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate for actor and critics")
    p.add_argument("--alpha-lr", type=float, default=3e-4)
    p.add_argument("--alpha-init", type=float, default=1.0)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="the MLP actor's and critics' sizes")
    p.add_argument("--context-len", type=int, default=5, help="K: observations in the transformer's window")
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-heads", type=int, default=2)
    p.add_argument("--d-ff", type=int, default=512)
    p.add_argument("--dropout", type=float, default=0.05)
    p.add_argument("--device", type=str, default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) if given")
    p.add_argument("--eval-episodes", type=int, default=5, help="deterministic evaluation episodes at the end")
    p.add_argument("--out", type=str, default=None, help="also write the result JSON to this path")
    return p.parse_args(argv)


class MLPParams(nn.Module):
    """Observation [B, obs] -> unbounded parameters [B, 2A] (hidden layers with ReLU)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int]) -> None:
        super().__init__()
        sizes = [obs_dim, *hidden]
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(sizes):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 2 * act_dim))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class TransformerParams(TransformerActor):
    """Window [B, K, obs] and mask [B, K] -> unbounded parameters [B, 2A]: the stage-two transformer's body."""

    def __init__(self, obs_dim: int, act_dim: int, args: argparse.Namespace) -> None:
        box = np.ones(2 * act_dim, dtype=np.float32)
        super().__init__(obs_dim, 2 * act_dim, -box, box, context_len=args.context_len, d_model=args.d_model,
                         n_heads=args.n_heads, d_ff=args.d_ff, dropout=args.dropout)

    def forward(self, window: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(window, mask))


class TanhNormalPolicy:
    """Parameters [B, 2A] -> a tanh-squashed Normal over the box: samples with their log-probabilities, and the
    deterministic (mean) action ``tanh(loc)`` scaled to the box."""

    def __init__(self, low: torch.Tensor, high: torch.Tensor) -> None:
        self.scale, self.bias = (high - low) / 2.0, (high + low) / 2.0
        self.log_scale_sum = torch.log(self.scale).sum()

    @staticmethod
    def split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = params.chunk(2, dim=-1)
        return loc, (F.softplus(raw + SCALE_BIAS) + SCALE_MIN).clamp_min(SCALE_FLOOR)

    def sample(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action [B, A] and its log-probability [B, 1]."""
        loc, std = self.split(params)
        pre_tanh = loc + std * torch.randn_like(loc)
        squashed = torch.tanh(pre_tanh)
        log_prob = torch.distributions.Normal(loc, std).log_prob(pre_tanh)
        log_prob = log_prob - 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
        return squashed * self.scale + self.bias, log_prob.sum(-1, keepdim=True) - self.log_scale_sum

    def mean_action(self, params: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.split(params)[0]) * self.scale + self.bias


def evaluate(actor: nn.Module, policy: TanhNormalPolicy, args: argparse.Namespace, device: torch.device) -> float:
    """Mean undiscounted return of the mean action over ``args.eval_episodes`` episodes (seeded seed+10_000+i)."""
    env = gym.make(args.env)
    window = EnvWindow(args.context_len, int(np.prod(env.observation_space.shape)), device)
    returns = []
    for i in range(args.eval_episodes):
        obs, _ = env.reset(seed=args.seed + 10_000 + i)
        window.reset(obs)
        done, ep_return = False, 0.0
        while not done:
            with torch.no_grad():
                params = (actor(window.window, window.mask) if args.actor == "transformer"
                          else actor(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0)))
                act = policy.mean_action(params)[0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(act)
            window.push(obs)
            ep_return += float(reward)
            done = terminated or truncated
        returns.append(ep_return)
    env.close()
    return float(np.mean(returns))


def run(args: argparse.Namespace) -> dict:
    """Train SAC for ``args.total_steps`` env steps and return the benchmark result dict."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    transformer = args.actor == "transformer"

    env = gym.make(args.env)
    env.action_space.seed(args.seed)
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    low, high = (torch.as_tensor(b.astype(np.float32), device=device)
                 for b in (env.action_space.low, env.action_space.high))

    actor = (TransformerParams(obs_dim, act_dim, args) if transformer
             else MLPParams(obs_dim, act_dim, args.hidden)).to(device)
    policy = TanhNormalPolicy(low, high)
    qf1, qf2 = (QNetwork(obs_dim, act_dim, args.hidden).to(device) for _ in range(2))
    qf1_target, qf2_target = (QNetwork(obs_dim, act_dim, args.hidden).to(device) for _ in range(2))
    for net, target in ((qf1, qf1_target), (qf2, qf2_target)):
        target.load_state_dict(net.state_dict())
        target.requires_grad_(False)
    log_alpha = torch.tensor(math.log(args.alpha_init), device=device, requires_grad=True)
    target_entropy = -float(act_dim)
    q_optimizer = torch.optim.Adam([*qf1.parameters(), *qf2.parameters()], lr=args.lr)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.lr)
    alpha_optimizer = torch.optim.Adam([log_alpha], lr=args.alpha_lr)

    rb = (WindowReplayBuffer(args.buffer_size, obs_dim, act_dim, args.context_len, device) if transformer
          else ReplayBuffer(args.buffer_size, obs_dim, act_dim, device))
    window = EnvWindow(args.context_len, obs_dim, device)

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
                params = (actor(window.window, window.mask) if transformer
                          else actor(torch.as_tensor(obs, dtype=torch.float32, device=device).unsqueeze(0)))
                action = policy.sample(params)[0][0].cpu().numpy()

        next_obs, reward, terminated, truncated, _ = env.step(action)
        # Only true termination cuts the bootstrap; time-limit truncation still bootstraps from next_obs.
        if transformer:
            rb.add(obs, action, reward, next_obs, terminated, global_step, episode_first)
        else:
            rb.add(obs, action, reward, next_obs, terminated)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
            window.reset(obs)
            episode_first = global_step + 1
        else:
            window.push(obs)

        if global_step >= args.learning_starts:
            if transformer:
                b_win, b_mask, b_obs, b_act, b_rew, b_next_win, b_next_mask, b_next, b_term = rb.sample(args.batch_size)
            else:
                b_obs, b_act, b_rew, b_next, b_term = rb.sample(args.batch_size)
            alpha = log_alpha.exp()
            with torch.no_grad():  # the target: a fresh sample of the current policy at the next step
                next_params = actor(b_next_win, b_next_mask) if transformer else actor(b_next)
                next_act, next_log_prob = policy.sample(next_params)
                next_q = torch.min(qf1_target(b_next, next_act), qf2_target(b_next, next_act))
                target_q = b_rew + args.gamma * (1.0 - b_term) * (next_q - alpha.detach() * next_log_prob)
            qf_loss = F.mse_loss(qf1(b_obs, b_act), target_q) + F.mse_loss(qf2(b_obs, b_act), target_q)

            new_act, log_prob = policy.sample(actor(b_win, b_mask) if transformer else actor(b_obs))
            qf1.requires_grad_(False), qf2.requires_grad_(False)
            new_q = torch.min(qf1(b_obs, new_act), qf2(b_obs, new_act))
            qf1.requires_grad_(True), qf2.requires_grad_(True)
            actor_loss = (alpha.detach() * log_prob - new_q).mean()
            alpha_loss = -(log_alpha * (log_prob.detach() + target_entropy)).mean()

            for optimizer in (q_optimizer, actor_optimizer, alpha_optimizer):
                optimizer.zero_grad()
            (qf_loss + actor_loss + alpha_loss).backward()
            for optimizer in (q_optimizer, actor_optimizer, alpha_optimizer):
                optimizer.step()
            polyak(((qf1, qf1_target), (qf2, qf2_target)), args.tau)

    if device.type == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    env.close()
    eval_return = evaluate(actor, policy, args, device) if args.eval_episodes > 0 else None
    return benchmark_result(f"plain_pytorch_sac_{args.actor}", args, device, wall_start=wall_start,
                            learn_start=learn_start, end=end, eval_return=eval_return)


def main() -> None:
    """Command-line entry point: train, print one JSON line, optionally write it to --out."""
    args = parse_args()
    report(run(args), args.out)


if __name__ == "__main__":
    main()
