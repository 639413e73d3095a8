"""TensorDict modules: MLP accelerator, context-window transformer actor."""
from trl_accel.modules.mlp import make_mlp_actor, make_q_critic, make_twin_q_critics
from trl_accel.modules.transformer import ContextTransformer, make_transformer_actor

__all__ = ["ContextTransformer", "make_mlp_actor", "make_q_critic", "make_transformer_actor", "make_twin_q_critics"]
