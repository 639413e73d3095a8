"""The sequence losses: the bootstrap target of step t is the target networks' value at step t + 1 of the
trajectory, with the memory of every step before it (not a second sequence started one step later)."""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded
from torchrl.modules import set_recurrent_mode
from torchrl.objectives import TD3Loss

from trl_accel.modules.recurrent import (
    make_recurrent_actor,
    make_twin_recurrent_q_critics,
)
from trl_accel.objectives import (
    SequenceSACLoss,
    SequenceTD3Loss,
    make_actor_critic_loss,
)

T, OBS, GAMMA = 7, 2, 0.9
SPEC = Bounded(-2.0, 2.0, shape=(1,))
SIZES = {"cell": "gru", "hidden_size": 8, "hidden_sizes": [16], "inputs": ["observation", "prev_action", "prev_reward"]}


def trajectory_batch(seed: int = 0) -> tuple[TensorDict, TensorDict]:
    """One trajectory of T + 1 observations as a [1, T] replay sequence (with ``next``) and as [1, T + 1] steps."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(1, T + 1, OBS, generator=g)
    action = torch.rand(1, T + 1, 1, generator=g) * 4 - 2
    reward = torch.randn(1, T + 1, 1, generator=g)
    prev_action = torch.cat([torch.zeros(1, 1, 1), action[:, :-1]], dim=1)
    prev_reward = torch.cat([torch.zeros(1, 1, 1), reward[:, :-1]], dim=1)
    is_init = torch.zeros(1, T + 1, 1, dtype=torch.bool)
    is_init[:, 0] = True
    steps = TensorDict(observation=obs, prev_action=prev_action, prev_reward=prev_reward, is_init=is_init,
                       batch_size=[1, T + 1])
    false = torch.zeros(1, T, 1, dtype=torch.bool)
    sequence = steps[:, :T].clone()
    sequence.update({"action": action[:, :T], "loss_mask": torch.ones(1, T, dtype=torch.bool),
                     "next": TensorDict(observation=obs[:, 1:], prev_action=prev_action[:, 1:],
                                        prev_reward=prev_reward[:, 1:], is_init=false, reward=reward[:, :T],
                                        done=false, terminated=false, batch_size=[1, T])})
    return sequence, steps


@pytest.mark.parametrize("shared_trunk", [False, True])
def test_td3_target_reads_the_whole_trajectory_and_torchrl_s_does_not(shared_trunk):
    torch.manual_seed(0)
    actor = make_recurrent_actor(OBS, SPEC, **SIZES)
    critics = make_twin_recurrent_q_critics(OBS, 1, **SIZES, shared_trunk=shared_trunk)
    sequence, steps = trajectory_batch()
    with torch.no_grad(), set_recurrent_mode(True):
        next_action = actor(steps.clone())["action"]
        values = torch.cat([critic(steps.clone().set("action", next_action))["state_action_value"]
                            for critic in critics], dim=-1)
        expected = values.min(-1, keepdim=True)[0][:, 1:]
    losses = {}
    for cls in (SequenceTD3Loss, TD3Loss):
        if shared_trunk and cls is TD3Loss:
            continue  # TorchRL's loss cannot hold twin heads on one trunk
        loss = make_actor_critic_loss(cls, actor, critics, action_spec=SPEC, policy_noise=0.0, noise_clip=0.0,
                                      loss_function="l2", deactivate_vmap=True)
        loss.make_value_estimator(gamma=GAMMA)
        loss.loss_mask_key = "loss_mask"
        _, metadata = loss.value_loss(sequence.clone())
        losses[cls] = metadata["next_state_value"].reshape(expected.shape)
    torch.testing.assert_close(losses[SequenceTD3Loss], expected)
    if not shared_trunk:  # TorchRL's own loss restarts the target networks' memory at step 1: its targets differ
        assert not torch.allclose(losses[TD3Loss], expected, atol=1e-4)


@pytest.mark.parametrize("shared_trunk", [False, True])
@pytest.mark.parametrize("cls", [SequenceTD3Loss, SequenceSACLoss])
def test_sequence_losses_count_only_the_masked_in_steps_and_reach_the_critics(cls, shared_trunk):
    stochastic = cls is SequenceSACLoss
    torch.manual_seed(0)
    actor = make_recurrent_actor(OBS, SPEC, **SIZES, stochastic=stochastic)
    critics = make_twin_recurrent_q_critics(OBS, 1, **SIZES, shared_trunk=shared_trunk)
    kwargs = {} if stochastic else {"policy_noise": 0.0, "noise_clip": 0.0}
    loss = make_actor_critic_loss(cls, actor, critics, action_spec=SPEC, loss_function="l2", deactivate_vmap=True,
                                  **kwargs)
    loss.make_value_estimator(gamma=GAMMA)
    loss.loss_mask_key = "loss_mask"
    sequence, _ = trajectory_batch()
    sequence["loss_mask"][:, :3] = False

    def value_loss(batch):
        torch.manual_seed(1)  # the same target-policy sample either way
        return loss.qvalue_v2_loss(batch)[0] if stochastic else loss.value_loss(batch)[0]

    changed = sequence.clone()
    changed["next", "reward"][:, :3] += 100.0  # on burn-in (masked) steps only
    torch.testing.assert_close(value_loss(changed), value_loss(sequence.clone()))
    changed["next", "reward"][:, 3] += 100.0
    assert not torch.allclose(value_loss(changed), value_loss(sequence.clone()))
    total = value_loss(sequence.clone()) + loss.actor_loss(sequence.clone())[0]
    assert total.isfinite()
    total.backward()
    for params in (loss.qvalue_network_params, loss.actor_network_params):
        grads = [p.grad for p in params.values(True, True) if p.requires_grad]
        assert all(g is not None and g.isfinite().all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
