"""``grid_memory``: a batched grid-world memory task in pure torch (thousands of agents on one CPU core).

Each episode every agent gets a new ``size x size`` grid (default 15) made from smooth noise, a random
target tile and a random start tile. Entering the target earns reward 1.0 and respawns the agent on
another random tile of the same grid (the target stays where it is), so an episode's return counts the
trips to the target. The agent only sees a small square around itself: maximising reward needs
exploring well once, then remembering the route back from features of the grid.

Grid generation (vectorised over the envs being reset):

* value noise: for each octave ``o < octaves`` uniform random values on a ``(2**(o+1) + 1)``-point square
  lattice, bilinearly upsampled to the grid and summed with amplitude ``0.5**o``;
* walls where the noise exceeds its ``1 - wall_fraction`` quantile over the interior (so
  ``round(wall_fraction * (size-2)**2)`` interior walls); the border is always wall;
* the start is drawn uniformly among floor tiles; its 4-connected floor region is found by a flood
  fill (rows packed into int64 bit masks, dilated within the floor until nothing changes). A grid whose
  start region holds less than half of its floor is redrawn, so every grid has one dominant region
  and the start lies in it. The target (!= start) and every respawn (!= target) are drawn uniformly
  from that region: every target is reachable.

Tile types: 0 floor, 1 wall, 2 target, 3 outside the grid (view cells beyond the border).

Keys (batch size ``[num_envs]``):

* ``observation`` float32 ``[N, view*view*4]``: the one-hot local view, flattened. Reshaped to
  ``[N, view, view, 4]``, entry ``[n, i, j, k]`` is 1 where the tile at grid ``(row, col) =
  (r - view//2 + i, c - view//2 + j)`` has type ``k``, with ``(r, c)`` the agent's position: rows run
  top to bottom (``i = 0`` is up), columns left to right, the agent is at the centre ``(view//2, view//2)``.
* ``position``, ``target`` int64 ``[N, 2]``: ``(row, col)`` of the agent and of the target (for tests
  and a privileged critic; a memory agent should only use ``observation``).
* ``action`` int64 one-hot ``[N, 4]`` (:class:`~torchrl.data.OneHot`): index 0 up (row - 1), 1 down
  (row + 1), 2 left (col - 1), 3 right (col + 1). Moving into a wall leaves the agent in place.
* ``reward`` float32 ``[N, 1]``: 1.0 on the step the agent enters the target, else 0.
* ``done``, ``terminated``, ``truncated`` bool ``[N, 1]``: truncated after ``episode_steps`` steps,
  never terminated.

Defaults: ``num_envs=1, size=15, view=5, episode_steps=128, wall_fraction=0.3, octaves=2``.

Measured on one core (``OMP_NUM_THREADS=1 taskset -c 0``) of a 2-core Xeon VM, defaults, torch 2.13,
TorchRL 0.14.1:

* speed, 4096 agents, random policy, truncation resets included: ~1.0M agent-steps per CPU-second
  through ``env.step_and_maybe_reset`` (``step`` + ``step_mdp`` + partial reset), ~0.6M through
  ``env.rollout(128)`` (which also stacks the steps); wall-clock 0.33M and 0.18M with the core shared
  with other jobs. A full reset of 4096 grids takes ~0.2 s, a step ~4 ms.
* mean reward per 128-step episode over 512 episodes: random policy 0.39, oracle (shortest path on the
  known grid) 15.4 -- the floor and ceiling a learned agent sits between.

Reproduce with ``OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python -m trl_accel.envs.grid_memory``.

>>> env = GridMemoryEnv(num_envs=8, seed=0)
>>> rollout = env.rollout(128, oracle_policy(env), break_when_any_done=False)
>>> rollout["observation"].shape, bool(rollout["next", "reward"].sum(1).min() > 0)
(torch.Size([8, 128, 100]), True)
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, OneHot, Unbounded
from torchrl.envs import EnvBase

from trl_accel import keys

TILE_FLOOR, TILE_WALL, TILE_TARGET, TILE_OUTSIDE = 0, 1, 2, 3
N_TILE_TYPES = 4
POSITION, TARGET = "position", "target"  #: [N, 2] int64 (row, col) of the agent, of the target
#: (row, col) change of each action index: up, down, left, right.
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))
_MAX_TRIES = 100

Policy = Callable[[TensorDictBase], TensorDictBase]


class GridMemoryEnv(EnvBase):
    """The grid memory task as a TorchRL env of batch size ``[num_envs]``; see the module docstring for keys.

    ``_reset`` honours a ``_reset`` mask (``[N, 1]`` or ``[N]``): only masked envs get a new grid,
    target and start; the others keep their state. All randomness of the env uses a private
    :class:`torch.Generator` on ``device`` (seeded by ``seed`` or :meth:`set_seed`); note that
    ``env.rand_action`` / ``env.rollout()`` without a policy draw actions from torch's global RNG,
    :func:`random_policy` from its own seeded generator.
    """

    def __init__(self, *, num_envs: int = 1, size: int = 15, view: int = 5, episode_steps: int = 128,
                 wall_fraction: float = 0.3, octaves: int = 2, device: torch.device | str = "cpu",
                 seed: int | None = None):
        _check_args(num_envs, size, view, episode_steps, wall_fraction, octaves)
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.num_envs, self.size, self.view = num_envs, size, view
        self.episode_steps, self.wall_fraction, self.octaves = episode_steps, wall_fraction, octaves
        dev, n, s = self.device, num_envs, size
        self._half = view // 2
        padded = size + 2 * self._half
        self._generator = torch.Generator(device=dev)
        self._set_seed(seed)
        # State. ``_tiles`` is the grid with the target marked, padded by ``view // 2`` outside cells.
        self._walls = torch.ones(n, s, s, dtype=torch.bool, device=dev)
        self._region = torch.zeros(n, s, s, dtype=torch.bool, device=dev)
        self._tiles = torch.full((n, padded, padded), TILE_OUTSIDE, dtype=torch.uint8, device=dev)
        self._position = torch.zeros(n, 2, dtype=torch.int64, device=dev)
        self._target = torch.zeros(n, 2, dtype=torch.int64, device=dev)
        self._steps = torch.zeros(n, dtype=torch.int64, device=dev)
        self._dist = torch.zeros(n, s, s, dtype=torch.int64, device=dev)
        self._dist_valid = torch.zeros(n, dtype=torch.bool, device=dev)
        # Constants: flat offsets of the view cells from the view's top-left corner in ``_tiles``.
        cells = torch.arange(view, device=dev)
        self._view_offsets = (cells[:, None] * padded + cells[None, :]).reshape(1, -1)
        self._moves = torch.tensor(MOVES, dtype=torch.int64, device=dev)
        self._one_hot_rows = torch.eye(N_TILE_TYPES, dtype=torch.float32, device=dev)
        self._upsample = [_bilinear_matrix(min(2 ** (o + 1) + 1, size), size).to(dev) for o in range(octaves)]
        self._make_specs()
        self._new_episodes(torch.arange(n, device=dev))

    # ---------------------------------------------------------------- specs
    def _make_specs(self) -> None:
        n, dev = self.num_envs, self.device
        cell = Bounded(low=0, high=self.size - 1, shape=(n, 2), dtype=torch.int64, device=dev)
        self.observation_spec = Composite(
            {keys.OBSERVATION: Bounded(low=0.0, high=1.0, shape=(n, self.view * self.view * N_TILE_TYPES),
                                       dtype=torch.float32, device=dev),
             POSITION: cell, TARGET: cell.clone()}, shape=(n,), device=dev)
        self.action_spec = OneHot(len(MOVES), shape=(n, len(MOVES)), dtype=torch.int64, device=dev)
        self.reward_spec = Unbounded(shape=(n, 1), dtype=torch.float32, device=dev)
        flag = Categorical(2, shape=(n, 1), dtype=torch.bool, device=dev)
        self.done_spec = Composite(done=flag.clone(), terminated=flag.clone(), truncated=flag.clone(),
                                   shape=(n,), device=dev)

    # ---------------------------------------------------------------- EnvBase API
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        mask = tensordict.get("_reset", None) if tensordict is not None else None
        if mask is None:
            idx = torch.arange(self.num_envs, device=self.device)
        else:
            idx = mask.reshape(-1).to(device=self.device, dtype=torch.bool).nonzero().squeeze(-1)
        if idx.numel():
            self._new_episodes(idx)
        flags = torch.zeros(self.num_envs, 1, dtype=torch.bool, device=self.device)
        return self._output(done=flags, terminated=flags.clone(), truncated=flags.clone())

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get(keys.ACTION)
        if action.dtype == torch.bool:
            action = action.to(torch.uint8)
        s = self.size
        new = (self._position + self._moves[action.argmax(-1)]).clamp_(0, s - 1)
        blocked = self._walls.view(self.num_envs, -1).gather(1, (new[:, 0] * s + new[:, 1])[:, None])
        position = torch.where(blocked, self._position, new)
        reached = (position == self._target).all(-1)
        hit = reached.nonzero().squeeze(-1)
        if hit.numel():  # respawn on another tile of the target's region
            free = self._region[hit].clone()
            free[torch.arange(hit.numel(), device=self.device), self._target[hit, 0], self._target[hit, 1]] = False
            position[hit] = self._cells(self._sample(free))
        self._position = position
        self._steps += 1
        truncated = (self._steps >= self.episode_steps)[:, None]
        return self._output(reward=reached[:, None].to(torch.float32), done=truncated,
                            terminated=torch.zeros_like(truncated), truncated=truncated.clone())

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(seed)

    # ---------------------------------------------------------------- public helpers
    @property
    def grid(self) -> torch.Tensor:
        """uint8 ``[N, size, size]``: the current tile types (0 floor, 1 wall, 2 target); a copy."""
        h = self._half
        return self._tiles[:, h:h + self.size, h:h + self.size].clone()

    def set_state(self, grid: torch.Tensor, position: torch.Tensor, target: torch.Tensor) -> None:
        """Start a new episode in every env on a given grid, for tests and scripted scenarios.

        ``grid`` ``[N, size, size]`` or ``[size, size]`` (shared): 1 wall, 0 floor (the border need not be
        wall: moves off the grid leave the agent in place). ``position``, ``target`` int ``[N, 2]`` or ``[2]``:
        ``(row, col)`` on floor tiles, different. Respawns use the target's 4-connected floor region, which
        must hold another tile. Step counts restart at 0. Then call :meth:`step` (or
        ``rollout(..., auto_reset=False, tensordict=...)``): a :meth:`reset` would draw new grids.
        """
        n, s, dev = self.num_envs, self.size, self.device
        rows = torch.arange(n, device=dev)
        grid = torch.as_tensor(grid, device=dev)
        if grid.shape not in ((s, s), (n, s, s)) or not ((grid == 0) | (grid == 1)).all():
            raise ValueError(f"grid must be [{n}, {s}, {s}] or [{s}, {s}] of 0 (floor) and 1 (wall), "
                             f"got shape {tuple(grid.shape)}.")
        walls = grid.to(torch.bool).expand(n, s, s).clone()
        cells = []
        for name, value in (("position", position), ("target", target)):
            value = torch.as_tensor(value, dtype=torch.int64, device=dev)
            if value.shape not in ((2,), (n, 2)) or ((value < 0) | (value >= s)).any():
                raise ValueError(f"{name} must be [{n}, 2] or [2] (row, col) within [0, {s - 1}], got {value.tolist()}.")
            value = value.expand(n, 2).clone()
            if walls[rows, value[:, 0], value[:, 1]].any():
                raise ValueError(f"{name} must be on floor tiles (grid == 0), got {value.tolist()}.")
            cells.append(value)
        position, target = cells
        if (position == target).all(-1).any():
            raise ValueError("position and target must differ in every env.")
        seed = torch.zeros_like(walls)
        seed[rows, target[:, 0], target[:, 1]] = True
        region = _unpack(_flood(_pack(~walls), _pack(seed)), s)
        if (region.flatten(1).sum(1) < 2).any():
            raise ValueError("the target's floor region must hold at least one other tile (for respawns).")
        self._write(rows, walls, region, position, target)

    def distance_to_target(self) -> torch.Tensor:
        """int64 ``[N, size, size]``: moves from each tile to the target; ``size**2`` on walls and cut-off tiles.

        A BFS distance field by repeated relaxation, cached until the env's next new episode.
        """
        stale = (~self._dist_valid).nonzero().squeeze(-1)
        if stale.numel():
            self._dist[stale] = _distance_field(~self._walls[stale], self._target[stale])
            self._dist_valid[stale] = True
        return self._dist

    # ---------------------------------------------------------------- internals
    def _output(self, **values: torch.Tensor) -> TensorDict:
        n, h = self.num_envs, self._half
        padded = self.size + 2 * h
        # Top-left view cell in padded coordinates is (r + h - h, c + h - h) = (r, c).
        corner = self._position[:, 0] * padded + self._position[:, 1]
        tiles = self._tiles.view(n, -1).gather(1, corner[:, None] + self._view_offsets)
        obs = F.embedding(tiles.to(torch.int64), self._one_hot_rows).view(n, -1)
        values.update({keys.OBSERVATION: obs, POSITION: self._position.clone(), TARGET: self._target.clone()})
        return TensorDict(values, batch_size=self.batch_size, device=self.device)

    def _new_episodes(self, idx: torch.Tensor) -> None:
        """New grid, start and target for the envs ``idx`` (int64 ``[M]``)."""
        walls, region, start = self._generate(idx.numel())
        free = region.clone().view(idx.numel(), -1)
        free[torch.arange(idx.numel(), device=self.device), start] = False
        target = self._sample(free.view_as(region))
        self._write(idx, walls, region, self._cells(start), self._cells(target))

    def _write(self, idx: torch.Tensor, walls: torch.Tensor, region: torch.Tensor, position: torch.Tensor,
               target: torch.Tensor) -> None:
        h, s = self._half, self.size
        self._walls[idx] = walls
        self._region[idx] = region
        self._tiles[idx, h:h + s, h:h + s] = walls.to(torch.uint8)
        self._tiles[idx, target[:, 0] + h, target[:, 1] + h] = TILE_TARGET
        self._position[idx] = position
        self._target[idx] = target
        self._steps[idx] = 0
        self._dist_valid[idx] = False

    def _generate(self, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``m`` grids: walls bool ``[m, S, S]``, the start's floor region bool ``[m, S, S]`` (at least half
        of the floor and 2 tiles) and the start's flat index int64 ``[m]``."""
        s, dev = self.size, self.device
        walls = torch.empty(m, s, s, dtype=torch.bool, device=dev)
        region = torch.empty_like(walls)
        start = torch.empty(m, dtype=torch.int64, device=dev)
        todo = torch.arange(m, device=dev)
        for _ in range(_MAX_TRIES):
            new_walls = self._noise_walls(todo.numel())
            floor = ~new_walls
            new_start = self._sample(floor)
            seed = torch.zeros_like(floor).view(todo.numel(), -1)
            seed[torch.arange(todo.numel(), device=dev), new_start] = True
            new_region = _unpack(_flood(_pack(floor), _pack(seed.view_as(floor))), s)
            tiles = new_region.flatten(1).sum(1)
            ok = (tiles >= 2) & (2 * tiles >= floor.flatten(1).sum(1))
            done = todo[ok]
            walls[done], region[done], start[done] = new_walls[ok], new_region[ok], new_start[ok]
            todo = todo[~ok]
            if not todo.numel():
                return walls, region, start
        raise RuntimeError(f"no grid with a dominant floor region in {_MAX_TRIES} tries: "
                           f"lower wall_fraction (now {self.wall_fraction}).")

    def _noise_walls(self, m: int) -> torch.Tensor:
        """bool ``[m, S, S]``: walls where multi-octave value noise is highest, plus the border."""
        s, dev = self.size, self.device
        noise = torch.zeros(m, s, s, device=dev)
        for octave, upsample in enumerate(self._upsample):
            lattice = upsample.shape[1]
            coarse = torch.rand(m, lattice, lattice, generator=self._generator, device=dev)
            # Bilinear upsampling U C U^T as two GEMMs (this gives its transpose, as random as it).
            noise += 0.5 ** octave * ((coarse @ upsample.T).transpose(1, 2) @ upsample.T)
        inner = noise[:, 1:-1, 1:-1]
        cells = inner[0].numel()
        n_walls = round(self.wall_fraction * cells)
        walls = torch.ones(m, s, s, dtype=torch.bool, device=dev)
        if n_walls == 0:
            walls[:, 1:-1, 1:-1] = False
        else:
            threshold = inner.reshape(m, -1).kthvalue(cells - n_walls, dim=1).values
            walls[:, 1:-1, 1:-1] = inner > threshold[:, None, None]
        return walls

    def _sample(self, mask: torch.Tensor) -> torch.Tensor:
        """int64 ``[M]``: a flat cell index drawn uniformly among the True cells of each ``mask`` ``[M, S, S]``."""
        mask = mask.reshape(mask.shape[0], -1)
        return (torch.rand(mask.shape, generator=self._generator, device=self.device) * mask).argmax(1)

    def _cells(self, flat: torch.Tensor) -> torch.Tensor:
        """int64 ``[M, 2]`` ``(row, col)`` of flat cell indices ``[M]``."""
        return torch.stack((flat // self.size, flat % self.size), dim=-1)


# ---------------------------------------------------------------- grid algorithms (vectorised)
def _neighbour_reduce(x: torch.Tensor, op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``op`` of each cell of ``x`` ``[M, S, S]`` with its 4 neighbours (cells off the grid are skipped)."""
    out = x.clone()
    out[:, 1:] = op(out[:, 1:], x[:, :-1])
    out[:, :-1] = op(out[:, :-1], x[:, 1:])
    out[:, :, 1:] = op(out[:, :, 1:], x[:, :, :-1])
    out[:, :, :-1] = op(out[:, :, :-1], x[:, :, 1:])
    return out


def _bilinear_matrix(lattice: int, size: int) -> torch.Tensor:
    """float32 ``[size, lattice]``: linear interpolation from ``lattice`` points onto ``size`` (ends aligned)."""
    where = torch.linspace(0, lattice - 1, size)
    low = where.floor().clamp(max=lattice - 2).to(torch.int64)
    frac = where - low
    matrix = torch.zeros(size, lattice)
    matrix[torch.arange(size), low] = 1 - frac
    matrix[torch.arange(size), low + 1] = frac
    return matrix


def _pack(mask: torch.Tensor) -> torch.Tensor:
    """int64 ``[M, S]``: each row of bool ``mask`` ``[M, S, S]`` as a bit mask (bit ``c`` = column ``c``)."""
    s = mask.shape[-1]
    return (mask.to(torch.int64) << torch.arange(s, device=mask.device)).sum(-1)


def _unpack(bits: torch.Tensor, s: int) -> torch.Tensor:
    """bool ``[M, S, S]`` from row bit masks ``bits`` int64 ``[M, S]``."""
    return (bits.unsqueeze(-1) >> torch.arange(s, device=bits.device)) & 1 != 0


def _flood(floor: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
    """Row bit masks int64 ``[M, S]`` of the floor tiles 4-connected to ``seed`` within ``floor`` (both ``[M, S]``)."""
    region = seed & floor
    for _ in range(floor.shape[-1] ** 2):
        grown = region | (region << 1) | (region >> 1)
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= floor
        if torch.equal(grown, region):
            break
        region = grown
    return region


def _distance_field(floor: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """int64 ``[M, S, S]``: moves to ``target`` ``[M, 2]`` within ``floor`` ``[M, S, S]``; ``S*S`` where unreachable."""
    m, s, _ = floor.shape
    far = s * s
    dist = torch.full((m, s, s), far, dtype=torch.int64, device=floor.device)
    dist[torch.arange(m, device=floor.device), target[:, 0], target[:, 1]] = 0
    for _ in range(s * s):
        relaxed = torch.where(floor, torch.minimum(dist, _neighbour_reduce(dist, torch.minimum) + 1), far)
        relaxed.clamp_(max=far)
        if torch.equal(relaxed, dist):
            break
        dist = relaxed
    return dist


# ---------------------------------------------------------------- reference policies
def _one_hot(index: torch.Tensor, env: GridMemoryEnv) -> torch.Tensor:
    return F.one_hot(index, len(MOVES)).to(env.action_spec.dtype)


def random_policy(env: GridMemoryEnv, seed: int | None = None) -> Policy:
    """A policy (``td -> td`` writing ``action`` ``[N, 4]``) of uniformly random moves from its own generator."""
    generator = torch.Generator(device=env.device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)

    def policy(tensordict: TensorDictBase) -> TensorDictBase:
        index = torch.randint(len(MOVES), (env.num_envs,), generator=generator, device=env.device)
        return tensordict.set(keys.ACTION, _one_hot(index, env))

    return policy


def oracle_policy(env: GridMemoryEnv) -> Policy:
    """A policy (``td -> td`` writing ``action`` ``[N, 4]``) that follows a shortest path to the target.

    Reads ``position`` ``[N, 2]`` and the env's known grid (:meth:`GridMemoryEnv.distance_to_target`):
    steps to the neighbour closest to the target (the first of up, down, left, right on ties).
    """
    moves = env._moves

    def policy(tensordict: TensorDictBase) -> TensorDictBase:
        dist = env.distance_to_target().view(env.num_envs, -1)
        s = env.size
        neighbours = (tensordict.get(POSITION)[:, None, :] + moves).clamp(0, s - 1)
        index = dist.gather(1, neighbours[..., 0] * s + neighbours[..., 1]).argmin(-1)
        return tensordict.set(keys.ACTION, _one_hot(index, env))

    return policy


# ---------------------------------------------------------------- validation and measurement
def _check_args(num_envs: int, size: int, view: int, episode_steps: int, wall_fraction: float, octaves: int) -> None:
    if not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}.")
    if not isinstance(size, int) or not 5 <= size <= 63:
        raise ValueError(f"size must be an int within [5, 63] (the grid side, border included), got {size!r}.")
    if not isinstance(view, int) or view < 1 or view % 2 == 0:
        raise ValueError(f"view must be an odd int >= 1 (the side of the square view), got {view!r}.")
    if not isinstance(episode_steps, int) or episode_steps < 1:
        raise ValueError(f"episode_steps must be an int >= 1, got {episode_steps!r}.")
    if not 0.0 <= wall_fraction <= 0.8:
        raise ValueError(f"wall_fraction must be within [0, 0.8], got {wall_fraction!r}.")
    if not isinstance(octaves, int) or octaves < 1:
        raise ValueError(f"octaves must be an int >= 1, got {octaves!r}.")


def mean_episode_reward(env: GridMemoryEnv, policy: Policy, episodes: int) -> float:
    """Mean return of ``policy`` over at least ``episodes`` full episodes (``env.num_envs`` per rollout)."""
    returns = []
    for _ in range(-(-episodes // env.num_envs)):
        rollout = env.rollout(env.episode_steps, policy, break_when_any_done=False)
        returns.append(rollout["next", keys.REWARD].sum(1))
    return torch.cat(returns).mean().item()


def steps_per_second(env: GridMemoryEnv, steps: int = 256, clock: Callable[[], float] = time.perf_counter) -> float:
    """Agent-steps per second of a random policy through ``env.step_and_maybe_reset`` (``step`` + ``step_mdp``
    + partial resets of truncated envs, as TorchRL's collectors step); ``clock=time.process_time`` counts
    this process's CPU time only (robust when the core is shared)."""
    policy = random_policy(env, seed=0)
    tensordict = env.reset()
    start = clock()
    for _ in range(steps):
        _, tensordict = env.step_and_maybe_reset(policy(tensordict))
    return steps * env.num_envs / (clock() - start)


__all__ = ["GridMemoryEnv", "mean_episode_reward", "oracle_policy", "random_policy", "steps_per_second"]


if __name__ == "__main__":
    torch.set_num_threads(1)
    big = GridMemoryEnv(num_envs=4096, seed=0)
    for name, clock in (("wall-clock", time.perf_counter), ("CPU time", time.process_time)):
        print(f"step_and_maybe_reset, 4096 agents: {steps_per_second(big, 512, clock):,.0f} agent-steps/s ({name})")
        start = clock()
        big.rollout(128, random_policy(big, seed=0), break_when_any_done=False)
        print(f"env.rollout(128), 4096 agents: {128 * 4096 / (clock() - start):,.0f} agent-steps/s ({name})")
    small = GridMemoryEnv(num_envs=256, seed=0)
    print(f"random: {mean_episode_reward(small, random_policy(small, seed=0), 512):.2f} reward/episode")
    print(f"oracle: {mean_episode_reward(small, oracle_policy(small), 512):.2f} reward/episode")
