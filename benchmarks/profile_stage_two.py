"""Where stage two's time goes: cProfile of the recipe's stage-two updates and env steps, built as the recipe
builds them (the transformer of ``transformer=table1`` as actor, the MLP critics, TD3Loss, the replay that builds
windows from storage, the TorchRL env with its transforms and the exploration module, TorchRL's collector).

Fills the replay with ``--fill`` steps, then profiles ``--updates`` updates (``replay.sample()`` and
``learner.update``, as :func:`trl_accel.loop.collect_and_learn` runs them) and ``--batches`` collector
batches of ``frames_per_batch`` env steps (the collector's step and ``replay.extend``), each on its own, and
prints per phase the milliseconds per update / env step and the top entries by own time (tottime) and by
cumulative time, as shares of the phase's total. Shares, not absolute times, are what compare across machines.

``--actor accelerator`` puts the MLP accelerator in the transformer's place (stage one's and the MLP baseline's
learner, its replay without windows); ``--timed`` times the same phases without the profiler and prints only the
milliseconds per update / env step (the figures to compare between ``env.num_envs`` settings).

    .venv/bin/python benchmarks/profile_stage_two.py --env halfcheetah --threads 1
    .venv/bin/python benchmarks/profile_stage_two.py --env halfcheetah --actor accelerator --timed --batches 20 \
        -- env.num_envs=5
    .venv/bin/python benchmarks/profile_stage_two.py --env pendulum --updates 50 --batches 2 -- transformer.d_model=32
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from trl_accel import keys
from trl_accel.config import validate_config
from trl_accel.experiment import Agents, build_env, replay_keys
from trl_accel.loop import local_collector
from trl_accel.stages.learners import make_collection_policy, make_learner
from trl_accel.stages.sequences import make_replay_buffer
from trl_accel.stages.windows import StreamWindows

ROOT = Path(__file__).resolve().parents[1]
ACTORS = ("transformer", "accelerator")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="halfcheetah", help="env group of the recipe")
    p.add_argument("--fill", type=int, default=2000, help="env steps in replay before profiling")
    p.add_argument("--updates", type=int, default=200, help="updates profiled")
    p.add_argument("--batches", type=int, default=6, help="collector batches (frames_per_batch env steps) profiled")
    p.add_argument("--top", type=int, default=20, help="entries printed per table")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) if given")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--actor", choices=ACTORS, default="transformer",
                   help="the learner's actor: stage two's transformer, or the MLP accelerator of stage one")
    p.add_argument("--timed", action="store_true", help="time each phase without the profiler (ms per unit only)")
    p.add_argument("--save", type=Path, default=None, help="also dump each phase's stats to SAVE.<phase>.prof")
    p.add_argument("overrides", nargs="*", help="recipe config overrides (after --)")
    return p.parse_args(argv)


def recipe_config(env: str, overrides: list[str]) -> DictConfig:
    """The TD3 recipe's config for ``env`` (CPU, stage two's 20k replay) with ``overrides``."""
    with initialize_config_dir(config_dir=str(ROOT / "recipes" / "config"), version_base="1.3"):
        cfg = compose(config_name="td3_accelerate",
                      overrides=[f"env={env}", "device=cpu", "stage2.buffer_size=20000", *overrides])
    return validate_config(cfg)


class StageTwo:
    """The recipe's stage-two pieces: env, transformer learner, windowed replay, collection policy, collector
    (``actor="accelerator"``: the MLP accelerator's learner and a replay without windows, as stage one has them)."""

    def __init__(self, cfg: DictConfig, seed: int, actor: str = "transformer"):
        device = torch.device("cpu")
        torch.manual_seed(seed)
        self.env = build_env(cfg, device, seed=seed)
        action_spec = self.env.action_spec_unbatched.to(device)
        agents = Agents(cfg, self.env.observation_spec[keys.OBSERVATION].shape[-1], action_spec, device)
        for transform in agents.env_transforms():
            self.env.append_transform(transform)
        settings = {k: v for k, v in dict(cfg.algo).items() if k != "name" and v is not None}
        acting = agents.transformer if actor == "transformer" else agents.accelerator
        self.learner = make_learner("td3", acting, agents.critics, action_spec, settings=settings)
        windows = (StreamWindows(context_len=cfg.transformer.context_len, num_streams=self.env.batch_size.numel(),
                                 capacity=cfg.stage2.buffer_size, device=device) if actor == "transformer" else None)
        self.replay = make_replay_buffer(cfg.stage2.buffer_size, cfg.algo.batch_size, device, None, windows)
        self.stored = replay_keys(self.learner.loss)
        policy = make_collection_policy("td3", agents.transformer_policy if actor == "transformer" else acting,
                                        action_spec, settings)
        self.collector_policy = policy
        self.frames_per_batch = cfg.frames_per_batch
        self.batches = iter(local_collector(self.env, policy, cfg.frames_per_batch))

    def collect(self) -> None:
        """One collector batch into replay, as the recipe's loop stores it."""
        self.replay.extend(self.stored(next(self.batches).reshape(-1)))

    def update(self) -> None:
        """One update on a fresh sample, as the recipe's loop runs it."""
        self.learner.update(self.replay.sample())


def profile(phase: str, work: Callable[[], None], repeats: int, per: int, top: int, save: Path | None = None) -> None:
    """Run ``work`` ``repeats`` times under cProfile and print ms per unit (``per`` units per call) and the
    top entries by own and cumulative time, as shares of the total."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(repeats):
        work()
    profiler.disable()
    seconds = time.perf_counter() - started
    stats = pstats.Stats(profiler)
    if save is not None:
        stats.dump_stats(f"{save}.{phase.split()[1]}.prof")
    total = stats.total_tt
    print(f"\n== {phase}: {repeats * per} units, {1000 * seconds / (repeats * per):.2f} ms each under the profiler")
    for sort, column in (("tottime", 2), ("cumulative", 3)):
        rows = sorted(stats.stats.items(), key=lambda item: item[1][column], reverse=True)[:top]
        print(f"-- top {top} by {sort} (share of the phase's total)")
        for (filename, line, name), entry in rows:
            where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if line else filename
            print(f"{100 * entry[column] / total:6.1f}%  {entry[1]:>7d} calls  {name}  {where}")


def timed(phase: str, work: Callable[[], None], repeats: int, per: int) -> None:
    """Run ``work`` ``repeats`` times and print ms per unit (``per`` units per call), without the profiler."""
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    seconds = time.perf_counter() - started
    print(f"== {phase}: {repeats * per} units, {1000 * seconds / (repeats * per):.3f} ms each")


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    stage = StageTwo(recipe_config(args.env, args.overrides), args.seed, args.actor)
    for _ in range(max(1, args.fill // stage.frames_per_batch)):
        stage.collect()
    for _ in range(5):  # warm-up: first calls build caches
        stage.update()
    name = "stage-two" if args.actor == "transformer" else "accelerator"
    phases = ((f"{name} update (replay.sample + learner.update)", stage.update, args.updates, 1),
              (f"{name} env steps (collector batch + replay.extend)", stage.collect, args.batches,
               stage.frames_per_batch))
    for phase, work, repeats, per in phases:
        if args.timed:
            timed(phase, work, repeats, per)
        else:
            profile(phase, work, repeats, per, args.top, args.save)


if __name__ == "__main__":
    main()
