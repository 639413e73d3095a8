"""Losses that TorchRL lacks: behaviour cloning with a soft-updated target student; TD3 and SAC whose
bootstrap targets read a replayed sequence once, extended by its last next step."""
from trl_accel.objectives.bc import BehaviourCloningLoss
from trl_accel.objectives.sequences import (
    FirstCriticTD3Loss,
    SequenceSACLoss,
    SequenceTD3Loss,
    extended_sequence,
    make_actor_critic_loss,
)
from trl_accel.objectives.stacked_critics import (
    StackedCriticsLoss,
    StackedCriticsSACLoss,
    StackedMLPCritics,
)

__all__ = ["BehaviourCloningLoss", "FirstCriticTD3Loss", "SequenceSACLoss", "SequenceTD3Loss", "StackedCriticsLoss",
           "StackedCriticsSACLoss", "StackedMLPCritics", "extended_sequence", "make_actor_critic_loss"]
