"""TD3 and SAC losses over replayed sequences, for recurrent critics (and actors).

TorchRL's ``TD3Loss`` and ``SACLoss`` compute the bootstrap target by running the networks on the
``("next", ...)`` half of a sequence as a sequence of its own: the target critics then start their memory
from zero one step *after* the online critics do, the target actor from the state stored at collection one
step later, and every recurrent network runs over two sequences where one suffices. The two losses here keep
TorchRL's parameters, targets, value estimator and loss mask (so optimisers, ``SoftUpdate``, checkpoints and
the stage-two hand-over see the same objects) and change only how sequences are read:

- the bootstrap side runs once over the **extended sequence** of ``T + 1`` steps (the sequence's first step
  followed by its ``T`` next steps, :func:`extended_sequence`), so that the memory at step ``t + 1`` of the
  target networks has seen exactly the history the online memory at step ``t`` has, plus one step;
- TD3's actor loss runs only the first critic (the one it reads) rather than both (:class:`FirstCriticTD3Loss`,
  the parent of :class:`SequenceTD3Loss`, which the MLP learners use too);
- the twin critics may be one network whose two heads share a recurrent trunk (``num_qvalue_nets=1``, values
  [*B, 2]), which TorchRL's losses cannot hold.

TorchRL 0.14.1 has no sequence-aware variant of these losses; these are the smallest subclasses that give one.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torchrl.envs import ExplorationType, set_exploration_type
from torchrl.objectives import SACLoss, TD3Loss
from torchrl.objectives.sac import compute_rsample_log_prob
from torchrl.objectives.utils import _cache_values, distance_loss

from trl_accel import keys
from trl_accel.objectives.stacked_critics import StackedCriticsLoss


def extended_sequence(sequences: TensorDictBase, in_keys: Iterable[NestedKey]) -> TensorDictBase:
    """``[B, T]`` sequences -> ``[B, T + 1]``: step 0 of each sequence, then its ``T`` next steps.

    Reads each of ``in_keys`` at step 0 and ``("next", key)`` at every step (``is_init`` is False after step 0,
    whatever ``next`` holds). Position ``t + 1`` of the result is the observation that followed step ``t``, so a
    network run over it yields at ``t + 1`` the value of the successor of step ``t``. Steps padded after a short
    episode's end repeat its last step, so position ``t + 1`` stays that step's successor.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> seq = TensorDict(observation=torch.arange(3.0).view(1, 3, 1),
    ...                  next=TensorDict(observation=torch.arange(1.0, 4.0).view(1, 3, 1), batch_size=[1, 3]),
    ...                  batch_size=[1, 3])
    >>> extended_sequence(seq, ["observation"])["observation"].flatten().tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    following = sequences.get("next")
    batch, steps = sequences.shape[:2]
    out = {}
    for key in dict.fromkeys(in_keys):
        if key == keys.IS_INIT:  # a sequence is cut from one trajectory: no episode starts after its first step
            head = sequences.get(key)[:, :1]
            out[key] = torch.cat([head, torch.zeros(batch, steps, *head.shape[2:], dtype=head.dtype,
                                                    device=head.device)], dim=1)
            continue
        current, successors = sequences.get(key, None), following.get(key, None)
        if current is not None and successors is not None:
            out[key] = torch.cat([current[:, :1], successors], dim=1)
    return TensorDict(out, batch_size=[batch, steps + 1], device=sequences.device)


def _bootstrap_keys(*modules) -> list[NestedKey]:
    """The plain (not ``next``) in-keys of ``modules``, without the action."""
    found = []
    for module in modules:
        found += [key for key in module.in_keys
                  if key != keys.ACTION and not (isinstance(key, tuple) and key[0] == "next")]
    return list(dict.fromkeys(found))


class SequenceCritics:
    """What both sequence losses share: the twin values of the critics' parameter sets, whether they are two
    networks of one value each (TorchRL's layout) or one network whose heads share a trunk and give both."""

    def _values(self, tensordict: TensorDictBase, params: TensorDictBase) -> torch.Tensor:
        """The critics with each of the stacked ``params`` on ``tensordict`` [B, T] -> values [Q, B, T]."""
        values = []
        for i in range(params.shape[0]):
            with params[i].to_module(self.qvalue_network, preserve_module_state=False):
                values.append(self.qvalue_network(tensordict.copy()).get(self.tensor_keys.state_action_value))
        return torch.cat(values, dim=-1).movedim(-1, 0)


def make_actor_critic_loss(loss_class: type, actor, critics: list, **kwargs):
    """``loss_class(actor, critics, **kwargs)`` holding ``critics`` as given: two networks (TorchRL's layout), or
    one network whose twin heads share a trunk (``num_qvalue_nets=1``, values [*B, 2]), whose weights are
    copied back into the loss and its target (TorchRL's losses re-initialise a single network they expand)."""
    if len(critics) != 1:
        return loss_class(actor, list(critics), num_qvalue_nets=len(critics), **kwargs)
    loss = loss_class(actor, critics[0], num_qvalue_nets=1, **kwargs)
    weights = TensorDict.from_module(critics[0]).data
    with torch.no_grad():
        for params in (loss.qvalue_network_params, loss.target_qvalue_network_params):
            params.data[0].update_(weights)
    return loss


class FirstCriticTD3Loss(StackedCriticsLoss, SequenceCritics, TD3Loss):
    """``TD3Loss`` whose actor loss runs only the first critic, the one it reads.

    TorchRL's ``actor_loss`` evaluates both critics on the actor's action (one ``vmap`` over the stacked
    parameters) and keeps the first value: the second critic's forward and backward are computed and thrown away.
    Here the first critic runs alone, with its parameters detached (as TorchRL's), on ``[B]`` transitions or
    ``[B, T]`` sequences; the loss is the same, ``-mean Q_θ1(s, μ_φ(s))`` (TorchRL's ``_reduce_loss``, the
    ``loss_mask`` included). ``value_loss`` is TorchRL's. An upstream-style fix: TorchRL 0.14.1 has no switch for it.
    Plain MLP critics run as batched matrix products (:class:`~trl_accel.objectives.stacked_critics.StackedCriticsLoss`).

    In: the actor's and the critics' in-keys (``observation`` [*B, obs_dim], ...). Out: ``actor_loss`` returns
    ``(loss, {"state_action_value_actor": Q_θ1 [*B]})``.
    """

    def actor_loss(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, dict]:
        actor_input = tensordict.select(*self.actor_network.in_keys, strict=False)
        with self.actor_network_params.to_module(self.actor_network, preserve_module_state=False):
            actor_input = self.actor_network(actor_input)
        critic_input = tensordict.select(*self.qvalue_network.in_keys, strict=False)
        critic_input.set(self.tensor_keys.action, actor_input.get(self.tensor_keys.action))
        # the first critic only: the first parameter set (its first head when the heads share a trunk)
        value = self._values(critic_input, self._cached_first_detached_qvalue_params)[0]
        loss = self._reduce_loss(-value, tensordict=tensordict, weights=self._maybe_get_priority_weight(tensordict))
        return loss, {"state_action_value_actor": value.detach()}

    @property
    @_cache_values
    def _cached_first_detached_qvalue_params(self) -> TensorDictBase:
        """The first critic's parameters, detached ([1, ...]), in TorchRL's cache of detached parameters (erased
        when the loss moves)."""
        return self.qvalue_network_params[:1].detach()


class SequenceTD3Loss(FirstCriticTD3Loss):
    """``TD3Loss`` on ``[B, T]`` sequences, with the bootstrap target computed over the extended sequence.

    In: what ``TD3Loss`` reads, as ``[B, T]`` sequences (``loss_mask`` [B, T] selects the steps that count).
    Out: ``value_loss`` and ``actor_loss`` return ``(loss, metadata)`` as ``TD3Loss``'s do. The critics are
    two networks (``num_qvalue_nets=2``) or one with twin heads (``num_qvalue_nets=1``, values [*B, 2]).

    With ``ext`` = :func:`extended_sequence` of the batch, ε the clipped smoothing noise and the action box
    [a_low, a_high]::

        ã_{t+1} = clip(μ_φ'(ext)_{t+1} + ε_t, a_low, a_high)
        y_t = r_t + γ (1 - terminated_t) min_i Q_θi'(ext, ã)_{t+1}
        L(θ1, θ2) = mean_{loss_mask} Σ_i (Q_θi(seq, a)_t - y_t)²,    L(φ) = -mean_{loss_mask} Q_θ1(seq, μ_φ(seq))_t
    """

    def value_loss(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, dict]:
        tensordict = tensordict.clone(False)
        action = tensordict.get(self.tensor_keys.action)
        noise = (torch.randn_like(action) * self.policy_noise).clamp(-self.noise_clip, self.noise_clip)
        with torch.no_grad():
            ext = extended_sequence(tensordict, _bootstrap_keys(self.actor_network, self.qvalue_network))
            with self.target_actor_network_params.to_module(self.actor_network, preserve_module_state=False):
                ext = self.actor_network(ext)
            next_action = ext.get(self.tensor_keys.action)[:, 1:]
            next_action = (next_action + noise).clamp(self.min_action, self.max_action)
            ext.set(self.tensor_keys.action, torch.cat([ext.get(self.tensor_keys.action)[:, :1], next_action], dim=1))
            critic_input = ext.select(*self.qvalue_network.in_keys, strict=False)
            next_q = self._values(critic_input, self.target_qvalue_network_params)[:, :, 1:].min(0)[0]
        tensordict.set(("next", self.tensor_keys.state_action_value), next_q.unsqueeze(-1))
        current_q = self._values(tensordict.select(*self.qvalue_network.in_keys, strict=False),
                                 self.qvalue_network_params)
        target = self.value_estimator.value_estimate(tensordict).squeeze(-1)
        loss = distance_loss(current_q, target.expand_as(current_q), loss_function=self.loss_function).sum(0)
        loss = self._reduce_loss(loss, tensordict=tensordict)
        return loss, {"td_error": (current_q - target).pow(2).detach(), "pred_value": current_q.detach(),
                      "target_value": target.detach(), "next_state_value": next_q.detach()}


class SequenceSACLoss(SequenceCritics, SACLoss):
    """``SACLoss`` on ``[B, T]`` sequences, with the soft bootstrap target computed over the extended sequence.

    In: what ``SACLoss`` reads, as ``[B, T]`` sequences (``loss_mask`` [B, T] selects the steps that count).
    Out: as ``SACLoss``. The critics are two networks or one with twin heads, as for :class:`SequenceTD3Loss`.
    With ``ext`` = :func:`extended_sequence` of the batch::

        ã ~ π_φ(·|ext),   y_t = r_t + γ (1 - terminated_t) ( min_i Q_θi'(ext, ã)_{t+1} - α log π_φ(ã|ext)_{t+1} )
        L(θ1, θ2) = mean_{loss_mask} Σ_i (Q_θi(seq, a)_t - y_t)²
        â ~ π_φ(·|seq),   L(φ) = mean_{loss_mask} ( α log π_φ(â|seq)_t - min_i Q_θi(seq, â)_t )

    The temperature loss is ``SACLoss``'s own.
    """

    def _compute_target_v2(self, tensordict: TensorDictBase) -> torch.Tensor:
        tensordict = tensordict.clone(False)
        with torch.no_grad():
            ext = extended_sequence(tensordict, _bootstrap_keys(self.actor_network, self.qvalue_network))
            with set_exploration_type(ExplorationType.RANDOM), self.actor_network_params.to_module(
                    self.actor_network, preserve_module_state=False):
                action, log_prob = compute_rsample_log_prob(self.actor_network.get_dist(ext))
            ext.set(self.tensor_keys.action, action)
            q = self._values(ext.select(*self.qvalue_network.in_keys, strict=False),
                             self.target_qvalue_network_params)[:, :, 1:]
            soft = q.min(0)[0] - self._alpha * log_prob[:, 1:]
            tensordict.set(("next", self.value_estimator.tensor_keys.value), soft.unsqueeze(-1))
            return self.value_estimator.value_estimate(tensordict).squeeze(-1)

    def qvalue_v2_loss(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, dict]:
        target = self._compute_target_v2(tensordict)
        pred = self._values(tensordict.select(*self.qvalue_network.in_keys, strict=False), self.qvalue_network_params)
        loss = distance_loss(pred, target.expand_as(pred), loss_function=self.loss_function).sum(0)
        loss = self._reduce_loss(loss, tensordict=tensordict)
        return loss, {"td_error": (pred - target).abs().detach().max(0)[0]}

    def actor_loss(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, dict]:
        with set_exploration_type(ExplorationType.RANDOM), self.actor_network_params.to_module(
                self.actor_network, preserve_module_state=False):
            action, log_prob = compute_rsample_log_prob(self.actor_network.get_dist(tensordict))
        critic_input = tensordict.select(*self.qvalue_network.in_keys, strict=False)
        critic_input.set(self.tensor_keys.action, action)
        min_q = self._values(critic_input, self._cached_detached_qvalue_params).min(0)[0]
        loss = self._reduce_loss(self._alpha * log_prob - min_q, tensordict=tensordict)
        return loss, {"log_prob": log_prob.detach()}


__all__ = ["FirstCriticTD3Loss", "SequenceSACLoss", "SequenceTD3Loss", "extended_sequence", "make_actor_critic_loss"]
