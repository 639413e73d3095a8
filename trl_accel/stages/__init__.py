"""The stages of the method: TD3 and SAC learners, replay, stage-one BC (and critic ascent), the switch
and the hand-over."""
from trl_accel.stages.acceleration import BehaviourCloner, action_key_of, bc_pairs, make_trajectory_buffer
from trl_accel.stages.ascent import frozen_first_critic
from trl_accel.stages.handover import hand_over
from trl_accel.stages.learners import Learner, make_collection_policy, make_learner
from trl_accel.stages.sac import SACLearner, SACSettings
from trl_accel.stages.sequences import SequenceSettings, SequenceView, make_replay_buffer
from trl_accel.stages.switch import SwitchCriterion
from trl_accel.stages.td3 import TD3Learner, TD3Settings, make_exploration_policy

__all__ = ["BehaviourCloner", "Learner", "SACLearner", "SACSettings", "SequenceSettings", "SequenceView",
           "SwitchCriterion", "TD3Learner", "TD3Settings", "action_key_of", "bc_pairs", "frozen_first_critic",
           "hand_over", "make_collection_policy", "make_exploration_policy", "make_learner", "make_replay_buffer",
           "make_trajectory_buffer"]
