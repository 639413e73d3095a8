"""A SAC learner built from TorchRL's ``SACLoss``: tanh-normal actor, twin critics, automatic entropy tuning."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule
from torchrl.data import TensorSpec

from trl_accel.objectives.sequences import SequenceSACLoss, make_actor_critic_loss
from trl_accel.objectives.stacked_critics import StackedCriticsSACLoss
from trl_accel.stages.actor_critic import (
    graphed,
    load_optimizer_state,
    make_adam,
    needs_loop_over_critics,
    prepare_actor_critic,
    weighted_chunks,
)


@dataclass
class SACSettings:
    """SAC's usual MuJoCo values; the paper's Table 1 gives the shared ones (gamma, tau, lr, batch)."""

    gamma: float = 0.99
    tau: float = 0.005
    lr: float = 3e-4
    alpha_lr: float = 3e-4
    alpha_init: float = 1.0
    target_entropy: float | str = "auto"  # "auto" = -action_dim
    batch_size: int = 256  # read by the replay buffer, kept here with the rest
    update_chunks: int = 1  # > 1: each update's batch in this many parts, gradients accumulated (less memory)


class SACLearner:
    """``SACLoss`` with three Adam optimisers (actor, critics, entropy coefficient) and soft target
    updates (Haarnoja et al., 2018, with automatic entropy tuning).

    ``update(batch)`` reads ``observation``, ``action``, the actor's and critics' in-keys and
    ``("next", ...)`` with ``reward``, ``done``, ``terminated`` (recurrent learners: ``[B, T]``
    sequences with ``loss_mask``); one step of each optimiser and one soft update per call.
    The entropy coefficient lives in ``loss.log_alpha``.

    What TorchRL's ``SACLoss`` computes, with the tanh-normal policy π_φ, critics Q_θ1 and Q_θ2,
    their targets Q_θ1', Q_θ2' (the actor has none), the temperature α = exp(log_alpha), a batch of
    transitions (s, a, r, s') and the settings γ = ``gamma``, τ = ``tau``, H̄ = ``target_entropy``
    (``"auto"``: minus the action dimension):

    Soft target with entropy term (a fresh sample of the current policy at s'; only ``terminated``
    stops the bootstrap)::

        a' ~ π_φ(·|s'),   y = r + γ (1 - terminated) ( min_{i=1,2} Q_θi'(s', a') - α log π_φ(a'|s') )

    Critic loss (y carries no gradient)::

        L(θ1, θ2) = mean_batch  Σ_{i=1,2} (Q_θi(s, a) - y)²

    Actor loss (ã a reparameterised sample, so the gradient flows through it; critics' weights detached)::

        ã ~ π_φ(·|s),   L(φ) = mean_batch ( α log π_φ(ã|s) - min_{i=1,2} Q_θi(s, ã) )

    Temperature loss (log π_φ(ã|s) detached: the gradient reaches log α only)::

        L(α) = - mean_batch  log α · ( log π_φ(ã|s) + H̄ )

    Polyak update of the critics' targets, after every step::

        θi' ← τ θi + (1 - τ) θi'

    On a sequence batch (recurrent critics), ``mean_batch`` runs over the steps where ``loss_mask`` is True
    (not the burn-in, not the padding), and the loss is :class:`~trl_accel.objectives.SequenceSACLoss`: the
    target reads the sequence extended by its last next step, once.
    """

    def __init__(self, actor: TensorDictModule, critics: list[TensorDictModule], action_spec: TensorSpec,
                 settings: SACSettings, *, compile: bool = False, cudagraphs: bool = False):
        self.settings = settings
        sequences = needs_loop_over_critics(critics)
        self.loss = make_actor_critic_loss(
            SequenceSACLoss if sequences else StackedCriticsSACLoss, actor, critics, loss_function="l2", action_spec=action_spec,
            alpha_init=settings.alpha_init, target_entropy=settings.target_entropy, deactivate_vmap=sequences)
        self.target_updater, self.critic_optimizer, self.actor_optimizer = prepare_actor_critic(
            self.loss, settings.gamma, settings.tau, settings.lr, capturable=cudagraphs)
        self.alpha_optimizer = self._alpha_optimizer(settings.alpha_lr, capturable=cudagraphs)
        self.num_updates = 0
        self._loss = torch.compile(self.loss) if compile else self.loss
        self._step = graphed(self._step_all, cudagraphs)

    def _alpha_optimizer(self, lr: float, *, capturable: bool) -> torch.optim.Adam:
        """Adam over ``log_alpha``: PyTorch's default kernel as before, or a capturable one for CUDA graphs."""
        if capturable and self.loss.log_alpha.device.type == "cuda":
            return make_adam([self.loss.log_alpha], lr, capturable=True)
        return torch.optim.Adam([self.loss.log_alpha], lr=lr)

    def update(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """One SAC step on ``batch``; returns detached ``loss_qvalue``, ``loss_actor``, ``loss_alpha``, ``alpha``."""
        out = dict(self._step(batch).items())
        self.num_updates += 1
        return out

    def _step_all(self, batch: TensorDictBase) -> TensorDictBase:
        """The critics', actor's and temperature's gradient steps on ``batch`` and the targets' soft update; the
        detached losses and ``alpha``."""
        for optimizer in (self.critic_optimizer, self.actor_optimizer, self.alpha_optimizer):
            optimizer.zero_grad(set_to_none=True)
        out: dict[str, torch.Tensor] = {}
        for part, weight in weighted_chunks(batch, self.settings.update_chunks):
            losses = self._loss(part)
            total = losses["loss_qvalue"] + losses["loss_actor"] + losses["loss_alpha"]
            # the actor's loss reads detached critics, the alpha loss a detached log-prob
            (total if weight == 1.0 else total * weight).backward()
            for key in ("loss_qvalue", "loss_actor", "loss_alpha", "alpha"):
                value = losses[key].detach() if weight == 1.0 else losses[key].detach() * weight
                out[key] = out[key] + value if key in out else value
        for optimizer in (self.critic_optimizer, self.actor_optimizer, self.alpha_optimizer):
            optimizer.step()
        self.target_updater.step()
        return TensorDict(out)

    def state_dict(self) -> dict:
        return {"loss": self.loss.state_dict(), "critic_optimizer": self.critic_optimizer.state_dict(),
                "actor_optimizer": self.actor_optimizer.state_dict(),
                "alpha_optimizer": self.alpha_optimizer.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.loss.load_state_dict(state["loss"])
        for name in ("critic_optimizer", "actor_optimizer", "alpha_optimizer"):
            load_optimizer_state(getattr(self, name), state[name])
        self.num_updates = state["num_updates"]
