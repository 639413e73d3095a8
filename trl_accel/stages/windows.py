"""Context windows built from replay: each step is stored once, and a sample gets its window at sampling time.

An env that builds windows (:func:`~trl_accel.envs.context.context_window_transforms`) hands every step its
last K observations; storing those would copy each observation 2K times into replay (the window and the next
window). Here the buffer stores the step alone, plus three integers that place it in its env's stream of
steps, and builds the windows of a sample from the storage:

* ``("window", "stream")``: which of the ``num_streams`` envs the step came from (a collector's flat batch is
  env-major: ``[num_envs * T]`` = ``num_envs`` runs of ``T`` consecutive steps; with collector workers the streams
  are every worker's envs, and an asynchronous batch, one worker's, is placed by its steps' ``worker`` index);
* ``("window", "step")``: its position in that env's stream (0, 1, 2, ... over the whole run, across episodes);
* ``("window", "first")``: the stream position of its episode's first step (from ``is_init``).

A per-stream ring of storage rows (``stream x position -> row``) finds the previous steps; a row counts only
if the storage still holds that very step there (its stored stream and position match), so a window never
crosses a reset or another env's stream, and a step that the buffer has overwritten is padding. TorchRL's
storages, samplers and writers do the rest; what they lack (finding a step's predecessors in a flat storage
filled by several envs) is :class:`StreamWindows`.

The windows are zero-padded and masked exactly as the env-built ones (``window_mask``), and the TD target's
``("next", <window>)`` is the window shifted by one step with the next observation at its end.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import LazyTensorStorage

from trl_accel import keys

STREAM_KEY = ("window", "stream")   #: [N] int64: the env (within a collector batch) the step came from
STEP_KEY = ("window", "step")       #: [N] int64: the step's position in its env's stream
FIRST_KEY = ("window", "first")     #: [N] int64: the stream position of its episode's first step
PLACE_KEYS = (STREAM_KEY, STEP_KEY, FIRST_KEY)
#: Where T puts a recurrent teacher's history: ``("teacher", <its input>)`` [N, L, ...], ``("teacher", "window_mask")``.
TEACHER = "teacher"

#: The per-step key each window is built from.
WINDOW_SOURCES: dict[str, str] = {keys.OBSERVATION_WINDOW: keys.OBSERVATION, keys.PIXELS_WINDOW: keys.PIXELS,
                                  keys.PREV_ACTION_WINDOW: keys.PREV_ACTION, keys.PREV_REWARD_WINDOW: keys.PREV_REWARD}


def stored_instead_of_windows(wanted: list[NestedKey]) -> list[NestedKey]:
    """The keys to store when a learner reads ``wanted``: every window key (and its ``next`` entry) replaced by
    the per-step key it is built from, ``window_mask`` dropped, ``is_init`` added (it places episode starts).

    >>> stored_instead_of_windows(["observation_window", "window_mask", "action", ("next", "observation_window")])
    ['observation', 'action', ('next', 'observation'), 'is_init']
    """
    stored: list[NestedKey] = []
    for key in wanted:
        leaf, nested = (key, False) if isinstance(key, str) else (key[-1], key[0] == "next" and len(key) == 2)
        if leaf == keys.WINDOW_MASK:
            continue
        if leaf in WINDOW_SOURCES:
            key = ("next", WINDOW_SOURCES[leaf]) if nested else WINDOW_SOURCES[leaf]
        stored.append(key)
    return list(dict.fromkeys([*stored, keys.IS_INIT]))


def reads_windows(in_keys) -> bool:
    """Whether a module or loss with these in-keys reads context windows."""
    return any((key if isinstance(key, str) else key[-1]) in WINDOW_SOURCES for key in in_keys)


class StreamWindows:
    """Places steps in their env's stream as they are stored, and builds the windows of sampled steps.

    ``context_len`` K; ``num_streams`` the envs that feed it (the flat batch handed to :meth:`place` is env-major,
    ``batch_streams`` runs of equal length: by default all ``num_streams``; fewer when each batch comes from one
    collector worker, whose index the steps carry under ``worker``); ``capacity`` the storage's size (sizes
    the per-stream ring of rows); ``window_keys`` the windows to build (``{window_key: source_key}``, see
    :data:`WINDOW_SOURCES`: by default every window whose source the storage holds); ``history`` the longest
    stretch :meth:`gather` will be asked for (``None``: K).
    """

    def __init__(self, *, context_len: int, num_streams: int, capacity: int,
                 window_keys: Mapping[str, str] | None = None, device: torch.device | str = "cpu",
                 history: int | None = None, batch_streams: int | None = None):
        if context_len < 1 or num_streams < 1 or capacity < 1:
            raise ValueError(f"context_len, num_streams and capacity must be >= 1, got {context_len}, {num_streams}, "
                             f"{capacity}.")
        self.batch_streams = batch_streams or num_streams
        if num_streams % self.batch_streams:
            raise ValueError(f"num_streams ({num_streams}) must be a multiple of batch_streams ({self.batch_streams}).")
        self.context_len, self.num_streams = context_len, num_streams
        self.window_keys = dict(window_keys) if window_keys is not None else None
        # each stream holds about capacity / num_streams live rows; twice that leaves room for uneven streams
        self.ring = 2 * math.ceil(capacity / num_streams) + max(context_len, history or context_len)
        self.rows = torch.full((num_streams, self.ring), -1, dtype=torch.long, device=device)
        self.next_step = torch.zeros(num_streams, dtype=torch.long, device=device)
        self.episode_first = torch.zeros(num_streams, dtype=torch.long, device=device)

    def first_stream(self, data: TensorDictBase) -> int:
        """The stream of the first env of ``data``: 0 when a batch holds every stream, else its worker's first."""
        if self.batch_streams == self.num_streams:
            return 0
        worker = data.get(keys.WORKER, None)
        if worker is None:
            raise ValueError(f"a batch of {self.batch_streams} of the {self.num_streams} streams must carry its steps' "
                             f"'{keys.WORKER}' index (collector.sync=false tags them).")
        return int(worker.reshape(-1)[0]) * self.batch_streams

    def place(self, data: TensorDictBase) -> TensorDictBase:
        """``data`` [batch_streams * T] (env-major, with ``is_init``; with ``worker`` when it holds one worker's
        streams) -> the same with :data:`PLACE_KEYS` set."""
        if data.ndim != 1 or data.numel() % self.batch_streams:
            raise ValueError(f"expected a flat env-major batch of batch_streams x T steps (batch_streams="
                             f"{self.batch_streams}), got batch size {tuple(data.batch_size)}.")
        length = data.numel() // self.batch_streams
        device = self.next_step.device
        first_stream = self.first_stream(data)
        here = slice(first_stream, first_stream + self.batch_streams)
        offsets = torch.arange(length, device=device)
        steps = self.next_step[here].unsqueeze(1) + offsets                             # [E, T]
        is_init = data.get(keys.IS_INIT).reshape(self.batch_streams, length).to(device)
        starts = torch.where(is_init, steps, torch.full_like(steps, -1)).cummax(dim=1).values
        first = torch.maximum(starts, self.episode_first[here].unsqueeze(1))
        streams = torch.arange(here.start, here.stop, device=device).unsqueeze(1).expand(-1, length)
        self.next_step[here] += length
        self.episode_first[here] = first[:, -1]
        placed = {STREAM_KEY: streams, STEP_KEY: steps, FIRST_KEY: first}
        for key, value in placed.items():
            data.set(key, value.reshape(-1).to(data.device))
        return data

    def stored_at(self, data: TensorDictBase, rows: torch.Tensor) -> None:
        """Records that the steps of ``data`` (placed) went to storage ``rows`` [N]."""
        rows = rows.reshape(-1).to(self.rows.device)
        streams, steps = data.get(STREAM_KEY).to(self.rows.device), data.get(STEP_KEY).to(self.rows.device)
        self.rows[streams, steps % self.ring] = rows

    def gather(self, sample: TensorDictBase, storage: TensorDictBase, sources: Mapping[NestedKey, str],
               length: int) -> tuple[dict[NestedKey, torch.Tensor], torch.Tensor]:
        """The last ``length`` steps (oldest first) of each sampled step's episode: ``({out_key: [N, length, ...]},
        real [N, length])`` for ``sources`` (``{out_key: stored key}``), zero where not ``real``."""
        device = self.rows.device
        streams = sample.get(STREAM_KEY).to(device).unsqueeze(1)
        steps = sample.get(STEP_KEY).to(device).unsqueeze(1) - torch.arange(length - 1, -1, -1, device=device)
        real = steps >= sample.get(FIRST_KEY).to(device).unsqueeze(1)
        rows = self.rows[streams, steps.clamp_min(0) % self.ring]
        safe_rows = rows.clamp_min(0)
        real &= (rows >= 0) & (storage.get(STEP_KEY)[safe_rows] == steps) & (storage.get(STREAM_KEY)[safe_rows] == streams)
        real[:, -1] = True  # the sampled step itself
        storage_device = sample.device if sample.device is not None else storage.device
        real = real.to(storage_device)
        gathered = {}
        for out_key, source in sources.items():
            values = storage.get(source)[safe_rows.to(storage.device)].to(storage_device)
            gathered[out_key] = values * real.reshape(*real.shape, *([1] * (values.ndim - 2))).to(values.dtype)
        return gathered, real

    def attach(self, sample: TensorDictBase, storage: TensorDictBase) -> TensorDictBase:
        """``sample`` [N] (placed steps drawn from ``storage``, the storage's TensorDict) -> the same with each
        window [N, K, ...] and ``window_mask`` [N, K] set, and their ``next`` entries [N, K, ...] when the sample
        holds the next step's observation."""
        window_keys = self.window_keys or {window: source for window, source in WINDOW_SOURCES.items()
                                           if source in storage}
        gathered, real_here = self.gather(sample, storage, window_keys, self.context_len)
        for window_key, source in window_keys.items():
            values = gathered[window_key]
            sample.set(window_key, values)
            upcoming = sample.get(("next", source), None)
            if upcoming is not None:  # the TD target's window: one step on, the next observation last
                sample.set(("next", window_key), torch.cat([values[:, 1:], upcoming.unsqueeze(1)], dim=1))
        sample.set(keys.WINDOW_MASK, real_here)
        if any(("next", source) in sample.keys(True) for source in window_keys.values()):  # a next step to shift to
            sample.set(("next", keys.WINDOW_MASK),
                       torch.cat([real_here[:, 1:], torch.ones_like(real_here[:, :1])], dim=1))
        return sample

    def state_dict(self) -> dict:
        return {"rows": self.rows.clone(), "next_step": self.next_step.clone(), "episode_first": self.episode_first.clone()}

    def load_state_dict(self, state: dict) -> None:
        device = self.rows.device
        self.rows = state["rows"].to(device, copy=True)
        self.next_step = state["next_step"].to(device, copy=True)
        self.episode_first = state["episode_first"].to(device, copy=True)


class WindowedTrajectoryBuffer:
    """Stage one's T with windows from its own storage: ``extend`` the fresh steps (flat, env-major, with
    ``is_init``), iterate one epoch of shuffled batches with their windows, ``empty`` it after a BC round.

    Emptying makes the steps unavailable for sampling but keeps them as history: the first steps of the next
    round still see their episode's earlier observations, as an env-built window would. With ``teacher_len`` L each
    batch also holds the last L steps of the recurrent teacher's ``teacher_sources`` (``("teacher", key)``
    [N, L, ...] and ``("teacher", "window_mask")``), from which the teacher rebuilds its memory with its current
    weights (:meth:`~trl_accel.stages.acceleration.BehaviourCloner.label`). ``history_only=True``
    stores steps as history alone (the random phase before T starts filling). Beyond ``capacity`` fresh steps
    the oldest become history (as a full circular buffer overwrites them). The storage holds
    ``capacity`` fresh steps, as many before them (the history of the oldest fresh steps, wherever a batch of several
    streams put it, for batches of at most ``capacity`` steps) and ``max(context_len, teacher_len)`` steps per stream.

    ``rounds_kept`` > 1 aggregates rounds (as DAgger aggregates its datasets): :meth:`empty` then keeps the steps
    for later rounds, ``capacity`` (the caller makes it ``rounds_kept`` rounds' worth) bounds what is kept, and
    :attr:`new_steps` counts what came since the last round.
    """

    def __init__(self, *, capacity: int, batch_size: int, context_len: int, num_streams: int = 1,
                 device: torch.device | str = "cpu", generator: torch.Generator | None = None,
                 teacher_len: int | None = None, teacher_sources: tuple[str, ...] = (),
                 batch_streams: int | None = None, rounds_kept: int = 1):
        if rounds_kept < 1:
            raise ValueError(f"rounds_kept must be >= 1, got {rounds_kept}.")
        history = max(context_len, teacher_len or 1)
        # the fresh steps, the batch before them (several streams interleave in it: a stream's last steps are not the
        # last rows written) and each stream's history before that
        size = 2 * capacity + num_streams * history
        self.storage = LazyTensorStorage(size, device=device)
        self.windows = StreamWindows(context_len=context_len, num_streams=num_streams, capacity=size, device=device,
                                     history=history, batch_streams=batch_streams)
        self.teacher_len, self.teacher_sources = teacher_len, tuple(teacher_sources)
        self.capacity, self.batch_size, self.size = capacity, batch_size, size
        self.written = 0        # steps ever stored (the next one goes to row written % size)
        self.fresh_from = 0     # steps written before this are history only
        self.round_from = 0     # steps written before this were there at the last round
        self.rounds_kept = rounds_kept
        self.generator = generator

    def __len__(self) -> int:
        return self.written - self.fresh_from

    @property
    def new_steps(self) -> int:
        """Fresh steps stored since the last round (all of them when each round empties T)."""
        return self.written - max(self.fresh_from, self.round_from)

    def extend(self, data: TensorDictBase, *, history_only: bool = False) -> None:
        data = self.windows.place(data.clone(False))
        rows = (self.written + torch.arange(data.numel())) % self.size
        self.storage.set(rows, data)
        self.windows.stored_at(data, rows)
        self.written += data.numel()
        if history_only:
            self.fresh_from = self.written
        self.fresh_from = max(self.fresh_from, self.written - self.capacity)  # the oldest fresh steps become history

    def empty(self) -> None:
        """After a BC round: the steps become history (``rounds_kept=1``), or stay for the next rounds."""
        self.round_from = self.written
        if self.rounds_kept == 1:
            self.fresh_from = self.written

    def __iter__(self) -> Iterator[TensorDictBase]:
        if len(self) == 0:
            return
        ids = self.fresh_from + torch.randperm(len(self), generator=self.generator)
        for batch_ids in ids.split(self.batch_size):
            rows = batch_ids % self.size
            sample = self.windows.attach(self.storage.get(rows), self.storage._storage)
            if self.teacher_len:  # a recurrent teacher's own history, to rebuild its memory
                gathered, real = self.windows.gather(sample, self.storage._storage,
                                                     {(TEACHER, key): key for key in self.teacher_sources},
                                                     self.teacher_len)
                sample.update(gathered)
                sample.set((TEACHER, keys.WINDOW_MASK), real)
            yield sample

    def state_dict(self) -> dict:
        return {"storage": self.storage.state_dict(), "windows": self.windows.state_dict(), "written": self.written,
                "fresh_from": self.fresh_from, "round_from": self.round_from}

    def load_state_dict(self, state: dict) -> None:
        self.storage.load_state_dict(state["storage"])
        self.windows.load_state_dict(state["windows"])
        self.written, self.fresh_from = state["written"], state["fresh_from"]
        self.round_from = state.get("round_from", self.fresh_from)


__all__ = [
    "FIRST_KEY",
    "PLACE_KEYS",
    "STEP_KEY",
    "STREAM_KEY",
    "WINDOW_SOURCES",
    "StreamWindows",
    "WindowedTrajectoryBuffer",
    "reads_windows",
    "stored_instead_of_windows",
]
