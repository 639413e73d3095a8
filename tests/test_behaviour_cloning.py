"""Stage one's behaviour cloning: the transformer can fit its teacher; targets and T behave."""
from __future__ import annotations

import pytest
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torchrl.data import Bounded
from torchrl.modules import MLP, TanhModule

from tests.helpers import window_pairs
from trl_accel import keys
from trl_accel.modules import make_mlp_actor, make_transformer_actor
from trl_accel.objectives import BehaviourCloningLoss
from trl_accel.stages import BehaviourCloner, make_trajectory_buffer

OBS, ACT, K, B = 5, 2, 3, 64
SPEC = Bounded(-1.0, 1.0, shape=(ACT,))


def pairs(n: int = B):
    return window_pairs(n, obs_dim=OBS, action_dim=ACT, context_len=K)


def small_transformer(**kwargs):
    return make_transformer_actor(OBS, SPEC, context_len=K, d_model=16, d_ff=32, **kwargs)


def teacher() -> TensorDictSequential:
    return make_mlp_actor(OBS, SPEC, hidden_sizes=(16,))


def test_transformer_overfits_a_fixed_batch():
    torch.manual_seed(0)
    transformer = make_transformer_actor(OBS, SPEC, context_len=K, d_model=64, d_ff=128, dropout=0.0)
    cloner = BehaviourCloner(transformer, teacher(), target="executed", lr=1e-3)
    batch = pairs()
    first = cloner.step(batch.clone())["loss_bc"].item()
    for _ in range(400):
        last = cloner.step(batch.clone())["loss_bc"].item()
    assert last < 0.01 * first and last < 2e-3


def test_accelerator_target_is_its_deterministic_action():
    accelerator = teacher()
    cloner = BehaviourCloner(small_transformer(), accelerator, target="accelerator")
    batch = pairs()
    labelled = cloner.label(batch.clone())
    assert torch.equal(labelled[keys.TARGET_ACTION], accelerator(batch.select(keys.OBSERVATION))[keys.ACTION].detach())


def test_transformer_target_soft_updates_every_gradient_step():
    cloner = BehaviourCloner(small_transformer(), teacher(), target="executed", tau=0.1)
    online = cloner.loss.actor_network_params
    target_before = cloner.loss.target_actor_network_params.clone()
    cloner.step(pairs())
    expected = target_before.apply(lambda t, o: 0.9 * t + 0.1 * o.detach(), online)
    difference = cloner.loss.target_actor_network_params - expected
    assert max(leaf.abs().max().item() for leaf in difference.values(True, True)) < 1e-6
    assert cloner.num_updates == 1


def test_trajectory_buffer_is_cleared_after_a_bc_round():
    cloner = BehaviourCloner(small_transformer(), teacher(), target="executed", epochs=2)
    buffer = make_trajectory_buffer(capacity=100, batch_size=32)
    buffer.extend(pairs(100))
    assert len(buffer) == 100
    cloner.train_on(buffer)
    assert len(buffer) == 0
    assert cloner.num_updates == 2 * 4  # two passes over 100 pairs in batches of 32


def test_padding_positions_do_not_change_the_action():
    transformer = small_transformer().eval()
    batch = pairs(8)
    batch[keys.WINDOW_MASK][:, :2] = False
    other = batch.clone()
    other[keys.OBSERVATION_WINDOW][:, :2] = torch.randn(8, 2, OBS) * 100
    assert torch.allclose(transformer(batch)[keys.ACTION], transformer(other)[keys.ACTION], atol=1e-6)


def test_dropout_is_off_in_eval_mode():
    transformer = small_transformer(dropout=0.5).eval()
    batch = pairs(8)
    assert torch.equal(transformer(batch.clone())[keys.ACTION], transformer(batch.clone())[keys.ACTION])


def test_dropout_acts_only_on_gradient_steps():
    transformer = small_transformer(dropout=0.5).train()
    batch = pairs(8)
    with torch.no_grad():  # target actions and rollouts
        assert torch.equal(transformer(batch.clone())[keys.ACTION], transformer(batch.clone())[keys.ACTION])
    assert not torch.equal(transformer(batch.clone())[keys.ACTION], transformer(batch.clone())[keys.ACTION])


def test_bc_gradient_steps_apply_dropout():
    """TorchRL runs a loss's forward under ExplorationType.DETERMINISTIC; the student still trains with dropout."""
    cloner = BehaviourCloner(small_transformer(dropout=0.5), teacher(), target="executed")
    batch = cloner.label(pairs(8))
    assert cloner.loss(batch.clone())["loss_bc"] != cloner.loss(batch.clone())["loss_bc"]


def test_a_teacher_writing_a_nested_action_is_cloned():
    torch.manual_seed(0)
    nested = ("teacher", keys.ACTION)
    mlp = MLP(in_features=OBS, out_features=ACT, num_cells=[16])
    nested_teacher = TensorDictSequential(
        TensorDictModule(mlp, in_keys=[keys.OBSERVATION], out_keys=[("teacher", keys.PARAM)]),
        TanhModule(in_keys=[("teacher", keys.PARAM)], out_keys=[nested], spec=SPEC))
    cloner = BehaviourCloner(small_transformer(dropout=0.0), nested_teacher, lr=1e-3)
    assert cloner.teacher_action_key == nested
    batch = pairs()
    with torch.no_grad():
        expected = nested_teacher(batch.select(keys.OBSERVATION))[nested]
    assert torch.equal(cloner.label(batch.clone())[keys.TARGET_ACTION], expected)
    first = cloner.step(batch.clone())["loss_bc"].item()
    for _ in range(100):
        last = cloner.step(batch.clone())["loss_bc"].item()
    assert last < 0.5 * first


def test_an_ambiguous_teacher_names_its_out_keys_and_the_parameter():
    two_outputs = TensorDictSequential(
        TensorDictModule(torch.nn.Linear(OBS, ACT), in_keys=[keys.OBSERVATION], out_keys=[("teacher", "action")]),
        TensorDictModule(torch.nn.Linear(OBS, ACT), in_keys=[keys.OBSERVATION], out_keys=[("teacher", "other")]))
    with pytest.raises(ValueError, match=r"out_keys \[\('teacher', 'action'\), \('teacher', 'other'\)\].*teacher_action_key"):
        BehaviourCloner(small_transformer(), two_outputs)
    cloner = BehaviourCloner(small_transformer(), two_outputs, teacher_action_key=("teacher", "other"))
    assert cloner.label(pairs(4))[keys.TARGET_ACTION].shape == (4, ACT)


@pytest.mark.parametrize("student", ["deterministic", "stochastic-mse", "stochastic-likelihood"])
def test_a_bfloat16_student_forward_gives_float32_losses_near_float32_and_learns(student):
    # stage1.bc_precision=bfloat16: the transformer's forward under bfloat16 autocast, its outputs cast back to float32
    # before the loss; weights, gradients and Adam state stay float32.
    torch.manual_seed(0)
    stochastic, likelihood = student.startswith("stochastic"), student.endswith("likelihood")
    make = lambda: make_transformer_actor(OBS, SPEC, context_len=K, d_model=64, d_ff=128, dropout=0.0,  # noqa: E731
                                          stochastic=stochastic)
    full, half = make(), make()
    half.load_state_dict(full.state_dict())
    target = "executed" if not stochastic else "accelerator"
    accelerator = make_mlp_actor(OBS, SPEC, hidden_sizes=(16,), stochastic=stochastic)
    float32 = BehaviourCloner(full, accelerator, target=target, lr=1e-3, likelihood=likelihood)
    bfloat16 = BehaviourCloner(half, accelerator, target=target, lr=1e-3, likelihood=likelihood,
                               student_dtype=torch.bfloat16)
    batch = float32.label(pairs())
    loss32, loss16 = float32.loss(batch.clone())["loss_bc"], bfloat16.loss(batch.clone())["loss_bc"]
    assert loss16.dtype == torch.float32
    torch.testing.assert_close(loss16, loss32, rtol=0.05, atol=1e-3)
    first = bfloat16.fit(batch.clone())["loss_bc"].item()
    for _ in range(300):
        last = bfloat16.fit(batch.clone())["loss_bc"].item()
    assert all(p.dtype == torch.float32 for p in bfloat16.loss.actor_network_params.values(True, True))
    assert last < (0.1 * first if not likelihood else first - 1.0), (first, last)


def test_a_student_dtype_other_than_float32_or_bfloat16_is_refused():
    with pytest.raises(ValueError, match="student_dtype must be one of"):
        BehaviourCloningLoss(small_transformer(), student_dtype=torch.float16)


def test_constructors_take_options_by_keyword_only():
    with pytest.raises(TypeError):
        BehaviourCloner(small_transformer(), teacher(), "executed")
    with pytest.raises(TypeError):
        BehaviourCloningLoss(small_transformer(), keys.TARGET_ACTION)
