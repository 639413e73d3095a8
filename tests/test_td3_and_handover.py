"""TD3 learner, the critic hand-over to stage two, and checkpoints."""
from __future__ import annotations

import pytest
import torch
from torchrl.data import Bounded

from tests import helpers
from trl_accel import keys
from trl_accel.checkpoint import load_checkpoint, save_checkpoint
from trl_accel.modules import (
    make_mlp_actor,
    make_transformer_actor,
    make_twin_q_critics,
)
from trl_accel.stages import (
    BehaviourCloner,
    SACSettings,
    TD3Learner,
    TD3Settings,
    hand_over,
    make_learner,
)

OBS, ACT, K, B = 5, 2, 3, 32
SPEC = Bounded(-1.0, 1.0, shape=(ACT,))


def transitions(terminated: bool = False, truncated: bool = False):
    return helpers.transitions(B, obs_dim=OBS, action_dim=ACT, context_len=K, terminated=terminated, truncated=truncated)


def small_transformer():
    return make_transformer_actor(OBS, SPEC, context_len=K, d_model=16, d_ff=32, passthrough_keys=(keys.OBSERVATION,))


def mlp_learner() -> TD3Learner:
    return TD3Learner(make_mlp_actor(OBS, SPEC, hidden_sizes=(16, 16)), make_twin_q_critics(OBS, ACT, hidden_sizes=(16, 16)),
                      SPEC, TD3Settings())


def test_truncated_transition_bootstraps_and_terminated_does_not():
    learner = mlp_learner()
    truncated = transitions(truncated=True)
    _, meta = learner.loss.value_loss(truncated)
    bootstrap = meta["target_value"] - truncated["next", "reward"].squeeze(-1)
    assert torch.allclose(bootstrap, 0.99 * meta["next_state_value"], atol=1e-5)
    terminated = transitions(terminated=True)
    _, meta = learner.loss.value_loss(terminated)
    assert torch.allclose(meta["target_value"], terminated["next", "reward"].squeeze(-1))


def test_actor_updates_are_delayed_and_targets_move():
    learner = mlp_learner()
    target_before = learner.loss.target_qvalue_network_params.clone()
    assert "loss_actor" not in learner.update(transitions())
    assert "loss_actor" in learner.update(transitions())
    assert not (target_before == learner.loss.target_qvalue_network_params).all()


def test_critic_hand_over_is_exact():
    accelerator, critics = make_mlp_actor(OBS, SPEC, hidden_sizes=(16, 16)), make_twin_q_critics(OBS, ACT, hidden_sizes=(16, 16))
    transformer = small_transformer()
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
    learner = mlp_learner()
    for _ in range(3):
        learner.update(transitions())
    save_checkpoint(tmp_path / "c.pt", {"learner": learner.state_dict()})
    restored = mlp_learner()
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


def test_stage_two_gradient_steps_apply_the_transformers_dropout():
    transformer = make_transformer_actor(OBS, SPEC, context_len=K, d_model=16, d_ff=32, dropout=0.5,
                                         passthrough_keys=(keys.OBSERVATION,))
    learner = TD3Learner(transformer, make_twin_q_critics(OBS, ACT, hidden_sizes=(16,)), SPEC, TD3Settings())
    batch = transitions()
    assert learner.loss.actor_loss(batch.clone())[0] != learner.loss.actor_loss(batch.clone())[0]


def test_make_learner_takes_settings_by_keyword_and_refuses_unknown_ones():
    actor, critics = make_mlp_actor(OBS, SPEC, hidden_sizes=(8,)), make_twin_q_critics(OBS, ACT, hidden_sizes=(8,))
    assert make_learner("td3", actor, critics, SPEC, settings={"policy_delay": 3}).settings.policy_delay == 3
    with pytest.raises(TypeError):
        make_learner("td3", actor, critics, SPEC, {"policy_delay": 3})
    with pytest.raises(ValueError, match=r"Unknown td3 settings \['alpha_lr'\]"):
        make_learner("td3", actor, critics, SPEC, settings={"alpha_lr": 1e-3})
    with pytest.raises(ValueError, match="algorithm must be one of"):
        make_learner("ppo", actor, critics, SPEC, settings={})
    stochastic = make_mlp_actor(OBS, SPEC, hidden_sizes=(8,), stochastic=True)
    assert make_learner("sac", stochastic, critics, SPEC, settings=SACSettings(alpha_init=0.5)).settings.alpha_init == 0.5


def test_clamped_gaussian_noise_draws_and_clamps_as_torchrls_module():
    """The exploration noise gives TorchRL's ``AdditiveGaussianModule``'s actions bit for bit (in and out of the box)."""
    from tensordict import TensorDict
    from torchrl.modules import AdditiveGaussianModule

    from trl_accel.stages.td3 import ClampedGaussianNoise

    spec = Bounded(torch.tensor([-2.0, -1.0, 0.0]), torch.tensor([2.0, 1.0, 0.5]), shape=(3,))
    std = ((spec.space.high - spec.space.low) / 2).tolist()
    ours = ClampedGaussianNoise(spec=spec, sigma_init=0.3, sigma_end=0.3, std=std)
    theirs = AdditiveGaussianModule(spec=spec, sigma_init=0.3, sigma_end=0.3, std=std)
    for action in (torch.zeros(5, 3), 3 * torch.randn(5, 3), torch.zeros(3)):
        torch.manual_seed(0)
        expected = theirs(TensorDict(action=action.clone(), batch_size=action.shape[:-1]))["action"]
        torch.manual_seed(0)
        got = ours(TensorDict(action=action.clone(), batch_size=action.shape[:-1]))["action"]
        assert torch.equal(got, expected)
    assert set(ours.state_dict()) == set(theirs.state_dict())


def test_an_update_in_chunks_is_the_whole_batchs_update():
    """``update_chunks``: the weighted parts' gradients add up to the whole batch's, for the critics and the actor
    (no target noise and no dropout, so that nothing random differs; lr 0, so that both compute their gradients at
    the same parameters: Adam's first step divides by the gradient's size and would magnify rounding); the
    reported losses are the whole batch's. An MLP and a transformer actor (windows)."""
    no_dropout_transformer = lambda: make_transformer_actor(OBS, SPEC, context_len=K, d_model=16, d_ff=32, dropout=0.0,
                                                            passthrough_keys=(keys.OBSERVATION,))
    for make_actor in (lambda: make_mlp_actor(OBS, SPEC, hidden_sizes=(16, 16)), no_dropout_transformer):
        torch.manual_seed(0)
        actor, critics = make_actor(), make_twin_q_critics(OBS, ACT, hidden_sizes=(16, 16))
        settings = {"policy_noise": 0.0, "policy_delay": 1, "lr": 0.0}
        whole = TD3Learner(actor, critics, SPEC, TD3Settings(**settings))
        chunked = TD3Learner(actor, critics, SPEC, TD3Settings(**settings, update_chunks=3))
        chunked.loss.load_state_dict(whole.loss.state_dict())
        batch = transitions()
        out_whole, out_chunked = whole.update(batch.clone()), chunked.update(batch.clone())
        for key in ("loss_qvalue", "loss_actor"):
            assert torch.allclose(out_whole[key], out_chunked[key], rtol=1e-5, atol=1e-7), key
        for name in ("actor_optimizer", "critic_optimizer"):
            ours, theirs = (getattr(learner, name).param_groups[0]["params"] for learner in (whole, chunked))
            pairs = [(a, b) for a, b in zip(ours, theirs, strict=True) if a.requires_grad]  # not the action bounds
            assert pairs and all(a.grad is not None for a, _ in pairs), name
            assert all(torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7) for a, b in pairs), name


def test_chunks_weigh_a_sequence_batch_by_its_loss_steps():
    from tensordict import TensorDict

    from trl_accel.stages.actor_critic import weighted_chunks

    mask = torch.tensor([[True, True], [True, False], [False, False], [True, True]])
    batch = TensorDict({keys.LOSS_MASK: mask, "x": torch.zeros(4, 2)}, batch_size=[4, 2])
    parts = weighted_chunks(batch, 2)
    assert [part.batch_size[0] for part, _ in parts] == [2, 2] and [weight for _, weight in parts] == [0.6, 0.4]
    assert weighted_chunks(batch, 1)[0][0] is batch
