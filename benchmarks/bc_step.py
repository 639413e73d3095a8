"""What does stage one's BC step cost beyond its arithmetic? The library's step against the same step written plainly.

Times one behaviour-cloning gradient step on a batch of labelled pairs, side by side in one process:

* ``library``: :meth:`trl_accel.stages.acceleration.BehaviourCloner.fit` on the recipe's transformer actor
  (``make_transformer_actor``, ``transformer=table1`` sizes by default, HalfCheetah's 17-dimensional observations and
  6 actions): TorchRL's functional parameters swapped in by ``BehaviourCloningLoss``, the MSE to ``target_action``,
  fused Adam, the foreach soft update of the target transformer;
* ``plain``: a second copy of the same network, with the same initial weights, called directly on tensors: the same
  tanh-scaled action, MSE, fused Adam step and ``torch._foreach_lerp_`` target update.

The labels are given (the teacher's forward is not timed). One line per repetition:
``threads=<n> plain_ms=<x> library_ms=<y> ratio=<plain/library>``.

    .venv/bin/python benchmarks/bc_step.py --threads 2
"""
from __future__ import annotations

import argparse

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torchrl.data import Bounded

from trl_accel.modules.transformer import make_transformer_actor
from trl_accel.stages.acceleration import BehaviourCloner
from trl_accel.stages.actor_critic import make_adam

from compile_transformer import add_transformer_sizes, timed  # this script's folder, where Python looks first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_transformer_sizes(parser)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=100, help="timed steps per repetition")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--reps", type=int, default=2, help="repetitions (plain and library alternate)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = Bounded(-1.0, 1.0, shape=(args.action_dim,))
    sizes = {"context_len": args.context_len, "d_model": args.d_model, "d_ff": args.d_ff,
             "passthrough_keys": ["observation"]}
    student = make_transformer_actor(args.obs_dim, spec, **sizes)
    plain_actor = make_transformer_actor(args.obs_dim, spec, **sizes)
    plain_actor.load_state_dict(student.state_dict())
    teacher = TensorDictModule(torch.nn.Linear(args.obs_dim, args.action_dim), in_keys=["observation"],
                               out_keys=["action"])
    cloner = BehaviourCloner(student, teacher, lr=3e-4, tau=0.005)

    window = torch.randn(args.batch_size, args.context_len, args.obs_dim)
    mask = torch.ones(args.batch_size, args.context_len, dtype=torch.bool)
    target = torch.rand(args.batch_size, args.action_dim) * 2 - 1
    pairs = TensorDict(observation_window=window, window_mask=mask, observation=window[:, -1], target_action=target,
                       batch_size=[args.batch_size])

    network = plain_actor[0][0].module  # the TransformerPolicyHead: window, mask -> pre-tanh action
    network.train()
    parameters = list(network.parameters())
    target_parameters = [p.detach().clone() for p in parameters]
    optimizer = make_adam(parameters, 3e-4)
    low, high = spec.space.low, spec.space.high

    def plain_step() -> None:
        action = low + (high - low) * (torch.tanh(network(window, mask)) + 1) / 2
        loss = torch.nn.functional.mse_loss(action, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(target_parameters, parameters, 0.005)

    def library_step() -> None:
        cloner.fit(pairs)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"K={args.context_len}, d_model {args.d_model}")
    for _ in range(args.reps):
        _, plain = timed(plain_step, args.repeats, args.warmup)
        _, library = timed(library_step, args.repeats, args.warmup)
        print(f"threads={torch.get_num_threads()} plain_ms={plain:.2f} library_ms={library:.2f} "
              f"ratio={plain / library:.2f}", flush=True)


if __name__ == "__main__":
    main()
