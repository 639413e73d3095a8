"""trl_accel: transformer actors trained online, accelerated by a simple agent (TorchRL-native).

The public API, importable from here: the actors and critics (:mod:`trl_accel.modules`), behaviour
cloning (:mod:`trl_accel.objectives`), the stages' parts (:mod:`trl_accel.stages`), envs with
context windows (:mod:`trl_accel.envs`) and every TensorDict key (:mod:`trl_accel.keys`). The
recipes' experiment (:mod:`trl_accel.experiment`) is not imported here.
"""
from trl_accel import keys
from trl_accel.envs import (
    EnvConfigError,
    ObservationMask,
    WindowMask,
    context_window_transforms,
    make_env,
    make_maniskill_env,
    make_maniskill_training_env,
)
from trl_accel.modules import (
    ContextTransformer,
    DeclareInputs,
    PixelEncoder,
    bounded_action_head,
    make_lstm_actor,
    make_lstm_q_critic,
    make_mlp_actor,
    make_pixel_encoder_module,
    make_pixel_mlp_actor,
    make_pixel_q_critic,
    make_pixel_twin_q_critics,
    make_q_critic,
    make_transformer_actor,
    make_twin_lstm_q_critics,
    make_twin_q_critics,
    recurrent_state_primer,
    stochastic_action_head,
)
from trl_accel.objectives import BehaviourCloningLoss
from trl_accel.stages import (
    BehaviourCloner,
    SACLearner,
    SACSettings,
    SequenceSettings,
    SwitchCriterion,
    TD3Learner,
    TD3Settings,
    bc_pairs,
    frozen_first_critic,
    hand_over,
    make_collection_policy,
    make_exploration_policy,
    make_learner,
    make_replay_buffer,
    make_trajectory_buffer,
)

__version__ = "0.1.0"

__all__ = [
    "BehaviourCloner",
    "BehaviourCloningLoss",
    "ContextTransformer",
    "DeclareInputs",
    "EnvConfigError",
    "ObservationMask",
    "PixelEncoder",
    "SACLearner",
    "SACSettings",
    "SequenceSettings",
    "SwitchCriterion",
    "TD3Learner",
    "TD3Settings",
    "WindowMask",
    "bc_pairs",
    "bounded_action_head",
    "context_window_transforms",
    "frozen_first_critic",
    "hand_over",
    "keys",
    "make_collection_policy",
    "make_env",
    "make_exploration_policy",
    "make_learner",
    "make_lstm_actor",
    "make_lstm_q_critic",
    "make_maniskill_env",
    "make_maniskill_training_env",
    "make_mlp_actor",
    "make_pixel_encoder_module",
    "make_pixel_mlp_actor",
    "make_pixel_q_critic",
    "make_pixel_twin_q_critics",
    "make_q_critic",
    "make_replay_buffer",
    "make_trajectory_buffer",
    "make_transformer_actor",
    "make_twin_lstm_q_critics",
    "make_twin_q_critics",
    "recurrent_state_primer",
    "stochastic_action_head",
]
