"""Context-window transformer actor.

The network attends over the last K observations of the episode (pre-LN, causal, padding-masked)
and reads the action off the last token. Keys/values have their own head count (``n_kv_heads``,
grouped-query attention when smaller than ``n_heads``), and a block can be asked for the last query only.

Positions are ``learned`` or ``sinusoidal`` (added to the tokens, one per window slot) or ``rotary``
(RoPE: queries and keys rotated by their position, so attention sees relative positions only). With
rotary positions a step's keys and values do not depend on where it sits in the window, so a rollout
can cache them (:mod:`trl_accel.modules.kv_cache`): each layer then attends over the last K steps
(sliding-window attention), and a window of ``n_layers * (K - 1) + 1`` steps holds everything the last
step's action depends on (:func:`window_length`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data import TensorSpec
from torchrl.envs.utils import ExplorationType, exploration_type

from trl_accel import keys
from trl_accel.modules.heads import action_head

#: Exploration types under which a policy must act deterministically: dropout is off under these.
DETERMINISTIC_EXPLORATION = (ExplorationType.DETERMINISTIC, ExplorationType.MODE, ExplorationType.MEAN,
                             ExplorationType.MEDIAN)


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """Fixed sine/cosine position table of shape [length, d_model]."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table


POSITIONS = ("learned", "sinusoidal", "rotary")
#: What a token can hold besides the observation, each with its own embedding (summed): the previous step's
#: action and reward (zero at an episode's start).
EXTRA_TOKENS = (keys.PREV_ACTION, keys.PREV_REWARD)
#: The window each extra token part is read from.
TOKEN_WINDOWS = {keys.PREV_ACTION: keys.PREV_ACTION_WINDOW, keys.PREV_REWARD: keys.PREV_REWARD_WINDOW}


def window_length(context_len: int, n_layers: int, positions: str) -> int:
    """Steps in the window the transformer reads: K, or with rotary positions (sliding-window attention of K
    steps per layer) the receptive field ``n_layers * (K - 1) + 1`` (K for one layer)."""
    return n_layers * (context_len - 1) + 1 if positions == "rotary" else context_len


def attention_mask(window_mask: torch.Tensor, last_query_only: bool, span: int | None = None) -> torch.Tensor:
    """Boolean mask [B, 1, Lq, L] (True = may attend) from ``window_mask`` [B, L]: causal, real keys
    only, at most ``span`` steps back including the query's own (``None``: the whole window), and each
    query always sees itself so that a padded query row is never empty (its output is unused)."""
    length = window_mask.shape[-1]
    positions = torch.arange(length, device=window_mask.device)
    query_positions = positions[-1:] if last_query_only else positions
    offset = query_positions.unsqueeze(1) - positions.unsqueeze(0)
    causal = (offset >= 0) if span is None else (offset >= 0) & (offset < span)
    allowed = (causal & window_mask.unsqueeze(-2)) | (offset == 0)
    return allowed.unsqueeze(1)


def rotary_angles(positions: torch.Tensor, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``positions`` [*P] (int) -> ``(cos, sin)`` [*P, head_dim // 2], float32, computed in float64 so that
    positions in the thousands (an episode's step) rotate as precisely as window slots."""
    frequency = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=positions.device) / head_dim)
    angles = positions.to(torch.float64).unsqueeze(-1) * frequency
    return angles.cos().float(), angles.sin().float()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE: ``x`` [B, H, L, hd] with its two halves rotated by ``(cos, sin)`` [B or 1, 1, L, hd // 2]."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


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

    def queries_keys_values(self, x: torch.Tensor, query_in: torch.Tensor,
                            rotary: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, ...]:
        """``x`` [B, L, d] and ``query_in`` [B, Lq, d] (the last Lq of ``x``) -> query [B, H, Lq, hd], key and
        value [B, Hkv, L, hd]; with ``rotary`` (``cos``, ``sin`` [B or 1, L, hd // 2]) q and k are rotated."""
        batch, length, _ = x.shape
        query = self.query(query_in).view(batch, query_in.shape[1], self.n_heads, self.head_dim).transpose(1, 2)
        key, value = self.key_value(x).view(batch, length, 2, self.n_kv_heads, self.head_dim).unbind(2)
        key, value = key.transpose(1, 2), value.transpose(1, 2)
        if rotary is not None:
            cos, sin = (angle.unsqueeze(1) for angle in rotary)
            key = rotate(key, cos, sin)
            query = rotate(query, cos[..., -query_in.shape[1]:, :], sin[..., -query_in.shape[1]:, :])
        return query, key, value

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attn_mask, enable_gqa=self.n_kv_heads != self.n_heads,
        )
        return self.out(attended.transpose(1, 2).reshape(query.shape[0], query.shape[2], -1))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, last_query_only: bool = False,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        query, key, value = self.queries_keys_values(x, x[:, -1:] if last_query_only else x, rotary)
        return self.attend(query, key, value, attn_mask)

    def step(self, x: torch.Tensor, cached_key: torch.Tensor, cached_value: torch.Tensor, cached_mask: torch.Tensor,
             rotary: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One new step per batch entry against cached keys and values: ``x`` [B, 1, d], ``cached_key`` and
        ``cached_value`` [B, Hkv, C, hd] (rotated at their own positions), ``cached_mask`` [B, C], ``rotary`` for
        the new step ([B, 1, hd // 2] each) -> (output [B, 1, d], the new step's key and value [B, Hkv, 1, hd])."""
        query, key, value = self.queries_keys_values(x, x, rotary)
        keys_all = torch.cat([cached_key, key], dim=2)
        values_all = torch.cat([cached_value, value], dim=2)
        allowed = torch.cat([cached_mask, torch.ones_like(cached_mask[:, :1])], dim=1)
        return self.attend(query, keys_all, values_all, allowed[:, None, None, :]), key, value


def dropout_acts(training: bool) -> bool:
    """Whether dropout acts now: in training mode, with gradients enabled, and outside a deterministic
    exploration type (``set_exploration_type(ExplorationType.DETERMINISTIC)``, or ``MODE``/``MEAN``/
    ``MEDIAN``). No exploration type set (``exploration_type()`` is ``None``) and ``RANDOM`` leave it on.

    TorchRL's losses run ``forward`` and their ``*_loss`` methods under their
    ``deterministic_sampling_mode`` (``DETERMINISTIC`` by default); the gradient steps of this package
    run the transformer under ``RANDOM``: :class:`~trl_accel.stages.td3.TD3Learner` sets its
    ``TD3Loss``'s mode to it, ``SACLoss``'s actor loss samples under it, and
    :class:`~trl_accel.objectives.BehaviourCloningLoss` runs its student under it."""
    return training and torch.is_grad_enabled() and exploration_type() not in DETERMINISTIC_EXPLORATION


class GradientDropout(nn.Dropout):
    """Dropout that acts only on gradient steps: see :func:`dropout_acts`.

    Dropout regularises gradient steps; a forward pass without gradients (target actions in the TD3
    target, collection rollouts) gains nothing from the noise and on CPU pays for the random masks,
    and a deterministic rollout (``ExplorationType.DETERMINISTIC``) must give the same actions each
    time even when the caller left the module in ``train()`` mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0 or not dropout_acts(self.training):
            return x
        return F.dropout(x, self.p, training=True, inplace=self.inplace)


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

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, last_query_only: bool = False,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        residual = x[:, -1:] if last_query_only else x
        x = residual + self.dropout(self.attention(self.attention_norm(x), attn_mask, last_query_only, rotary))
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))

    def step(self, x: torch.Tensor, cached_key: torch.Tensor, cached_value: torch.Tensor, cached_mask: torch.Tensor,
             rotary: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` for one new step against a KV cache (see :meth:`SelfAttention.step`)."""
        attended, key, value = self.attention.step(self.attention_norm(x), cached_key, cached_value, cached_mask, rotary)
        x = x + self.dropout(attended)
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x))), key, value


class ContextTransformer(nn.Module):
    """Observation window -> features of the last token.

    ``forward(window [*B, W, obs_dim], window_mask [*B, W] bool) -> [*B, d_model]``, W =
    :func:`window_length` (K unless rotary). Positions are ``"learned"``, ``"sinusoidal"`` or ``"rotary"``
    (then each layer attends over the last K steps, and a rollout can use a KV cache); the last block
    computes the last query only, since the action is read from the last token alone.

    >>> import torch
    >>> body = ContextTransformer(3, context_len=4, d_model=8, d_ff=16)
    >>> body(torch.randn(2, 4, 3), torch.tensor([[False, True, True, True]] * 2)).shape
    torch.Size([2, 8])
    """

    def __init__(self, obs_dim: int, *, context_len: int, d_model: int = 256, n_layers: int = 1, n_heads: int = 2,
                 n_kv_heads: int | None = None, d_ff: int = 512, dropout: float = 0.05, positions: str = "learned",
                 extra_tokens: dict[str, int] | None = None):
        super().__init__()
        if context_len < 1:
            raise ValueError(f"context_len must be >= 1, got {context_len}.")
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got '{positions}'.")
        self.context_len, self.d_model, self.n_layers, self.position_kind = context_len, d_model, n_layers, positions
        self.window_len = window_length(context_len, n_layers, positions)
        self.embed = nn.Linear(obs_dim, d_model)
        self.extra_embeddings = nn.ModuleDict({name: nn.Linear(size, d_model) for name, size in (extra_tokens or {}).items()})
        if positions == "learned":
            self.positions = nn.Parameter(0.02 * torch.randn(context_len, d_model))
        elif positions == "sinusoidal":
            self.register_buffer("positions", sinusoidal_positions(context_len, d_model))
        else:
            self.positions = None
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff, dropout, n_kv_heads) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model)

    def embed_tokens(self, window: torch.Tensor, extra_windows: tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
        """``window`` [N, L, D] and one window [N, L, d_i] per extra token part (in ``extra_embeddings``' order)
        -> tokens [N, L, d_model]: the sum of their embeddings."""
        x = self.embed(window)
        for embedding, extra in zip(self.extra_embeddings.values(), extra_windows, strict=True):
            x = x + embedding(extra)
        return x

    def forward(self, window: torch.Tensor, window_mask: torch.Tensor, *extra_windows: torch.Tensor) -> torch.Tensor:
        batch_shape = window.shape[:-2]
        window = window.reshape(-1, *window.shape[-2:])
        window_mask = window_mask.reshape(-1, window_mask.shape[-1])
        extra_windows = tuple(extra.reshape(-1, *extra.shape[-2:]) for extra in extra_windows)
        x = self.embed_tokens(window, extra_windows)
        rotary, span = None, None
        if self.positions is not None:
            x = x + self.positions
        else:  # window slots as positions: attention sees only their differences, as in a cached rollout
            rotary = rotary_angles(torch.arange(window.shape[-2], device=window.device), self.head_dim)
            rotary = tuple(angle.unsqueeze(0) for angle in rotary)
            span = self.context_len
        # the last block's mask, and the full one only when earlier blocks need it (one layer: the last query only)
        mask_last = attention_mask(window_mask, True, span)
        mask_all = attention_mask(window_mask, False, span) if len(self.blocks) > 1 else None
        for index, block in enumerate(self.blocks):
            last = index == len(self.blocks) - 1
            x = block(x, mask_last if last else mask_all, last_query_only=last, rotary=rotary)
        return self.final_norm(x[:, -1]).reshape(*batch_shape, -1)

    @property
    def head_dim(self) -> int:
        return self.blocks[0].attention.head_dim


class TransformerPolicyHead(nn.Module):
    """Transformer body plus a linear layer to unbounded action parameters:
    ``forward(window [*B, K, D], window_mask [*B, K], *extra_windows) -> param [*B, out_dim]``."""

    def __init__(self, body: ContextTransformer, out_dim: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.d_model, out_dim)

    def forward(self, window: torch.Tensor, window_mask: torch.Tensor, *extra_windows: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(window, window_mask, *extra_windows))


class FrameTokens(nn.Module):
    """``(observation_window [*B, K, D], pixels_window [*B, K, 3, H, W]) -> [*B, K, D + F]``: each
    observation concatenated with its encoded frame (padding frames are masked later, as padding)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, window: torch.Tensor, pixels_window: torch.Tensor) -> torch.Tensor:
        return torch.cat([window, self.encoder(pixels_window)], dim=-1)


class DeclareInputs(TensorDictModuleBase):
    """Declares ``in_keys`` as inputs of the sequence it is part of, without reading or writing anything.

    TorchRL's ``TD3Loss`` hands the critic only the keys that the actor reads or writes; an actor
    whose critic reads keys the actor does not (``observation`` for an MLP critic, ``is_init`` for a
    recurrent one, ``pixels`` for a pixel one) declares them with this module.

    >>> from tensordict import TensorDict
    >>> declare = DeclareInputs(["observation"])
    >>> declare.in_keys, declare.out_keys
    (['observation'], [])
    >>> td = TensorDict(observation=torch.zeros(2, 3), batch_size=[2])
    >>> declare(td) is td
    True
    """

    def __init__(self, in_keys: Sequence[NestedKey]):
        super().__init__()
        self.in_keys = list(dict.fromkeys(in_keys))
        self.out_keys = []

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return tensordict


def make_transformer_actor(obs_dim: int, action_spec: TensorSpec, *, context_len: int = 3, d_model: int = 256,
                           n_layers: int = 1, n_heads: int = 2, n_kv_heads: int | None = None, d_ff: int = 512,
                           dropout: float = 0.05, positions: str = "learned", stochastic: bool = False,
                           passthrough_keys: Sequence[NestedKey] = (),
                           frame_encoder: nn.Module | None = None,
                           tokens: Sequence[str] = (keys.OBSERVATION,)) -> TensorDictSequential:
    """Context-window transformer actor (Table 1 defaults: 1 layer, 2 heads, d_model 256,
    feed-forward 512, dropout 0.05, K = 3).

    Reads ``observation_window`` [*B, K, obs_dim] and ``window_mask`` [*B, K]; writes ``param``
    [*B, A] and ``action`` [*B, A] (tanh-bounded to the spec). ``stochastic=True`` gives SAC's
    tanh-normal head instead (also writes ``loc``, ``scale``, ``action_log_prob``).

    ``passthrough_keys``: keys the critic reads that the transformer does not (``observation`` for an
    MLP critic, ``is_init`` for a recurrent one, ``pixels`` for a pixel one). They are declared as the
    actor's inputs (:class:`DeclareInputs`) so that ``TD3Loss``, which hands the critic only the keys
    its actor reads or writes, passes them on; the network never reads them.

    ``frame_encoder`` (e.g. a :class:`~trl_accel.modules.encoders.PixelEncoder`, the transformer's own):
    each token is then the observation concatenated with the encoded frame of ``pixels_window``
    [*B, K, 3, H, W] (written as ``token_window``).

    ``tokens``: what a token holds, ``observation`` and optionally ``prev_action`` and ``prev_reward`` (read from
    ``prev_action_window`` [*B, K, A] and ``prev_reward_window`` [*B, K, 1]), each with its own embedding, summed.

    Dropout acts only on gradient steps (:func:`dropout_acts`): in ``train()`` mode, with gradients
    enabled and outside a deterministic exploration type. A rollout under
    ``set_exploration_type(ExplorationType.DETERMINISTIC)`` is thus deterministic even in ``train()``
    mode. A ``TD3Loss`` built by hand runs the actor under ``DETERMINISTIC``, hence without dropout,
    unless its ``deterministic_sampling_mode`` is set to ``ExplorationType.RANDOM`` (as
    :class:`~trl_accel.stages.td3.TD3Learner` does); ``SACLoss``'s actor loss samples under ``RANDOM``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from torchrl.data import Bounded
    >>> actor = make_transformer_actor(3, Bounded(-2.0, 2.0, shape=(1,)), context_len=4, d_model=8, d_ff=16,
    ...                                passthrough_keys=["observation"])
    >>> actor.in_keys
    ['observation_window', 'window_mask', 'observation']
    >>> window = torch.randn(2, 4, 3)
    >>> td = TensorDict(observation_window=window, window_mask=torch.ones(2, 4, dtype=torch.bool),
    ...                 observation=window[:, -1], batch_size=[2])
    >>> out = actor(td)
    >>> sorted(out.keys())
    ['action', 'observation', 'observation_window', 'param', 'window_mask']
    >>> out["action"].shape, bool(out["action"].abs().max() <= 2.0)
    (torch.Size([2, 1]), True)
    """
    tokens = list(tokens)
    if not tokens or tokens[0] != keys.OBSERVATION or not set(tokens[1:]) <= set(EXTRA_TOKENS) or len(set(tokens)) != len(tokens):
        raise ValueError(f"tokens must be 'observation' followed by any of {EXTRA_TOKENS}, got {tokens}.")
    action_dim = action_spec.shape[-1]
    extra_tokens = {name: action_dim if name == keys.PREV_ACTION else 1 for name in tokens[1:]}
    token_dim = obs_dim + (frame_encoder.feature_dim if frame_encoder is not None else 0)
    if positions == "rotary" and (d_model // n_heads) % 2:
        raise ValueError(f"rotary positions need an even head size, got d_model // n_heads = {d_model // n_heads}.")
    body = ContextTransformer(token_dim, context_len=context_len, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                              n_kv_heads=n_kv_heads, d_ff=d_ff, dropout=dropout, positions=positions,
                              extra_tokens=extra_tokens)
    network = TransformerPolicyHead(body, 2 * action_dim if stochastic else action_dim)
    window_key = keys.OBSERVATION_WINDOW if frame_encoder is None else keys.TOKEN_WINDOW
    parts: list[TensorDictModuleBase] = []
    if frame_encoder is not None:
        parts.append(TensorDictModule(FrameTokens(frame_encoder), in_keys=[keys.OBSERVATION_WINDOW, keys.PIXELS_WINDOW],
                                      out_keys=[keys.TOKEN_WINDOW]))
    parts.append(TensorDictModule(network, in_keys=[window_key, keys.WINDOW_MASK, *(TOKEN_WINDOWS[name] for name in extra_tokens)],
                                  out_keys=[keys.PARAM]))
    if passthrough_keys:  # last, so that the parameters' names do not depend on it
        parts.append(DeclareInputs(passthrough_keys))
    body = parts[0] if len(parts) == 1 else TensorDictSequential(*parts)
    return action_head(body, action_spec, stochastic=stochastic)


__all__ = [
    "POSITIONS",
    "ContextTransformer",
    "DeclareInputs",
    "GradientDropout",
    "TransformerPolicyHead",
    "dropout_acts",
    "make_transformer_actor",
    "rotary_angles",
    "window_length",
]
