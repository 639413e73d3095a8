"""Accelerator modules for rgb observations: each actor and critic has its own pixel encoder.

The accelerator reads the current frame (``pixels``) and the proprioceptive state (``observation``);
the transformer reads a window of frames, each encoded by its own encoder (see
:func:`trl_accel.modules.transformer.make_transformer_actor` with ``frame_encoder``).
"""
from __future__ import annotations

from typing import Sequence

from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import TensorSpec
from torchrl.modules import MLP, ValueOperator

from trl_accel import keys
from trl_accel.modules.encoders import PixelEncoder
from trl_accel.modules.mlp import bounded_action_head


def make_pixel_mlp_actor(obs_dim: int, action_spec: TensorSpec, hidden_sizes: Sequence[int] = (256, 256),
                         image_size: int = 64, feature_dim: int = 256, stochastic: bool = False) -> TensorDictSequential:
    """CNN + MLP actor. Reads ``pixels`` uint8 [*B, 3, H, W] and ``observation`` [*B, D]; writes
    ``actor_pixel_features`` [*B, F], ``param`` and ``action`` (tanh-normal with ``stochastic=True``)."""
    action_dim = action_spec.shape[-1]
    encoder = TensorDictModule(PixelEncoder(image_size, feature_dim), in_keys=[keys.PIXELS], out_keys=[keys.ACTOR_PIXEL_FEATURES])
    mlp = MLP(in_features=obs_dim + feature_dim, out_features=2 * action_dim if stochastic else action_dim,
              num_cells=list(hidden_sizes), activation_class=nn.ReLU)  # concatenates its inputs
    body = TensorDictSequential(encoder, TensorDictModule(mlp, in_keys=[keys.OBSERVATION, keys.ACTOR_PIXEL_FEATURES],
                                                          out_keys=[keys.PARAM]))
    if stochastic:
        from trl_accel.modules.stochastic import stochastic_action_head

        return stochastic_action_head(body, action_spec)
    return TensorDictSequential(body, bounded_action_head(action_spec))


def make_pixel_q_critic(obs_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (256, 256), image_size: int = 64,
                        feature_dim: int = 256) -> TensorDictSequential:
    """CNN + MLP Q network. Reads ``pixels``, ``observation``, ``action``; writes ``critic_pixel_features``
    and ``state_action_value`` [*B, 1]."""
    encoder = TensorDictModule(PixelEncoder(image_size, feature_dim), in_keys=[keys.PIXELS], out_keys=[keys.CRITIC_PIXEL_FEATURES])
    mlp = MLP(in_features=obs_dim + feature_dim + action_dim, out_features=1, num_cells=list(hidden_sizes),
              activation_class=nn.ReLU)
    return TensorDictSequential(encoder, ValueOperator(mlp, in_keys=[keys.OBSERVATION, keys.CRITIC_PIXEL_FEATURES, keys.ACTION],
                                                       out_keys=[keys.STATE_ACTION_VALUE]))


def make_pixel_twin_q_critics(obs_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (256, 256),
                              image_size: int = 64, feature_dim: int = 256) -> list[TensorDictSequential]:
    """Two independently initialised pixel Q networks, each with its own encoder."""
    return [make_pixel_q_critic(obs_dim, action_dim, hidden_sizes, image_size, feature_dim) for _ in range(2)]
