"""Behaviour cloning of the accelerator by the transformer (Algorithm 2 of the paper)."""
from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictParams
from torchrl.objectives import LossModule

from trl_accel.modules.mlp import ACTION_KEY

TARGET_ACTION_KEY = "target_action"


class BehaviourCloningLoss(LossModule):
    """MSE between the student's action and a target action.

    Reads the student's in-keys (for the transformer: ``observation_window`` [B, K, D],
    ``window_mask`` [B, K], ``observation`` [B, D]) and ``target_action`` [B, A]; returns a
    TensorDict with ``loss_bc`` (scalar). The student gets target parameters
    (``target_actor_network_params``) so that a :class:`~torchrl.objectives.SoftUpdate` keeps the
    target transformer that stage two's ``TD3Loss`` starts from (Algorithm 2, line 5).
    """

    actor_network: TensorDictModule
    actor_network_params: TensorDictParams
    target_actor_network_params: TensorDictParams

    def __init__(self, actor_network: TensorDictModule, target_action_key: str = TARGET_ACTION_KEY):
        super().__init__()
        self.convert_to_functional(actor_network, "actor_network", create_target_params=True)
        self.target_action_key = target_action_key

    @property
    def in_keys(self) -> list:
        return [*self.actor_network.in_keys, self.target_action_key]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        student_in = tensordict.select(*self.actor_network.in_keys)
        with self.actor_network_params.to_module(self.actor_network):
            predicted = self.actor_network(student_in).get(ACTION_KEY)
        loss = torch.nn.functional.mse_loss(predicted, tensordict.get(self.target_action_key))
        return TensorDict(loss_bc=loss)
