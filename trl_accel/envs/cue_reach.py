"""``cue_reach``: a point-mass memory task in pure torch, batched as a TorchRL env.

A point mass moves in the arena ``[-1, 1]^2``. At reset its start is uniform in the arena and its goal is
uniform in the arena at distance >= ``MIN_GOAL_DISTANCE`` (0.5) from the start. The goal is shown only in the
first ``cue_steps`` observations of an episode (the reset observation is the first); the agent is scored on
where it is once the goal has disappeared, so it must remember the goal.

Observation ``observation`` float32 ``[N, 6]`` (six, not seven: no velocity, see below):

====  ===========================================================================
0:2   position ``(x, y)``
2:4   the goal ``(gx, gy)`` while the cue is visible, zeros after
4     cue flag: 1.0 while the goal is shown, 0.0 after
5     progress ``t / episode_steps`` (``t`` = 0 at the reset observation)
====  ===========================================================================

``state`` float32 ``[N, 5]``: ``(x, y, gx, gy, progress)``, the goal always visible (for a privileged teacher).

Action ``action`` float32 ``[N, 2]`` in ``[-1, 1]``: the position moves by ``max_speed * action`` (clipped to
the spec first) plus a Gaussian drift of std ``drift_std`` per axis, then is clamped to the arena.

Reward ``reward`` float32 ``[N, 1]``: 0 for the ``cue_steps`` actions taken while the goal is shown, then
``-distance(position, goal)`` after every later step: dense, so TD3 gets a signal at every step that needs
memory (a sparse success bonus would rarely be seen by random exploration: 0.6 % of episodes), and zero during
the cue, so that the return measures only where the agent goes once the goal is hidden.
``success`` bool ``[N, 1]``: ``distance < goal_radius`` at this step. Episodes are truncated (``done``)
after ``episode_steps`` steps, never terminated.

Why the defaults (``episode_steps=40, cue_steps=2, max_speed=0.1, goal_radius=0.15, drift_std=0.05``) need memory: during
the cue the agent moves at most ``cue_steps * max_speed * sqrt(2) = 0.28`` (diagonally), so it ends the cue at
least ``0.5 - 0.28 = 0.22 > goal_radius`` from the goal: the goal cannot be reached while visible, and the
agent has to keep going for up to 18 more steps after it vanished (up to 2.0 per axis at 0.1 per step).
A context window of 3 observations ends at step 40 and starts at step 38, long after the cue (steps 0-1).
(``cue_steps=4`` with ``max_speed=0.1`` would not do: 0.57 of diagonal travel reaches the goal radius of goals
up to 0.72 away during the cue, and a memoryless agent could then just stop.)

Why the drift (``drift_std=0.05``): without it, an agent that sees its previous action (``PreviousActionReward``)
or two consecutive positions (a window of >= 2) could relay its velocity instead of remembering the goal: "during
the cue, set the velocity that reaches the goal at the episode's end; after it, repeat the previous action"
(:func:`velocity_continuation_action`) succeeds in 100 % of drift-free episodes. With the drift such an open-loop
agent ends about ``0.05 * sqrt(38) = 0.31`` per axis from where it aimed, while an agent that knows the goal steers
against the drift every step (max speed 0.1 against a drift of 0.05). The observation holds no velocity for
the same reason.

Figures, from ``.venv/bin/python -m trl_accel.envs.cue_reach`` (one busy CPU core):

* success at the last step of 4096 episodes (defaults, seed 0): random 0.009, memoryless 0.015, velocity
  continuation (with ``PreviousActionReward``) 0.15, oracle 0.99 (without drift: 0.006, 0.016, 1.0, 1.0);
* ``env.rollout`` with :func:`random_action`: 1,100-1,400 steps/s with ``num_envs=1`` (``_step`` alone takes
  ~0.2 ms; TorchRL's rollout machinery the rest: a trivial 5-line ``EnvBase`` runs 2,400-2,800 steps/s on
  the same core), and 720-820 batched steps/s = 0.73-0.84 M env steps/s with ``num_envs=1024``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from trl_accel import keys
from trl_accel.envs.errors import EnvConfigError

#: The key of the full state (position, goal, progress).
STATE = keys.STATE
#: The goal is sampled at least this far from the start.
MIN_GOAL_DISTANCE = 0.5
#: Defaults of :class:`CueReachEnv` (the reference policies use ``MAX_SPEED``).
EPISODE_STEPS, CUE_STEPS, MAX_SPEED, GOAL_RADIUS, DRIFT_STD = 40, 2, 0.1, 0.15, 0.05
OBS_DIM, STATE_DIM, ACTION_DIM = 6, 5, 2


class CueReachEnv(EnvBase):
    """Reach a goal that is shown only during the first ``cue_steps`` observations; batch size ``[num_envs]``.

    Writes (all ``[N, ...]`` with ``N = num_envs``; the first four also on reset):

    * ``observation`` float32 ``[N, 6]``: position (2), goal or zeros (2), cue flag (1), progress (1);
    * ``state`` float32 ``[N, 5]``: position (2), goal (2), progress (1);
    * ``success`` bool ``[N, 1]``: distance to the goal < ``goal_radius``;
    * ``done``, ``terminated`` (always False), ``truncated`` bool ``[N, 1]``;
    * ``reward`` float32 ``[N, 1]``: 0 for the first ``cue_steps`` steps, then ``-distance``.

    Reads ``action`` float32 ``[N, 2]`` (clipped to ``[-1, 1]``) and, on reset, the optional ``_reset``
    mask ``[N, 1]`` or ``[N]``: only masked envs start a new episode, the others keep their state.
    All randomness comes from a private :class:`torch.Generator` on ``device`` (see :meth:`set_seed`).
    """

    def __init__(self, *, num_envs: int = 1, episode_steps: int = EPISODE_STEPS, cue_steps: int = CUE_STEPS,
                 max_speed: float = MAX_SPEED, goal_radius: float = GOAL_RADIUS, drift_std: float = DRIFT_STD,
                 device: torch.device | str = "cpu", seed: int | None = None):
        _check_args(num_envs, episode_steps, cue_steps, max_speed, goal_radius)
        if not (isinstance(drift_std, (int, float)) and 0.0 <= drift_std < max_speed):
            raise EnvConfigError(f"drift_std must be in [0, max_speed={max_speed}) (the agent must be able to steer "
                                 f"against it), got {drift_std!r}.")
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.num_envs, self.episode_steps, self.cue_steps = num_envs, episode_steps, cue_steps
        self.max_speed, self.goal_radius, self.drift_std = float(max_speed), float(goal_radius), float(drift_std)
        self._generator = torch.Generator(device=self.device)
        self._set_seed(seed)
        # The state, updated in place: position and goal [N, 2], step t [N, 1] (0 at the reset observation).
        # Drawn at the first reset, so that a seed set after construction gives the same episodes.
        self._s = {"position": torch.zeros(num_envs, 2, device=self.device),
                   "goal": torch.zeros(num_envs, 2, device=self.device),
                   "t": torch.zeros(num_envs, 1, dtype=torch.long, device=self.device)}
        self._make_specs()

    def _make_specs(self) -> None:
        n, dev = self.num_envs, self.device

        def box(low: list[float], high: list[float]) -> Bounded:
            return Bounded(low=torch.tensor(low, device=dev).expand(n, -1), high=torch.tensor(high, device=dev).expand(n, -1),
                           shape=(n, len(low)), dtype=torch.float32, device=dev)

        flag = Categorical(2, shape=(n, 1), dtype=torch.bool, device=dev)
        self.observation_spec = Composite(
            {keys.OBSERVATION: box([-1.0] * 4 + [0.0, 0.0], [1.0] * OBS_DIM),
             STATE: box([-1.0] * 4 + [0.0], [1.0] * STATE_DIM),
             keys.SUCCESS: flag.clone()}, shape=(n,), device=dev)
        self.action_spec = Bounded(low=-1.0, high=1.0, shape=(n, ACTION_DIM), dtype=torch.float32, device=dev)
        self.reward_spec = Unbounded(shape=(n, 1), dtype=torch.float32, device=dev)
        self.done_spec = Composite({keys.DONE: flag.clone(), keys.TERMINATED: flag.clone(), keys.TRUNCATED: flag.clone()},
                                   shape=(n,), device=dev)

    # ---------------------------------------------------------------- dynamics
    def _uniform(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.rand(shape, generator=self._generator, device=self.device) * 2.0 - 1.0

    def _new_episodes(self, mask: torch.Tensor) -> None:
        """Start new episodes where ``mask`` ([N] bool) is set: a uniform start, a goal >= 0.5 away."""
        start = self._uniform((self.num_envs, 2))
        goal = self._uniform((self.num_envs, 2))
        too_close = torch.linalg.vector_norm(goal - start, dim=-1) < MIN_GOAL_DISTANCE
        while bool(too_close.any()):  # rejection sampling: ~5 rounds for 1024 envs; whole-batch draws
            goal = torch.where(too_close.unsqueeze(-1), self._uniform((self.num_envs, 2)), goal)
            too_close = torch.linalg.vector_norm(goal - start, dim=-1) < MIN_GOAL_DISTANCE
        new = mask.unsqueeze(-1)
        self._s["position"].copy_(torch.where(new, start, self._s["position"]))
        self._s["goal"].copy_(torch.where(new, goal, self._s["goal"]))
        self._s["t"].masked_fill_(new, 0)

    def _observe(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The output entries of the current state, and the distance to the goal [N, 1]."""
        s = self._s
        position, goal, t = s["position"], s["goal"], s["t"]
        cue = (t < self.cue_steps).to(torch.float32)
        progress = t.to(torch.float32) / self.episode_steps
        distance = torch.linalg.vector_norm(position - goal, dim=-1, keepdim=True)
        return ({keys.OBSERVATION: torch.cat([position, goal * cue, cue, progress], dim=-1),
                 STATE: torch.cat([position, goal, progress], dim=-1),
                 keys.SUCCESS: distance < self.goal_radius}, distance)

    def _output(self, values: dict[str, torch.Tensor]) -> TensorDict:
        # The values are fresh tensors of the right shapes on the env's device: skip TensorDict's checks.
        return TensorDict._new_unsafe(values, batch_size=self.batch_size, device=self.device)

    # ---------------------------------------------------------------- EnvBase API
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        mask = tensordict.get("_reset", None) if tensordict is not None else None
        if mask is None:
            mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._new_episodes(mask.reshape(-1).to(device=self.device, dtype=torch.bool))
        out, _ = self._observe()
        false = torch.zeros(self.num_envs, 1, dtype=torch.bool, device=self.device)
        out.update({keys.DONE: false, keys.TERMINATED: false.clone(), keys.TRUNCATED: false.clone()})
        return self._output(out)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get(keys.ACTION).to(torch.float32).clamp(-1.0, 1.0)
        s = self._s
        was_cue = s["t"] < self.cue_steps
        s["position"].add_(action, alpha=self.max_speed)
        if self.drift_std > 0:
            s["position"].add_(torch.randn(s["position"].shape, generator=self._generator, device=self.device),
                               alpha=self.drift_std)
        s["position"].clamp_(-1.0, 1.0)
        s["t"].add_(1)
        out, distance = self._observe()
        truncated = s["t"] >= self.episode_steps
        out.update({keys.REWARD: distance.neg().masked_fill_(was_cue, 0.0), keys.DONE: truncated,
                    keys.TERMINATED: torch.zeros_like(truncated), keys.TRUNCATED: truncated.clone()})
        return self._output(out)

    def _set_seed(self, seed: int | None) -> None:
        """Seed the env's generator (a fresh random seed when ``None``); the next reset draws from it."""
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(int(seed))


def _check_args(num_envs: int, episode_steps: int, cue_steps: int, max_speed: float, goal_radius: float) -> None:
    if not isinstance(num_envs, int) or num_envs < 1:
        raise EnvConfigError(f"num_envs must be an int >= 1, got {num_envs!r}.")
    if not isinstance(episode_steps, int) or episode_steps < 2:
        raise EnvConfigError(f"episode_steps must be an int >= 2, got {episode_steps!r}.")
    if not isinstance(cue_steps, int) or not 1 <= cue_steps < episode_steps:
        raise EnvConfigError(f"cue_steps must be an int in [1, episode_steps) = [1, {episode_steps}), got {cue_steps!r}.")
    if not (isinstance(max_speed, (int, float)) and 0.0 < max_speed <= 2.0):
        raise EnvConfigError(f"max_speed must be in (0, 2] (the arena is 2 wide), got {max_speed!r}.")
    if not (isinstance(goal_radius, (int, float)) and 0.0 < goal_radius < MIN_GOAL_DISTANCE):
        raise EnvConfigError(f"goal_radius must be in (0, {MIN_GOAL_DISTANCE}) (the goal starts at least "
                             f"{MIN_GOAL_DISTANCE} away), got {goal_radius!r}.")


def make_cue_reach_env(*, num_envs: int = 1, episode_steps: int = EPISODE_STEPS, cue_steps: int = CUE_STEPS,
                       max_speed: float = MAX_SPEED, goal_radius: float = GOAL_RADIUS, drift_std: float = DRIFT_STD,
                       device: torch.device | str = "cpu", seed: int | None = None) -> CueReachEnv:
    """A :class:`CueReachEnv` (see it for keys and shapes); raises :class:`EnvConfigError` (a ``ValueError``).

    >>> env = make_cue_reach_env(num_envs=4, seed=0)
    >>> rollout = env.rollout(env.episode_steps)
    >>> rollout["observation"].shape, rollout["next", "reward"].shape, bool(rollout[:, -1]["next", "truncated"].all())
    (torch.Size([4, 40, 6]), torch.Size([4, 40, 1]), True)
    """
    return CueReachEnv(num_envs=num_envs, episode_steps=episode_steps, cue_steps=cue_steps, max_speed=max_speed,
                       goal_radius=goal_radius, drift_std=drift_std, device=device, seed=seed)


# -------------------------------------------------------------------- reference policies
def _towards(target: torch.Tensor, position: torch.Tensor, max_speed: float) -> torch.Tensor:
    """The action that moves from ``position`` to ``target`` as fast as the spec allows, stopping there."""
    return ((target - position) / max_speed).clamp(-1.0, 1.0)


def oracle_action(tensordict: TensorDictBase, *, max_speed: float = MAX_SPEED) -> torch.Tensor:
    """Reads ``state`` [*B, 5]; returns ``action`` [*B, 2] straight to the goal (each axis at full speed
    until it is reached, then still). ``max_speed`` must be the env's."""
    state = tensordict.get(STATE)
    return _towards(state[..., 2:4], state[..., 0:2], max_speed)


#: After the cue, the memoryless policy moves this far towards the arena centre (on its longer axis), then stops.
MEMORYLESS_INWARD = 0.5


def memoryless_best_action(tensordict: TensorDictBase, *, max_speed: float = MAX_SPEED,
                           cue_steps: int = CUE_STEPS, episode_steps: int = EPISODE_STEPS) -> torch.Tensor:
    """Reads ``observation`` [*B, 6] only; returns ``action`` [*B, 2]. Pass the env's settings if not the defaults.

    While the cue is visible it moves towards the goal at full speed. After, knowing nothing of the goal but
    that it lies in the arena, it moves ``MEMORYLESS_INWARD`` towards the centre and stops there (the best of
    the strategies tried: stopping at once scores 0, going all the way to the centre slightly less). The
    progress is its only clock.
    """
    obs = tensordict.get(keys.OBSERVATION)
    position, goal, cue, progress = obs[..., 0:2], obs[..., 2:4], obs[..., 4:5], obs[..., 5:6]
    steps_after_cue = torch.round(progress * episode_steps) - cue_steps
    moving = (steps_after_cue < round(MEMORYLESS_INWARD / max_speed)).to(obs.dtype)
    # Straight to the centre, the longer axis at full speed, stopping at the centre.
    inwards = -position / position.abs().amax(dim=-1, keepdim=True).clamp_min(max_speed) * moving
    return torch.where(cue > 0.5, _towards(goal, position, max_speed), inwards)


def velocity_continuation_action(tensordict: TensorDictBase, *, max_speed: float = MAX_SPEED,
                                 cue_steps: int = CUE_STEPS, episode_steps: int = EPISODE_STEPS) -> torch.Tensor:
    """Reads ``observation`` [*B, 6] and ``prev_action`` [*B, 2] (:class:`~trl_accel.envs.PreviousActionReward`):
    what a memoryless agent can do with a channel that relays its own velocity (the previous action, or two
    consecutive positions of a short window). During the cue it sets the constant velocity that reaches the goal
    at the episode's end; after it, it repeats the previous action. Without drift this succeeds always; the drift
    makes it miss, since it cannot see how far the goal now is."""
    obs = tensordict.get(keys.OBSERVATION)
    position, goal, cue, progress = obs[..., 0:2], obs[..., 2:4], obs[..., 4:5], obs[..., 5:6]
    steps_left = (episode_steps - torch.round(progress * episode_steps)).clamp_min(1.0)
    aimed = ((goal - position) / (steps_left * max_speed)).clamp(-1.0, 1.0)
    return torch.where(cue > 0.5, aimed, tensordict.get(keys.PREV_ACTION))


def random_action(tensordict: TensorDictBase) -> torch.Tensor:
    """``action`` [*B, 2] uniform in ``[-1, 1]`` (torch's global generator), for ``observation`` [*B, D]."""
    obs = tensordict.get(keys.OBSERVATION)
    return torch.rand(*obs.shape[:-1], ACTION_DIM, device=obs.device) * 2.0 - 1.0


def success_rate(env: EnvBase, policy: Callable[[TensorDictBase], torch.Tensor], episodes: int) -> float:
    """Fraction of episodes whose last step is a success, for ``policy`` (tensordict -> ``action``).

    ``env`` is a :class:`CueReachEnv` (possibly transformed) with batch size ``[N]``; it is reset and rolled
    for ``ceil(episodes / N)`` whole episodes per env, all of which count (so at least ``episodes``).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}.")
    base = env.base_env if hasattr(env, "base_env") else env
    rounds = math.ceil(episodes / base.num_envs)
    rollout = env.rollout(rounds * base.episode_steps, policy=lambda td: td.set(keys.ACTION, policy(td)),
                          break_when_any_done=False)
    done = rollout.get(("next", keys.DONE)).squeeze(-1)
    return rollout.get(("next", keys.SUCCESS)).squeeze(-1)[done].float().mean().item()


def _main() -> None:
    """Print the baselines and the rollout speed quoted in the module docstring."""
    import time

    from torchrl.envs import TransformedEnv

    from trl_accel.envs.previous import PreviousActionReward

    env = make_cue_reach_env(num_envs=1024, seed=0)
    relayed = TransformedEnv(make_cue_reach_env(num_envs=1024, seed=0), PreviousActionReward())
    torch.manual_seed(0)
    for name, fn, on in (("random", random_action, env), ("memoryless", memoryless_best_action, env),
                         ("velocity continuation", velocity_continuation_action, relayed), ("oracle", oracle_action, env)):
        print(f"{name}: success at the last step of 4096 episodes = {success_rate(on, fn, 4096):.3f}")
    policy = lambda td: td.set(keys.ACTION, random_action(td))
    for num_envs, steps in ((1, 4000), (1024, 1000)):
        env = make_cue_reach_env(num_envs=num_envs, seed=0)
        env.rollout(100, policy, break_when_any_done=False)
        start = time.perf_counter()
        env.rollout(steps, policy, break_when_any_done=False)
        rate = steps / (time.perf_counter() - start)
        print(f"num_envs={num_envs}: {rate:,.0f} rollout steps/s = {rate * num_envs:,.0f} env steps/s")


if __name__ == "__main__":
    _main()


__all__ = [
    "MIN_GOAL_DISTANCE",
    "STATE",
    "CueReachEnv",
    "make_cue_reach_env",
    "memoryless_best_action",
    "oracle_action",
    "random_action",
    "velocity_continuation_action",
    "success_rate",
]
