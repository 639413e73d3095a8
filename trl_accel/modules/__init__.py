"""TensorDict modules: MLP, LSTM and pixel accelerators, the context-window transformer actor."""
from trl_accel.modules.encoders import PixelEncoder, make_pixel_encoder_module
from trl_accel.modules.lstm import make_lstm_actor, make_lstm_q_critic, make_twin_lstm_q_critics, recurrent_state_primer
from trl_accel.modules.mlp import make_mlp_actor, make_q_critic, make_twin_q_critics
from trl_accel.modules.pixels import make_pixel_mlp_actor, make_pixel_q_critic, make_pixel_twin_q_critics
from trl_accel.modules.stochastic import stochastic_action_head
from trl_accel.modules.transformer import ContextTransformer, make_transformer_actor

__all__ = ["ContextTransformer", "PixelEncoder", "make_lstm_actor", "make_lstm_q_critic", "make_mlp_actor",
           "make_pixel_encoder_module", "make_pixel_mlp_actor", "make_pixel_q_critic", "make_pixel_twin_q_critics",
           "make_q_critic", "make_transformer_actor", "make_twin_lstm_q_critics", "make_twin_q_critics",
           "recurrent_state_primer", "stochastic_action_head"]
