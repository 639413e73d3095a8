"""Twin MLP critics evaluated as batched matrix products on their stacked parameters.

TorchRL's ``TD3Loss`` and ``SACLoss`` evaluate their critics with ``vmap`` over a functional call: for each call
the stacked parameters are swapped into the module (``to_module``), the TensorDict input gets a batch dimension
added to every leaf, and the output is unwrapped again. For a plain MLP critic (TorchRL's ``MLP`` of ``Linear``
and ``ReLU`` layers in a ``TensorDictModule``), that bookkeeping costs more than the arithmetic on a CPU. Here the
same critics run as ``torch.baddbmm`` on the same stacked parameters (the loss's own ``qvalue_network_params``,
so the optimisers, target updates and checkpoints see the same tensors): the same values (equal in the tests), and
gradients that agree with ``vmap``'s to the last place (the products are summed in another order).

An upstream-style fix: TorchRL 0.14.1 has no cheaper path for stacked MLP critics. Critics of any other kind
(recurrent, pixels, dropout or normalisation layers) keep TorchRL's ``vmap``.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.modules import MLP, ValueOperator
from torchrl.objectives import SACLoss


def is_plain_mlp_critic(network: nn.Module) -> bool:
    """Whether ``network`` is a ``TensorDictModule`` (or ``ValueOperator``) around TorchRL's ``MLP`` made only of
    ``Linear`` and ``ReLU`` layers, ending in a ``Linear`` of one output (one value per critic), with one output
    key: a critic this module can run."""
    body = getattr(network, "module", None)
    return (type(network) in (TensorDictModule, ValueOperator) and type(body) is MLP and not body._reshape_out
            and len(network.out_keys) == 1 and len(body) > 0 and type(body[-1]) is nn.Linear
            and body[-1].out_features == 1 and all(type(layer) in (nn.Linear, nn.ReLU) for layer in body))


class StackedMLPCritics:
    """Q critics of one MLP architecture, each with its own parameter set, run as batched matrix products.

    ``__call__(inputs, params)`` stands in for TorchRL's ``vmap`` of the critic: ``params`` are the stacked
    parameter sets [Q, ...] (``qvalue_network_params`` or its target or detached copies). With
    ``shared_input=False`` (TorchRL's in-dims ``(0, 0)``) ``inputs`` has batch [Q, *B], one input per critic;
    with ``shared_input=True`` (in-dims ``(None, 0)``) batch [*B], every critic reads the same input. Either way
    it reads the critic's in-keys (``observation`` [.., obs_dim], ``action`` [.., A], concatenated in that order
    as TorchRL's ``MLP`` does) and returns a TensorDict of batch [Q, *B] with the out-key
    (``state_action_value`` [Q, *B, 1]). ``values(inputs, params)`` returns that value tensor for a [*B] input.
    """

    def __init__(self, network: TensorDictModule, *, shared_input: bool):
        if not is_plain_mlp_critic(network):
            raise TypeError(f"StackedMLPCritics needs an MLP critic of Linear and ReLU layers, got {network}")
        self.in_keys = list(network.in_keys)
        self.out_key = network.out_keys[0]
        self.layers = [(name, type(layer) is nn.Linear) for name, layer in network.module.named_children()]
        self.shared_input = shared_input

    def values(self, inputs: TensorDictBase, params: TensorDictBase) -> torch.Tensor:
        """The critics' values [Q, *B, 1] on a [*B] input every critic reads."""
        return self._run(inputs, params, batch=inputs.batch_size, shared=True)

    def __call__(self, inputs: TensorDictBase, params: TensorDictBase) -> TensorDictBase:
        batch = inputs.batch_size if self.shared_input else inputs.batch_size[1:]
        value = self._run(inputs, params, batch=batch, shared=self.shared_input)
        return TensorDict({self.out_key: value}, batch_size=value.shape[:-1], device=inputs.device)

    def _run(self, inputs: TensorDictBase, params: TensorDictBase, *, batch: torch.Size, shared: bool) -> torch.Tensor:
        tensors = [inputs.get(key) for key in self.in_keys]
        x = torch.cat(tensors, dim=-1) if len(tensors) > 1 else tensors[0]
        critics = params.batch_size[0]
        x = x.reshape(1 if shared else critics, -1, x.shape[-1]).expand(critics, -1, -1)
        weights = params.get("module")
        for name, linear in self.layers:
            if linear:
                x = torch.baddbmm(weights.get((name, "bias")).unsqueeze(-2), x, weights.get((name, "weight")).mT)
            else:
                x = torch.relu(x)
        return x.reshape(critics, *batch, x.shape[-1])


class StackedCriticsLoss:
    """Mixin for TorchRL's ``TD3Loss`` and ``SACLoss`` (put it first among the bases): when the critics are plain MLPs
    (:func:`is_plain_mlp_critic`) and ``vmap`` is on, the loss's ``vmap``-ed critic calls are replaced by
    :class:`StackedMLPCritics` on the same parameters; otherwise the loss is TorchRL's, unchanged."""

    #: TorchRL's vmapped critic callables and whether each shares one input among the critics (in-dims (None, 0))
    _CRITIC_CALLS: ClassVar[dict[str, bool]] = {"_vmap_qvalue_network00": False, "_vmap_qnetwork00": False, "_vmap_qnetworkN0": True}

    def _make_vmap(self) -> None:
        super()._make_vmap()
        self._stacked_critics = None
        if self.deactivate_vmap or not is_plain_mlp_critic(self.qvalue_network):
            return
        self._stacked_critics = StackedMLPCritics(self.qvalue_network, shared_input=True)
        for name, shared in self._CRITIC_CALLS.items():
            if hasattr(self, name):
                setattr(self, name, StackedMLPCritics(self.qvalue_network, shared_input=shared))

    def _values(self, tensordict: TensorDictBase, params: TensorDictBase) -> torch.Tensor:
        """The critics with each of the stacked ``params`` on ``tensordict`` [*B] -> values [Q, *B]."""
        if self._stacked_critics is not None:
            return self._stacked_critics.values(tensordict, params).squeeze(-1)
        return super()._values(tensordict, params)


class StackedCriticsSACLoss(StackedCriticsLoss, SACLoss):
    """TorchRL's ``SACLoss``, its MLP critics run by :class:`StackedMLPCritics` (any other critic: ``SACLoss``
    unchanged). In and out: as ``SACLoss`` (``observation``, ``action``, ``("next", ...)`` [*B, ...] ->
    ``loss_actor``, ``loss_qvalue``, ``loss_alpha``, ...)."""


__all__ = ["StackedCriticsLoss", "StackedCriticsSACLoss", "StackedMLPCritics", "is_plain_mlp_critic"]
