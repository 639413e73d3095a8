"""Behaviour cloning of the accelerator by the transformer (Algorithm 2 of the paper), optionally
with gradient ascent on the accelerator's critic (Algorithm 3)."""
from __future__ import annotations

import contextlib
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

#: The dtypes a student's forward may compute in (``BehaviourCloningLoss(student_dtype=...)``).
STUDENT_DTYPES = (torch.float32, torch.bfloat16)


def to_float32(tensordict: TensorDictBase) -> TensorDictBase:
    """``tensordict`` with its bfloat16 entries (an autocast forward's outputs) cast to float32."""
    return tensordict.apply(lambda value: value.float() if value.dtype == torch.bfloat16 else value)


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

    ``student_dtype=torch.bfloat16`` runs the student's forward under ``torch.autocast`` (its matrix products in
    bfloat16, on the device of its inputs; its weights, gradients and Adam state stay float32) and casts what it
    outputs (the action, or the distribution's parameters) back to float32 before the loss: cheaper on CPUs with
    bfloat16 matrix units (AMX, AVX-512 BF16) and on CUDA, not exact. ``torch.float32`` (the default) is the plain
    float32 forward.
    """

    actor_network: TensorDictModule
    actor_network_params: TensorDictParams
    target_actor_network_params: TensorDictParams

    def __init__(self, actor_network: TensorDictModule, *, target_action_key: NestedKey = keys.TARGET_ACTION,
                 likelihood: bool = False, critic_value: CriticValue | None = None, ascent_weight: float = 0.0,
                 student_dtype: torch.dtype = torch.float32):
        super().__init__()
        if student_dtype not in STUDENT_DTYPES:
            raise ValueError(f"student_dtype must be one of {STUDENT_DTYPES}, got {student_dtype}.")
        if likelihood and not is_stochastic(actor_network):
            raise ValueError("likelihood=True needs a stochastic (tanh-normal) student; use MSE for a deterministic one.")
        if ascent_weight > 0 and critic_value is None:
            raise ValueError("ascent_weight > 0 needs critic_value, the accelerator's critic.")
        self.likelihood = likelihood
        self.critic_value = critic_value
        self.ascent_weight = ascent_weight
        self.convert_to_functional(actor_network, "actor_network", create_target_params=True)
        self.target_action_key = target_action_key
        self.student_dtype = student_dtype

    @property
    def in_keys(self) -> list:
        return [*self.actor_network.in_keys, self.target_action_key]

    def _student_precision(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The autocast of the student's forward (none for float32)."""
        if self.student_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.student_dtype)

    def _clone_term(self, student_in: TensorDictBase, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.actor_network_params.to_module(self.actor_network), set_exploration_type(ExplorationType.RANDOM):
            if is_stochastic(self.actor_network):
                with self._student_precision(target.device):
                    dist_params = self.actor_network.get_dist_params(student_in)
                if self.student_dtype != torch.float32:
                    dist_params = to_float32(dist_params)
                dist = self.actor_network.build_dist_from_params(dist_params)
                predicted = dist.deterministic_sample
                if self.likelihood:
                    inside = target.clamp(dist.low + LIKELIHOOD_EPS, dist.high - LIKELIHOOD_EPS)
                    return -dist.log_prob(inside).mean(), predicted
            else:
                with self._student_precision(target.device):
                    predicted = self.actor_network(student_in).get(keys.ACTION)
                predicted = predicted.float()
        return torch.nn.functional.mse_loss(predicted, target), predicted

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        student_in = tensordict.select(*self.actor_network.in_keys)
        loss_bc, predicted = self._clone_term(student_in, tensordict.get(self.target_action_key))
        out = TensorDict(loss_bc=loss_bc, loss=loss_bc)
        if self.ascent_weight > 0:
            loss_ascent = -self.critic_value(tensordict, predicted).mean()
            out.set("loss_ascent", loss_ascent).set("loss", loss_bc + self.ascent_weight * loss_ascent)
        return out
