"""Recurrent accelerator for partially observed tasks: actor and twin Q critics on TorchRL's ``LSTMModule``
or ``GRUModule``, as the recurrent off-policy agents that learn POMDPs build them (Ni et al. 2022).

- The recurrent input of each step is chosen among the observation, the previous (executed) action and
  the previous reward (:class:`~trl_accel.envs.PreviousActionReward` writes the latter two, zeros at an
  episode's start), each through its own small embedding (Linear + ReLU), concatenated.
- The heads read the memory together with the current observation (and, for a critic, the action).
- Actor and critics have separate recurrent networks; the twin critics' Q heads share one recurrent trunk
  (``shared_trunk=True``, one network writing both values) or each critic has its own.
- The actor's recurrent state travels in the TensorDict during collection (created at reset by
  :func:`recurrent_state_primer`, zeroed on ``is_init`` by the module); with ``accelerator.start_state=stored``
  it is stored in replay with each step and a sampled sequence starts from it, with ``zero`` (the default) it
  is not stored and every sequence starts from zero. The critics always
  start a sequence from zero; burn-in steps (masked out of the loss) give them history. The losses are
  :class:`~trl_accel.objectives.SequenceTD3Loss` and :class:`~trl_accel.objectives.SequenceSACLoss`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data import TensorSpec
from torchrl.envs import Transform
from torchrl.modules import MLP, GRUModule, LSTMModule, ValueOperator

from trl_accel import keys
from trl_accel.modules.heads import action_head

CELLS = ("lstm", "gru")
#: The recurrent inputs a config may choose, and their default embedding sizes.
RECURRENT_INPUTS = {keys.OBSERVATION: 32, keys.PREV_ACTION: 8, keys.PREV_REWARD: 8}


def states_at_last_step(state: torch.Tensor, steps: int) -> torch.Tensor:
    """``state`` [B, L, H] placed at the last of ``steps`` steps, zeros before: [B, steps, L, H] (what TorchRL's
    recurrent modules write as the next state of a sequence)."""
    placed = state.new_zeros(state.shape[0], steps, *state.shape[1:])
    placed[:, -1] = state
    return placed


class LSTMCore(LSTMModule):
    """TorchRL's ``LSTMModule``; on a sequence from one state (recurrent mode, no split, no scan), the next state
    is written with one allocation in place of a stack of one zero tensor per step (the same values)."""

    def _lstm(self, input, batch, steps, device, dtype, hidden0_in=None, hidden1_in=None, splits=None,
              is_init=None, backend="pad"):
        if not (self.recurrent_mode and steps > 1 and splits is None and is_init is None
                and type(self.lstm) is nn.LSTM and hidden0_in is None and hidden1_in is None):
            return super()._lstm(input, batch, steps, device, dtype, hidden0_in, hidden1_in, splits, is_init, backend)
        memory, (h, c) = self.lstm(input)  # from the zero state, as TorchRL's zeros
        return memory, states_at_last_step(h.transpose(0, 1), steps), states_at_last_step(c.transpose(0, 1), steps)


class GRUCore(GRUModule):
    """TorchRL's ``GRUModule``, with the next state of a sequence written as :class:`LSTMCore` writes it."""

    def _gru(self, input, batch, steps, device, dtype, hidden_in=None, splits=None, is_init=None, backend="pad"):
        if not (self.recurrent_mode and steps > 1 and splits is None and is_init is None
                and type(self.gru) is nn.GRU and hidden_in is None):
            return super()._gru(input, batch, steps, device, dtype, hidden_in, splits, is_init, backend)
        memory, h = self.gru(input)  # from the zero state, as TorchRL's zeros
        return memory, states_at_last_step(h.transpose(0, 1), steps)


class InputEmbedding(nn.Module):
    """Each input through its own ``Linear + ReLU`` embedding, concatenated: ``(*inputs) -> [*B, sum(sizes)]``."""

    def __init__(self, input_dims: Sequence[int], embed_dims: Sequence[int]):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Sequential(nn.Linear(d, e), nn.ReLU()) for d, e in zip(input_dims, embed_dims))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat([embed(x) for embed, x in zip(self.embeddings, inputs)], dim=-1)


def make_recurrent_trunk(input_dims: Mapping[str, int], *, cell: str = "lstm", hidden_size: int = 128,
                         embedding: Mapping[str, int] | None = None, prefix: str = "actor") -> TensorDictSequential:
    """Embeddings of ``input_dims``' keys -> ``{prefix}_input`` -> LSTM/GRU -> ``{prefix}_memory`` [*B, H].
    The recurrent weights start orthogonal and the biases zero.

    Reads the inputs, ``is_init`` and the state ``{prefix}_h`` (and ``{prefix}_c`` for an LSTM) [*B, 1, H];
    writes ``{prefix}_memory`` and the next state as ``("next", "{prefix}_h")`` (``_c``).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> trunk = make_recurrent_trunk({"observation": 3, "prev_reward": 1}, cell="gru", hidden_size=4)
    >>> td = TensorDict(observation=torch.randn(2, 3), prev_reward=torch.zeros(2, 1),
    ...                 is_init=torch.ones(2, 1, dtype=torch.bool), actor_h=torch.zeros(2, 1, 4), batch_size=[2])
    >>> trunk(td)["actor_memory"].shape
    torch.Size([2, 4])
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got '{cell}'.")
    sizes = {**RECURRENT_INPUTS, **(embedding or {})}
    names = list(input_dims)
    embed = TensorDictModule(InputEmbedding([input_dims[n] for n in names], [sizes[n] for n in names]),
                             in_keys=names, out_keys=[f"{prefix}_input"])
    input_size = sum(sizes[n] for n in names)
    memory, h = f"{prefix}_memory", f"{prefix}_h"
    if cell == "lstm":
        c = f"{prefix}_c"
        core = LSTMCore(input_size=input_size, hidden_size=hidden_size, in_keys=[f"{prefix}_input", h, c],
                        out_keys=[memory, ("next", h), ("next", c)])
    else:
        core = GRUCore(input_size=input_size, hidden_size=hidden_size, in_keys=[f"{prefix}_input", h],
                       out_keys=[memory, ("next", h)])
    for name, param in core.named_parameters():  # as the recurrent agents that learn POMDPs: orthogonal, zero bias
        torch.nn.init.zeros_(param) if "bias" in name else torch.nn.init.orthogonal_(param)
    return TensorDictSequential(embed, core)


def input_dims(obs_dim: int, action_dim: int, inputs: Sequence[str]) -> dict[str, int]:
    dims = {keys.OBSERVATION: obs_dim, keys.PREV_ACTION: action_dim, keys.PREV_REWARD: 1}
    unknown = [name for name in inputs if name not in dims]
    if unknown or not inputs:
        raise ValueError(f"recurrent inputs must be a non-empty list of {tuple(dims)}, got {list(inputs)}.")
    return {name: dims[name] for name in inputs}


def make_recurrent_actor(obs_dim: int, action_spec: TensorSpec, *, cell: str = "lstm", hidden_size: int = 128,
                         hidden_sizes: Sequence[int] = (128, 128),
                         inputs: Sequence[str] = (keys.OBSERVATION, keys.PREV_ACTION, keys.PREV_REWARD),
                         embedding: Mapping[str, int] | None = None, stochastic: bool = False) -> TensorDictSequential:
    """Recurrent actor: embedded inputs -> LSTM/GRU -> MLP on (memory, observation) -> action.

    Reads ``inputs`` (``observation`` [*B, D], ``prev_action`` [*B, A], ``prev_reward`` [*B, 1]), ``observation``,
    ``is_init`` [*B, 1] and ``actor_h`` (``actor_c``) [*B, 1, H]; writes ``actor_memory``, the next state,
    ``param`` and ``action`` (tanh-bounded to the spec; ``stochastic=True``: tanh-normal, for SAC).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from torchrl.data import Bounded
    >>> actor = make_recurrent_actor(3, Bounded(-1.0, 1.0, shape=(1,)), hidden_size=4, hidden_sizes=(8,))
    >>> td = TensorDict(observation=torch.randn(2, 3), prev_action=torch.zeros(2, 1), prev_reward=torch.zeros(2, 1),
    ...                 is_init=torch.ones(2, 1, dtype=torch.bool), actor_h=torch.zeros(2, 1, 4),
    ...                 actor_c=torch.zeros(2, 1, 4), batch_size=[2])
    >>> out = actor(td)
    >>> out["action"].shape, out["actor_memory"].shape, out["next", "actor_c"].shape
    (torch.Size([2, 1]), torch.Size([2, 4]), torch.Size([2, 1, 4]))
    """
    action_dim = action_spec.shape[-1]
    trunk = make_recurrent_trunk(input_dims(obs_dim, action_dim, inputs), cell=cell, hidden_size=hidden_size,
                                 embedding=embedding, prefix="actor")
    head = MLP(in_features=hidden_size + obs_dim, out_features=2 * action_dim if stochastic else action_dim,
               num_cells=list(hidden_sizes), activation_class=nn.ReLU)  # torchrl's MLP concatenates its inputs
    body = TensorDictSequential(trunk, TensorDictModule(head, in_keys=[keys.ACTOR_MEMORY, keys.OBSERVATION],
                                                        out_keys=[keys.PARAM]))
    return action_head(body, action_spec, stochastic=stochastic)


class TwinHeads(nn.Module):
    """Two independent MLP heads on the same inputs: ``(*inputs) -> [*B, 2]`` (Q1, Q2)."""

    def __init__(self, in_features: int, hidden_sizes: Sequence[int]):
        super().__init__()
        self.heads = nn.ModuleList(MLP(in_features=in_features, out_features=1, num_cells=list(hidden_sizes),
                                       activation_class=nn.ReLU) for _ in range(2))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(*inputs) for head in self.heads], dim=-1)


def make_recurrent_q_critic(obs_dim: int, action_dim: int, *, cell: str = "lstm", hidden_size: int = 128,
                            hidden_sizes: Sequence[int] = (128, 128),
                            inputs: Sequence[str] = (keys.OBSERVATION, keys.PREV_ACTION, keys.PREV_REWARD),
                            embedding: Mapping[str, int] | None = None, twin_heads: bool = False) -> TensorDictSequential:
    """One recurrent Q network: embedded inputs -> LSTM/GRU (from a zero state at each sequence's start)
    -> MLP on (memory, observation, action) -> ``state_action_value`` [*B, T, 1]; ``twin_heads=True``: two
    MLP heads on the one recurrent trunk -> ``state_action_value`` [*B, T, 2] (Q1, Q2).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from torchrl.modules import set_recurrent_mode
    >>> critic = make_recurrent_q_critic(3, 1, cell="gru", hidden_size=4, hidden_sizes=(8,), inputs=("observation",))
    >>> is_init = torch.zeros(2, 5, 1, dtype=torch.bool)
    >>> is_init[:, 0] = True
    >>> sequences = TensorDict(observation=torch.randn(2, 5, 3), action=torch.rand(2, 5, 1), is_init=is_init,
    ...                        batch_size=[2, 5])
    >>> with set_recurrent_mode(True):
    ...     out = critic(sequences)
    >>> out["state_action_value"].shape
    torch.Size([2, 5, 1])
    """
    trunk = make_recurrent_trunk(input_dims(obs_dim, action_dim, inputs), cell=cell, hidden_size=hidden_size,
                                 embedding=embedding, prefix="critic")
    in_features = hidden_size + obs_dim + action_dim
    head = (TwinHeads(in_features, hidden_sizes) if twin_heads else
            MLP(in_features=in_features, out_features=1, num_cells=list(hidden_sizes), activation_class=nn.ReLU))
    return TensorDictSequential(trunk, ValueOperator(head, in_keys=[keys.CRITIC_MEMORY, keys.OBSERVATION, keys.ACTION],
                                                     out_keys=[keys.STATE_ACTION_VALUE]))


def make_twin_recurrent_q_critics(obs_dim: int, action_dim: int, *, shared_trunk: bool = False,
                                  **kwargs) -> list[TensorDictSequential]:
    """The twin Q functions: two independently initialised recurrent Q networks, each with its own recurrent
    trunk, or (``shared_trunk=True``) one network whose two heads share a recurrent trunk and write
    ``state_action_value`` [*B, T, 2] (``kwargs``: those of :func:`make_recurrent_q_critic`).

    >>> q1, q2 = make_twin_recurrent_q_critics(3, 1, cell="gru", hidden_size=4, hidden_sizes=(8,))
    >>> q1 is not q2, q1.in_keys == q2.in_keys
    (True, True)
    >>> len(make_twin_recurrent_q_critics(3, 1, cell="gru", hidden_size=4, hidden_sizes=(8,), shared_trunk=True))
    1
    """
    if shared_trunk:
        return [make_recurrent_q_critic(obs_dim, action_dim, **kwargs, twin_heads=True)]
    return [make_recurrent_q_critic(obs_dim, action_dim, **kwargs) for _ in range(2)]


def make_lstm_actor(obs_dim: int, action_spec: TensorSpec, **kwargs) -> TensorDictSequential:
    """:func:`make_recurrent_actor` with an LSTM.

    >>> from torchrl.data import Bounded
    >>> actor = make_lstm_actor(3, Bounded(-1.0, 1.0, shape=(1,)), hidden_size=4, hidden_sizes=(8,))
    >>> sorted(key for key in actor.in_keys if isinstance(key, str))
    ['actor_c', 'actor_h', 'is_init', 'observation', 'prev_action', 'prev_reward']
    """
    return make_recurrent_actor(obs_dim, action_spec, cell="lstm", **kwargs)


def make_twin_lstm_q_critics(obs_dim: int, action_dim: int, **kwargs) -> list[TensorDictSequential]:
    """:func:`make_twin_recurrent_q_critics` with LSTMs.

    >>> q1, q2 = make_twin_lstm_q_critics(3, 1, hidden_size=4, hidden_sizes=(8,), inputs=("observation",))
    >>> sorted(key for key in q1.in_keys if isinstance(key, str))
    ['action', 'critic_c', 'critic_h', 'is_init', 'observation']
    """
    return make_twin_recurrent_q_critics(obs_dim, action_dim, cell="lstm", **kwargs)


def recurrent_core(module: nn.Module) -> LSTMModule | GRUModule:
    return next(m for m in module.modules() if isinstance(m, (LSTMModule, GRUModule)))


def recurrent_state_primer(actor: nn.Module) -> Transform:
    """The env transform that creates the actor's zero recurrent state at reset (append it to the env).

    >>> from torchrl.data import Bounded
    >>> primer = recurrent_state_primer(make_recurrent_actor(3, Bounded(-1.0, 1.0, shape=(1,)), cell="gru",
    ...                                                      hidden_size=4, hidden_sizes=(8,)))
    >>> sorted(primer.primers.keys())
    ['actor_h']
    """
    return recurrent_core(actor).make_tensordict_primer()


def recurrent_state_keys(actor: nn.Module) -> list[NestedKey]:
    """The stored recurrent state keys of ``actor`` (``actor_h``, and ``actor_c`` for an LSTM).

    >>> from torchrl.data import Bounded
    >>> recurrent_state_keys(make_lstm_actor(3, Bounded(-1.0, 1.0, shape=(1,)), hidden_size=4, hidden_sizes=(8,)))
    ['actor_h', 'actor_c']
    """
    return [key for key in recurrent_core(actor).in_keys if isinstance(key, str) and key.startswith("actor_")
            and key.endswith(("_h", "_c"))]


def is_recurrent(module: nn.Module) -> bool:
    """Whether ``module`` holds an ``LSTMModule`` or ``GRUModule`` (its losses then need sequences and
    ``deactivate_vmap``)."""
    return any(isinstance(m, (LSTMModule, GRUModule)) for m in module.modules())


__all__ = ["CELLS", "GRUCore", "InputEmbedding", "LSTMCore", "TwinHeads", "RECURRENT_INPUTS", "is_recurrent", "make_lstm_actor", "make_recurrent_actor",
           "make_recurrent_q_critic", "make_recurrent_trunk", "make_twin_lstm_q_critics", "make_twin_recurrent_q_critics",
           "recurrent_state_keys", "recurrent_state_primer", "states_at_last_step"]
