"""Behaviour cloning of the accelerator by the transformer (Algorithm 2 of the paper), optionally
with gradient ascent on the accelerator's critic (Algorithm 3)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictParams
from tensordict.utils import NestedKey
from torchrl.envs import ExplorationType, set_exploration_type
from torchrl.objectives import LossModule

from trl_accel import keys
from trl_accel.modules.heads import is_stochastic

#: How far inside the action box a cloned action is moved before its log-likelihood is taken.
LIKELIHOOD_EPS = 1e-4

CriticValue = Callable[[TensorDictBase, torch.Tensor], torch.Tensor]


class BehaviourCloningLoss(LossModule):
    """Behaviour cloning of a target action, plus optional critic ascent.

    Reads the student's in-keys (for the transformer: ``observation_window`` [B, K, D],
    ``window_mask`` [B, K] and its pass-through keys) and ``target_action`` [B, A]. Returns a
    TensorDict with ``loss_bc`` (MSE between the student's deterministic action and the target, or,
    with ``likelihood=True`` and a stochastic student, the target's negative log-likelihood), and,
    when ``ascent_weight > 0``, ``loss_ascent`` = ``-mean Q(s, student action)`` from
    ``critic_value`` (whose parameters the caller keeps frozen for this step); ``loss`` is
    ``loss_bc + ascent_weight * loss_ascent``. The student gets target parameters
    (``target_actor_network_params``) so that a :class:`~torchrl.objectives.SoftUpdate` keeps the
    target transformer that stage two's loss starts from (Algorithm 2, line 5).

    The student runs as on any gradient step (``ExplorationType.RANDOM``, not the ``DETERMINISTIC``
    that TorchRL's ``LossModule.forward`` sets): its dropout acts; the action it is scored on is
    the deterministic one all the same (a stochastic student's ``tanh(loc)`` scaled to the box).
    """

    actor_network: TensorDictModule
    actor_network_params: TensorDictParams
    target_actor_network_params: TensorDictParams

    def __init__(self, actor_network: TensorDictModule, *, target_action_key: NestedKey = keys.TARGET_ACTION,
                 likelihood: bool = False, critic_value: CriticValue | None = None, ascent_weight: float = 0.0):
        super().__init__()
        if likelihood and not is_stochastic(actor_network):
            raise ValueError("likelihood=True needs a stochastic (tanh-normal) student; use MSE for a deterministic one.")
        if ascent_weight > 0 and critic_value is None:
            raise ValueError("ascent_weight > 0 needs critic_value, the accelerator's critic.")
        self.likelihood = likelihood
        self.critic_value = critic_value
        self.ascent_weight = ascent_weight
        self.convert_to_functional(actor_network, "actor_network", create_target_params=True)
        self.target_action_key = target_action_key

    @property
    def in_keys(self) -> list:
        return [*self.actor_network.in_keys, self.target_action_key]

    def _clone_term(self, student_in: TensorDictBase, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.actor_network_params.to_module(self.actor_network), set_exploration_type(ExplorationType.RANDOM):
            if is_stochastic(self.actor_network):
                dist = self.actor_network.get_dist(student_in)
                predicted = dist.deterministic_sample
                if self.likelihood:
                    inside = target.clamp(dist.low + LIKELIHOOD_EPS, dist.high - LIKELIHOOD_EPS)
                    return -dist.log_prob(inside).mean(), predicted
            else:
                predicted = self.actor_network(student_in).get(keys.ACTION)
        return torch.nn.functional.mse_loss(predicted, target), predicted

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        student_in = tensordict.select(*self.actor_network.in_keys)
        loss_bc, predicted = self._clone_term(student_in, tensordict.get(self.target_action_key))
        out = TensorDict(loss_bc=loss_bc, loss=loss_bc)
        if self.ascent_weight > 0:
            loss_ascent = -self.critic_value(tensordict, predicted).mean()
            out.set("loss_ascent", loss_ascent).set("loss", loss_bc + self.ascent_weight * loss_ascent)
        return out
