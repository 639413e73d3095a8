"""A supervised memory probe through the real pipeline: masked-Pendulum steps collected by the recurrent actor
(TorchRL collector, our env transforms), sequences sampled from our replay buffer, and the angular velocity
regressed from a recurrent trunk's memory. The velocity is exact from consecutive angles in Pendulum-v1
(semi-implicit Euler: θ̇_t = wrap(θ_t − θ_{t−1}) / dt), so a network that remembers the previous step
reaches R² near 1, and one that sees only the current (cos θ, sin θ) cannot (R² near 0)."""
from __future__ import annotations

import math

import pytest
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torchrl.collectors import Collector
from torchrl.modules import MLP, set_recurrent_mode

from trl_accel import keys
from trl_accel.envs import PreviousActionReward, make_env
from trl_accel.modules.recurrent import make_recurrent_actor, make_recurrent_trunk, recurrent_state_keys, recurrent_state_primer
from trl_accel.stages.learners import make_collection_policy
from trl_accel.stages.sequences import SequenceSettings, make_replay_buffer

DT = 0.05  # Pendulum-v1's time step


def angular_velocity(sequences) -> tuple[torch.Tensor, torch.Tensor]:
    """θ̇ from consecutive angles inside each sequence, and where it is defined (not at a sequence's first step,
    an episode's first step, or padding). Shapes: [B, T] each."""
    obs = sequences[keys.OBSERVATION]
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    delta = theta[:, 1:] - theta[:, :-1]
    velocity = torch.zeros_like(theta)
    velocity[:, 1:] = torch.remainder(delta + math.pi, 2 * math.pi) - math.pi
    velocity = velocity / DT
    defined = sequences[keys.LOSS_MASK].clone()
    defined[:, 0] = False
    defined &= ~sequences[keys.IS_INIT].squeeze(-1)
    return velocity, defined


@pytest.fixture(scope="module")
def masked_pendulum_replay():
    torch.manual_seed(0)
    env = make_env("Pendulum-v1", 1, seed=0, pomdp="positions_only")
    action_spec = env.action_spec_unbatched
    actor = make_recurrent_actor(2, action_spec, cell="lstm", hidden_size=16, hidden_sizes=(16,))
    env.append_transform(PreviousActionReward())
    env.append_transform(recurrent_state_primer(actor))
    policy = make_collection_policy("td3", actor, action_spec, {"exploration_noise": 0.6})
    settings = SequenceSettings(seq_len=24, burn_in=4, start_state="zero", state_keys=tuple(recurrent_state_keys(actor)))
    replay = make_replay_buffer(10_000, 64, sequences=settings)
    collector = Collector(env, policy, frames_per_batch=500, total_frames=4000, init_random_frames=2000)
    for batch in collector:
        replay.extend(batch.reshape(-1))
    collector.shutdown()
    return replay


def fit_r2(model: torch.nn.Module, replay, recurrent: bool, steps: int = 400) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def predict(sequences):
        with set_recurrent_mode(recurrent):
            return model(sequences.clone())["velocity"].squeeze(-1)

    for _ in range(steps):
        sequences = replay.sample()
        target, defined = angular_velocity(sequences)
        loss = ((predict(sequences) - target) ** 2)[defined].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        sequences = replay.sample(batch_size=64 * 24 * 8)
        target, defined = angular_velocity(sequences)
        error = ((predict(sequences) - target) ** 2)[defined].mean()
        return float(1 - error / target[defined].var())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_memory_recovers_the_masked_velocity(masked_pendulum_replay, cell):
    torch.manual_seed(1)
    trunk = make_recurrent_trunk({keys.OBSERVATION: 2}, cell=cell, hidden_size=32, prefix="probe")
    model = TensorDictSequential(trunk, TensorDictModule(torch.nn.Linear(32, 1), in_keys=["probe_memory"],
                                                         out_keys=["velocity"]))
    assert fit_r2(model, masked_pendulum_replay, recurrent=True) > 0.9


def test_a_memoryless_network_cannot_recover_the_masked_velocity(masked_pendulum_replay):
    torch.manual_seed(1)
    model = TensorDictModule(MLP(in_features=2, out_features=1, num_cells=[64, 64]), in_keys=[keys.OBSERVATION],
                             out_keys=["velocity"])
    assert fit_r2(model, masked_pendulum_replay, recurrent=False) < 0.2


def test_sequences_are_padded_and_masked_never_dropped(masked_pendulum_replay):
    sequences = masked_pendulum_replay.sample()
    assert sequences.shape == (64, 24)
    assert not sequences[keys.LOSS_MASK][:, :4].any()  # burn-in
    padding = ~sequences["collector", "mask"].reshape(64, 24)
    assert not sequences[keys.LOSS_MASK][padding].any()  # padding never reaches a loss
    trajectories = sequences["collector", "traj_ids"]
    assert (trajectories == trajectories[:, :1]).all()  # one trajectory per sequence
    episode_starts = sequences[keys.IS_INIT].squeeze(-1)[:, 1:] & ~padding[:, 1:]
    assert not episode_starts.any()  # never across an episode's start
