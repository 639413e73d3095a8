"""The stages of the method: TD3 learner, stage-one BC, the switch and the hand-over."""
from trl_accel.stages.acceleration import BehaviourCloner, bc_pairs, make_trajectory_buffer
from trl_accel.stages.handover import hand_over
from trl_accel.stages.switch import SwitchCriterion
from trl_accel.stages.td3 import TD3Learner, TD3Settings, make_exploration_policy

__all__ = ["BehaviourCloner", "SwitchCriterion", "TD3Learner", "TD3Settings", "bc_pairs", "hand_over",
           "make_exploration_policy", "make_trajectory_buffer"]
