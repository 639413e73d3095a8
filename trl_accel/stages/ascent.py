"""The accelerator's first critic as a frozen function of the transformer's action (Algorithm 3)."""
from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.modules import set_recurrent_mode
from torchrl.objectives import LossModule

from trl_accel import keys
from trl_accel.modules.recurrent import is_recurrent
from trl_accel.objectives.bc import CriticValue


def window_as_sequence(pairs: TensorDictBase, action: torch.Tensor) -> TensorDictBase:
    """``[B]`` pairs -> a ``[B, K]`` sequence of the window's observations for a recurrent critic:
    ``observation`` [B, K, D], ``is_init`` [B, K, 1] at each window's first real position (the padding
    before it is a separate, discarded segment) and ``action`` [B, K, A] (the action is the last step's;
    earlier steps' Q values are not used)."""
    window, window_mask = pairs.get(keys.OBSERVATION_WINDOW), pairs.get(keys.WINDOW_MASK)
    starts = window_mask & ~torch.nn.functional.pad(window_mask[:, :-1], (1, 0), value=False)
    starts[:, 0] = True
    context_len = window.shape[1]
    return TensorDict({keys.OBSERVATION: window, keys.IS_INIT: starts.unsqueeze(-1),
                       keys.ACTION: action.unsqueeze(1).expand(-1, context_len, -1)}, batch_size=window.shape[:2])


def frozen_first_critic(loss: LossModule) -> CriticValue:
    """``(pairs, action) -> Q1`` [B, 1] of ``loss``'s first critic (a ``TD3Loss`` or ``SACLoss``), with
    its current parameters detached: gradients reach the action only, never the critic.

    An MLP critic reads ``observation`` (and ``pixels``, a pixel critic); a recurrent critic reads the window's history
    (:func:`window_as_sequence`) and its value at the last step is used."""
    critic = loss.qvalue_network
    recurrent = is_recurrent(critic)

    def value(pairs: TensorDictBase, action: torch.Tensor) -> torch.Tensor:
        params = loss.qvalue_network_params[0].detach()
        with params.to_module(critic):
            if recurrent:
                with set_recurrent_mode(True):
                    return critic(window_as_sequence(pairs, action)).get(keys.STATE_ACTION_VALUE)[:, -1, :1]
            critic_in = pairs.select(*(key for key in critic.in_keys if key != keys.ACTION), strict=False)
            critic_in.set(keys.ACTION, action)
            return critic(critic_in).get(keys.STATE_ACTION_VALUE)[..., :1]  # Q1 of twin heads on a shared trunk

    return value
