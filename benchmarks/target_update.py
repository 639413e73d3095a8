"""The soft target update's cost: TorchRL's ``SoftUpdate`` against the library's ``ForeachSoftUpdate``, side by side
in one process, on the MLP TD3 learner's actor and twin critics (HalfCheetah's sizes: 17 observations, 6 actions,
256 x 256 hidden units; 12 tensors).

Three ways of running the same update (θ' ← θ' + τ(θ - θ'), the same result bit for bit): TorchRL's ``SoftUpdate``
(one TensorDict ``lerp_`` per parameter group), ``ForeachSoftUpdate`` gathering its tensor lists at every step
(what it did before), and ``ForeachSoftUpdate`` as it runs now (lists gathered once, one ``_foreach_lerp_``).
One line each: ``<way> us_per_step=<x> ratio=<TorchRL's time / this one's>``.

    .venv/bin/python benchmarks/target_update.py --threads 1
"""
from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
from torchrl.data import Bounded
from torchrl.objectives import SoftUpdate, TD3Loss

from trl_accel.modules import make_twin_q_critics
from trl_accel.modules.mlp import make_mlp_actor
from trl_accel.stages.actor_critic import ForeachSoftUpdate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--obs-dim", type=int, default=17)
    p.add_argument("--action-dim", type=int, default=6)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--steps", type=int, default=2000, help="timed steps per way")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) if given")
    return p.parse_args(argv)


def microseconds_per_call(call: Callable[[], None], steps: int) -> float:
    for _ in range(max(1, steps // 20)):  # warm-up
        call()
    start = time.perf_counter()
    for _ in range(steps):
        call()
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = Bounded(-1.0, 1.0, shape=(args.action_dim,))
    actor = make_mlp_actor(args.obs_dim, spec, hidden_sizes=(args.hidden, args.hidden))
    critics = make_twin_q_critics(args.obs_dim, args.action_dim, hidden_sizes=(args.hidden, args.hidden))
    losses = [TD3Loss(copy.deepcopy(actor), [copy.deepcopy(c) for c in critics], action_spec=spec, num_qvalue_nets=2)
              for _ in range(3)]
    torchrl, each_step, once = (SoftUpdate(losses[0], tau=0.005), ForeachSoftUpdate(losses[1], tau=0.005),
                                ForeachSoftUpdate(losses[2], tau=0.005))

    def gathered_each_step() -> None:
        each_step.forget_tensors()
        each_step.step()

    ways = (("torchrl_soft_update", torchrl.step), ("foreach_gathered_each_step", gathered_each_step),
            ("foreach_gathered_once", once.step))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps each")
    reference = None
    for name, call in ways:
        cost = microseconds_per_call(call, args.steps)
        reference = reference or cost
        print(f"{name} us_per_step={cost:.1f} ratio={reference / cost:.2f}", flush=True)


if __name__ == "__main__":
    main()
