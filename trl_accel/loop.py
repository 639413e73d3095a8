"""The generic part of every online stage, and the run's bookkeeping.

:func:`collect_and_learn` is an iterator: collect a batch -> store it -> RL updates -> yield it, with
the batch's losses, to the stage that drives it; the stage's own steps (filling T, a BC round,
evaluation, the switch, checkpoints) are written in the stage's loop body
(:mod:`trl_accel.experiment`), in the order they run. :class:`Run` holds what a run must keep:
one :class:`RunState` (saved whole in every checkpoint), the metrics, the progress bar, the clocks,
and the SIGINT/SIGTERM handling that turns a stop request into a checkpoint and a clean exit.
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer
from torchrl.envs import EnvBase
from torchrl.record.loggers import Logger
from tqdm import tqdm

from trl_accel import keys
from trl_accel.checkpoint import save_checkpoint
from trl_accel.collectors import Workers
from trl_accel.stages.learners import Learner


@dataclass
class RunState:
    """Everything a run counts, saved whole in each checkpoint and restored whole on resume.

    ``stage``: ``stage1``, ``stage2``, ``accelerator_only``, ``transformer_only`` or ``done``;
    ``stage_steps``/``env_steps``: env steps in the stage / in the run (random ones included);
    ``bc_env_steps``: extra env steps of BC rollouts (``bc_data=evaluation|dagger``); ``bc_rounds``;
    ``bc_final_rounds``: of those rounds, the ones after the accelerator's last step (``stage1.bc_final_rounds``);
    ``evaluations``: one record per evaluation; ``random_return``: a random policy's return (measured
    once); ``results``: per stage, the returns at its end; ``throughput``: per stage, learning steps
    and the seconds they took (evaluations and checkpoints excluded); ``metric_rows``: rows logged per
    metric, so that a resumed run cuts its metric files back to the checkpoint.
    """

    stage: str | None = None
    stage_steps: int = 0
    env_steps: int = 0
    bc_env_steps: int = 0
    bc_rounds: int = 0
    bc_final_rounds: int = 0
    evaluations: list[dict] = field(default_factory=list)
    switch_step: int | None = None
    switch_reason: str | None = None
    random_return: float | None = None
    results: dict[str, dict] = field(default_factory=dict)
    wall_time_s: float = 0.0
    throughput: dict[str, dict] = field(default_factory=dict)
    metric_rows: dict[str, int] = field(default_factory=dict)

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict) -> "RunState":
        return cls(**state)


class TrainingDiverged(RuntimeError):
    """A loss or a parameter became NaN or infinite; the message says which, where, and which checkpoint holds
    the last good state."""


class RunInterrupted(Exception):
    """SIGINT or SIGTERM arrived; a checkpoint was written and ``resume=`` continues the run."""


class Run:
    """Counters (:class:`RunState`), evaluation records, metrics, progress bar, clocks and checkpoints of one run.

    Use it as a context manager: inside, SIGINT and SIGTERM only set :attr:`interrupted`; the next
    :meth:`checkpoint_due` then says yes and :meth:`save` raises :class:`RunInterrupted` once the
    checkpoint is on disk. A second signal stops at once (the last checkpoint stays intact).
    """

    def __init__(self, run_dir: Path, logger: Logger | None, total_steps: int, *, eval_every: int,
                 checkpoint_every: int, state: RunState | None = None, quiet: bool = False):
        self.run_dir = run_dir
        self.logger = logger
        self.eval_every = eval_every
        self.checkpoint_every = checkpoint_every
        self.state = state or RunState()
        self.interrupted: str | None = None
        self.last_checkpoint: tuple[Path, int] | None = None
        self._started = time.perf_counter() - self.state.wall_time_s
        self._off_clock = 0.0
        self._handlers: dict = {}
        self.progress = tqdm(total=total_steps, initial=self.state.env_steps, unit="step", dynamic_ncols=True,
                             disable=quiet, desc=self.state.stage or "")
        self._next_eval = self._next_multiple(eval_every)
        self._next_checkpoint = self._next_multiple(checkpoint_every)

    # ---- signals
    def __enter__(self) -> "Run":
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._handlers[signum] = signal.signal(signum, self._request_stop)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        self.progress.close()

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self.interrupted is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.interrupted = signal.Signals(signum).name

    # ---- counters and schedules
    def _next_multiple(self, every: int) -> float:
        return (self.state.stage_steps // every + 1) * every if every > 0 else math.inf

    def start_stage(self, stage: str) -> None:
        """Enter ``stage`` (a no-op when resuming inside it)."""
        if self.state.stage != stage:
            self.state.stage, self.state.stage_steps = stage, 0
            self._next_eval = self._next_multiple(self.eval_every)
            self._next_checkpoint = self._next_multiple(self.checkpoint_every)
        self.progress.set_description(stage)

    def advance(self, frames: int) -> None:
        self.state.stage_steps += frames
        self.state.env_steps += frames
        self.progress.update(frames)

    def evaluation_due(self) -> bool:
        if self.state.stage_steps >= self._next_eval:
            self._next_eval = self._next_multiple(self.eval_every)
            return True
        return False

    def checkpoint_due(self) -> bool:
        """On schedule, or at once when a stop was requested."""
        if self.interrupted is not None:
            return True
        if self.state.stage_steps >= self._next_checkpoint:
            self._next_checkpoint = self._next_multiple(self.checkpoint_every)
            return True
        return False

    # ---- clocks
    def wall_time(self) -> float:
        self.state.wall_time_s = time.perf_counter() - self._started
        return self.state.wall_time_s

    @contextlib.contextmanager
    def off_the_clock(self) -> Iterator[None]:
        """Time spent inside (evaluations, checkpoints) does not count as learning time."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self._off_clock += time.perf_counter() - started

    def add_learning_time(self, frames: int, seconds: float) -> None:
        entry = self.state.throughput.setdefault(self.state.stage, {"steps": 0, "seconds": 0.0})
        entry["steps"] += frames
        entry["seconds"] += seconds

    def throughput(self) -> dict[str, float]:
        """Learning env-steps per second of each stage so far (evaluations and checkpoints excluded)."""
        return {stage: entry["steps"] / entry["seconds"] for stage, entry in self.state.throughput.items()
                if entry["seconds"] > 0}

    # ---- metrics, evaluations, checkpoints
    def log(self, metrics: dict[str, float]) -> None:
        """Log ``metrics`` at the current env step; a NaN or infinite value stops the run (:class:`TrainingDiverged`)."""
        bad = [name for name, value in metrics.items() if value is not None and not math.isfinite(value)]
        if self.logger is not None:
            for name, value in metrics.items():
                if value is not None:
                    self.logger.log_scalar(name, float(value), step=self.state.env_steps)
                    self.state.metric_rows[name] = self.state.metric_rows.get(name, 0) + 1
        if bad:
            self.diverged(f"{bad[0]} is {metrics[bad[0]]}")

    def diverged(self, what: str) -> None:
        where = (f"checkpoints/{self.last_checkpoint[0].name} (env step {self.last_checkpoint[1]})"
                 if self.last_checkpoint else "none: no checkpoint was written before it")
        raise TrainingDiverged(f"training diverged in {self.state.stage} at env step {self.state.env_steps}: {what}. "
                               f"Last good state: {where}. Lower the learning rates (algo.lr, stage1.bc_lr).")

    def record_evaluation(self, returns: dict[str, float | None]) -> dict:
        """Append ``{env_steps, stage, wall_time_s, **returns}`` and show it in the log and progress bar."""
        record = {"env_steps": self.state.env_steps, "stage": self.state.stage, "wall_time_s": self.wall_time(), **returns}
        self.state.evaluations.append(record)
        self.progress.set_postfix({key.replace("_return", ""): f"{value:.1f}" for key, value in returns.items()
                                   if value is not None and key.endswith("_return")})
        self.log({f"eval/{key}": value for key, value in returns.items()})
        return record

    def save(self, name: str, payload: dict, *, modules: tuple = ()) -> Path:
        """Write ``checkpoints/<name>.pt`` with ``payload`` and the run state. ``modules`` (the learners)
        must hold finite parameters: a diverged state is never written. Raises :class:`RunInterrupted`
        after writing when a stop was requested."""
        with self.off_the_clock():
            for module in modules:
                if not all_finite(module):
                    self.diverged(f"a parameter of {type(module).__name__} is not finite")
            self.wall_time()
            path = save_checkpoint(self.run_dir / "checkpoints" / f"{name}.pt",
                                   {**payload, "run_state": self.state.state_dict()})
        self.last_checkpoint = (path, self.state.env_steps)
        if self.interrupted is not None:
            raise RunInterrupted(f"stopped by {self.interrupted} at env step {self.state.env_steps}; "
                                 f"checkpoint written: continue with resume={self.run_dir}")
        return path

    def write_json(self, name: str, content: dict) -> Path:
        """Strict JSON: a NaN or infinite number is written as ``null`` and listed under ``non_finite``."""
        non_finite: dict[str, str] = {}
        content = finite_json(content, non_finite)
        if non_finite:
            content["non_finite"] = non_finite
        path = self.run_dir / name
        path.write_text(json.dumps(content, indent=2, allow_nan=False))
        return path

    def close(self) -> None:
        self.progress.close()


def finite_json(value: Any, non_finite: dict[str, str], path: str = "") -> Any:
    """``value`` with every NaN/inf float replaced by ``None``; ``non_finite[path] = 'nan'|'inf'|'-inf'``."""
    if isinstance(value, dict):
        return {key: finite_json(item, non_finite, f"{path}.{key}" if path else str(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item, non_finite, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        non_finite[path] = str(value)
        return None
    return value


def all_finite(module: Any) -> bool:
    """Whether every parameter (and buffer) of ``module`` (an ``nn.Module`` or a learner with ``.loss``) is finite."""
    module = getattr(module, "loss", module)
    return all(bool(torch.isfinite(tensor).all()) for tensor in module.state_dict().values()
               if isinstance(tensor, torch.Tensor) and tensor.is_floating_point())


def mean_losses(updates: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """``train/<name>``: the mean of each loss term over the updates that produced it (TD3's actor
    loss only comes every ``policy_delay`` updates)."""
    names = dict.fromkeys(name for update in updates for name in update)
    return {f"train/{name}": torch.stack([u[name] for u in updates if name in u]).mean().item() for name in names}


@dataclass
class Collected:
    """What :func:`collect_and_learn` yields for each batch: the flat ``batch`` [N], whether the learner
    updated on it (past the random start), and its metrics (the mean losses, the finished episodes' return)."""

    batch: TensorDictBase
    learning: bool
    metrics: dict[str, float]


def local_collector(env: EnvBase, policy: TensorDictModuleBase, frames_per_batch: int,
                    init_random_frames: int = 0) -> Collector:
    """TorchRL's collector stepping ``env`` in this process, endlessly (``total_frames=-1``: the caller's loop ends
    the stage; a collector that reaches its total closes the env, and the env carries on into the next stage).

    ``device=env.device``: policy, env and storage on one device, so that the collector's per-step cast of its
    carrier to the env's device is a no-op (with the storage device unset it copies every entry, every step)."""
    return Collector(env, policy, frames_per_batch=frames_per_batch, total_frames=-1,
                     init_random_frames=init_random_frames, device=env.device)


def collect_and_learn(run: Run, env: EnvBase, policy: TensorDictModuleBase, learner: Learner, replay: ReplayBuffer, *,
                      steps: int, random_steps: int, frames_per_batch: int, updates_per_step: float = 1.0,
                      stored_keys: Callable[[TensorDictBase], TensorDictBase] | None = None,
                      workers: Workers | None = None) -> Iterator[Collected]:
    """Collect ``random_steps + steps`` env steps in the current stage (uniform random actions for the first
    ``random_steps``), resuming from ``run.state.stage_steps``. For each batch: store it in ``replay``
    (``stored_keys(batch)``: what the learner reads; all of it by default), then, past the random start,
    ``updates_per_step`` learner updates per env step (at least one), then yield it. The caller's loop
    body runs between two batches; its time counts as learning time unless spent in
    :meth:`Run.off_the_clock`. Ends when the stage's steps are reached or the caller breaks.

    ``workers`` (``collector.workers > 1`` or ``collector.backend=ray``): the batches come from worker processes
    (:class:`~trl_accel.collectors.Workers`), which act with a copy of ``policy`` pushed after the learner's
    updates every ``collector.update_every`` batches; ``env`` then only gave the shapes. Without it, ``env`` steps
    in this process. Either way the env steps counted are those of the batches that reached the learner.
    """
    stage_total = random_steps + steps
    if run.state.stage_steps >= stage_total:
        return
    push = None
    if workers is None:
        collector = local_collector(env, policy, frames_per_batch, max(0, random_steps - run.state.stage_steps))
    else:
        collector, push = workers.start(policy, frames_per_batch=frames_per_batch,
                                        init_random_frames=max(0, random_steps - run.state.stage_steps),
                                        env_steps=run.state.env_steps)
    try:
        cycle_started, off_clock_at_start = time.perf_counter(), run._off_clock
        for batch in collector:
            batch = batch.reshape(-1)
            replay.extend(stored_keys(batch) if stored_keys is not None else batch.exclude(keys.COLLECTOR))
            run.advance(batch.numel())
            learning = run.state.stage_steps > random_steps
            metrics: dict[str, float] = {}
            if learning:
                updates = max(1, round(updates_per_step * batch.numel()))
                metrics.update(mean_losses([learner.update(replay.sample()) for _ in range(updates)]))
            if push is not None:
                push.batch_done()
            finished = batch["next", keys.DONE].squeeze(-1)
            if finished.any():
                metrics["train/episode_return"] = batch["next", keys.EPISODE_REWARD][finished].mean().item()
            yield Collected(batch, learning, metrics)
            if learning:
                seconds = time.perf_counter() - cycle_started - (run._off_clock - off_clock_at_start)
                run.add_learning_time(batch.numel(), seconds)
            if run.state.stage_steps >= stage_total:
                break
            cycle_started, off_clock_at_start = time.perf_counter(), run._off_clock
    finally:
        if workers is None:
            collector.shutdown(close_env=False)  # the env carries on into the next stage
        else:
            collector.shutdown()  # the workers' envs are theirs


__all__ = ["Collected", "Run", "RunInterrupted", "RunState", "TrainingDiverged", "all_finite", "collect_and_learn",
           "finite_json", "local_collector", "mean_losses"]
