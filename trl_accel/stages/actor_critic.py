"""What the TD3 and SAC learners share: how their TorchRL loss is set up, its target updates and the
actor's and critics' optimisers."""
from __future__ import annotations

import math

from collections.abc import Callable

import torch
from tensordict import TensorDictBase
from tensordict.nn import CudaGraphModule, TensorDictModule
from torchrl.objectives import LossModule, SoftUpdate

from trl_accel import keys
from trl_accel.modules.recurrent import is_recurrent


def needs_loop_over_critics(critics: list[TensorDictModule]) -> bool:
    """Recurrent critics split sequences on ``is_init``, which ``torch.vmap`` cannot trace: the loss must
    then be built with ``deactivate_vmap=True``."""
    return any(is_recurrent(critic) for critic in critics)


class ForeachSoftUpdate(SoftUpdate):
    """TorchRL's ``SoftUpdate`` with one ``torch._foreach_lerp_`` over every target tensor per step, in place of one
    TensorDict ``lerp_`` per parameter group: the same arithmetic (θ' ← θ' + (1 - eps)(θ - θ'), eps = 1 - τ),
    bit for bit, with less Python per step. TorchRL 0.14.1 has no foreach variant.

    The lists of source and target tensors are gathered at the first step and kept: TorchRL's updater keeps the
    same tensors (its ``_sources``/``_targets``, built once), and loading a state dict copies into them in place.
    A ``load_state_dict`` of the loss gathers them again all the same. ``benchmarks/target_update.py`` times it
    against TorchRL's ``SoftUpdate`` and against gathering the lists at every step."""

    def __init__(self, loss_module, *, eps: float | None = None, tau: float | None = None):
        super().__init__(loss_module, eps=eps, tau=tau)
        self._lists: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        loss_module.register_load_state_dict_post_hook(lambda module, incompatible: self.forget_tensors())

    def forget_tensors(self) -> None:
        """Gather the source and target tensors again at the next step."""
        self._lists = None

    def gather_tensors(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(targets, sources): every target tensor of the loss and its source, in one order."""
        source_keys = list(self._sources.keys(True, True))
        target_keys = [("target_" + key[0], *key[1:]) if isinstance(key, tuple) else "target_" + key for key in source_keys]
        targets = [self._targets.get(key) for key in target_keys]
        if any(target.requires_grad for target in targets):
            raise RuntimeError("the target parameter is part of a graph.")
        return targets, [self._sources.get(key) for key in source_keys]

    def step(self) -> None:
        if not self.initialized:
            return super().step()  # raises TorchRL's own error
        if self._lists is None:
            self._lists = self.gather_tensors()
        targets, sources = self._lists
        with torch.no_grad():
            torch._foreach_lerp_(targets, sources, 1 - self.eps)


def weighted_chunks(batch: TensorDictBase, chunks: int) -> list[tuple[TensorDictBase, float]]:
    """``batch`` [B, ...] split along its first dimension into ``chunks`` parts (the last may be smaller), each
    with the weight that makes the weighted sum of the parts' mean losses the whole batch's mean loss: its share of
    the batch, or, on a sequence batch, its share of the ``loss_mask``'s True steps. Accumulating the gradients
    of the weighted parts then gives the whole batch's update with about 1/``chunks`` of its activations.

    >>> from tensordict import TensorDict
    >>> [(part.batch_size[0], weight) for part, weight in weighted_chunks(TensorDict(x=torch.zeros(5), batch_size=[5]), 2)]
    [(3, 0.6), (2, 0.4)]
    """
    if chunks <= 1:
        return [(batch, 1.0)]
    parts = batch.split(math.ceil(batch.batch_size[0] / chunks), dim=0)
    if keys.LOSS_MASK in batch.keys():
        counts = [float(part.get(keys.LOSS_MASK).sum()) for part in parts]
    else:
        counts = [float(part.batch_size[0]) for part in parts]
    total = sum(counts)
    return [(part, count / total) for part, count in zip(parts, counts, strict=True)]


#: Eager calls of a step before :func:`graphed` captures it (TorchRL's TD3 and SAC examples use 5): the first calls
#: build what is built once (the optimisers' state, the target updater's tensor lists) outside the graph.
CUDA_GRAPH_WARMUP = 5


def graphed(step: Callable[[TensorDictBase], TensorDictBase], enabled: bool) -> Callable[[TensorDictBase], TensorDictBase]:
    """``step`` (batch in, a TensorDict of detached losses out; its optimiser steps inside) captured as a CUDA graph
    by tensordict's ``CudaGraphModule`` when ``enabled``: after :data:`CUDA_GRAPH_WARMUP` eager calls each call
    copies the batch into the captured inputs and replays the kernels, with no Python in between; every batch must
    then have the shapes of the first. Without CUDA, ``CudaGraphModule`` runs ``step`` eagerly on every call.
    ``enabled=False``: ``step`` itself."""
    return CudaGraphModule(step, in_keys=[], out_keys=[], warmup=CUDA_GRAPH_WARMUP) if enabled else step


def make_adam(parameters: list[torch.Tensor], lr: float, *, capturable: bool = False) -> torch.optim.Adam:
    """Adam over ``parameters``, fused (one kernel for the whole step) where PyTorch has the fused kernel (CPU and CUDA
    floating-point tensors), otherwise foreach. Measured on the 2-core CPU machine, the twin MLP critics' step (256
    hidden units, HalfCheetah's sizes) costs 0.13 ms fused against 0.35 ms foreach and 0.37 ms per tensor. The fused
    step is Adam's arithmetic with another rounding order: it agrees with the others to about one unit in the last
    place, not bit for bit.

    ``capturable``: the step keeps its counters on the parameters' device, as a step inside a CUDA graph
    (:func:`graphed`) needs; it applies to CUDA parameters only (elsewhere nothing is captured).

    >>> make_adam([torch.nn.Parameter(torch.zeros(3))], 3e-4).defaults["fused"]
    True
    """
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float64, torch.float16,
                                                                   torch.bfloat16) for p in parameters)
    capturable = capturable and all(p.device.type == "cuda" for p in parameters)
    kernel = {"fused": True} if fused else {"foreach": True}
    return torch.optim.Adam(parameters, lr=lr, capturable=capturable, **kernel)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)``, keeping the optimiser's own ``capturable`` (a state dict carries the
    flags of the optimiser that saved it: a run resumed on CUDA with ``cudagraphs=true`` from a checkpoint written on
    the CPU would otherwise step a non-capturable Adam inside its CUDA graphs)."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        group["capturable"] = optimizer.defaults.get("capturable", False)


def prepare_actor_critic(loss: LossModule, gamma: float, tau: float, lr: float, *, capturable: bool = False,
                         ) -> tuple[SoftUpdate, torch.optim.Adam, torch.optim.Adam]:
    """Give ``loss`` its value estimator and the burn-in loss mask (sequence batches: no loss on
    burn-in steps); return its soft target updater (:class:`ForeachSoftUpdate`) and the critics' and actor's
    Adam optimisers (:func:`make_adam`; ``capturable`` for steps captured by :func:`graphed`)."""
    loss.make_value_estimator(gamma=gamma)
    loss.loss_mask_key = keys.LOSS_MASK
    critic_optimizer = make_adam(list(loss.qvalue_network_params.values(True, True)), lr, capturable=capturable)
    actor_optimizer = make_adam(list(loss.actor_network_params.values(True, True)), lr, capturable=capturable)
    return ForeachSoftUpdate(loss, tau=tau), critic_optimizer, actor_optimizer


__all__ = ["CUDA_GRAPH_WARMUP", "ForeachSoftUpdate", "graphed", "load_optimizer_state", "make_adam",
           "needs_loop_over_critics", "prepare_actor_critic", "weighted_chunks"]
