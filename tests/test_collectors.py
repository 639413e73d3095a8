"""Collector workers (``collector.*``): TorchRL's multi-process collectors feed both stages and the baselines, each
worker with its own seeds; counters, resume and the context windows stay exact; bad settings fail at once."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import torch
from td3_accelerate import run_experiment
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule

from tests.conftest import ROOT, run_killed_after_a_checkpoint
from trl_accel import keys
from trl_accel.collectors import (
    CollectorSettings,
    WeightPush,
    Workers,
    ray_init_config,
    worker_seed,
)
from trl_accel.config import ConfigError, validate_config
from trl_accel.experiment import build_env
from trl_accel.stages.windows import STEP_KEY, STREAM_KEY, StreamWindows

TOTAL = 200 + 300 + 200  # random + stage-one + stage-two steps in the tiny schedule
#: A shorter schedule for the runs made twice.
SHORT = ["stage1.random_steps=100", "stage1.steps=100", "stage2.steps=100", "eval.every=100", "eval.episodes=1",
         "checkpoint.every=100"]
WORKERS = ["collector.workers=2", "frames_per_batch=50"]
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed: pip install -e .[ray]")


@pytest.fixture
def ray_shutdown():
    """Shuts down the Ray instance the test started, however it ended."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def test_two_synchronous_workers_run_both_stages(tiny_config, tmp_path):
    summary = run_experiment(tiny_config(*WORKERS), tmp_path)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["env_steps"] == TOTAL and written["switch_step"] == 500
    assert written["collector"] == {"workers": 2, "sync": True, "update_every": 1, "backend": "local",
                                    "ray_address": None}
    assert set(written["learning_steps_per_s"]) == {"stage1", "stage2"}
    assert isinstance(summary["stage2"]["transformer_return"], float)
    assert summary["bc_rounds"] == 3


def test_asynchronous_workers_with_kv_cache_rollouts(tiny_config, tmp_path):
    """Each batch is one worker's, placed in its own streams; the transformer's KV cache lives in the worker envs."""
    cfg = tiny_config(*WORKERS, "collector.sync=false", "collector.update_every=2", "transformer.rollout=cache",
                      "transformer.positions=rotary", "transformer.context_len=4", *SHORT)
    summary = run_experiment(cfg, tmp_path)
    assert summary["env_steps"] == 300 and summary["switch_step"] == 200
    assert summary["collector"]["sync"] is False and summary["collector"]["update_every"] == 2
    assert isinstance(summary["stage2"]["transformer_return"], float)


def test_the_same_seed_gives_the_same_run_with_synchronous_workers(tiny_config, tmp_path):
    cfg = partial(tiny_config, *WORKERS, *SHORT, "mode=accelerator_only", "stage2.steps=0")
    first = run_experiment(cfg(), tmp_path / "first")
    second = run_experiment(cfg(), tmp_path / "second")
    assert first["env_steps"] == second["env_steps"] == 200
    returns = [[e["mlp_return"] for e in run["evaluations"]] for run in (first, second)]
    assert returns[0] == returns[1] and len(returns[0]) == 3


def test_resume_with_workers_continues_the_counters(tiny_config, tmp_path, monkeypatch):
    cfg = partial(tiny_config, *WORKERS, *SHORT)
    saved = run_killed_after_a_checkpoint(monkeypatch, lambda: run_experiment(cfg(), tmp_path),
                                          when=lambda saved: len(saved) == 2)
    assert saved[-1]["stage"] == "stage1" and saved[-1]["env_steps"] == 200
    summary = run_experiment(cfg(f"resume={tmp_path}"), tmp_path / "ignored")
    assert summary["env_steps"] == 300 and summary["switch_step"] == 200
    assert [e["env_steps"] for e in summary["evaluations"]] == [100, 200, 200, 300, 300]


def test_workers_get_distinct_seeds_and_envs(tiny_config):
    cfg = validate_config(tiny_config())
    workers = Workers(CollectorSettings(workers=2), partial(build_env, cfg, torch.device("cpu")), seed=cfg.seed,
                      streams_per_worker=1)
    factories = workers.env_factories(env_steps=0)
    assert len({factory.seed for factory in factories}) == 2
    with torch.random.fork_rng():  # a worker's env seeds its process's torch stream: keep this one's
        observations = [factory().reset()[keys.OBSERVATION] for factory in factories]
    assert not torch.equal(*observations)
    assert worker_seed(0, 1, 0) == worker_seed(0, 1, 0) != worker_seed(0, 1, 500) != worker_seed(1, 1, 0)


def test_weights_are_pushed_every_update_every_batches():
    pushed = []

    class FakeCollector:
        def update_policy_weights_(self, weights):
            pushed.append(weights)

    push = WeightPush(FakeCollector(), torch.nn.Linear(2, 1), update_every=3)
    for _ in range(7):
        push.batch_done()
    assert len(pushed) == 2 and set(pushed[0].keys()) == {"weight", "bias"}


def test_an_asynchronous_batch_is_placed_in_its_workers_streams():
    windows = StreamWindows(context_len=2, num_streams=4, capacity=100, batch_streams=2)

    def batch(worker: int) -> TensorDict:  # 2 envs x 3 steps of one worker
        return TensorDict({keys.IS_INIT: torch.zeros(6, 1, dtype=torch.bool),
                           keys.WORKER: torch.full((6, 1), worker)}, batch_size=[6])

    placed = windows.place(batch(1))
    assert placed[STREAM_KEY].tolist() == [2, 2, 2, 3, 3, 3] and placed[STEP_KEY].tolist() == [0, 1, 2] * 2
    assert windows.place(batch(1))[STEP_KEY].tolist() == [3, 4, 5] * 2
    assert windows.place(batch(0))[STREAM_KEY].tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="must carry its steps' 'worker' index"):
        windows.place(batch(0).exclude(keys.WORKER))


@pytest.mark.parametrize("override, message", [
    ("collector.workers=0", r"collector.workers=0 is out of range: it must be >= 1"),
    ("collector.update_every=0", r"collector.update_every=0 is out of range: it must be >= 1"),
    ("collector.backend=dask", r"collector.backend=.dask. is out of range"),
    ("collector.workers=3", r"frames_per_batch \(50\) must be a multiple of collector.workers x env.num_envs \(3 x 1\)"),
    ("collector.ray_address=127.0.0.1:1", "is for collector.backend=ray"),
])
def test_bad_collector_settings_are_refused(tiny_config, override, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(tiny_config(override))


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_without_the_package_names_the_extra(tiny_config):
    with pytest.raises(ConfigError, match=r"needs the ray package.*pip install -e \.\[ray\]"):
        validate_config(tiny_config("collector.backend=ray"))


@needs_ray
def test_a_ray_address_that_does_not_answer_fails_fast(tiny_config):
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="no Ray cluster answers there"):
        validate_config(tiny_config("collector.backend=ray", "collector.ray_address=127.0.0.1:1"))
    assert time.perf_counter() - started < 10


def test_the_recipe_refuses_zero_workers_in_one_line():
    result = subprocess.run([sys.executable, "recipes/td3_accelerate.py", "collector.workers=0"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: collector.workers=0 is out of range: it must be >= 1."


@needs_ray
def test_ray_workers_on_a_local_instance_run_both_stages(tiny_config, tmp_path, monkeypatch, ray_shutdown):
    import ray

    started, ray_init = [], ray.init
    monkeypatch.setattr(ray, "init", lambda **kwargs: started.append(kwargs) or ray_init(**kwargs))
    summary = run_experiment(tiny_config(*WORKERS, "collector.backend=ray", *SHORT), tmp_path)
    assert summary["env_steps"] == 300 and summary["collector"]["backend"] == "ray"
    assert started and all(kwargs == {"num_cpus": 2} for kwargs in started)  # a local Ray of 2 CPUs, one per worker


def test_a_local_ray_has_one_cpu_per_worker_and_a_cluster_its_own():
    assert ray_init_config(CollectorSettings(workers=8, backend="ray")) == {"num_cpus": 8}
    cluster = CollectorSettings(workers=8, backend="ray", ray_address="10.0.0.1:6379")
    assert ray_init_config(cluster) == {"address": "10.0.0.1:6379"}


def linear_policy() -> TensorDictModule:
    """A deterministic policy of Pendulum's observation (3 -> 1 action), with no exploration noise."""
    return TensorDictModule(torch.nn.Linear(3, 1), in_keys=[keys.OBSERVATION], out_keys=[keys.ACTION])


def make_constant(policy: TensorDictModule, value: float) -> None:
    """Set the learner's weights so that every action is ``value``."""
    with torch.no_grad():
        policy.module.weight.zero_()
        policy.module.bias.fill_(value)


def batches_until_constant(batches: Iterator[TensorDictBase], value: float, limit: int) -> int | None:
    """How many batches come until one whose every action is ``value``; ``None`` when none of ``limit`` is."""
    for count in range(1, limit + 1):
        if torch.all(next(batches)[keys.ACTION] == value):
            return count
    return None


def check_weight_pushes_reach_the_workers(cfg, settings: CollectorSettings,
                                          while_running: Callable[[], None] = lambda: None) -> None:
    """The workers act with the learner's weights at the start, then with each pushed set: in the very next batch
    when synchronous, within a few when not (batches already under way were collected with the old weights).
    ``while_running`` is called before the collector shuts down."""
    workers = Workers(settings, partial(build_env, cfg, torch.device("cpu")), seed=cfg.seed, streams_per_worker=1)
    policy = linear_policy()
    collector, push = workers.start(policy, frames_per_batch=20, init_random_frames=0, env_steps=0)
    try:
        batches = iter(collector)
        first = next(batches)
        with torch.no_grad():
            expected = policy(first.select(keys.OBSERVATION))[keys.ACTION]
        assert torch.allclose(first[keys.ACTION], expected, atol=1e-6)
        limit = 1 if settings.sync else 8
        for value in (0.5, -0.25):
            make_constant(policy, value)
            push.batch_done()
            assert batches_until_constant(batches, value, limit) is not None, f"push of {value} not seen"
        while_running()
    finally:
        collector.shutdown()


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_a_weight_push_reaches_the_local_workers(tiny_config, sync):
    check_weight_pushes_reach_the_workers(validate_config(tiny_config()), CollectorSettings(workers=2, sync=sync))


@needs_ray
@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_a_weight_push_reaches_the_ray_workers(tiny_config, sync, ray_shutdown):
    import ray

    def two_cpus() -> None:  # the local instance the collector started: one CPU per worker
        assert ray.cluster_resources()["CPU"] == 2

    settings = CollectorSettings(workers=2, sync=sync, backend="ray")
    check_weight_pushes_reach_the_workers(validate_config(tiny_config()), settings, while_running=two_cpus)
    assert not ray.is_initialized()  # the collector's shutdown ended the Ray it started
