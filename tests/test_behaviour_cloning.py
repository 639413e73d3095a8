"""Stage one's behaviour cloning: the transformer can fit its teacher; targets and T behave."""
from __future__ import annotations

import torch
from tensordict import TensorDict
from torchrl.data import Bounded

from trl_accel.modules import make_mlp_actor, make_transformer_actor
from trl_accel.stages import BehaviourCloner, make_trajectory_buffer

OBS, ACT, K, B = 5, 2, 3, 64
SPEC = Bounded(-1.0, 1.0, shape=(ACT,))


def pairs(n: int = B) -> TensorDict:
    mask = torch.ones(n, K, dtype=torch.bool)
    mask[: n // 4, 0] = False
    window = torch.randn(n, K, OBS) * mask.unsqueeze(-1)
    return TensorDict(observation_window=window, window_mask=mask, observation=window[:, -1],
                      action=torch.rand(n, ACT) * 1.6 - 0.8, batch_size=[n])


def test_transformer_overfits_a_fixed_batch():
    torch.manual_seed(0)
    transformer = make_transformer_actor(OBS, SPEC, K, d_model=64, d_ff=128, dropout=0.0)
    cloner = BehaviourCloner(transformer, make_mlp_actor(OBS, SPEC, (16,)), target="executed", lr=1e-3)
    batch = pairs()
    first = cloner.step(batch.clone())["loss_bc"].item()
    for _ in range(400):
        last = cloner.step(batch.clone())["loss_bc"].item()
    assert last < 0.01 * first and last < 2e-3


def test_accelerator_target_is_its_deterministic_action():
    accelerator = make_mlp_actor(OBS, SPEC, (16,))
    cloner = BehaviourCloner(make_transformer_actor(OBS, SPEC, K, d_model=16, d_ff=32), accelerator, target="accelerator")
    batch = pairs()
    labelled = cloner.label(batch.clone())
    assert torch.equal(labelled["target_action"], accelerator(batch.select("observation"))["action"].detach())


def test_transformer_target_soft_updates_every_gradient_step():
    transformer = make_transformer_actor(OBS, SPEC, K, d_model=16, d_ff=32)
    cloner = BehaviourCloner(transformer, make_mlp_actor(OBS, SPEC, (16,)), target="executed", tau=0.1)
    online = cloner.loss.actor_network_params
    target_before = cloner.loss.target_actor_network_params.clone()
    cloner.step(pairs())
    expected = target_before.apply(lambda t, o: 0.9 * t + 0.1 * o.detach(), online)
    difference = cloner.loss.target_actor_network_params - expected
    assert max(leaf.abs().max().item() for leaf in difference.values(True, True)) < 1e-6
    assert cloner.num_updates == 1


def test_trajectory_buffer_is_cleared_after_a_bc_round():
    cloner = BehaviourCloner(make_transformer_actor(OBS, SPEC, K, d_model=16, d_ff=32),
                             make_mlp_actor(OBS, SPEC, (16,)), target="executed", epochs=2)
    buffer = make_trajectory_buffer(capacity=100, batch_size=32)
    buffer.extend(pairs(100))
    assert len(buffer) == 100
    cloner.train_on(buffer)
    assert len(buffer) == 0
    assert cloner.num_updates == 2 * 4  # two passes over 100 pairs in batches of 32


def test_padding_positions_do_not_change_the_action():
    transformer = make_transformer_actor(OBS, SPEC, K, d_model=16, d_ff=32).eval()
    batch = pairs(8)
    batch["window_mask"][:, :2] = False
    other = batch.clone()
    other["observation_window"][:, :2] = torch.randn(8, 2, OBS) * 100
    assert torch.allclose(transformer(batch)["action"], transformer(other)["action"], atol=1e-6)


def test_dropout_is_off_in_eval_mode():
    transformer = make_transformer_actor(OBS, SPEC, K, d_model=16, d_ff=32, dropout=0.5).eval()
    batch = pairs(8)
    assert torch.equal(transformer(batch.clone())["action"], transformer(batch.clone())["action"])


def test_dropout_acts_only_on_gradient_steps():
    transformer = make_transformer_actor(OBS, SPEC, K, d_model=16, d_ff=32, dropout=0.5).train()
    batch = pairs(8)
    with torch.no_grad():  # target actions and rollouts
        assert torch.equal(transformer(batch.clone())["action"], transformer(batch.clone())["action"])
    assert not torch.equal(transformer(batch.clone())["action"], transformer(batch.clone())["action"])
