"""SAC behaviour cloning, critic ascent (Algorithm 3), and the SAC hand-over to stage two."""
from __future__ import annotations

import pytest
import torch
from torchrl.data import Bounded

from tests.helpers import mean_action, window_pairs
from trl_accel import keys
from trl_accel.modules import make_mlp_actor, make_transformer_actor, make_twin_q_critics
from trl_accel.modules.recurrent import make_lstm_actor, make_twin_lstm_q_critics
from trl_accel.stages import BehaviourCloner, hand_over
from trl_accel.stages.ascent import frozen_first_critic
from trl_accel.stages.learners import make_learner

OBS, ACT, K, B = 4, 2, 3, 64
SPEC = Bounded(-1.0, 1.0, shape=(ACT,))
TD3 = {"batch_size": 32}
SAC = {"batch_size": 32}


def pairs(n: int = B):
    return window_pairs(n, obs_dim=OBS, action_dim=ACT, context_len=K)


def transformer(stochastic: bool = False, passthrough_keys=(keys.OBSERVATION,)):
    return make_transformer_actor(OBS, SPEC, context_len=K, d_model=32, d_ff=64, dropout=0.0, stochastic=stochastic,
                                  passthrough_keys=passthrough_keys)


@pytest.mark.parametrize("likelihood", [False, True])
def test_sac_transformer_clones_the_accelerators_mean_action(likelihood):
    torch.manual_seed(0)
    accelerator, student = make_mlp_actor(OBS, SPEC, hidden_sizes=(32,), stochastic=True), transformer(stochastic=True)
    cloner = BehaviourCloner(student, accelerator, target="accelerator", lr=1e-3, likelihood=likelihood)
    batch = pairs()
    labelled = cloner.label(batch.clone())
    torch.testing.assert_close(labelled[keys.TARGET_ACTION], mean_action(accelerator, batch))  # the mean, not a sample
    gap_before = (mean_action(student, batch) - labelled[keys.TARGET_ACTION]).abs().mean()
    for _ in range(300):
        cloner.step(batch.clone())
    gap_after = (mean_action(student, batch) - labelled[keys.TARGET_ACTION]).abs().mean()
    assert gap_after < 0.3 * gap_before, (gap_before, gap_after)


def test_likelihood_needs_a_stochastic_student():
    with pytest.raises(ValueError, match="stochastic"):
        BehaviourCloner(transformer(), make_mlp_actor(OBS, SPEC, hidden_sizes=(8,)), likelihood=True)


CASES = {
    "td3-mlp": ("td3", False), "td3-lstm": ("td3", True), "sac-mlp": ("sac", False), "sac-lstm": ("sac", True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_ascent_raises_the_frozen_critics_value_of_the_transformers_action(case):
    algorithm, recurrent = CASES[case]
    torch.manual_seed(0)
    stochastic = algorithm == "sac"
    if recurrent:
        accelerator = make_lstm_actor(OBS, SPEC, hidden_size=16, hidden_sizes=(16,), inputs=("observation",), stochastic=stochastic)
        critics = make_twin_lstm_q_critics(OBS, ACT, hidden_size=16, hidden_sizes=(16,), inputs=("observation",))
    else:
        accelerator = make_mlp_actor(OBS, SPEC, hidden_sizes=(16,), stochastic=stochastic)
        critics = make_twin_q_critics(OBS, ACT, hidden_sizes=(16,))
    learner = make_learner(algorithm, accelerator, critics, SPEC, settings=TD3 if algorithm == "td3" else SAC)
    student = transformer(stochastic, passthrough_keys=(keys.IS_INIT,) if recurrent else (keys.OBSERVATION,))
    critic_value = frozen_first_critic(learner.loss)
    cloner = BehaviourCloner(student, accelerator, target="executed", lr=1e-3, critic_value=critic_value,
                             ascent_weight=1.0)
    batch = pairs()
    batch[keys.ACTION] = mean_action(student, batch)  # the BC term starts at zero: any first move is the ascent's
    critics_before = learner.loss.qvalue_network_params.clone()

    def q_of_student() -> float:
        with torch.no_grad():
            return critic_value(batch, mean_action(student, batch)).mean().item()

    before = q_of_student()
    steps = [cloner.step(batch.clone()) for _ in range(10)]
    assert q_of_student() > before
    assert {"loss_bc", "loss_ascent"} <= set(steps[-1].keys())
    assert (critics_before == learner.loss.qvalue_network_params).all(), "the critic must stay frozen"


def test_sac_hand_over_carries_critics_and_entropy_coefficient():
    torch.manual_seed(0)
    accelerator, student = make_mlp_actor(OBS, SPEC, hidden_sizes=(16,), stochastic=True), transformer(stochastic=True)
    critics = make_twin_q_critics(OBS, ACT, hidden_sizes=(16,))
    stage_one = make_learner("sac", accelerator, critics, SPEC, settings=SAC)
    with torch.no_grad():
        stage_one.loss.log_alpha.fill_(-2.5)
        stage_one.loss.target_qvalue_network_params.apply_(lambda p: p.add_(0.1))
    cloner = BehaviourCloner(student, accelerator)
    stage_two = make_learner("sac", student, critics, SPEC, settings=SAC)
    hand_over(stage_one, cloner, stage_two)
    assert stage_two.loss.log_alpha.item() == pytest.approx(-2.5)
    assert (stage_two.loss.qvalue_network_params == stage_one.loss.qvalue_network_params).all()
    assert (stage_two.loss.target_qvalue_network_params == stage_one.loss.target_qvalue_network_params).all()
    assert (stage_two.loss.actor_network_params == cloner.loss.actor_network_params).all()


def test_sac_updates_in_chunks():
    """``update_chunks=2``: one step of each optimiser on the accumulated parts; the reported losses are the parts'
    weighted sums (finite), and the actor, critics and entropy coefficient all move."""
    from tests.helpers import transitions

    learner = make_learner("sac", transformer(stochastic=True), make_twin_q_critics(OBS, ACT, hidden_sizes=(16,)), SPEC,
                           settings={**SAC, "update_chunks": 2})
    before = learner.loss.state_dict()
    before = {key: value.clone() for key, value in before.items()}
    out = learner.update(transitions(B, obs_dim=OBS, action_dim=ACT, context_len=K))
    assert set(out) == {"loss_qvalue", "loss_actor", "loss_alpha", "alpha"}
    assert all(bool(torch.isfinite(value)) for value in out.values())
    after = learner.loss.state_dict()
    for prefix in ("actor_network_params", "qvalue_network_params", "log_alpha"):
        moved = [key for key in before if key.startswith(prefix) and not torch.equal(before[key], after[key])]
        assert moved, prefix
