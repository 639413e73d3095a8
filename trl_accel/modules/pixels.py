"""Accelerator modules for rgb observations: each actor and critic has its own pixel encoder.

The accelerator reads the current frame (``pixels``) and the proprioceptive state (``observation``);
the transformer reads a window of frames, each encoded by its own encoder (see
:func:`trl_accel.modules.transformer.make_transformer_actor` with ``frame_encoder``).
"""
from __future__ import annotations

from collections.abc import Sequence

from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import TensorSpec
from torchrl.modules import MLP, ValueOperator

from trl_accel import keys
from trl_accel.modules.encoders import PixelEncoder
from trl_accel.modules.heads import action_head


def make_pixel_mlp_actor(obs_dim: int, action_spec: TensorSpec, *, hidden_sizes: Sequence[int], image_size: int,
                         feature_dim: int, stochastic: bool = False) -> TensorDictSequential:
    """CNN + MLP actor. Reads ``pixels`` uint8 [*B, 3, H, W] and ``observation`` [*B, D]; writes
    ``actor_pixel_features`` [*B, F], ``param`` and ``action`` (tanh-normal with ``stochastic=True``).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from torchrl.data import Bounded
    >>> actor = make_pixel_mlp_actor(3, Bounded(-1.0, 1.0, shape=(2,)), hidden_sizes=(8,), image_size=36,
    ...                              feature_dim=4)
    >>> td = TensorDict(observation=torch.randn(2, 3), pixels=torch.randint(0, 256, (2, 3, 36, 36), dtype=torch.uint8),
    ...                 batch_size=[2])
    >>> out = actor(td)
    >>> out["actor_pixel_features"].shape, out["action"].shape
    (torch.Size([2, 4]), torch.Size([2, 2]))
    """
    action_dim = action_spec.shape[-1]
    encoder = TensorDictModule(PixelEncoder(image_size, feature_dim), in_keys=[keys.PIXELS],
                               out_keys=[keys.ACTOR_PIXEL_FEATURES])
    mlp = MLP(in_features=obs_dim + feature_dim, out_features=2 * action_dim if stochastic else action_dim,
              num_cells=list(hidden_sizes), activation_class=nn.ReLU)  # concatenates its inputs
    body = TensorDictSequential(encoder, TensorDictModule(mlp, in_keys=[keys.OBSERVATION, keys.ACTOR_PIXEL_FEATURES],
                                                          out_keys=[keys.PARAM]))
    return action_head(body, action_spec, stochastic=stochastic)


def make_pixel_q_critic(obs_dim: int, action_dim: int, *, hidden_sizes: Sequence[int], image_size: int,
                        feature_dim: int) -> TensorDictSequential:
    """CNN + MLP Q network. Reads ``pixels``, ``observation``, ``action``; writes ``critic_pixel_features``
    and ``state_action_value`` [*B, 1].

    >>> import torch
    >>> from tensordict import TensorDict
    >>> critic = make_pixel_q_critic(3, 2, hidden_sizes=(8,), image_size=36, feature_dim=4)
    >>> td = TensorDict(observation=torch.randn(2, 3), action=torch.rand(2, 2),
    ...                 pixels=torch.randint(0, 256, (2, 3, 36, 36), dtype=torch.uint8), batch_size=[2])
    >>> critic(td)["state_action_value"].shape
    torch.Size([2, 1])
    """
    encoder = TensorDictModule(PixelEncoder(image_size, feature_dim), in_keys=[keys.PIXELS],
                               out_keys=[keys.CRITIC_PIXEL_FEATURES])
    mlp = MLP(in_features=obs_dim + feature_dim + action_dim, out_features=1, num_cells=list(hidden_sizes),
              activation_class=nn.ReLU)
    return TensorDictSequential(encoder, ValueOperator(mlp, in_keys=[keys.OBSERVATION, keys.CRITIC_PIXEL_FEATURES, keys.ACTION],
                                                       out_keys=[keys.STATE_ACTION_VALUE]))


def make_pixel_twin_q_critics(obs_dim: int, action_dim: int, *, hidden_sizes: Sequence[int], image_size: int,
                              feature_dim: int) -> list[TensorDictSequential]:
    """Two independently initialised pixel Q networks, each with its own encoder.

    >>> q1, q2 = make_pixel_twin_q_critics(3, 2, hidden_sizes=(8,), image_size=36, feature_dim=4)
    >>> q1.in_keys == q2.in_keys == ["pixels", "observation", "action"]
    True
    """
    return [make_pixel_q_critic(obs_dim, action_dim, hidden_sizes=hidden_sizes, image_size=image_size,
                                feature_dim=feature_dim) for _ in range(2)]


__all__ = ["make_pixel_mlp_actor", "make_pixel_q_critic", "make_pixel_twin_q_critics"]
