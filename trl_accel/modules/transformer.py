"""Context-window transformer actor.

The network attends over the last K observations of the episode (pre-LN, causal, padding-masked)
and reads the action off the last token. Attention is written so that rotary positions, a KV
cache and grouped-query attention slot in without rewriting it: queries and keys pass through
``SelfAttention.position_qk`` (identity today), keys/values have their own head count
(``n_kv_heads``, grouped-query attention when smaller than ``n_heads``), and a block can be asked
for the last query only.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import TensorSpec

from trl_accel import keys
from trl_accel.modules.mlp import bounded_action_head


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """Fixed sine/cosine position table of shape [length, d_model]."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table


def attention_mask(valid: torch.Tensor, last_query_only: bool) -> torch.Tensor:
    """Boolean mask [B, 1, Lq, K] (True = may attend): causal, real keys only, and each query
    always sees itself so that a padded query row is never empty (its output is unused)."""
    length = valid.shape[-1]
    positions = torch.arange(length, device=valid.device)
    query_positions = positions[-1:] if last_query_only else positions
    causal = positions.unsqueeze(0) <= query_positions.unsqueeze(1)
    itself = positions.unsqueeze(0) == query_positions.unsqueeze(1)
    allowed = (causal & valid.unsqueeze(-2)) | itself
    return allowed.unsqueeze(1)


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate key/value head count (GQA when ``n_kv_heads < n_heads``)."""

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None):
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if d_model % n_heads or n_heads % n_kv_heads:
            raise ValueError(f"d_model ({d_model}) must divide by n_heads ({n_heads}), and n_heads by n_kv_heads ({n_kv_heads}).")
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, d_model // n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * n_kv_heads * self.head_dim)
        self.out = nn.Linear(d_model, d_model)

    def position_qk(self, query: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hook for relative positions (rotary embeddings rotate q and k here)."""
        return query, key

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_query_only: bool = False) -> torch.Tensor:
        batch, length, _ = x.shape
        query_in = x[:, -1:] if last_query_only else x
        query = self.query(query_in).view(batch, query_in.shape[1], self.n_heads, self.head_dim).transpose(1, 2)
        key, value = self.key_value(x).view(batch, length, 2, self.n_kv_heads, self.head_dim).unbind(2)
        key, value = key.transpose(1, 2), value.transpose(1, 2)
        query, key = self.position_qk(query, key)
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, enable_gqa=self.n_kv_heads != self.n_heads,
        )
        return self.out(attended.transpose(1, 2).reshape(batch, query_in.shape[1], -1))


class GradientDropout(nn.Dropout):
    """Dropout that acts only in training mode *and* when gradients are being computed.

    Dropout regularises gradient steps; a forward pass without gradients (target actions in the TD3
    target, collection rollouts) gains nothing from the noise and on CPU pays for the random masks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) if torch.is_grad_enabled() else x


class TransformerBlock(nn.Module):
    """Pre-LN block: ``x + attn(ln(x))`` then ``x + ff(ln(x))``, dropout on both residual branches.

    Dropout sits on the residual branches only (not on attention weights or embeddings): on CPU the
    random masks cost more than the 1-layer network's matrix products, and these two cover every path."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, n_kv_heads: int | None = None):
        super().__init__()
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = SelfAttention(d_model, n_heads, n_kv_heads)
        self.feed_forward_norm = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.dropout = GradientDropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_query_only: bool = False) -> torch.Tensor:
        residual = x[:, -1:] if last_query_only else x
        x = residual + self.dropout(self.attention(self.attention_norm(x), mask, last_query_only))
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))


class ContextTransformer(nn.Module):
    """Observation window -> features of the last token.

    ``forward(window [*B, K, obs_dim], valid [*B, K] bool) -> [*B, d_model]``. Positions are
    ``"learned"`` or ``"sinusoidal"``; the last block computes the last query only, since the
    action is read from the last token alone.
    """

    def __init__(self, obs_dim: int, context_len: int, d_model: int = 256, n_layers: int = 1, n_heads: int = 2,
                 d_ff: int = 512, dropout: float = 0.05, positions: str = "learned", n_kv_heads: int | None = None):
        super().__init__()
        if context_len < 1:
            raise ValueError(f"context_len must be >= 1, got {context_len}.")
        self.context_len = context_len
        self.embed = nn.Linear(obs_dim, d_model)
        if positions == "learned":
            self.positions = nn.Parameter(0.02 * torch.randn(context_len, d_model))
        elif positions == "sinusoidal":
            self.register_buffer("positions", sinusoidal_positions(context_len, d_model))
        else:
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got '{positions}'.")
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff, dropout, n_kv_heads) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model)

    def forward(self, window: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        batch_shape = window.shape[:-2]
        window = window.reshape(-1, *window.shape[-2:])
        valid = valid.reshape(-1, valid.shape[-1])
        x = self.embed(window) + self.positions
        mask_all, mask_last = attention_mask(valid, False), attention_mask(valid, True)
        for index, block in enumerate(self.blocks):
            last = index == len(self.blocks) - 1
            x = block(x, mask_last if last else mask_all, last_query_only=last)
        return self.final_norm(x[:, -1]).reshape(*batch_shape, -1)


class TransformerPolicyHead(nn.Module):
    """Transformer body plus a linear layer to unbounded action parameters.

    ``forward(window, valid, observation, *extra) -> param [*B, A]``. ``observation`` (the window's
    last entry) and ``extra`` are inputs only so that ``TD3Loss`` forwards them to the critic (the
    loss hands the critic only the keys its actor reads or writes); they are not used.
    """

    def __init__(self, body: ContextTransformer, d_model: int, action_dim: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(d_model, action_dim)

    def forward(self, window: torch.Tensor, valid: torch.Tensor, *unused: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(window, valid))


class FrameTokens(nn.Module):
    """``(observation_window [*B, K, D], pixels_window [*B, K, 3, H, W]) -> [*B, K, D + F]``: each
    observation concatenated with its encoded frame (padding frames are masked later, as padding)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, window: torch.Tensor, pixels_window: torch.Tensor) -> torch.Tensor:
        return torch.cat([window, self.encoder(pixels_window)], dim=-1)


def make_transformer_actor(obs_dim: int, action_spec: TensorSpec, context_len: int = 3, d_model: int = 256,
                           n_layers: int = 1, n_heads: int = 2, d_ff: int = 512, dropout: float = 0.05,
                           positions: str = "learned", n_kv_heads: int | None = None,
                           stochastic: bool = False, critic_keys: Sequence[str] = (),
                           frame_encoder: nn.Module | None = None) -> TensorDictSequential:
    """Deterministic context-window transformer actor (Table 1 defaults: 1 layer, 2 heads,
    d_model 256, feed-forward 512, dropout 0.05, K = 3).

    Reads ``observation_window`` [*B, K, obs_dim], ``window_mask`` [*B, K] and ``observation``
    [*B, obs_dim]; writes ``param`` [*B, A] and ``action`` [*B, A] (tanh-bounded to the spec).
    Dropout is active in ``train()`` mode only: call ``eval()`` for evaluation. ``stochastic=True``
    gives SAC's tanh-normal head instead (also writes ``loc``, ``scale``, ``action_log_prob``).
    ``critic_keys``: further keys the critic reads (``is_init`` for a recurrent critic, ``pixels`` for
    a pixel critic), declared as inputs so that ``TD3Loss`` passes them on; the transformer ignores them.
    ``frame_encoder`` (e.g. a :class:`~trl_accel.modules.encoders.PixelEncoder`, the transformer's own):
    each token is then the observation concatenated with the encoded frame of ``pixels_window``
    [*B, K, 3, H, W] (written as ``token_window``).
    """
    token_dim = obs_dim + (frame_encoder.feature_dim if frame_encoder is not None else 0)
    body = ContextTransformer(token_dim, context_len, d_model, n_layers, n_heads, d_ff, dropout, positions, n_kv_heads)
    action_dim = action_spec.shape[-1]
    network = TransformerPolicyHead(body, d_model, 2 * action_dim if stochastic else action_dim)
    window_key = keys.OBSERVATION_WINDOW if frame_encoder is None else keys.TOKEN_WINDOW
    in_keys = list(dict.fromkeys([window_key, keys.WINDOW_MASK, keys.OBSERVATION, *critic_keys]))
    policy_body = TensorDictModule(network, in_keys=in_keys, out_keys=[keys.PARAM])
    if frame_encoder is not None:
        tokens = TensorDictModule(FrameTokens(frame_encoder), in_keys=[keys.OBSERVATION_WINDOW, keys.PIXELS_WINDOW],
                                  out_keys=[keys.TOKEN_WINDOW])
        policy_body = TensorDictSequential(tokens, policy_body)
    if stochastic:
        from trl_accel.modules.stochastic import stochastic_action_head

        return stochastic_action_head(policy_body, action_spec)
    return TensorDictSequential(policy_body, bounded_action_head(action_spec))
