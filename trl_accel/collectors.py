"""Where a stage's env steps come from when ``collector.workers > 1`` or ``collector.backend=ray``: TorchRL's
multi-process collectors (``MultiSyncCollector``, ``MultiAsyncCollector``) or its ``RayCollector``, each worker
with its own envs and seeds; the learner stays in this process and pushes its policy weights to the workers
every ``collector.update_every`` batches with the collector's own ``update_policy_weights_``.

The workers act with a copy of the learner's policy (TorchRL shares that copy's weights with the local workers), so
that they see new weights only when they are pushed. ``collector.workers=1`` with the local backend builds none of
this: :func:`trl_accel.loop.collect_and_learn` then steps the env in this process, as it always did.

Batch layout, which the context windows built from replay rely on (:class:`~trl_accel.stages.windows.StreamWindows`):
a synchronous batch stacks the workers, ``[workers, *env_batch, T]``, so flattened it is env-major over
``workers x num_envs`` streams; an asynchronous batch is one worker's ``[*env_batch, T]``, whose steps carry the
worker's index under ``worker`` (:func:`worker_tag`) to place them in that worker's streams.
"""
from __future__ import annotations

import copy
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModuleBase
from torchrl.data import Unbounded
from torchrl.envs import EnvBase, TensorDictPrimer

from trl_accel import keys

#: Seconds to wait for a Ray cluster address to answer before calling it unreachable.
RAY_CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class CollectorSettings:
    """``collector.*``: ``workers`` processes (or Ray actors), ``sync`` batches, weights pushed every ``update_every``
    batches, ``backend`` ``local`` or ``ray``, ``ray_address`` of an existing cluster (``None``: a local Ray)."""

    workers: int = 1
    sync: bool = True
    update_every: int = 1
    backend: str = "local"
    ray_address: str | None = None

    @property
    def in_process(self) -> bool:
        """Whether the envs step in this process (one local worker): the single-process path."""
        return self.workers == 1 and self.backend == "local"

    @classmethod
    def from_config(cls, collector: Any) -> CollectorSettings:
        return cls(workers=int(collector.workers), sync=bool(collector.sync), update_every=int(collector.update_every),
                   backend=str(collector.backend), ray_address=collector.ray_address)

    def summary(self) -> dict:
        return {"workers": self.workers, "sync": self.sync, "update_every": self.update_every, "backend": self.backend,
                "ray_address": self.ray_address}


def ray_address_problem(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S) -> str | None:
    """``None`` when the Ray cluster at ``address`` (``host:port`` or ``ray://host:port``; ``auto``/``local`` are
    left to Ray) accepts a TCP connection within ``timeout`` seconds, else what is wrong, in one sentence."""
    if address in ("auto", "local"):
        return None
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return "expected host:port (the head's GCS, e.g. 10.0.0.1:6379) or ray://host:port (Ray client, e.g. :10001)."
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except OSError as err:
        return (f"no Ray cluster answers there within {timeout:.0f} s ({err.strerror or type(err).__name__}): start one "
                "with `ray start --head` (see README: Many cores) or fix the address.")


def worker_seed(seed: int, worker: int, env_steps: int) -> int:
    """The seed of ``worker``'s envs and random stream when it starts at ``env_steps`` of a run seeded ``seed``: distinct
    per worker, per stage and per resume (a stage's workers start afresh), the same for the same three numbers."""
    return int(np.random.SeedSequence([seed, worker, env_steps]).generate_state(1)[0])


def worker_tag(worker: int) -> TensorDictPrimer:
    """An env transform that writes ``worker`` [*B, 1] (int64, constant) into every step."""
    return TensorDictPrimer({keys.WORKER: Unbounded(shape=(1,), dtype=torch.int64)}, default_value=worker,
                            expand_specs=True)


@dataclass
class WorkerEnv:
    """The env of one worker, built in the worker's process (picklable). ``make_env(seed=...)`` builds the task with
    the agents' transforms; ``seed`` seeds both the envs and the worker's torch stream (exploration noise, the random
    actions of the random start); ``tag``: add :func:`worker_tag` (asynchronous batches)."""

    make_env: Callable[..., EnvBase]
    seed: int
    worker: int
    tag: bool = False

    def __call__(self) -> EnvBase:
        torch.manual_seed(self.seed)
        env = self.make_env(seed=self.seed)
        if self.tag:
            env.append_transform(worker_tag(self.worker))
        return env


class WeightPush:
    """Pushes the learner's policy weights to the collector's workers every ``update_every`` batches
    (``collector.update_policy_weights_``); :meth:`batch_done` after each batch's learner updates."""

    def __init__(self, collector: Any, policy: TensorDictModuleBase, update_every: int):
        self.collector, self.update_every = collector, update_every
        self.weights = TensorDict.from_module(policy)  # live views of the learner's parameters and buffers
        self.batches = 0

    def batch_done(self) -> None:
        self.batches += 1
        if self.batches % self.update_every == 0:
            self.collector.update_policy_weights_(self.weights)


class Workers:
    """The collector workers of a run: ``settings``, ``make_env(seed=...)`` (each worker's env, built there), the run's
    ``seed`` and the envs per worker (``streams_per_worker``)."""

    def __init__(self, settings: CollectorSettings, make_env: Callable[..., EnvBase], *, seed: int,
                 streams_per_worker: int):
        self.settings, self.make_env, self.seed = settings, make_env, seed
        self.streams_per_worker = streams_per_worker

    @property
    def num_streams(self) -> int:
        """Env streams over all workers (the stream ids of the context windows)."""
        return self.settings.workers * self.streams_per_worker

    @property
    def batch_streams(self) -> int:
        """Env streams in one batch: every worker's when synchronous, one worker's when not."""
        return self.num_streams if self.settings.sync else self.streams_per_worker

    def env_factories(self, env_steps: int) -> list[WorkerEnv]:
        return [WorkerEnv(self.make_env, worker_seed(self.seed, worker, env_steps), worker, tag=not self.settings.sync)
                for worker in range(self.settings.workers)]

    def start(self, policy: TensorDictModuleBase, *, frames_per_batch: int, init_random_frames: int,
              env_steps: int) -> tuple[Any, WeightPush]:
        """A collector of ``frames_per_batch`` steps per batch (the first ``init_random_frames`` uniform random) whose
        workers act with a copy of ``policy``, and the :class:`WeightPush` that keeps that copy up to date."""
        acting = copy.deepcopy(policy)  # the workers' weights, apart from the learner's until pushed
        factories = self.env_factories(env_steps)
        if self.settings.backend == "ray":
            collector = ray_collector(self.settings, factories, acting, frames_per_batch=frames_per_batch,
                                      init_random_frames=init_random_frames)
        else:
            collector = local_collector(self.settings, factories, acting, frames_per_batch=frames_per_batch,
                                        init_random_frames=init_random_frames)
        return collector, WeightPush(collector, policy, self.settings.update_every)


def local_collector(settings: CollectorSettings, factories: list[WorkerEnv], policy: TensorDictModuleBase, *,
                    frames_per_batch: int, init_random_frames: int):
    """TorchRL's ``MultiSyncCollector`` (``frames_per_batch / workers`` steps from each worker, stacked) or
    ``MultiAsyncCollector`` (``frames_per_batch`` steps from whichever worker is ready)."""
    from torchrl.collectors import MultiAsyncCollector, MultiSyncCollector

    cls = MultiSyncCollector if settings.sync else MultiAsyncCollector
    return cls(factories, policy, frames_per_batch=frames_per_batch, total_frames=-1,
               init_random_frames=init_random_frames, auto_register_policy_transforms=False)


def ray_init_config(settings: CollectorSettings) -> dict:
    """``ray.init``'s arguments: the cluster at ``settings.ray_address``, else a local instance of one CPU per
    worker. Ray counts a machine's cores by default, and a worker's remote collector asks for one CPU: with more
    workers than cores the last ones would wait for a CPU forever; this way they share the cores, as local
    processes do. (A Ray already started in this process is used as it is.)"""
    if settings.ray_address:
        return {"address": settings.ray_address}
    return {"num_cpus": settings.workers}


def ray_collector(settings: CollectorSettings, factories: list[WorkerEnv], policy: TensorDictModuleBase, *,
                  frames_per_batch: int, init_random_frames: int):
    """TorchRL's ``RayCollector``: one remote collector per worker, on a local Ray instance or the cluster at
    ``settings.ray_address``."""
    from torchrl.collectors.distributed import RayCollector

    endless = frames_per_batch * 2**40  # RayCollector reads total_frames=-1 as none at all; the stage ends the loop
    return RayCollector(factories, policy, frames_per_batch=frames_per_batch, total_frames=endless,
                        init_random_frames=init_random_frames, sync=settings.sync,
                        ray_init_config=ray_init_config(settings),
                        remote_configs={"num_cpus": 1})


__all__ = ["CollectorSettings", "WeightPush", "WorkerEnv", "Workers", "ray_address_problem", "ray_init_config",
           "worker_seed", "worker_tag"]
