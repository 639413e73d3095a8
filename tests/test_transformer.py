"""The transformer actor: its inputs, the keys it declares for the critic, and when its dropout acts."""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded
from torchrl.envs import ExplorationType, set_exploration_type
from torchrl.objectives import SACLoss, TD3Loss

from tests.helpers import transitions
from trl_accel import keys
from trl_accel.envs import make_env
from trl_accel.modules import PixelEncoder, make_transformer_actor, make_twin_q_critics
from trl_accel.modules.transformer import TransformerPolicyHead

OBS, ACT, K, B = 5, 2, 3, 8
SPEC = Bounded(-1.0, 1.0, shape=(ACT,))
#: The recipe's ``transformer`` config group, key for key.
TRANSFORMER_GROUP = {"context_len": K, "d_model": 16, "n_layers": 1, "n_heads": 2, "n_kv_heads": None, "d_ff": 32,
                     "dropout": 0.5, "positions": "learned"}


def window_batch(n: int = B) -> TensorDict:
    window = torch.randn(n, K, OBS)
    return TensorDict({keys.OBSERVATION_WINDOW: window, keys.WINDOW_MASK: torch.ones(n, K, dtype=torch.bool)},
                      batch_size=[n])


def test_the_config_group_spreads_into_the_factory():
    actor = make_transformer_actor(OBS, SPEC, **TRANSFORMER_GROUP, stochastic=False, passthrough_keys=())
    assert actor(window_batch())[keys.ACTION].shape == (B, ACT)
    with pytest.raises(TypeError):
        make_transformer_actor(OBS, SPEC, K)  # options are keyword-only


def test_the_actor_reads_only_what_it_uses_plus_declared_keys():
    assert make_transformer_actor(OBS, SPEC, d_model=16, d_ff=32).in_keys == [keys.OBSERVATION_WINDOW, keys.WINDOW_MASK]
    declared = make_transformer_actor(OBS, SPEC, d_model=16, d_ff=32, passthrough_keys=(keys.OBSERVATION, keys.IS_INIT))
    assert declared.in_keys == [keys.OBSERVATION_WINDOW, keys.WINDOW_MASK, keys.OBSERVATION, keys.IS_INIT]
    pixels = make_transformer_actor(OBS, SPEC, d_model=16, d_ff=32, frame_encoder=PixelEncoder(36, 4))
    assert sorted(pixels.in_keys) == sorted([keys.OBSERVATION_WINDOW, keys.PIXELS_WINDOW, keys.WINDOW_MASK])
    network = next(m for m in declared.modules() if isinstance(m, TransformerPolicyHead))
    assert network(torch.randn(B, K, OBS), torch.ones(B, K, dtype=torch.bool)).shape == (B, ACT)
    # a declared key is never read: the actor acts without it
    assert declared(window_batch())[keys.ACTION].shape == (B, ACT)


@pytest.mark.parametrize("algorithm", ["td3", "sac"])
def test_declared_keys_reach_an_mlp_critic_in_torchrl_losses(algorithm):
    stochastic = algorithm == "sac"
    actor = make_transformer_actor(OBS, SPEC, d_model=16, d_ff=32, stochastic=stochastic,
                                   passthrough_keys=(keys.OBSERVATION,))
    critics = make_twin_q_critics(OBS, ACT, hidden_sizes=(16,))
    batch = transitions(B, obs_dim=OBS, action_dim=ACT, context_len=K)
    if algorithm == "td3":
        loss = TD3Loss(actor, critics, action_spec=SPEC, loss_function="l2")
        loss.make_value_estimator(gamma=0.99)
        value_loss, _ = loss.value_loss(batch.clone())
        actor_loss, _ = loss.actor_loss(batch.clone())
    else:
        loss = SACLoss(actor, critics, num_qvalue_nets=2, loss_function="l2", action_spec=SPEC)
        loss.make_value_estimator(gamma=0.99)
        losses = loss(batch.clone())
        value_loss, actor_loss = losses["loss_qvalue"], losses["loss_actor"]
    (value_loss + actor_loss).backward()
    assert torch.isfinite(value_loss) and torch.isfinite(actor_loss)


def test_deterministic_rollouts_in_train_mode_repeat_exactly():
    torch.manual_seed(0)
    env = make_env("Pendulum-v1", K)
    actor = make_transformer_actor(env.observation_spec[keys.OBSERVATION].shape[-1], env.action_spec_unbatched,
                                   context_len=K, d_model=16, d_ff=32, dropout=0.5)
    assert actor.training and torch.is_grad_enabled()
    actions = []
    for _ in range(2):
        env.set_seed(0)
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            actions.append(env.rollout(20, actor)[keys.ACTION])
    env.close()
    assert torch.equal(actions[0], actions[1])


def test_a_gradient_forward_in_train_mode_applies_dropout():
    actor = make_transformer_actor(OBS, SPEC, d_model=16, d_ff=32, dropout=0.5).train()
    batch = window_batch()
    assert not torch.equal(actor(batch.clone())[keys.ACTION], actor(batch.clone())[keys.ACTION])
    with set_exploration_type(ExplorationType.RANDOM):  # SAC's actor loss
        assert not torch.equal(actor(batch.clone())[keys.ACTION], actor(batch.clone())[keys.ACTION])
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        assert torch.equal(actor(batch.clone())[keys.ACTION], actor(batch.clone())[keys.ACTION])
