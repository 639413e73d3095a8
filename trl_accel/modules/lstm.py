"""LSTM accelerator for partially observable tasks: actor and twin Q critics on TorchRL's ``LSTMModule``.

The actor's recurrent state is carried in the TensorDict during collection (``actor_h``/``actor_c``,
zeroed on ``is_init`` by the module, created at reset by :func:`recurrent_state_primer`) and stored
in the replay buffer with each step, so a sampled sequence starts from the state the actor had
there. The critics are not run during collection: each sampled sequence is processed from a zero
state (burn-in steps, see :func:`trl_accel.stages.sequences.sequence_batch`, give it history before
the loss counts). Losses enter ``set_recurrent_mode(True)`` themselves.
"""
from __future__ import annotations

from typing import Sequence

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import TensorSpec
from torchrl.envs import Transform
from torchrl.modules import MLP, LSTMModule, ValueOperator

from trl_accel import keys
from trl_accel.modules.mlp import bounded_action_head
from trl_accel.modules.stochastic import stochastic_action_head


def make_lstm(obs_dim: int, hidden_size: int, prefix: str) -> LSTMModule:
    """``observation`` [*B, D] (+ ``{prefix}_h``/``{prefix}_c`` [*B, 1, H], ``is_init``) -> ``{prefix}_memory`` [*B, H].

    Losses with recurrent critics must be built with ``deactivate_vmap=True`` (the module splits
    sequences at ``is_init``, which ``torch.vmap`` cannot trace)."""
    return LSTMModule(input_size=obs_dim, hidden_size=hidden_size,
                      in_keys=[keys.OBSERVATION, f"{prefix}_h", f"{prefix}_c"],
                      out_keys=[f"{prefix}_memory", ("next", f"{prefix}_h"), ("next", f"{prefix}_c")])


def _lstm_of(actor: TensorDictSequential) -> LSTMModule:
    return next(module for module in actor.modules() if isinstance(module, LSTMModule))


def recurrent_state_primer(actor: TensorDictSequential) -> Transform:
    """The env transform that creates the actor's zero recurrent state at reset (append it to the env)."""
    return _lstm_of(actor).make_tensordict_primer()


def make_lstm_actor(obs_dim: int, action_spec: TensorSpec, hidden_size: int = 256,
                    head_sizes: Sequence[int] = (256,), stochastic: bool = False) -> TensorDictSequential:
    """LSTM actor: observation -> LSTM -> MLP -> action.

    Reads ``observation`` [*B, D], ``is_init`` [*B, 1], ``actor_h``/``actor_c`` [*B, 1, H];
    writes ``actor_memory``, ``("next", "actor_h"/"actor_c")``, ``param`` and ``action`` (tanh-bounded
    to the spec; with ``stochastic=True`` a tanh-normal policy for SAC, see
    :func:`~trl_accel.modules.stochastic.stochastic_action_head`).
    """
    action_dim = action_spec.shape[-1]
    out = 2 * action_dim if stochastic else action_dim
    head = MLP(in_features=hidden_size, out_features=out, num_cells=list(head_sizes), activation_class=nn.ReLU)
    body = TensorDictSequential(make_lstm(obs_dim, hidden_size, "actor"),
                                TensorDictModule(head, in_keys=[keys.ACTOR_MEMORY], out_keys=[keys.PARAM]))
    if stochastic:
        return stochastic_action_head(body, action_spec)
    return TensorDictSequential(body, bounded_action_head(action_spec))


class MemoryActionQ(nn.Module):
    """Q from an LSTM summary of the observation history and the action: ``(memory, action) -> [*B, 1]``."""

    def __init__(self, hidden_size: int, action_dim: int, head_sizes: Sequence[int]):
        super().__init__()
        self.mlp = MLP(in_features=hidden_size + action_dim, out_features=1, num_cells=list(head_sizes),
                       activation_class=nn.ReLU)

    def forward(self, memory: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([memory, action], -1))


def make_lstm_q_critic(obs_dim: int, action_dim: int, hidden_size: int = 256,
                       head_sizes: Sequence[int] = (256,)) -> TensorDictSequential:
    """One recurrent Q network. Reads ``observation`` [*B, T, D], ``is_init`` and ``action`` [*B, T, A]
    (in recurrent mode, from a zero state at each sequence's start); writes ``critic_memory`` and
    ``state_action_value`` [*B, T, 1]."""
    return TensorDictSequential(
        make_lstm(obs_dim, hidden_size, "critic"),
        ValueOperator(MemoryActionQ(hidden_size, action_dim, head_sizes), in_keys=[keys.CRITIC_MEMORY, keys.ACTION],
                      out_keys=[keys.STATE_ACTION_VALUE]),
    )


def make_twin_lstm_q_critics(obs_dim: int, action_dim: int, hidden_size: int = 256,
                             head_sizes: Sequence[int] = (256,)) -> list[TensorDictSequential]:
    """Two independently initialised recurrent Q networks (a list, as for the MLP critics)."""
    return [make_lstm_q_critic(obs_dim, action_dim, hidden_size, head_sizes) for _ in range(2)]


def is_recurrent(module: nn.Module) -> bool:
    return any(isinstance(m, LSTMModule) for m in module.modules())


__all__ = ["is_recurrent", "make_lstm",
           "make_lstm_actor", "make_lstm_q_critic", "make_twin_lstm_q_critics", "recurrent_state_primer"]
