"""KV-cache rollouts of the context transformer: each new step attends to the cached keys and values of its
episode's previous steps, so a step costs O(K) instead of a K-step forward.

The cache is per-env state that travels in the TensorDict like an RNN's (TorchRL's recurrent-module pattern):

* ``kv_cache`` [*B, L, 2, K - 1, Hkv * hd]: for each of the L layers the keys and values of the last K - 1 steps
  (oldest first), keys already rotated at their own episode step;
* ``kv_mask`` [*B, K - 1] bool: which cached slots hold a step of the current episode.

A :func:`kv_cache_primer` (TorchRL's ``TensorDictPrimer``) creates them, zero, at every reset; the cached actor
also clears them where ``is_init`` is set, so a partial reset of a batched env never leaks the previous episode.
The actor writes the updated cache to ``("next", "kv_cache")``/``("next", "kv_mask")``, which the collector moves
to the next step; it is never written to replay (the learners read windows built from replay).

Positions must be rotary (RoPE), taken from the episode's step counter (``step_count``): a cached key keeps its
value as the window slides, and attention sees only the differences of positions, so the cached actions equal
the full-window forward of :class:`~trl_accel.modules.transformer.ContextTransformer` (tested to 1e-5 across
resets, for episodes shorter and longer than K, one layer or several).
"""
from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torch import nn
from torchrl.data import Binary, Composite, Unbounded
from torchrl.envs import TensorDictPrimer

from trl_accel import keys
from trl_accel.modules.heads import is_stochastic, stochastic_action_head
from trl_accel.modules.transformer import (
    FrameTokens,
    TransformerPolicyHead,
    rotary_angles,
)

KV_CACHE = "kv_cache"   #: [*B, L, 2, K - 1, Hkv * hd] cached keys and values of the episode's last K - 1 steps
KV_MASK = "kv_mask"     #: [*B, K - 1] bool, True where the cache holds a step of the current episode


def kv_cache_shape(network: nn.Module) -> tuple[int, ...]:
    """``(L, 2, K - 1, Hkv * hd)`` for a transformer policy head, or an actor holding one."""
    if not isinstance(network, TransformerPolicyHead):
        network = transformer_network(network)[0]
    body = network.body
    attention = body.blocks[0].attention
    return (body.n_layers, 2, body.context_len - 1, attention.n_kv_heads * attention.head_dim)


def kv_cache_primer(network: nn.Module) -> TensorDictPrimer:
    """A ``TensorDictPrimer`` that writes a zero ``kv_cache`` and an all-False ``kv_mask`` at every reset (for
    a transformer policy head, or an actor holding one)."""
    return kv_cache_primer_of_shape(kv_cache_shape(network))


def kv_cache_primer_of_shape(shape: tuple[int, ...]) -> TensorDictPrimer:
    """:func:`kv_cache_primer` for a cache of ``shape`` ``(L, 2, C, Hkv * hd)``."""
    return TensorDictPrimer(Composite({KV_CACHE: Unbounded(shape=shape), KV_MASK: Binary(n=shape[2], dtype=torch.bool)}),
                            expand_specs=True)


def step_blocks(blocks: nn.ModuleList, x: torch.Tensor, cache: torch.Tensor, mask: torch.Tensor,
                rotary: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One new token per batch entry through the transformer blocks against their KV cache.

    ``x`` [N, 1, d] (the embedded token), ``cache`` [N, L, 2, C, Hkv * hd] (oldest step first), ``mask`` [N, C]
    bool (cleared already where an episode starts), ``rotary`` the new step's ``(cos, sin)`` [N, 1, hd // 2]
    -> (the last block's output [N, 1, d], the cache slid by one step with the new keys and values, its mask)."""
    new_entries = []
    for layer, block in enumerate(blocks):
        attention = block.attention
        cached_key, cached_value = (cache[:, layer, index].unflatten(-1, (attention.n_kv_heads, attention.head_dim))
                                    .transpose(1, 2) for index in (0, 1))
        x, key, value = block.step(x, cached_key, cached_value, mask, rotary)
        new_entries.append(torch.stack([key, value], dim=1).transpose(2, 3).flatten(-2))  # [N, 2, 1, Hkv*hd]
    next_cache = torch.cat([cache[:, :, :, 1:], torch.stack(new_entries, dim=1)], dim=3)
    next_mask = torch.cat([mask[:, 1:], torch.ones_like(mask[:, :1])], dim=1)
    return x, next_cache, next_mask


class CachedTransformerBody(TensorDictModuleBase):
    """One step of a :class:`~trl_accel.modules.transformer.TransformerPolicyHead` against a KV cache.

    Reads ``observation`` [*B, D] (and ``pixels`` [*B, 3, H, W] with a frame encoder; ``prev_action`` [*B, A] and
    ``prev_reward`` [*B, 1] when the tokens hold them), ``step_count`` [*B, 1]
    (the step's rotary position), ``is_init`` [*B, 1], ``kv_cache`` and ``kv_mask``; writes ``param``
    [*B, out] and ``("next", "kv_cache")``, ``("next", "kv_mask")``. Shares the network (and so its parameters)
    with the window actor that the learner trains."""

    def __init__(self, network: TransformerPolicyHead, frame_tokens: FrameTokens | None = None):
        super().__init__()
        if network.body.position_kind != "rotary":
            raise ValueError("a KV-cache rollout needs rotary positions (transformer.positions=rotary): positions "
                             f"by window slot change as the window slides, got '{network.body.position_kind}'.")
        if network.body.context_len < 2:
            raise ValueError(f"a KV-cache rollout needs context_len >= 2, got {network.body.context_len}.")
        self.network, self.frame_tokens = network, frame_tokens
        self.cache_shape = kv_cache_shape(network)
        self.extra_tokens = list(network.body.extra_embeddings.keys())
        self.in_keys = [keys.OBSERVATION, *([keys.PIXELS] if frame_tokens is not None else []), *self.extra_tokens,
                        keys.STEP_COUNT, keys.IS_INIT, KV_CACHE, KV_MASK]
        self.out_keys = [keys.PARAM, ("next", KV_CACHE), ("next", KV_MASK)]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        body = self.network.body
        observation = tensordict.get(keys.OBSERVATION)
        batch_shape = observation.shape[:-1]
        tokens = observation.reshape(-1, 1, observation.shape[-1])
        if self.frame_tokens is not None:
            pixels = tensordict.get(keys.PIXELS)
            tokens = self.frame_tokens(tokens, pixels.reshape(-1, 1, *pixels.shape[-3:]))
        cache = tensordict.get(KV_CACHE).reshape(-1, *self.cache_shape)
        mask = tensordict.get(KV_MASK).reshape(-1, cache.shape[-2])
        fresh = tensordict.get(keys.IS_INIT).reshape(-1)
        cache = torch.where(fresh[:, None, None, None, None], torch.zeros_like(cache), cache)
        mask = mask & ~fresh[:, None]
        position = tensordict.get(keys.STEP_COUNT).reshape(-1, 1)
        rotary = rotary_angles(position, body.head_dim)
        extras = tuple(tensordict.get(name).reshape(-1, 1, body.extra_embeddings[name].in_features)
                       for name in self.extra_tokens)
        x = body.embed_tokens(tokens, extras)
        x, next_cache, next_mask = step_blocks(body.blocks, x, cache, mask, rotary)
        param = self.network.head(body.final_norm(x[:, -1]))
        tensordict.set(keys.PARAM, param.reshape(*batch_shape, -1))
        tensordict.set(("next", KV_CACHE), next_cache.reshape(*batch_shape, *next_cache.shape[1:]))
        tensordict.set(("next", KV_MASK), next_mask.reshape(*batch_shape, -1))
        return tensordict


def transformer_network(actor: nn.Module) -> tuple[TransformerPolicyHead, FrameTokens | None]:
    """The :class:`TransformerPolicyHead` (and frame tokens, for pixels) inside an actor built by
    :func:`~trl_accel.modules.transformer.make_transformer_actor`."""
    networks = [module for module in actor.modules() if isinstance(module, TransformerPolicyHead)]
    frames = [module for module in actor.modules() if isinstance(module, FrameTokens)]
    if len(networks) != 1:
        raise ValueError("expected an actor built by make_transformer_actor (one TransformerPolicyHead).")
    return networks[0], (frames[0] if frames else None)


def cached_transformer_actor(actor: TensorDictModuleBase) -> TensorDictModuleBase:
    """The KV-cache rollout twin of a window actor built by
    :func:`~trl_accel.modules.transformer.make_transformer_actor` with rotary positions: the same network and
    action head (TD3's bounded or SAC's tanh-normal), reading the current step and the cache instead of a
    window. Use it in collection and evaluation with :func:`kv_cache_primer` on the env; train the window actor.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from torchrl.data import Bounded
    >>> from trl_accel.modules.transformer import make_transformer_actor
    >>> actor = make_transformer_actor(3, Bounded(-1.0, 1.0, shape=(1,)), context_len=4, d_model=8, d_ff=16,
    ...                                positions="rotary")
    >>> cached = cached_transformer_actor(actor)
    >>> cached.in_keys
    ['observation', 'step_count', 'is_init', 'kv_cache', 'kv_mask']
    >>> primer = kv_cache_primer(actor)
    >>> td = TensorDict(observation=torch.randn(2, 3), step_count=torch.zeros(2, 1, dtype=torch.long),
    ...                 is_init=torch.ones(2, 1, dtype=torch.bool), batch_size=[2])
    >>> td = td.update(primer.primers.zero().expand(2))
    >>> out = cached(td)
    >>> out["action"].shape, out["next", "kv_cache"].shape, out["next", "kv_mask"].tolist()
    (torch.Size([2, 1]), torch.Size([2, 1, 2, 3, 8]), [[False, False, True], [False, False, True]])
    """
    network, frame_tokens = transformer_network(actor)
    body = CachedTransformerBody(network, frame_tokens)
    if is_stochastic(actor):
        return stochastic_action_head(body, actor.spec[keys.ACTION])
    return TensorDictSequential(body, actor[-1])  # the bounded head (no parameters)


__all__ = ["KV_CACHE", "KV_MASK", "CachedTransformerBody", "cached_transformer_actor", "kv_cache_primer",
           "kv_cache_primer_of_shape", "kv_cache_shape", "step_blocks", "transformer_network"]
