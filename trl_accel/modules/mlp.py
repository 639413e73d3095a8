"""MLP accelerator: actor bounded to the action spec (deterministic or tanh-normal), and the Q critics."""
from __future__ import annotations

from collections.abc import Sequence

from tensordict.nn import TensorDictModule, TensorDictSequential
from tensordict.utils import NestedKey
from torch import nn
from torchrl.data import TensorSpec
from torchrl.modules import MLP, ValueOperator

from trl_accel import keys
from trl_accel.modules.heads import action_head


def make_mlp_actor(obs_dim: int, action_spec: TensorSpec, *, hidden_sizes: Sequence[int] = (256, 256),
                   stochastic: bool = False, in_keys: Sequence[NestedKey] = (keys.OBSERVATION,)) -> TensorDictSequential:
    """MLP actor, deterministic (TD3) or tanh-normal (``stochastic=True``, SAC).

    Reads ``in_keys`` (default ``observation`` [*B, obs_dim]; several keys are concatenated, their
    last dims summing to ``obs_dim``); writes ``param`` and ``action`` [*B, A] within ``action_spec``
    (stochastic: also ``loc``, ``scale``, ``action_log_prob``). Table 1 of the paper (MuJoCo column):
    2 hidden layers of 256, ReLU.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from torchrl.data import Bounded
    >>> actor = make_mlp_actor(3, Bounded(-2.0, 2.0, shape=(1,)), hidden_sizes=(8,))
    >>> out = actor(TensorDict(observation=torch.randn(4, 3), batch_size=[4]))
    >>> sorted(out.keys())
    ['action', 'observation', 'param']
    >>> out["action"].shape, bool(out["action"].abs().max() <= 2.0)
    (torch.Size([4, 1]), True)
    """
    action_dim = action_spec.shape[-1]
    out = 2 * action_dim if stochastic else action_dim
    body = TensorDictModule(MLP(in_features=obs_dim, out_features=out, num_cells=list(hidden_sizes),
                                activation_class=nn.ReLU), in_keys=list(in_keys), out_keys=[keys.PARAM])
    return action_head(body, action_spec, stochastic=stochastic)


def make_q_critic(obs_dim: int, action_dim: int, *, hidden_sizes: Sequence[int] = (256, 256),
                  in_keys: Sequence[NestedKey] = (keys.OBSERVATION, keys.ACTION)) -> ValueOperator:
    """One Q network: reads ``in_keys`` (default ``observation`` [*B, obs_dim] and ``action`` [*B, A],
    concatenated); writes ``state_action_value`` [*B, 1]. The twin pair is two of these.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> critic = make_q_critic(3, 1, hidden_sizes=(8,))
    >>> out = critic(TensorDict(observation=torch.randn(4, 3), action=torch.rand(4, 1), batch_size=[4]))
    >>> out["state_action_value"].shape
    torch.Size([4, 1])
    """
    body = MLP(in_features=obs_dim + action_dim, out_features=1, num_cells=list(hidden_sizes), activation_class=nn.ReLU)
    return ValueOperator(body, in_keys=list(in_keys), out_keys=[keys.STATE_ACTION_VALUE])


def make_twin_q_critics(obs_dim: int, action_dim: int, *, hidden_sizes: Sequence[int] = (256, 256),
                        in_keys: Sequence[NestedKey] = (keys.OBSERVATION, keys.ACTION)) -> list[ValueOperator]:
    """Two independently initialised Q networks, to pass as ``TD3Loss(qvalue_network=[q1, q2])``.

    Passing a list keeps PyTorch's default initialisation for both (a single module would be
    expanded by TorchRL and its copies re-drawn uniformly between the weights' min and max).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> q1, q2 = make_twin_q_critics(3, 1, hidden_sizes=(8,))
    >>> td = TensorDict(observation=torch.randn(4, 3), action=torch.rand(4, 1), batch_size=[4])
    >>> bool((q1(td.clone())["state_action_value"] != q2(td.clone())["state_action_value"]).any())
    True
    """
    return [make_q_critic(obs_dim, action_dim, hidden_sizes=hidden_sizes, in_keys=in_keys) for _ in range(2)]


__all__ = ["make_mlp_actor", "make_q_critic", "make_twin_q_critics"]
