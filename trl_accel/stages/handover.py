"""Stage two's start (Algorithm 4, line 1): the transformer takes the actor's place, the
accelerator's twin critics and their targets carry over unchanged."""
from __future__ import annotations

import torch

from trl_accel.stages.acceleration import BehaviourCloner
from trl_accel.stages.td3 import TD3Learner


@torch.no_grad()
def hand_over(stage_one: TD3Learner, cloner: BehaviourCloner, stage_two: TD3Learner) -> None:
    """Copy into ``stage_two.loss`` the critics and critic targets of ``stage_one.loss`` and the
    transformer's target from ``cloner.loss``. The transformer's online weights are the same module,
    so nothing is copied for them; the optimisers of stage two start fresh."""
    stage_two.loss.qvalue_network_params.data.copy_(stage_one.loss.qvalue_network_params.data)
    stage_two.loss.target_qvalue_network_params.data.copy_(stage_one.loss.target_qvalue_network_params.data)
    stage_two.loss.actor_network_params.data.copy_(cloner.loss.actor_network_params.data)
    stage_two.loss.target_actor_network_params.data.copy_(cloner.loss.target_actor_network_params.data)
