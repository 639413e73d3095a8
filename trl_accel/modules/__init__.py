"""TensorDict modules: MLP, recurrent (LSTM/GRU) and pixel accelerators, the context-window transformer actor, action heads."""
from trl_accel.modules.encoders import PixelEncoder, make_pixel_encoder_module
from trl_accel.modules.heads import action_head, bounded_action_head, is_stochastic, stochastic_action_head
from trl_accel.modules.mlp import make_mlp_actor, make_q_critic, make_twin_q_critics
from trl_accel.modules.pixels import make_pixel_mlp_actor, make_pixel_q_critic, make_pixel_twin_q_critics
from trl_accel.modules.recurrent import (
    is_recurrent,
    make_lstm_actor,
    make_recurrent_actor,
    make_recurrent_q_critic,
    make_twin_lstm_q_critics,
    make_twin_recurrent_q_critics,
    recurrent_state_primer,
)
from trl_accel.modules.transformer import ContextTransformer, DeclareInputs, make_transformer_actor

__all__ = ["ContextTransformer", "DeclareInputs", "PixelEncoder", "action_head", "bounded_action_head", "is_recurrent",
           "is_stochastic", "make_lstm_actor", "make_recurrent_actor", "make_recurrent_q_critic", "make_mlp_actor", "make_pixel_encoder_module",
           "make_pixel_mlp_actor", "make_pixel_q_critic", "make_pixel_twin_q_critics", "make_q_critic",
           "make_transformer_actor", "make_twin_lstm_q_critics", "make_twin_recurrent_q_critics", "make_twin_q_critics", "recurrent_state_primer",
           "stochastic_action_head"]
