"""LSTM accelerator for partially observable tasks: actor and twin Q critics on TorchRL's ``LSTMModule``.

The actor's recurrent state is carried in the TensorDict during collection (``actor_h``/``actor_c``,
zeroed on ``is_init`` by the module, created at reset by :func:`recurrent_state_primer`) and stored
in the replay buffer with each step, so a sampled sequence starts from the state the actor had
there. The critics are not run during collection: each sampled sequence is processed from a zero
state (burn-in steps, masked out of the loss by the replay transform
:class:`trl_accel.stages.sequences.SequenceView`, give it history before the loss counts). Losses
enter ``set_recurrent_mode(True)`` themselves.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data import TensorSpec
from torchrl.envs import Transform
from torchrl.modules import MLP, LSTMModule, ValueOperator

from trl_accel import keys
from trl_accel.modules.heads import action_head


def make_lstm(obs_dim: int, *, hidden_size: int, memory_key: NestedKey = keys.ACTOR_MEMORY,
              state_keys: tuple[NestedKey, NestedKey] = (keys.ACTOR_H, keys.ACTOR_C)) -> LSTMModule:
    """``observation`` [*B, D] (+ the recurrent state ``state_keys`` [*B, 1, H] and ``is_init``) ->
    ``memory_key`` [*B, H], and the next state as ``("next", state_key)``.

    Losses with recurrent critics must be built with ``deactivate_vmap=True`` (the module splits
    sequences at ``is_init``, which ``torch.vmap`` cannot trace).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> lstm = make_lstm(3, hidden_size=4)
    >>> td = TensorDict(observation=torch.randn(2, 3), is_init=torch.ones(2, 1, dtype=torch.bool),
    ...                 actor_h=torch.zeros(2, 1, 4), actor_c=torch.zeros(2, 1, 4), batch_size=[2])
    >>> out = lstm(td)
    >>> out["actor_memory"].shape, out["next", "actor_h"].shape
    (torch.Size([2, 4]), torch.Size([2, 1, 4]))
    """
    h_key, c_key = state_keys
    return LSTMModule(input_size=obs_dim, hidden_size=hidden_size, in_keys=[keys.OBSERVATION, h_key, c_key],
                      out_keys=[memory_key, ("next", h_key), ("next", c_key)])


def _lstm_of(actor: TensorDictSequential) -> LSTMModule:
    return next(module for module in actor.modules() if isinstance(module, LSTMModule))


def recurrent_state_primer(actor: TensorDictSequential) -> Transform:
    """The env transform that creates the actor's zero recurrent state at reset (append it to the env).

    >>> from torchrl.data import Bounded
    >>> primer = recurrent_state_primer(make_lstm_actor(3, Bounded(-1.0, 1.0, shape=(1,)), hidden_size=4,
    ...                                                 hidden_sizes=(8,)))
    >>> sorted(primer.primers.keys())
    ['actor_c', 'actor_h']
    """
    return _lstm_of(actor).make_tensordict_primer()


def make_lstm_actor(obs_dim: int, action_spec: TensorSpec, *, hidden_size: int = 256,
                    hidden_sizes: Sequence[int] = (256,), stochastic: bool = False) -> TensorDictSequential:
    """LSTM actor: observation -> LSTM (``hidden_size``) -> MLP (``hidden_sizes``) -> action.

    Reads ``observation`` [*B, D], ``is_init`` [*B, 1], ``actor_h``/``actor_c`` [*B, 1, H];
    writes ``actor_memory``, ``("next", "actor_h"/"actor_c")``, ``param`` and ``action`` (tanh-bounded
    to the spec; with ``stochastic=True`` a tanh-normal policy for SAC, see
    :func:`~trl_accel.modules.heads.stochastic_action_head`).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from torchrl.data import Bounded
    >>> actor = make_lstm_actor(3, Bounded(-1.0, 1.0, shape=(1,)), hidden_size=4, hidden_sizes=(8,))
    >>> td = TensorDict(observation=torch.randn(2, 3), is_init=torch.ones(2, 1, dtype=torch.bool),
    ...                 actor_h=torch.zeros(2, 1, 4), actor_c=torch.zeros(2, 1, 4), batch_size=[2])
    >>> out = actor(td)
    >>> out["action"].shape, out["actor_memory"].shape, out["next", "actor_c"].shape
    (torch.Size([2, 1]), torch.Size([2, 4]), torch.Size([2, 1, 4]))
    """
    action_dim = action_spec.shape[-1]
    out = 2 * action_dim if stochastic else action_dim
    head = MLP(in_features=hidden_size, out_features=out, num_cells=list(hidden_sizes), activation_class=nn.ReLU)
    body = TensorDictSequential(make_lstm(obs_dim, hidden_size=hidden_size),
                                TensorDictModule(head, in_keys=[keys.ACTOR_MEMORY], out_keys=[keys.PARAM]))
    return action_head(body, action_spec, stochastic=stochastic)


class MemoryActionQ(nn.Module):
    """Q from an LSTM summary of the observation history and the action: ``(memory, action) -> [*B, 1]``."""

    def __init__(self, hidden_size: int, action_dim: int, *, hidden_sizes: Sequence[int]):
        super().__init__()
        self.mlp = MLP(in_features=hidden_size + action_dim, out_features=1, num_cells=list(hidden_sizes),
                       activation_class=nn.ReLU)

    def forward(self, memory: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([memory, action], -1))


def make_lstm_q_critic(obs_dim: int, action_dim: int, *, hidden_size: int = 256,
                       hidden_sizes: Sequence[int] = (256,)) -> TensorDictSequential:
    """One recurrent Q network. Reads ``observation`` [*B, T, D], ``is_init`` and ``action`` [*B, T, A]
    (in recurrent mode, from a zero state at each sequence's start); writes ``critic_memory`` and
    ``state_action_value`` [*B, T, 1].

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from torchrl.modules import set_recurrent_mode
    >>> critic = make_lstm_q_critic(3, 1, hidden_size=4, hidden_sizes=(8,))
    >>> is_init = torch.zeros(2, 5, 1, dtype=torch.bool)
    >>> is_init[:, 0] = True
    >>> sequences = TensorDict(observation=torch.randn(2, 5, 3), action=torch.rand(2, 5, 1), is_init=is_init,
    ...                        batch_size=[2, 5])
    >>> with set_recurrent_mode(True):
    ...     out = critic(sequences)
    >>> out["state_action_value"].shape
    torch.Size([2, 5, 1])
    """
    return TensorDictSequential(
        make_lstm(obs_dim, hidden_size=hidden_size, memory_key=keys.CRITIC_MEMORY,
                  state_keys=(keys.CRITIC_H, keys.CRITIC_C)),
        ValueOperator(MemoryActionQ(hidden_size, action_dim, hidden_sizes=hidden_sizes),
                      in_keys=[keys.CRITIC_MEMORY, keys.ACTION], out_keys=[keys.STATE_ACTION_VALUE]),
    )


def make_twin_lstm_q_critics(obs_dim: int, action_dim: int, *, hidden_size: int = 256,
                             hidden_sizes: Sequence[int] = (256,)) -> list[TensorDictSequential]:
    """Two independently initialised recurrent Q networks (a list, as for the MLP critics).

    >>> q1, q2 = make_twin_lstm_q_critics(3, 1, hidden_size=4, hidden_sizes=(8,))
    >>> q1 is not q2, q1.in_keys == q2.in_keys
    (True, True)
    """
    return [make_lstm_q_critic(obs_dim, action_dim, hidden_size=hidden_size, hidden_sizes=hidden_sizes)
            for _ in range(2)]


def is_recurrent(module: nn.Module) -> bool:
    """Whether ``module`` holds an ``LSTMModule`` (its losses then need sequences and ``deactivate_vmap``)."""
    return any(isinstance(m, LSTMModule) for m in module.modules())


__all__ = ["MemoryActionQ", "is_recurrent", "make_lstm", "make_lstm_actor", "make_lstm_q_critic",
           "make_twin_lstm_q_critics", "recurrent_state_primer"]
