"""PPO's loss (TorchRL's ``ClipPPOLoss``), with an optional histogram value loss (HL-Gauss), and one update.

HL-Gauss (Imani & White 2018; Farebrother et al. 2024): the value head outputs the logits of a histogram over
``bins`` evenly spaced values in ``[v_min, v_max]``; its target is a Gaussian of width ``sigma`` (0.75 bin
widths) centred on the TD(λ) return, integrated over each bin, and the loss is the cross-entropy. The value
the advantages use is the histogram's mean.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.objectives import ClipPPOLoss

from trl_accel.modules.trajectory import VALUE_LOGITS

#: The loss terms an update adds up.
LOSS_TERMS = ("loss_objective", "loss_critic", "loss_entropy")


def hl_gauss_target(value: torch.Tensor, support: torch.Tensor, sigma_ratio: float = 0.75) -> torch.Tensor:
    """``value`` [*, 1] -> probabilities [*, bins]: a Gaussian of width ``sigma_ratio`` bin widths centred on the
    value (clamped to the support), integrated over each bin (bins centred on ``support`` [bins])."""
    width = (support[-1] - support[0]) / (support.numel() - 1)
    edges = torch.cat([support - width / 2, support[-1:] + width / 2])
    centre = value.clamp(support[0].item(), support[-1].item())
    cdf = torch.special.ndtr((edges - centre) / (sigma_ratio * width))
    mass = cdf[..., 1:] - cdf[..., :-1]
    return mass / mass.sum(-1, keepdim=True).clamp_min(1e-12)


class HLGaussPPOLoss(ClipPPOLoss):
    """``ClipPPOLoss`` whose critic loss is the cross-entropy of the value histogram (``value_logits``, written by
    the critic) against :func:`hl_gauss_target` of ``value_target``; everything else is TorchRL's."""

    def __init__(self, *args, support: torch.Tensor, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("support", support.clone())

    def loss_critic(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, ...]:
        _, clip_fraction, explained_variance = super().loss_critic(tensordict)  # runs the critic: value_logits
        logits = tensordict.get(VALUE_LOGITS)
        target = hl_gauss_target(tensordict.get(self.tensor_keys.value_target), self.support)
        loss = -(target * F.log_softmax(logits, dim=-1)).sum(-1, keepdim=True)
        if self.critic_coeff is not None:
            loss = self.critic_coeff * loss
        return loss, clip_fraction, explained_variance


def make_ppo_loss(actor: TensorDictModuleBase, critic: TensorDictModuleBase, *, clip_epsilon: float,
                  entropy_coeff: float, critic_coeff: float, normalize_advantage: bool = True,
                  value_loss: str = "mse", support: torch.Tensor | None = None) -> ClipPPOLoss:
    """TorchRL's ``ClipPPOLoss`` (``value_loss="mse"``) or :class:`HLGaussPPOLoss` (``"hl_gauss"``, ``support``
    the histogram's bin values). Non-functional: the actor and the critic share the token embedding (and the
    core, unless the critic is another network), so their parameters are used as they are."""
    kwargs = {"clip_epsilon": clip_epsilon, "entropy_bonus": entropy_coeff > 0, "entropy_coeff": entropy_coeff,
              "critic_coeff": critic_coeff, "loss_critic_type": "l2", "normalize_advantage": normalize_advantage,
              "functional": False}
    if value_loss == "hl_gauss":
        return HLGaussPPOLoss(actor, critic, support=support, **kwargs)
    return ClipPPOLoss(actor, critic, **kwargs)


def trajectory_minibatches(rollout: TensorDictBase, minibatches: int,
                           generator: torch.Generator | None = None) -> Iterator[TensorDictBase]:
    """One pass over ``rollout`` [N, T]: its N trajectories shuffled and split into ``minibatches`` groups of
    ``ceil(N / minibatches)`` (the last one smaller), each [n, T] with time order kept."""
    n = rollout.shape[0]
    size = math.ceil(n / minibatches)
    order = torch.randperm(n, generator=generator).to(rollout.device)
    for start in range(0, n, size):
        yield rollout[order[start:start + size]]


def ppo_update(loss: ClipPPOLoss, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
               rollout: TensorDictBase, *, epochs: int, minibatches: int, max_grad_norm: float,
               generator: torch.Generator | None = None) -> dict[str, float]:
    """``epochs`` passes over ``rollout`` [N, T] (with ``advantage`` and ``value_target``), each over its N
    trajectories shuffled and split into ``minibatches`` groups (time order kept). Returns the mean of each
    loss term and diagnostic (``clip_fraction``, ``kl_approx``, ``entropy``, ``explained_variance``, ``grad_norm``)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    sums: dict[str, float] = {}
    count = 0
    for _ in range(epochs):
        for batch in trajectory_minibatches(rollout, minibatches, generator):
            out = loss(batch)
            total = sum(out[name] for name in LOSS_TERMS if name in out)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            scheduler.step()
            values = {name: out[name].detach().float().mean() for name in out.keys()}  # noqa: SIM118
            values["grad_norm"] = grad_norm
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + float(value)
            count += 1
    return {name: value / count for name, value in sums.items()}


__all__ = ["LOSS_TERMS", "HLGaussPPOLoss", "hl_gauss_target", "make_ppo_loss", "ppo_update", "trajectory_minibatches"]
