"""The collect-and-learn loop shared by stage one, stage two and the baselines, and the run's
bookkeeping: counters, evaluations, logging, progress bar and checkpoints."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer
from torchrl.envs import EnvBase
from torchrl.record.loggers import Logger
from tqdm import tqdm

from trl_accel.checkpoint import save_checkpoint
from trl_accel.stages.learners import Learner

#: Keys of a collector batch that the replay buffer does not need.
UNSTORED_KEYS = ("collector", "param")


class Run:
    """Counters, evaluation records, metrics, progress bar and checkpoints of one run.

    ``state`` (saved in every checkpoint) holds ``stage``, ``stage_steps``, ``env_steps``,
    ``bc_env_steps``, ``evaluations``, ``switch_step``, ``switch_reason``, ``results``, ``wall_time_s``, and
    ``throughput``: per stage, the learning steps (after the random start) and the seconds they took,
    evaluations and checkpoints excluded.
    """

    def __init__(self, run_dir: Path, logger: Logger | None, total_steps: int, eval_every: int,
                 checkpoint_every: int, state: dict | None = None, quiet: bool = False):
        self.run_dir = run_dir
        self.logger = logger
        self.eval_every = eval_every
        self.checkpoint_every = checkpoint_every
        self.state = state or {"stage": None, "stage_steps": 0, "env_steps": 0, "bc_env_steps": 0, "evaluations": [],
                               "switch_step": None, "switch_reason": None, "results": {}, "wall_time_s": 0.0,
                               "throughput": {}}
        self._started = time.perf_counter() - self.state["wall_time_s"]
        self.progress = tqdm(total=total_steps, initial=self.state["env_steps"], unit="step", dynamic_ncols=True,
                             disable=quiet, desc=self.state["stage"] or "")
        self._next_eval = self._next_multiple(eval_every)
        self._next_checkpoint = self._next_multiple(checkpoint_every)

    def _next_multiple(self, every: int) -> float:
        return (self.state["stage_steps"] // every + 1) * every if every > 0 else math.inf

    def start_stage(self, stage: str) -> None:
        """Enter ``stage`` (a no-op when resuming inside it)."""
        if self.state["stage"] != stage:
            self.state.update(stage=stage, stage_steps=0)
            self._next_eval = self._next_multiple(self.eval_every)
            self._next_checkpoint = self._next_multiple(self.checkpoint_every)
        self.progress.set_description(stage)

    def advance(self, frames: int) -> None:
        self.state["stage_steps"] += frames
        self.state["env_steps"] += frames
        self.progress.update(frames)

    def wall_time(self) -> float:
        self.state["wall_time_s"] = time.perf_counter() - self._started
        return self.state["wall_time_s"]

    def evaluation_due(self) -> bool:
        if self.state["stage_steps"] >= self._next_eval:
            self._next_eval = self._next_multiple(self.eval_every)
            return True
        return False

    def checkpoint_due(self) -> bool:
        if self.state["stage_steps"] >= self._next_checkpoint:
            self._next_checkpoint = self._next_multiple(self.checkpoint_every)
            return True
        return False

    def log(self, metrics: dict[str, float]) -> None:
        if self.logger is not None:
            for name, value in metrics.items():
                if value is not None and math.isfinite(value):
                    self.logger.log_scalar(name, float(value), step=self.state["env_steps"])

    def record_evaluation(self, returns: dict[str, float | None]) -> dict:
        """Append ``{env_steps, stage, wall_time_s, **returns}`` and show it in the log and progress bar."""
        record = {"env_steps": self.state["env_steps"], "stage": self.state["stage"], "wall_time_s": self.wall_time(), **returns}
        self.state["evaluations"].append(record)
        self.log({f"eval/{key}": value for key, value in returns.items()})
        self.progress.set_postfix({key.replace("_return", ""): f"{value:.1f}" for key, value in returns.items() if value is not None})
        return record

    def save(self, name: str, payload: dict) -> Path:
        self.wall_time()
        return save_checkpoint(self.run_dir / "checkpoints" / f"{name}.pt", {**payload, "run_state": self.state})

    def add_learning_time(self, frames: int, seconds: float) -> None:
        entry = self.state["throughput"].setdefault(self.state["stage"], {"steps": 0, "seconds": 0.0})
        entry["steps"] += frames
        entry["seconds"] += seconds

    def throughput(self) -> dict[str, float]:
        """Learning env-steps per second of each stage so far (evaluations and checkpoints excluded)."""
        return {stage: entry["steps"] / entry["seconds"] for stage, entry in self.state["throughput"].items()
                if entry["seconds"] > 0}

    def write_json(self, name: str, content: dict) -> Path:
        path = self.run_dir / name
        path.write_text(json.dumps(content, indent=2))
        return path

    def close(self) -> None:
        self.progress.close()


def mean_losses(updates: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """``train/<name>``: the mean of each loss term over the updates that produced it (TD3's actor
    loss only comes every ``policy_delay`` updates)."""
    names = dict.fromkeys(name for update in updates for name in update)
    return {f"train/{name}": torch.stack([u[name] for u in updates if name in u]).mean().item() for name in names}


def online_phase(run: Run, env: EnvBase, policy: TensorDictModuleBase, learner: Learner, replay: ReplayBuffer,
                 learning_steps: int, random_steps: int, frames_per_batch: int,
                 evaluate: Callable[[], dict], checkpoint_payload: Callable[[], dict],
                 after_batch: Callable[[TensorDictBase], dict] | None = None,
                 after_evaluation: Callable[[dict], str | None] | None = None,
                 updates_per_step: float = 1.0, unstored_keys: tuple = ()) -> str:
    """Collect ``random_steps + learning_steps`` env steps with ``policy`` (uniform random for the first
    ``random_steps``), ``updates_per_step`` learner updates per env step (at least one per batch) once
    past the random start, evaluating and
    checkpointing on schedule. Resumes from ``run.state["stage_steps"]``.

    ``unstored_keys``: batch entries the learner does not read, kept out of the replay buffer (stage one's
    accelerator never reads the windows, which are the largest entries with pixels).

    ``after_batch(batch)`` runs after the updates of each collected batch (stage one trains the
    transformer there) and returns metrics to log; ``after_evaluation(record)`` may return a reason
    to end the phase early. Returns the reason the phase ended.
    """
    phase_steps = random_steps + learning_steps
    remaining = phase_steps - run.state["stage_steps"]
    if remaining <= 0:
        return "completed"
    # total_frames=-1: the loop below ends the phase itself (a collector that reaches its total closes
    # the env, and the env carries on into the next stage)
    collector = Collector(env, policy, frames_per_batch=frames_per_batch, total_frames=-1,
                          init_random_frames=max(0, random_steps - run.state["stage_steps"]))
    reason = "completed"
    batch_started = time.perf_counter()
    try:
        for batch in collector:
            batch = batch.reshape(-1)
            replay.extend(batch.exclude(*UNSTORED_KEYS, *unstored_keys))
            run.advance(batch.numel())
            learning = run.state["stage_steps"] > random_steps
            metrics: dict[str, float] = {}
            if learning:
                updates = max(1, round(updates_per_step * batch.numel()))
                metrics.update(mean_losses([learner.update(replay.sample()) for _ in range(updates)]))
            finished = batch["next", "done"].squeeze(-1)
            if finished.any():
                metrics["train/episode_return"] = batch["next", "episode_reward"][finished].mean().item()
            if after_batch is not None:
                metrics.update(after_batch(batch))
            run.log(metrics)
            if learning:
                run.add_learning_time(batch.numel(), time.perf_counter() - batch_started)
            if run.evaluation_due():
                record = run.record_evaluation(evaluate())
                if after_evaluation is not None and (stop := after_evaluation(record)):
                    reason = stop
            if run.checkpoint_due() or reason != "completed":
                run.save("last", checkpoint_payload())
            if reason != "completed" or run.state["stage_steps"] >= phase_steps:
                break
            batch_started = time.perf_counter()
    finally:
        collector.shutdown(close_env=False)  # the env carries on into the next stage
    return reason
