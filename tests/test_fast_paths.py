"""Speed changes that claim to be exact: the same values as the TorchRL / tensordict code they replace."""
from __future__ import annotations

import copy
import importlib.util

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torchrl.data import Bounded
from torchrl.modules import MLP
from torchrl.objectives import SACLoss, SoftUpdate, TD3Loss

from trl_accel.config import validate_config
from trl_accel.experiment import Agents, build_env
from trl_accel.loop import local_collector
from trl_accel.modules import make_mlp_actor, make_twin_q_critics
from trl_accel.objectives import (
    FirstCriticTD3Loss,
    StackedCriticsSACLoss,
    StackedMLPCritics,
)
from trl_accel.objectives.stacked_critics import is_plain_mlp_critic
from trl_accel.stages.actor_critic import ForeachSoftUpdate


def test_a_module_output_skips_the_search_for_optional_converters(monkeypatch):
    searches = []
    original = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: searches.append(name) or original(name, *a))
    module = TensorDictModule(torch.nn.Linear(3, 2), in_keys=["x"], out_keys=["y"])
    out = module(TensorDict(x=torch.randn(4, 3), batch_size=[4]))
    assert out["y"].shape == (4, 2)
    assert searches == [], f"a module output searched sys.path for {searches}"
    tensor = torch.zeros(2)
    assert TensorDict.from_any(tensor) is tensor
    assert isinstance(TensorDict.from_any({"a": tensor}), TensorDict)  # other objects: tensordict's own route


def test_foreach_soft_update_is_torchrl_soft_update_bit_for_bit():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    torch.manual_seed(0)
    actor, critics = make_mlp_actor(3, spec, hidden_sizes=(8,)), make_twin_q_critics(3, 2, hidden_sizes=(8,))
    losses = [TD3Loss(copy.deepcopy(actor), [copy.deepcopy(c) for c in critics], action_spec=spec, num_qvalue_nets=2)
              for _ in range(2)]
    losses[1].load_state_dict(losses[0].state_dict())
    updaters = [SoftUpdate(losses[0], tau=0.005), ForeachSoftUpdate(losses[1], tau=0.005)]
    elsewhere = TD3Loss(copy.deepcopy(actor), [copy.deepcopy(c) for c in critics], action_spec=spec, num_qvalue_nets=2)
    with torch.no_grad():
        for value in elsewhere.parameters():
            value.mul_(0.5)
    for step in range(5):
        if step == 3:  # a checkpoint loaded between two steps (as resume= and stage2.init_from do)
            for loss in losses:
                loss.load_state_dict(elsewhere.state_dict())
        for loss in losses:  # the same change to the online parameters of both
            with torch.no_grad():
                for name, value in sorted(loss.named_parameters()):
                    if not name.startswith("target_"):
                        value.add_(torch.sin(torch.arange(value.numel(), dtype=value.dtype)).view_as(value))
        for updater in updaters:
            updater.step()
    ours, theirs = losses[1].state_dict(), losses[0].state_dict()
    targets = [key for key in theirs if "target_" in key]
    assert targets
    for key in targets:
        assert torch.equal(ours[key], theirs[key]), key


def test_first_critic_actor_loss_is_torchrl_s_with_the_second_critic_left_out():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    torch.manual_seed(0)
    actor, critics = make_mlp_actor(3, spec, hidden_sizes=(8,)), make_twin_q_critics(3, 2, hidden_sizes=(8,))
    losses = [cls(copy.deepcopy(actor), [copy.deepcopy(c) for c in critics], action_spec=spec, num_qvalue_nets=2)
              for cls in (TD3Loss, FirstCriticTD3Loss)]
    losses[1].load_state_dict(losses[0].state_dict())
    batch = TensorDict(observation=torch.randn(16, 3), action=torch.rand(16, 2) * 2 - 1, batch_size=[16])
    results = []
    for loss in losses:
        value, metadata = loss.actor_loss(batch.clone())
        value.backward()
        grads = {name: p.grad.clone() for name, p in loss.named_parameters() if p.grad is not None}
        results.append((value.detach(), metadata["state_action_value_actor"], grads))
    (theirs, their_values, their_grads), (ours, our_values, our_grads) = results
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(our_values, their_values[0])  # TorchRL's holds both critics' values
    assert our_grads.keys() == their_grads.keys() and any(name.startswith("actor") for name in our_grads)
    assert not any("qvalue" in name for name in our_grads)  # the critics are detached in both
    for name, grad in our_grads.items():
        torch.testing.assert_close(grad, their_grads[name])
    # the second critic matters to TorchRL's value only through index 0: changing it changes neither loss
    with torch.no_grad():
        for loss in losses:
            loss.qvalue_network_params[1].apply_(lambda p: p.add_(1.0))
    torch.testing.assert_close(losses[1].actor_loss(batch.clone())[0], losses[0].actor_loss(batch.clone())[0])


def _transitions(batch: int, obs_dim: int, action_dim: int) -> TensorDict:
    done = torch.zeros(batch, 1, dtype=torch.bool)
    terminated = torch.rand(batch, 1) < 0.2
    return TensorDict(observation=torch.randn(batch, obs_dim), action=torch.rand(batch, action_dim) * 2 - 1,
                      next=TensorDict(observation=torch.randn(batch, obs_dim), reward=torch.randn(batch, 1),
                                      done=done | terminated, terminated=terminated, batch_size=[batch]),
                      batch_size=[batch])


def _losses_and_grads(loss, batch: TensorDict, seed: int) -> tuple[dict, dict]:
    """Each loss term of ``loss`` on ``batch`` (the RNG seeded), and the gradients of their sum."""
    torch.manual_seed(seed)
    if isinstance(loss, TD3Loss):
        terms = {"loss_qvalue": loss.value_loss(batch.clone())[0], "loss_actor": loss.actor_loss(batch.clone())[0]}
    else:
        out = loss(batch.clone())
        terms = {name: out[name] for name in ("loss_qvalue", "loss_actor", "loss_alpha")}
    sum(terms.values()).backward()
    grads = {name: p.grad.clone() for name, p in loss.named_parameters() if p.grad is not None}
    return {name: value.detach() for name, value in terms.items()}, grads


def test_stacked_mlp_critics_give_torchrl_s_td3_and_sac_losses_and_gradients():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    batch = _transitions(32, 3, 2)
    for theirs_class, ours_class, stochastic in ((TD3Loss, FirstCriticTD3Loss, False),
                                                 (SACLoss, StackedCriticsSACLoss, True)):
        torch.manual_seed(0)
        actor = make_mlp_actor(3, spec, hidden_sizes=(8,), stochastic=stochastic)
        critics = make_twin_q_critics(3, 2, hidden_sizes=(16, 8))
        losses = [cls(copy.deepcopy(actor), [copy.deepcopy(c) for c in critics], action_spec=spec, num_qvalue_nets=2)
                  for cls in (theirs_class, ours_class)]
        losses[1].load_state_dict(losses[0].state_dict())
        assert isinstance(losses[1]._stacked_critics, StackedMLPCritics)
        (their_terms, their_grads), (our_terms, our_grads) = (_losses_and_grads(loss, batch, seed=1) for loss in losses)
        assert our_terms.keys() == their_terms.keys()
        for name, value in our_terms.items():
            torch.testing.assert_close(value, their_terms[name], rtol=1e-6, atol=1e-6)
        assert our_grads.keys() == their_grads.keys() and any("qvalue" in name for name in our_grads)
        for name, grad in our_grads.items():  # the same products, summed in another order: equal to the last place
            torch.testing.assert_close(grad, their_grads[name], rtol=1e-5, atol=1e-6)


def test_only_plain_mlp_critics_leave_torchrl_s_vmap():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    actor = make_mlp_actor(3, spec, hidden_sizes=(8,))
    plain = make_twin_q_critics(3, 2, hidden_sizes=(8,))
    assert is_plain_mlp_critic(plain[0])
    assert isinstance(FirstCriticTD3Loss(actor, plain, action_spec=spec, num_qvalue_nets=2)._vmap_qvalue_network00,
                      StackedMLPCritics)
    with_dropout = [TensorDictModule(MLP(in_features=5, out_features=1, num_cells=[8], dropout=0.1),
                                     in_keys=["observation", "action"], out_keys=["state_action_value"])
                    for _ in range(2)]
    assert not is_plain_mlp_critic(with_dropout[0])
    loss = FirstCriticTD3Loss(actor, with_dropout, action_spec=spec, num_qvalue_nets=2)
    assert loss._stacked_critics is None and not isinstance(loss._vmap_qvalue_network00, StackedMLPCritics)
    looped = FirstCriticTD3Loss(actor, plain, action_spec=spec, num_qvalue_nets=2, deactivate_vmap=True)
    assert looped._stacked_critics is None  # the loop over critics that was asked for is kept


def test_the_accelerator_alone_acts_in_an_env_without_the_transformers_window(tiny_config):
    # mode=accelerator_only: nothing builds the transformer's window or KV-cache primer (0.17 ms of a 1.0 ms env step
    # on HalfCheetah); what the accelerator sees, does and is rewarded is the same step for step.
    def collected(*overrides: str) -> tuple[TensorDict, set]:
        cfg = validate_config(tiny_config("env=pendulum", *overrides))
        env = build_env(cfg, torch.device("cpu"), seed=5)
        torch.manual_seed(0)
        agents = Agents(cfg, 3, env.action_spec_unbatched, torch.device("cpu"))
        for transform in agents.env_transforms():
            env.append_transform(transform)
        batch = next(iter(local_collector(env, agents.accelerator, 120)))
        return batch, set(env.observation_spec.keys(True, True))

    for rollout in (["transformer.rollout=window"], ["transformer.rollout=cache", "transformer.positions=rotary"]):
        full, full_keys = collected(*rollout)
        alone, alone_keys = collected(*rollout, "mode=accelerator_only")
        assert collected(*rollout, "mode=mlp_td3")[1] == alone_keys  # the mode's alias
        assert full_keys - alone_keys, f"the accelerate mode's env ({rollout}) should carry the transformer's inputs"
        assert not {key for key in alone_keys if "window" in str(key) or "cache" in str(key)}, alone_keys
        for key in ("observation", "action", ("next", "reward"), ("next", "observation"), ("next", "done")):
            assert torch.equal(full[key], alone[key]), key
