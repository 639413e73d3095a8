"""Where a collection step's time goes on one env: the recipe's env and policy, layer by layer, beside the plain
loop's gymnasium step and policy call.

Times, in one process, milliseconds per env step (mean over ``--steps`` steps after a first call and a warm-up, the same constant
action, episodes reset as they end), one line per layer and repetition, ``<layer> <ms>``:

* ``gym``: the gymnasium env's ``step`` and ``torch.as_tensor`` of the observation (what ``plain_td3.py`` pays);
* ``torchrl_env``: TorchRL's ``GymEnv`` (no device), ``step_and_maybe_reset``;
* ``torchrl_env_cpu``: the same with ``device="cpu"``, as the recipe builds it (each step's output cast to the device);
* ``double_to_float``: that and ``DoubleToFloat``;
* ``recipe_env``: the recipe's env (``make_env`` without windows: ``DoubleToFloat``, ``InitTracker``,
  ``StepCounter``, ``RewardSum``), what MLP TD3 and stage one's accelerator step;
* ``plain_policy``: the MLP actor's arithmetic on a tensor (its network, tanh scaling, Gaussian noise, clamp);
* ``recipe_policy``: the recipe's collection policy (``TensorDictModule`` of the same network, ``TanhModule``,
  ``ClampedGaussianNoise``) on the env's tensordict;
* ``recipe_collector``: a step of TorchRL's collector with that policy and env (its batches of ``frames_per_batch``).

    .venv/bin/python benchmarks/env_step.py --env halfcheetah --threads 2
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

import gymnasium as gym
import torch
from torchrl.envs import Compose, DoubleToFloat, GymEnv, TransformedEnv

from trl_accel.envs import KNOWN_ENVS
from trl_accel.envs.make import make_env

from compile_transformer import timed  # this script's folder, where Python looks first
from profile_stage_two import StageTwo, recipe_config


def gym_stepper(gym_id: str) -> Callable[[], object]:
    env = gym.make(gym_id)
    env.reset(seed=0)
    action = env.action_space.sample()

    def step():
        obs, _, terminated, truncated, _ = env.step(action)
        torch.as_tensor(obs)
        if terminated or truncated:
            env.reset()
    return step


def torchrl_stepper(env) -> Callable[[], object]:
    state = {"td": env.reset()}
    action = env.action_spec.rand()

    def step():
        state["td"]["action"] = action
        _, state["td"] = env.step_and_maybe_reset(state["td"])
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="halfcheetah", help="env group of the recipe")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per layer and repetition")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    gym_id = KNOWN_ENVS[args.env]
    stage = StageTwo(recipe_config(args.env, ["env.num_envs=1"]), seed=0, actor="accelerator")
    policy = stage.collector_policy
    mlp, noise = policy[0][0].module, policy[1]
    low, high, std = noise.action_low, noise.action_high, noise.std * noise.sigma
    policy_input = stage.env.reset()
    obs = policy_input["observation"]

    def plain_policy():
        with torch.no_grad():
            action = low + (high - low) * (torch.tanh(mlp(obs)) + 1) / 2
            return torch.clamp(action + torch.randn_like(action) * std, low, high)

    def recipe_policy():
        with torch.no_grad():
            return policy(policy_input)

    frames = stage.frames_per_batch
    batches = stage.batches
    layers = {
        "gym": gym_stepper(gym_id),
        "torchrl_env": torchrl_stepper(GymEnv(gym_id)),
        "torchrl_env_cpu": torchrl_stepper(GymEnv(gym_id, device="cpu")),
        "double_to_float": torchrl_stepper(TransformedEnv(GymEnv(gym_id, device="cpu"), Compose(DoubleToFloat()))),
        "recipe_env": torchrl_stepper(make_env(gym_id, None, device="cpu", seed=0)),
        "plain_policy": plain_policy,
        "recipe_policy": recipe_policy,
    }
    for rep in range(args.reps):
        for name, work in layers.items():
            print(f"{name} {timed(work, args.steps, args.warmup)[1]:.4f}", flush=True)
        _, batch_ms = timed(lambda: next(batches), max(1, args.steps // frames), max(1, args.warmup // frames))
        print(f"recipe_collector {batch_ms / frames:.4f}", flush=True)
        if rep + 1 < args.reps:
            print(flush=True)


if __name__ == "__main__":
    main()
