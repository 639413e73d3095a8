"""What the TD3 and SAC learners share: how their TorchRL loss is set up, its target updates and the
actor's and critics' optimisers."""
from __future__ import annotations

import torch
from tensordict.nn import TensorDictModule
from torchrl.objectives import LossModule, SoftUpdate

from trl_accel import keys
from trl_accel.modules.recurrent import is_recurrent


def needs_loop_over_critics(critics: list[TensorDictModule]) -> bool:
    """Recurrent critics split sequences on ``is_init``, which ``torch.vmap`` cannot trace: the loss must
    then be built with ``deactivate_vmap=True``."""
    return any(is_recurrent(critic) for critic in critics)


def prepare_actor_critic(loss: LossModule, gamma: float, tau: float, lr: float,
                         ) -> tuple[SoftUpdate, torch.optim.Adam, torch.optim.Adam]:
    """Give ``loss`` its value estimator and the burn-in loss mask (sequence batches: no loss on
    burn-in steps); return its soft target updater and the critics' and actor's Adam optimisers."""
    loss.make_value_estimator(gamma=gamma)
    loss.loss_mask_key = keys.LOSS_MASK
    critic_optimizer = torch.optim.Adam(list(loss.qvalue_network_params.values(True, True)), lr=lr)
    actor_optimizer = torch.optim.Adam(list(loss.actor_network_params.values(True, True)), lr=lr)
    return SoftUpdate(loss, tau=tau), critic_optimizer, actor_optimizer
