"""TD3 learner, the critic hand-over to stage two, and checkpoints."""
from __future__ import annotations

import torch
from tensordict import TensorDict
from torchrl.data import Bounded

from trl_accel.checkpoint import load_checkpoint, save_checkpoint
from trl_accel.modules import make_mlp_actor, make_transformer_actor, make_twin_q_critics
from trl_accel.stages import BehaviourCloner, TD3Learner, TD3Settings, hand_over

OBS, ACT, K, B = 5, 2, 3, 32
SPEC = Bounded(-1.0, 1.0, shape=(ACT,))


def transitions(terminated: bool = False, truncated: bool = False) -> TensorDict:
    def step_keys():
        return {"observation": torch.randn(B, OBS), "observation_window": torch.randn(B, K, OBS),
                "window_mask": torch.ones(B, K, dtype=torch.bool)}
    done = torch.full((B, 1), terminated or truncated)
    return TensorDict({**step_keys(), "action": torch.rand(B, ACT) * 2 - 1,
                       "next": {**step_keys(), "reward": torch.randn(B, 1), "done": done,
                                "terminated": torch.full((B, 1), terminated), "truncated": torch.full((B, 1), truncated)}},
                      batch_size=[B])


def small_transformer():
    return make_transformer_actor(OBS, SPEC, K, d_model=16, d_ff=32)


def test_truncated_transition_bootstraps_and_terminated_does_not():
    learner = TD3Learner(make_mlp_actor(OBS, SPEC, (16, 16)), make_twin_q_critics(OBS, ACT, (16, 16)), SPEC, TD3Settings())
    truncated = transitions(truncated=True)
    _, meta = learner.loss.value_loss(truncated)
    bootstrap = meta["target_value"] - truncated["next", "reward"].squeeze(-1)
    assert torch.allclose(bootstrap, 0.99 * meta["next_state_value"], atol=1e-5)
    terminated = transitions(terminated=True)
    _, meta = learner.loss.value_loss(terminated)
    assert torch.allclose(meta["target_value"], terminated["next", "reward"].squeeze(-1))


def test_actor_updates_are_delayed_and_targets_move():
    learner = TD3Learner(make_mlp_actor(OBS, SPEC, (16, 16)), make_twin_q_critics(OBS, ACT, (16, 16)), SPEC, TD3Settings())
    target_before = learner.loss.target_qvalue_network_params.clone()
    assert "loss_actor" not in learner.update(transitions())
    assert "loss_actor" in learner.update(transitions())
    assert not (target_before == learner.loss.target_qvalue_network_params).all()


def test_critic_hand_over_is_exact():
    accelerator, critics, transformer = make_mlp_actor(OBS, SPEC, (16, 16)), make_twin_q_critics(OBS, ACT, (16, 16)), small_transformer()
    stage_one = TD3Learner(accelerator, critics, SPEC, TD3Settings())
    cloner = BehaviourCloner(transformer, accelerator)
    for _ in range(4):
        stage_one.update(transitions())
        cloner.step(transitions())
    stage_two = TD3Learner(transformer, critics, SPEC, TD3Settings())
    hand_over(stage_one, cloner, stage_two)
    for name in ("qvalue_network_params", "target_qvalue_network_params"):
        assert (getattr(stage_two.loss, name) == getattr(stage_one.loss, name)).all()
    assert (stage_two.loss.target_actor_network_params == cloner.loss.target_actor_network_params).all()
    assert (stage_two.loss.actor_network_params == cloner.loss.actor_network_params).all()
    # stage two trains the same transformer module that stage one cloned into
    before = next(transformer.parameters()).detach().clone()
    stage_two.update(transitions())
    stage_two.update(transitions())
    assert not torch.equal(before, next(transformer.parameters()))


def test_checkpoint_round_trips(tmp_path):
    def build():
        return TD3Learner(make_mlp_actor(OBS, SPEC, (16, 16)), make_twin_q_critics(OBS, ACT, (16, 16)), SPEC, TD3Settings())
    learner = build()
    for _ in range(3):
        learner.update(transitions())
    save_checkpoint(tmp_path / "c.pt", {"learner": learner.state_dict()})
    restored = build()
    restored.load_state_dict(load_checkpoint(tmp_path / "c.pt")["learner"])
    assert restored.num_updates == 3
    assert (restored.loss.qvalue_network_params == learner.loss.qvalue_network_params).all()
    assert (restored.loss.target_actor_network_params == learner.loss.target_actor_network_params).all()
    batch = transitions()
    torch.manual_seed(0)
    out_a = learner.update(batch.clone())
    torch.manual_seed(0)
    out_b = restored.update(batch.clone())
    assert torch.equal(out_a["loss_qvalue"], out_b["loss_qvalue"])
