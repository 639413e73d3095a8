"""Plain-PyTorch recurrent TD3 for partially observed control: a single-file reference (torch, numpy and
gymnasium only; no TorchRL, no tensordict) in the style of pomdp-baselines' recurrent TD3 (Ni et al.
2022, "Recurrent Model-Free RL can be a Strong Baseline for Many POMDPs"). It is the plain loop the
library's recurrent learner is timed against, and the record of which design choices make a recurrent
agent learn velocity-masked Pendulum.

Design (all sizes configurable):

* separate recurrent networks for the actor and the critic; the twin Q heads share the critic's
  recurrent trunk (``--shared-critic-trunk``, the default, as in pomdp-baselines) or each has its own
  (``--no-shared-critic-trunk``);
* recurrent input per step: Linear+ReLU embeddings of the current observation, the previous action and
  the previous reward, concatenated, into an LSTM or GRU (``--cell``); zeros for the previous action and
  reward at an episode's first step;
* heads: the actor's MLP reads (memory, embedding of the current observation) and gives a tanh action in
  [-1, 1], scaled to the action bounds for the environment; each Q head reads (memory, embedding of the
  current observation and action);
* replay stores whole episodes; a batch is ``--batch-size`` sequences of ``--seq-len`` transitions
  starting anywhere inside an episode (``--seq-len -1``: whole episodes from their first step), each
  unrolled from a zero recurrent state, with the true previous action and reward as the first input;
  steps past an episode's end are padded and masked out of the losses;
* TD3 over sequences: the networks run once over the ``T + 1`` observations of a sequence, giving the
  memories at ``t`` and ``t + 1``;
  ``y_t = r_t + gamma * (1 - terminated_t) * min_i Q'_i(h'_{t+1}, o_{t+1}, a~_{t+1})`` with target
  policy smoothing; time-limit truncation bootstraps. Noise scales are in units of the action
  half-range (actions are handled in [-1, 1] internally).

Commands::

    python benchmarks/plain_recurrent_td3.py --env Pendulum-v1 --mask-velocity --cell lstm \\
        --total-steps 15000 --seed 0 --out result.json
    python benchmarks/plain_recurrent_td3.py --env Pendulum-v1 --mask-velocity --cell gru \\
        --total-steps 15000 --seed 0 --out result.json
    python benchmarks/plain_recurrent_td3.py --env Pendulum-v1 --cell lstm --total-steps 15000  # full observation

Every ``--eval-every`` env steps it prints ``step=<n> return=<mean>`` (deterministic policy, mean over
``--eval-episodes`` episodes, each with its own seed); at the end it prints one JSON line (and writes it
to ``--out``) with the per-evaluation returns, ``learning_steps_per_s`` (env steps per second over the
learning phase, evaluations excluded), ``peak_rss_mib`` and the arguments.

Measured (velocity-masked Pendulum-v1, seed 0, the defaults above: gamma 0.99, seq-len 64, batch 32,
learning starts 1000, one update per step, policy delay 2, shared critic trunk; one CPU thread on a
core shared with other work, so the rates are lower bounds): the LSTM reached -178 at 10k steps and
-124 at 15k (11.3 learning steps/s, peak RSS 493 MiB); the GRU -155 at 8k, -100 at 9k and -100 at
15k (7.9 learning steps/s, peak RSS 465 MiB).
"""
from __future__ import annotations

import argparse
import copy
import random
import resource
import sys
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from plain_td3 import report

# Observation indices kept by --mask-velocity (velocities dropped), per environment id.
VELOCITY_MASKS = {"Pendulum-v1": [0, 1]}  # [cos theta, sin theta, theta_dot] -> [cos theta, sin theta]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command-line flags (defaults: pomdp-baselines' recurrent TD3 sizes, TD3's noise and delay)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", type=str, default="Pendulum-v1", help="Gymnasium environment id")
    p.add_argument("--mask-velocity", action="store_true", help="drop the velocities from the observation")
    p.add_argument("--cell", type=str, default="lstm", choices=["lstm", "gru"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-steps", type=int, default=15_000, help="environment steps in total")
    p.add_argument("--learning-starts", type=int, default=1_000, help="uniform random actions before this step")
    p.add_argument("--buffer-size", type=int, default=1_000_000, help="transitions kept (oldest dropped)")
    p.add_argument("--seq-len", type=int, default=64, help="transitions per sampled sequence; -1: whole episodes")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per batch")
    p.add_argument("--updates-per-step", type=float, default=1.0, help="gradient updates per env step")
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--tau", type=float, default=0.005)
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate for actor and critic")
    p.add_argument("--policy-noise", type=float, default=0.2, help="target smoothing noise (x action half-range)")
    p.add_argument("--noise-clip", type=float, default=0.5, help="target noise clip (x action half-range)")
    p.add_argument("--exploration-noise", type=float, default=0.1, help="behaviour noise (x action half-range)")
    p.add_argument("--policy-delay", type=int, default=2, help="actor/target update every N critic updates")
    p.add_argument("--actor-q", type=str, default="q1", choices=["q1", "min"],
                   help="actor maximises Q1 (TD3) or min(Q1, Q2) (pomdp-baselines)")
    p.add_argument("--hidden", type=int, default=128, help="recurrent hidden size")
    p.add_argument("--obs-embed", type=int, default=32, help="observation embedding size")
    p.add_argument("--act-embed", type=int, default=8, help="previous-action embedding size")
    p.add_argument("--rew-embed", type=int, default=8, help="previous-reward embedding size (0: no reward input)")
    p.add_argument("--head-layers", type=int, nargs="+", default=[128, 128], help="actor and Q head MLP sizes")
    p.add_argument("--shared-critic-trunk", action=argparse.BooleanOptionalAction, default=True,
                   help="twin Q heads share one recurrent trunk (else one trunk each)")
    p.add_argument("--eval-every", type=int, default=1_000, help="evaluate every N env steps (0: only at the end)")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads(N)")
    p.add_argument("--out", type=str, default=None, help="also write the result JSON to this path")
    args = p.parse_args(argv)
    if args.mask_velocity and args.env not in VELOCITY_MASKS:
        p.error(f"--mask-velocity knows only {sorted(VELOCITY_MASKS)}")
    if args.seq_len == 0 or args.seq_len < -1:
        p.error("--seq-len must be positive or -1")
    return args


# --------------------------------------------------------------------------------------------- networks


def mlp(in_dim: int, layers: list[int], out_dim: int) -> nn.Sequential:
    """Linear+ReLU layers then a linear output."""
    mods: list[nn.Module] = []
    for width in layers:
        mods += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    mods.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*mods)


class Embed(nn.Module):
    """One Linear+ReLU feature layer (size 0: an empty feature)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.fc = nn.Linear(in_dim, out_dim) if out_dim > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fc is None:
            return x.new_zeros(x.shape[:-1] + (0,))
        return F.relu(self.fc(x))


class Trunk(nn.Module):
    """Embeds (o_t, a_{t-1}, r_{t-1}) per step and runs them through an LSTM/GRU: [B, T, *] -> [B, T, H]."""

    def __init__(self, obs_dim: int, act_dim: int, args: argparse.Namespace) -> None:
        super().__init__()
        self.obs_embed = Embed(obs_dim, args.obs_embed)
        self.act_embed = Embed(act_dim, args.act_embed)
        self.rew_embed = Embed(1, args.rew_embed)
        in_dim = args.obs_embed + args.act_embed + args.rew_embed
        cls = nn.LSTM if args.cell == "lstm" else nn.GRU
        self.rnn = cls(in_dim, args.hidden, batch_first=True)
        for name, param in self.rnn.named_parameters():  # as pomdp-baselines: orthogonal weights, zero biases
            if "bias" in name:
                nn.init.zeros_(param)
            else:
                nn.init.orthogonal_(param)

    def forward(self, obs, prev_act, prev_rew, state=None):
        x = torch.cat([self.obs_embed(obs), self.act_embed(prev_act), self.rew_embed(prev_rew)], dim=-1)
        return self.rnn(x, state)  # zero initial state when state is None


class RecurrentActor(nn.Module):
    """pi(h_t, o_t) -> a_t in [-1, 1]^A."""

    def __init__(self, obs_dim: int, act_dim: int, args: argparse.Namespace) -> None:
        super().__init__()
        self.trunk = Trunk(obs_dim, act_dim, args)
        self.obs_shortcut = Embed(obs_dim, args.obs_embed)
        self.head = mlp(args.hidden + args.obs_embed, args.head_layers, act_dim)

    def forward(self, obs, prev_act, prev_rew, state=None):
        mem, state = self.trunk(obs, prev_act, prev_rew, state)
        return torch.tanh(self.head(torch.cat([mem, self.obs_shortcut(obs)], dim=-1))), state


class RecurrentCritic(nn.Module):
    """One recurrent trunk with `n_heads` Q heads, each reading (h_t, embedding of (o_t, a_t))."""

    def __init__(self, obs_dim: int, act_dim: int, args: argparse.Namespace, n_heads: int) -> None:
        super().__init__()
        self.trunk = Trunk(obs_dim, act_dim, args)
        sc = args.obs_embed + args.act_embed + args.rew_embed  # pomdp-baselines: shortcut as wide as the RNN input
        self.shortcut = Embed(obs_dim + act_dim, sc)
        self.heads = nn.ModuleList(mlp(args.hidden + sc, args.head_layers, 1) for _ in range(n_heads))

    def memory(self, obs, prev_act, prev_rew):
        return self.trunk(obs, prev_act, prev_rew)[0]

    def q(self, mem, obs, act, heads=None):
        x = torch.cat([mem, self.shortcut(torch.cat([obs, act], dim=-1))], dim=-1)
        return [h(x) for h in (self.heads if heads is None else [self.heads[i] for i in heads])]


class TwinCritic(nn.Module):
    """Twin Q functions: one shared trunk with two heads, or two single-head critics."""

    def __init__(self, obs_dim: int, act_dim: int, args: argparse.Namespace) -> None:
        super().__init__()
        self.shared = args.shared_critic_trunk
        n = 1 if self.shared else 2
        self.critics = nn.ModuleList(
            RecurrentCritic(obs_dim, act_dim, args, 2 if self.shared else 1) for _ in range(n)
        )

    def memory(self, obs, prev_act, prev_rew):
        """Per-trunk memories over a whole sequence."""
        return [c.memory(obs, prev_act, prev_rew) for c in self.critics]

    def q(self, mems, obs, act, which: str = "both"):
        """List of Q values ("both": [Q1, Q2]; "q1": [Q1])."""
        if self.shared:
            return self.critics[0].q(mems[0], obs, act, heads=[0] if which == "q1" else None)
        crit = self.critics[:1] if which == "q1" else self.critics
        return [c.q(m, obs, act)[0] for c, m in zip(crit, mems)]


# ----------------------------------------------------------------------------------------------- replay


class EpisodeReplay:
    """Flat ring of transitions that remembers episode boundaries, sampled as padded sequences.

    Each step g (a global counter; slot g % capacity) stores o_g, a_g, r_g, o_{g+1}, terminated_g, the
    previous action and reward (zeros at an episode's first step), and the global index of its
    episode's start; the end of the episode is filled in when it finishes.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int) -> None:
        self.cap = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, act_dim), np.float32)
        self.prev_act = np.zeros((capacity, act_dim), np.float32)
        self.rew = np.zeros((capacity, 1), np.float32)
        self.prev_rew = np.zeros((capacity, 1), np.float32)
        self.term = np.zeros((capacity, 1), np.float32)
        self.ep_start = np.zeros(capacity, np.int64)
        self.ep_end = np.zeros(capacity, np.int64)  # exclusive; for the running episode: the write head
        self.count = 0  # transitions ever added
        self.cur_start = 0
        self.starts: list[int] = [0]  # global index of every episode's first step, the running one included
        self.max_ep_len = 1

    def add(self, obs, act, rew, next_obs, term, prev_act, prev_rew, episode_over: bool) -> None:
        i = self.count % self.cap
        self.obs[i], self.act[i], self.rew[i, 0], self.next_obs[i] = obs, act, rew, next_obs
        self.term[i, 0], self.prev_act[i], self.prev_rew[i, 0] = float(term), prev_act, prev_rew
        self.ep_start[i] = self.cur_start
        self.count += 1
        self.ep_end[i] = self.count
        if episode_over:
            g = np.arange(max(self.cur_start, self.count - self.cap), self.count)
            self.ep_end[g % self.cap] = self.count
            self.max_ep_len = max(self.max_ep_len, self.count - self.cur_start)
            self.cur_start = self.count
            self.starts.append(self.count)

    def sample(self, batch: int, seq_len: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """[B, L(+1), *] tensors: obs/prev_act/prev_rew over L + 1 inputs, act/rew/term/mask over L steps."""
        lo = max(0, self.count - self.cap)
        if seq_len < 0:  # whole episodes from their first step
            while self.starts[0] < lo:  # drop episodes whose first step was overwritten
                self.starts.pop(0)
            done = self.starts[:-1] if len(self.starts) > 1 else self.starts  # completed episodes
            start = np.asarray(done, np.int64)[rng.integers(0, len(done), size=batch)]
            seq_len = self.max_ep_len
        else:
            start = rng.integers(lo, self.count, size=batch)
        s_slot = start % self.cap
        # Within the running episode ep_end[slot] is only set at the slot itself: use the write head.
        end = np.where(self.ep_start[s_slot] == self.cur_start, self.count, self.ep_end[s_slot])
        g = start[:, None] + np.arange(seq_len)[None, :]  # [B, L]
        valid = g < end[:, None]
        slot = np.minimum(g, end[:, None] - 1) % self.cap  # padding repeats the last valid step
        as_t = torch.from_numpy
        obs = np.concatenate([self.obs[s_slot][:, None], self.next_obs[slot]], axis=1)
        prev_act = np.concatenate([self.prev_act[s_slot][:, None], self.act[slot]], axis=1)
        prev_rew = np.concatenate([self.prev_rew[s_slot][:, None], self.rew[slot]], axis=1)
        return {
            "obs": as_t(obs), "prev_act": as_t(prev_act), "prev_rew": as_t(prev_rew),
            "act": as_t(self.act[slot]), "rew": as_t(self.rew[slot]), "term": as_t(self.term[slot]),
            "mask": as_t(valid.astype(np.float32)[..., None]),
        }


# ------------------------------------------------------------------------------------------------- agent


class Agent:
    """Recurrent TD3: actor, twin critic, their targets and optimisers, and the update over sequences."""

    def __init__(self, obs_dim: int, act_dim: int, args: argparse.Namespace) -> None:
        self.args = args
        self.actor = RecurrentActor(obs_dim, act_dim, args)
        self.critic = TwinCritic(obs_dim, act_dim, args)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=args.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=args.lr)
        self.updates = 0

    def update(self, b: dict[str, torch.Tensor]) -> None:
        a = self.args
        obs, prev_act, prev_rew = b["obs"], b["prev_act"], b["prev_rew"]  # [B, T+1, *]
        mask = b["mask"]
        n_valid = mask.sum().clamp(min=1.0)
        with torch.no_grad():
            next_act, _ = self.actor_target(obs, prev_act, prev_rew)  # [B, T+1, A]
            noise = (torch.randn_like(next_act) * a.policy_noise).clamp(-a.noise_clip, a.noise_clip)
            next_act = (next_act[:, 1:] + noise[:, 1:]).clamp(-1.0, 1.0)
            t_mems = [m[:, 1:] for m in self.critic_target.memory(obs, prev_act, prev_rew)]
            q1_t, q2_t = self.critic_target.q(t_mems, obs[:, 1:], next_act)
            y = b["rew"] + a.gamma * (1.0 - b["term"]) * torch.min(q1_t, q2_t)
        # Online memories need only the first T inputs (the recurrence is causal).
        mems = self.critic.memory(obs[:, :-1], prev_act[:, :-1], prev_rew[:, :-1])
        q1, q2 = self.critic.q(mems, obs[:, :-1], b["act"])
        critic_loss = (((q1 - y) ** 2 + (q2 - y) ** 2) * mask).sum() / n_valid
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        self.updates += 1

        if self.updates % a.policy_delay == 0:
            # The critic's memories do not depend on the actor (previous actions come from replay).
            with torch.no_grad():
                mems = self.critic.memory(obs[:, :-1], prev_act[:, :-1], prev_rew[:, :-1])
            pi, _ = self.actor(obs[:, :-1], prev_act[:, :-1], prev_rew[:, :-1])
            qs = self.critic.q(mems, obs[:, :-1], pi, which="q1" if a.actor_q == "q1" else "both")
            q_pi = qs[0] if len(qs) == 1 else torch.min(qs[0], qs[1])
            actor_loss = -(q_pi * mask).sum() / n_valid
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            with torch.no_grad():
                for net, tgt in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                    params, tparams = list(net.parameters()), list(tgt.parameters())
                    torch._foreach_lerp_(tparams, params, a.tau)


class Policy:
    """Steps the actor one observation at a time, carrying its recurrent state and last action/reward."""

    def __init__(self, actor: RecurrentActor, act_dim: int) -> None:
        self.actor, self.act_dim = actor, act_dim
        self.reset()

    def reset(self) -> None:
        self.state = None
        self.prev_act = np.zeros(self.act_dim, np.float32)
        self.prev_rew = 0.0

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Deterministic action in [-1, 1] for `obs`; advances the recurrent state."""
        o = torch.as_tensor(obs, dtype=torch.float32).view(1, 1, -1)
        pa = torch.as_tensor(self.prev_act).view(1, 1, -1)
        pr = torch.tensor([[[self.prev_rew]]], dtype=torch.float32)
        act, self.state = self.actor(o, pa, pr, self.state)
        return act.view(-1).numpy()

    def observe(self, act: np.ndarray, rew: float) -> None:
        """Record the action taken and the reward received, inputs of the next step."""
        self.prev_act, self.prev_rew = np.asarray(act, np.float32), float(rew)


# ------------------------------------------------------------------------------------------ env helpers


def make_env(args: argparse.Namespace) -> tuple[gym.Env, list[int] | None]:
    env = gym.make(args.env)
    keep = VELOCITY_MASKS[args.env] if args.mask_velocity else None
    return env, keep


def observe(obs: np.ndarray, keep: list[int] | None) -> np.ndarray:
    obs = np.asarray(obs, np.float32)
    return obs[keep] if keep is not None else obs


def evaluate(actor: RecurrentActor, args: argparse.Namespace, act_dim: int, scale, bias) -> float:
    """Mean undiscounted return of the noise-free policy; episode i is seeded seed + 10_000 + i."""
    env, keep = make_env(args)
    policy = Policy(actor, act_dim)
    returns = []
    for i in range(args.eval_episodes):
        obs, _ = env.reset(seed=args.seed + 10_000 + i)
        policy.reset()
        done, ep_return = False, 0.0
        while not done:
            a = policy(observe(obs, keep))
            obs, reward, terminated, truncated, _ = env.step(a * scale + bias)
            policy.observe(a, reward)
            ep_return += float(reward)
            done = terminated or truncated
        returns.append(ep_return)
    env.close()
    return float(np.mean(returns))


# -------------------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> dict:
    """Train for `args.total_steps` env steps, evaluating every `args.eval_every`; return the result dict."""
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    env, keep = make_env(args)
    env.action_space.seed(args.seed)
    obs_dim = len(keep) if keep is not None else int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    scale, bias = (high - low) / 2.0, (high + low) / 2.0

    agent = Agent(obs_dim, act_dim, args)
    policy = Policy(agent.actor, act_dim)
    rb = EpisodeReplay(min(args.buffer_size, args.total_steps), obs_dim, act_dim)

    evals: list[dict] = []
    eval_time = 0.0
    learn_start: float | None = None
    update_credit = 0.0
    wall_start = time.perf_counter()

    def do_eval(step: int) -> None:
        nonlocal eval_time
        t0 = time.perf_counter()
        ret = evaluate(agent.actor, args, act_dim, scale, bias)
        eval_time += time.perf_counter() - t0
        evals.append({"step": step, "return": ret})
        print(f"step={step} return={ret:.1f}", flush=True)

    obs, _ = env.reset(seed=args.seed)
    obs = observe(obs, keep)
    policy.reset()
    for step in range(args.total_steps):
        if step == args.learning_starts:
            learn_start = time.perf_counter()
            eval_time = 0.0
        a = policy(obs)  # always advance the recurrent state, also during the random phase
        if step < args.learning_starts:
            a = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
        else:
            a = np.clip(a + rng.normal(0.0, args.exploration_noise, act_dim), -1.0, 1.0).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(a * scale + bias)
        next_obs = observe(next_obs, keep)
        over = terminated or truncated
        rb.add(obs, a, reward, next_obs, terminated, policy.prev_act, policy.prev_rew, over)
        policy.observe(a, reward)
        obs = next_obs
        if over:
            obs, _ = env.reset()
            obs = observe(obs, keep)
            policy.reset()

        if step >= args.learning_starts:
            update_credit += args.updates_per_step
            while update_credit >= 1.0:
                agent.update(rb.sample(args.batch_size, args.seq_len, rng))
                update_credit -= 1.0
        if args.eval_every > 0 and (step + 1) % args.eval_every == 0 and args.eval_episodes > 0:
            do_eval(step + 1)

    end = time.perf_counter()
    if args.eval_episodes > 0 and (not evals or evals[-1]["step"] != args.total_steps):
        do_eval(args.total_steps)
    env.close()
    learning_steps = max(args.total_steps - args.learning_starts, 0)
    learning_time = (end - learn_start - eval_time) if learn_start is not None else 0.0
    return {
        "impl": "plain_pytorch_recurrent_td3",
        "env": args.env,
        "mask_velocity": args.mask_velocity,
        "cell": args.cell,
        "seed": args.seed,
        "total_steps": args.total_steps,
        "learning_steps_per_s": learning_steps / learning_time if learning_time > 0 else None,
        "wall_time_s": time.perf_counter() - wall_start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "evals": evals,
        "final_return": evals[-1]["return"] if evals else None,
        "args": vars(args),
        "argv": sys.argv[1:],
    }


def main() -> None:
    """Command-line entry point: train, print one JSON line, optionally write it to --out."""
    args = parse_args()
    report(run(args), args.out)


if __name__ == "__main__":
    main()
