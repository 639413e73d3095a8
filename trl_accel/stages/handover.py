"""Stage two's start (Algorithm 4, line 1): the transformer takes the actor's place, the
accelerator's twin critics and their targets carry over unchanged."""
from __future__ import annotations

import torch

from trl_accel.stages.acceleration import BehaviourCloner
from trl_accel.stages.learners import Learner


@torch.no_grad()
def hand_over(stage_one: Learner, cloner: BehaviourCloner, stage_two: Learner) -> None:
    """Copy into ``stage_two.loss`` the critics and critic targets of ``stage_one.loss``, the
    transformer's weights and (TD3) target from ``cloner.loss`` and, for SAC, the entropy
    coefficient: stage two starts from the accelerator's tuned ``log_alpha`` (and keeps tuning it
    toward the same target entropy) rather than from ``alpha_init``, whose large early entropy
    bonus would undo the cloned behaviour. The optimisers of stage two start fresh."""
    stage_two.loss.qvalue_network_params.data.copy_(stage_one.loss.qvalue_network_params.data)
    stage_two.loss.target_qvalue_network_params.data.copy_(stage_one.loss.target_qvalue_network_params.data)
    stage_two.loss.actor_network_params.data.copy_(cloner.loss.actor_network_params.data)
    if hasattr(stage_two.loss, "target_actor_network_params") and stage_two.loss.target_actor_network_params is not None:
        stage_two.loss.target_actor_network_params.data.copy_(cloner.loss.target_actor_network_params.data)
    if hasattr(stage_two.loss, "log_alpha"):
        stage_two.loss.log_alpha.data.copy_(stage_one.loss.log_alpha.data)
