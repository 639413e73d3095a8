"""Does ``torch.compile`` pay for the transformer actor? Eager against compiled, side by side in one process.

Times the recipe's stage-two network (``TransformerPolicyHead``: ``transformer=table1`` by default, HalfCheetah's
17-dimensional observations and 6 actions) in the three shapes a run uses: a batch-1 forward without gradients (a
collection step on the env-built window), a batch-256 forward without gradients (the TD target's action) and a
batch-256 forward + backward (the actor's update). Each compiled variant is its own ``torch.compile`` of the same
module (``dynamic=False``), warmed up before timing; its first call (the compile time) is reported apart. One line per
shape: ``<shape> eager_ms=<x> compiled_ms=<y> ratio=<eager/compiled> first_call_s=<z>``.

    .venv/bin/python benchmarks/compile_transformer.py --threads 2
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from trl_accel.modules.transformer import ContextTransformer, TransformerPolicyHead

#: (name, batch size, with a backward pass)
SHAPES = (("collect_b1", 1, False), ("target_b256", 256, False), ("update_b256", 256, True))


def timed(step: Callable[[], None], repeats: int, warmup: int) -> tuple[float, float]:
    """(first call in s, mean of ``repeats`` later calls in ms) of ``step``, after ``warmup`` untimed calls."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return first, (time.perf_counter() - start) / repeats * 1e3


def step_of(network: torch.nn.Module, batch: int, backward: bool, args: argparse.Namespace) -> Callable[[], None]:
    """One call of ``network`` on a random window of ``batch`` (its backward too, if asked)."""
    window = torch.randn(batch, args.context_len, args.obs_dim)
    mask = torch.ones(batch, args.context_len, dtype=torch.bool)

    def step() -> None:
        if backward:
            network(window, mask).square().mean().backward()
        else:
            with torch.no_grad():
                network(window, mask)
    return step


def add_transformer_sizes(parser: argparse.ArgumentParser) -> None:
    """The network's sizes as flags (``transformer=table1`` and HalfCheetah's by default); ``bc_step.py`` reads them too."""
    parser.add_argument("--obs-dim", type=int, default=17)
    parser.add_argument("--action-dim", type=int, default=6)
    parser.add_argument("--context-len", type=int, default=3)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--d-ff", type=int, default=512)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_transformer_sizes(parser)
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per shape (batch-256 shapes: a quarter)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    network = TransformerPolicyHead(ContextTransformer(args.obs_dim, context_len=args.context_len, d_model=args.d_model,
                                                       d_ff=args.d_ff), args.action_dim)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, K={args.context_len}, d_model {args.d_model}")
    for name, batch, backward in SHAPES:
        repeats = args.repeats if batch == 1 else max(1, args.repeats // 4)
        _, eager = timed(step_of(network, batch, backward, args), repeats, args.warmup)
        compiled_network = torch.compile(network, dynamic=False)
        first, compiled = timed(step_of(compiled_network, batch, backward, args), repeats, args.warmup)
        print(f"{name} eager_ms={eager:.3f} compiled_ms={compiled:.3f} ratio={eager / compiled:.2f} "
              f"first_call_s={first:.1f}", flush=True)


if __name__ == "__main__":
    main()
