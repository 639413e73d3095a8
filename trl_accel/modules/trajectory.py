"""Actor-critics over whole trajectories, for on-policy PPO: a transformer (KV-cache rollouts), a GRU, an MLP.

Every step is one token: the sum of an embedding of the observation, of the previous action (for a discrete
action space tied with the actor head's weights, as in a language model) and of the previous reward, the
last two zero at an episode's start (:class:`~trl_accel.envs.previous.PreviousActionReward`). A *core* turns
the tokens into features; an actor head (categorical logits, or a tanh-normal's ``loc``/``scale``) and a
value head (one hidden layer; one output, or the logits of a value histogram) read them.

Each core runs in two modes that share the parameters:

* **sequence** (learning): a ``[B, T]`` TensorDict of whole rollouts. The transformer attends causally within
  each episode of the rollout (segments start where ``is_init`` is set), at most ``context_len`` steps back,
  with rotary positions from the episode's ``step_count``; the GRU runs over time from zero at each
  ``is_init`` (TorchRL's ``GRUModule`` in recurrent mode: full back-propagation through the rollout); the MLP
  reads each token alone.
* **step** (rollouts, evaluation): a ``[N]`` TensorDict of one step per env, the memory carried in the
  TensorDict: the transformer's KV cache (``kv_cache``/``kv_mask``) or the GRU's ``recurrent_state``, created by
  the env primers :meth:`TrajectoryActorCritic.env_primers` gives and cleared where ``is_init`` is set.

With the same ``is_init`` marks, the step mode's outputs equal the sequence mode's (tested to 1e-5).

Keys: reads ``observation`` [*B, D], ``prev_action`` [*B, A], ``prev_reward`` [*B, 1], ``step_count`` [*B, 1]
and ``is_init`` [*B, 1]; writes ``tokens`` and ``features`` [*B, d], ``logits`` [*B, A] (discrete) or
``loc``/``scale`` [*B, A] (continuous), ``state_value`` [*B, 1] (and ``value_logits`` [*B, bins] with a
histogram value head), and through the probabilistic actor ``action`` [*B, A] and ``action_log_prob`` [*B].
"""
from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import (
    NormalParamExtractor,
    TensorDictModule,
    TensorDictModuleBase,
    TensorDictSequential,
)
from torch import nn
from torchrl.data import OneHot, TensorSpec
from torchrl.envs import Transform
from torchrl.modules import (
    GRUModule,
    OneHotCategorical,
    ProbabilisticActor,
    TanhNormal,
    set_recurrent_mode,
)

from trl_accel import keys
from trl_accel.modules.kv_cache import (
    KV_CACHE,
    KV_MASK,
    kv_cache_primer_of_shape,
    step_blocks,
)
from trl_accel.modules.transformer import TransformerBlock, rotary_angles

CORES = ("transformer", "gru", "mlp")
#: What a token can hold (the observation always).
TOKEN_PARTS = (keys.OBSERVATION, keys.PREV_ACTION, keys.PREV_REWARD)
TOKENS, FEATURES = "tokens", "features"
LOGITS, VALUE_LOGITS, STATE_VALUE = "logits", "value_logits", "state_value"
#: The GRU's carried state [*B, layers, H] (TorchRL's ``GRUModule`` default name).
RECURRENT_STATE = "recurrent_state"


def valid_token_parts(tokens) -> bool:
    """Whether ``tokens`` is ``observation`` followed by distinct parts of :data:`TOKEN_PARTS`."""
    tokens = list(tokens)
    return bool(tokens) and tokens[0] == keys.OBSERVATION and set(tokens) <= set(TOKEN_PARTS) and len(set(tokens)) == len(tokens)


class TokenEmbedding(nn.Module):
    """``observation`` [*B, D], ``prev_action`` [*B, A], ``prev_reward`` [*B, 1] -> tokens [*B, d]: the sum of
    the embeddings of the parts in ``parts``. ``tied_action``: the discrete actor head, whose weight [A, d]
    embeds a one-hot previous action (``prev_action @ weight``); otherwise a linear map of its own."""

    def __init__(self, obs_dim: int, action_dim: int, d_model: int, *, parts: tuple[str, ...],
                 tied_action: nn.Linear | None = None):
        super().__init__()
        self.parts = parts
        self.observation = nn.Linear(obs_dim, d_model)
        self.reward = nn.Linear(1, d_model, bias=False) if keys.PREV_REWARD in parts else None
        self.tied_action = tied_action if keys.PREV_ACTION in parts else None
        self.action = (nn.Linear(action_dim, d_model, bias=False)
                       if keys.PREV_ACTION in parts and tied_action is None else None)

    def forward(self, observation: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor) -> torch.Tensor:
        tokens = self.observation(observation.to(self.observation.weight.dtype))  # one-hot observations may be int
        if self.reward is not None:
            tokens = tokens + self.reward(prev_reward)
        if self.tied_action is not None:
            tokens = tokens + prev_action.to(tokens.dtype) @ self.tied_action.weight
        elif self.action is not None:
            tokens = tokens + self.action(prev_action.to(tokens.dtype))
        return tokens


class TransformerCore(nn.Module):
    """Pre-LN transformer blocks with rotary positions, grouped-query attention (``n_kv_heads``) and a
    sliding window of ``context_len`` steps per layer, over tokens [*, d_model]."""

    def __init__(self, d_model: int, *, context_len: int, n_layers: int, n_heads: int, n_kv_heads: int, d_ff: int):
        super().__init__()
        if (d_model // n_heads) % 2:
            raise ValueError(f"rotary positions need an even head size, got d_model // n_heads = {d_model // n_heads}.")
        self.context_len, self.n_layers = context_len, n_layers
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff, 0.0, n_kv_heads) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model)
        attention = self.blocks[0].attention
        self.head_dim = attention.head_dim
        #: ``(L, 2, K - 1, Hkv * hd)``: the per-env KV cache of a rollout.
        self.cache_shape = (n_layers, 2, context_len - 1, attention.n_kv_heads * attention.head_dim)

    def sequence(self, tokens: torch.Tensor, position: torch.Tensor, is_init: torch.Tensor) -> torch.Tensor:
        """``tokens`` [B, T, d], ``position`` [B, T] int (episode step), ``is_init`` [B, T] bool -> features [B, T, d].
        Step t attends to steps t - K + 1 .. t of its own episode (an episode starts at ``is_init`` or at t = 0)."""
        length = tokens.shape[1]
        segment = is_init.long().cumsum(1)
        steps = torch.arange(length, device=tokens.device)
        offset = steps[:, None] - steps[None, :]
        allowed = (offset >= 0) & (offset < self.context_len)
        allowed = allowed & (segment[:, :, None] == segment[:, None, :])
        rotary = rotary_angles(position, self.head_dim)
        x = tokens
        mask = allowed.unsqueeze(1)
        for block in self.blocks:
            x = block(x, mask, False, rotary)
        return self.final_norm(x)

    def step(self, tokens: torch.Tensor, position: torch.Tensor, is_init: torch.Tensor, cache: torch.Tensor,
             cache_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``tokens`` [N, d], ``position`` [N], ``is_init`` [N] bool, ``cache`` [N, *cache_shape], ``cache_mask``
        [N, K - 1] -> (features [N, d], next cache, next mask); the cache is cleared where ``is_init``."""
        cache = torch.where(is_init[:, None, None, None, None], torch.zeros_like(cache), cache)
        cache_mask = cache_mask & ~is_init[:, None]
        rotary = rotary_angles(position[:, None], self.head_dim)
        x, cache, cache_mask = step_blocks(self.blocks, tokens[:, None], cache, cache_mask, rotary)
        return self.final_norm(x[:, 0]), cache, cache_mask


class MLPCore(nn.Sequential):
    """Two hidden layers over each token alone (no memory)."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model), nn.GELU())


class ValueHead(nn.Module):
    """features [*, d] -> value [*, 1] through one hidden layer; with ``bins`` > 0 the outputs are the logits
    [*, bins] of a histogram over ``support`` and the value is their expectation."""

    def __init__(self, d_model: int, hidden: int, *, bins: int = 0, v_min: float = 0.0, v_max: float = 1.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, bins or 1))
        self.bins = bins
        if bins:
            self.register_buffer("support", torch.linspace(v_min, v_max, bins))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(features)
        if not self.bins:
            return out, out
        return (out.softmax(-1) * self.support).sum(-1, keepdim=True), out


class SequenceFeatures(TensorDictModuleBase):
    """Tokens and features of a ``[B, T]`` TensorDict (whole rollouts; see the module docstring).

    ``reuse=True`` (the critic's copy): keep ``features`` already in the TensorDict, computed on the same
    minibatch by the actor just before (``ClipPPOLoss`` runs the actor, then the critic, on one TensorDict),
    so that the core runs once per minibatch; the gradients of both losses reach it through them."""

    def __init__(self, model: TrajectoryActorCritic, *, reuse: bool = False):
        super().__init__()
        self.model, self.reuse = model, reuse
        self.in_keys = [*model.token_keys, keys.STEP_COUNT, keys.IS_INIT]
        self.out_keys = [TOKENS, FEATURES]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self.reuse and FEATURES in tensordict:
            return tensordict
        model = self.model
        tokens = model.embed(tensordict)
        if model.core_kind == "transformer":
            features = model.core.sequence(tokens, tensordict.get(keys.STEP_COUNT)[..., 0],
                                           tensordict.get(keys.IS_INIT)[..., 0])
        elif model.core_kind == "gru":
            with set_recurrent_mode(True):
                features = model.core(tensordict.set(TOKENS, tokens)).get(FEATURES)
            tensordict.exclude(("next", RECURRENT_STATE), inplace=True)
        else:
            features = model.core(tokens)
        return tensordict.set(TOKENS, tokens).set(FEATURES, features)


class StepFeatures(TensorDictModuleBase):
    """Tokens and features of one step per env (``[N]``), the memory read from the TensorDict and its next value
    written to ``("next", ...)`` (moved to the next step by ``step_mdp``)."""

    def __init__(self, model: TrajectoryActorCritic):
        super().__init__()
        self.model = model
        memory = list(model.memory_keys)
        self.in_keys = [*model.token_keys, keys.STEP_COUNT, keys.IS_INIT, *memory]
        self.out_keys = [TOKENS, FEATURES, *(("next", key) for key in memory)]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        model = self.model
        tokens = model.embed(tensordict)
        if model.core_kind == "transformer":
            features, cache, cache_mask = model.core.step(
                tokens, tensordict.get(keys.STEP_COUNT)[..., 0], tensordict.get(keys.IS_INIT)[..., 0],
                tensordict.get(KV_CACHE), tensordict.get(KV_MASK))
            tensordict.set(("next", KV_CACHE), cache).set(("next", KV_MASK), cache_mask)
        elif model.core_kind == "gru":
            features = model.core(tensordict.set(TOKENS, tokens)).get(FEATURES)
        else:
            features = model.core(tokens)
        return tensordict.set(TOKENS, tokens).set(FEATURES, features)


class TrajectoryActorCritic(nn.Module):
    """Token embedding, core (``transformer``, ``gru`` or ``mlp``), actor head and value head; see the module
    docstring. Build it with :func:`make_trajectory_actor_critic`; take its TensorDict modules from
    :meth:`actor`, :meth:`critic` (sequence mode, for ``ClipPPOLoss``) and :meth:`rollout_policy` (step mode)."""

    def __init__(self, obs_dim: int, action_spec: TensorSpec, *, core: str, d_model: int, tokens: tuple[str, ...],
                 context_len: int, n_layers: int, n_heads: int, n_kv_heads: int, d_ff: int, value_hidden: int,
                 value_bins: int = 0, value_min: float = 0.0, value_max: float = 1.0):
        super().__init__()
        if core not in CORES:
            raise ValueError(f"core must be one of {CORES}, got '{core}'.")
        if not valid_token_parts(tokens):
            raise ValueError(f"tokens must be 'observation' followed by any of {TOKEN_PARTS[1:]}, got {list(tokens)}.")
        self.action_spec = action_spec
        self.discrete = isinstance(action_spec, OneHot)
        action_dim = action_spec.shape[-1]
        self.core_kind, self.token_parts = core, tuple(tokens)
        self.actor_head = nn.Linear(d_model, action_dim if self.discrete else 2 * action_dim)
        self.embedding = TokenEmbedding(obs_dim, action_dim, d_model, parts=self.token_parts,
                                        tied_action=self.actor_head if self.discrete else None)
        if core == "transformer":
            self.core = TransformerCore(d_model, context_len=context_len, n_layers=n_layers, n_heads=n_heads,
                                        n_kv_heads=n_kv_heads, d_ff=d_ff)
        elif core == "gru":
            self.core = GRUModule(input_size=d_model, hidden_size=d_model, num_layers=n_layers, in_key=TOKENS,
                                  out_key=FEATURES)
        else:
            self.core = MLPCore(d_model, d_ff)
        self.value_head = ValueHead(d_model, value_hidden, bins=value_bins, v_min=value_min, v_max=value_max)

    # ---- keys and env state
    @property
    def token_keys(self) -> list[str]:
        return list(self.token_parts)

    @property
    def memory_keys(self) -> tuple[str, ...]:
        return {"transformer": (KV_CACHE, KV_MASK), "gru": (RECURRENT_STATE,), "mlp": ()}[self.core_kind]

    def env_primers(self) -> list[Transform]:
        """The env transforms that create the step mode's memory (zero) at each reset: none for the MLP."""
        if self.core_kind == "gru":
            return [self.core.make_tensordict_primer()]
        if self.core_kind == "transformer":
            return [kv_cache_primer_of_shape(self.core.cache_shape)]
        return []

    def embed(self, tensordict: TensorDictBase) -> torch.Tensor:
        observation = tensordict.get(keys.OBSERVATION)
        prev_action = tensordict.get(keys.PREV_ACTION) if keys.PREV_ACTION in self.token_parts else None
        prev_reward = tensordict.get(keys.PREV_REWARD) if keys.PREV_REWARD in self.token_parts else None
        return self.embedding(observation, prev_action, prev_reward)

    # ---- TensorDict modules
    def _heads(self) -> list[TensorDictModuleBase]:
        if self.discrete:
            return [TensorDictModule(self.actor_head, in_keys=[FEATURES], out_keys=[LOGITS])]
        return [TensorDictModule(nn.Sequential(self.actor_head, NormalParamExtractor()), in_keys=[FEATURES],
                                 out_keys=[keys.LOC, keys.SCALE])]

    def _probabilistic(self, module: TensorDictModuleBase) -> ProbabilisticActor:
        if self.discrete:
            return ProbabilisticActor(module, in_keys=[LOGITS], out_keys=[keys.ACTION], spec=self.action_spec,
                                      distribution_class=OneHotCategorical, return_log_prob=True)
        spec = self.action_spec
        return ProbabilisticActor(module, in_keys=[keys.LOC, keys.SCALE], out_keys=[keys.ACTION], spec=spec,
                                  distribution_class=TanhNormal,
                                  distribution_kwargs={"low": spec.space.low, "high": spec.space.high},
                                  return_log_prob=True)

    def _value(self) -> TensorDictModule:
        return TensorDictModule(self.value_head, in_keys=[FEATURES], out_keys=[STATE_VALUE, VALUE_LOGITS])

    def distribution_params(self) -> TensorDictSequential:
        """Sequence mode features and the action distribution's parameters (``logits``, or ``loc`` and ``scale``)."""
        return TensorDictSequential(SequenceFeatures(self), *self._heads())

    def actor(self) -> ProbabilisticActor:
        """Sequence mode actor over ``[B, T]``: features, then the action distribution (for ``ClipPPOLoss``)."""
        return self._probabilistic(self.distribution_params())

    def critic(self, *, reuse_features: bool = True) -> TensorDictSequential:
        """Sequence mode critic over ``[B, T]`` writing ``state_value``, reusing the ``features`` the actor just wrote
        when ``reuse_features`` (this model's own actor); ``False`` for a critic beside another model's actor."""
        return TensorDictSequential(SequenceFeatures(self, reuse=reuse_features), self._value())

    def step_value(self) -> TensorDictSequential:
        """Step mode value over ``[N]``: ``state_value`` (and its memory's next value)."""
        return TensorDictSequential(StepFeatures(self), self._value())

    def rollout_policy(self, *, value_from: TrajectoryActorCritic | None = None) -> ProbabilisticActor:
        """Step mode policy over ``[N]``: samples ``action`` (with ``action_log_prob``) and writes ``state_value``
        for the advantages, the memory carried in the TensorDict. ``value_from``: another model (an accelerator
        whose value network carries over) computes ``state_value`` instead of this one's value head."""
        if value_from is not None:
            return self._probabilistic(TensorDictSequential(value_from.step_value(), StepFeatures(self), *self._heads()))
        return self._probabilistic(TensorDictSequential(StepFeatures(self), *self._heads(), self._value()))


def make_trajectory_actor_critic(obs_dim: int, action_spec: TensorSpec, *, core: str, d_model: int = 64,
                                 tokens: tuple[str, ...] = TOKEN_PARTS, context_len: int = 128, n_layers: int = 1,
                                 n_heads: int = 4, n_kv_heads: int = 1, d_ff: int = 256, value_hidden: int = 64,
                                 value_bins: int = 0, value_min: float = 0.0,
                                 value_max: float = 1.0) -> TrajectoryActorCritic:
    """A :class:`TrajectoryActorCritic` from config values (``policy.*`` and ``value.*`` of ``ppo_transformer``).

    >>> from torchrl.data import OneHot
    >>> model = make_trajectory_actor_critic(100, OneHot(4), core="transformer", d_model=16, context_len=8, d_ff=32)
    >>> [type(t).__name__ for t in model.env_primers()], model.core.cache_shape
    (['TensorDictPrimer'], (1, 2, 7, 4))
    """
    return TrajectoryActorCritic(obs_dim, action_spec, core=core, d_model=d_model, tokens=tuple(tokens),
                                 context_len=context_len, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads,
                                 d_ff=d_ff, value_hidden=value_hidden, value_bins=value_bins, value_min=value_min,
                                 value_max=value_max)


__all__ = ["CORES", "FEATURES", "LOGITS", "STATE_VALUE", "TOKEN_PARTS", "VALUE_LOGITS", "SequenceFeatures",
           "StepFeatures", "TokenEmbedding", "TrajectoryActorCritic", "TransformerCore", "ValueHead",
           "make_trajectory_actor_critic", "valid_token_parts"]
