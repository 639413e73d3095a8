"""MLP accelerator: deterministic actor bounded to the action spec, and the Q critic."""
from __future__ import annotations

from typing import Sequence

from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import TensorSpec
from torchrl.modules import MLP, TanhModule, ValueOperator

from trl_accel import keys


def bounded_action_head(action_spec: TensorSpec) -> TanhModule:
    """``param`` (unbounded, [*B, A]) -> ``action`` (tanh, scaled to ``action_spec``'s box)."""
    return TanhModule(in_keys=[keys.PARAM], out_keys=[keys.ACTION], spec=action_spec)


def make_mlp_actor(obs_dim: int, action_spec: TensorSpec, hidden_sizes: Sequence[int] = (256, 256),
                   stochastic: bool = False) -> TensorDictSequential:
    """MLP actor, deterministic (TD3) or tanh-normal (``stochastic=True``, SAC).

    Reads ``observation`` [*B, obs_dim]; writes ``param`` and ``action`` [*B, A] within
    ``action_spec`` (stochastic: also ``loc``, ``scale``, ``action_log_prob``). Table 1 of the paper
    (MuJoCo column): 2 hidden layers of 256, ReLU.
    """
    action_dim = action_spec.shape[-1]
    out = 2 * action_dim if stochastic else action_dim
    body = TensorDictModule(MLP(in_features=obs_dim, out_features=out, num_cells=list(hidden_sizes),
                                activation_class=nn.ReLU), in_keys=[keys.OBSERVATION], out_keys=[keys.PARAM])
    if stochastic:
        from trl_accel.modules.stochastic import stochastic_action_head

        return stochastic_action_head(body, action_spec)
    return TensorDictSequential(body, bounded_action_head(action_spec))


def make_q_critic(obs_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (256, 256)) -> ValueOperator:
    """One Q network: reads ``observation`` [*B, obs_dim] and ``action`` [*B, A]; writes
    ``state_action_value`` [*B, 1]. The twin pair is two of these, stacked by ``TD3Loss``."""
    body = MLP(in_features=obs_dim + action_dim, out_features=1, num_cells=list(hidden_sizes), activation_class=nn.ReLU)
    return ValueOperator(body, in_keys=[keys.OBSERVATION, keys.ACTION], out_keys=[keys.STATE_ACTION_VALUE])


def make_twin_q_critics(obs_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (256, 256)) -> list[ValueOperator]:
    """Two independently initialised Q networks, to pass as ``TD3Loss(qvalue_network=[q1, q2])``.

    Passing a list keeps PyTorch's default initialisation for both (a single module would be
    expanded by TorchRL and its copies re-drawn uniformly between the weights' min and max).
    """
    return [make_q_critic(obs_dim, action_dim, hidden_sizes) for _ in range(2)]
