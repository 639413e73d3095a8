"""Losses that TorchRL lacks: behaviour cloning with a soft-updated target student."""
from trl_accel.objectives.bc import TARGET_ACTION_KEY, BehaviourCloningLoss

__all__ = ["TARGET_ACTION_KEY", "BehaviourCloningLoss"]
