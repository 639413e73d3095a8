"""Losses that TorchRL lacks: behaviour cloning with a soft-updated target student."""
from trl_accel.objectives.bc import BehaviourCloningLoss

__all__ = ["BehaviourCloningLoss"]
