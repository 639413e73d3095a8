"""Action heads shared by every actor: the tanh-bounded deterministic head (TD3) and the tanh-normal
head (SAC), both reading the unbounded ``param`` that an actor's body writes."""
from __future__ import annotations

from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictModuleBase, TensorDictSequential
from torchrl.data import TensorSpec
from torchrl.modules import ProbabilisticActor, TanhModule, TanhNormal

from trl_accel import keys


def bounded_action_head(action_spec: TensorSpec) -> TanhModule:
    """``param`` (unbounded, [*B, A]) -> ``action`` (tanh, scaled to ``action_spec``'s box).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from torchrl.data import Bounded
    >>> head = bounded_action_head(Bounded(-2.0, 2.0, shape=(1,)))
    >>> head(TensorDict(param=torch.tensor([[0.0], [100.0]]), batch_size=[2]))["action"]
    tensor([[0.],
            [2.]])
    """
    return TanhModule(in_keys=[keys.PARAM], out_keys=[keys.ACTION], spec=action_spec)


def stochastic_action_head(body: TensorDictModuleBase, action_spec: TensorSpec) -> ProbabilisticActor:
    """``body`` (writes ``param`` [*B, 2A]) followed by a tanh-normal distribution over the spec's box.

    Writes ``loc``, ``scale`` (softplus-positive), ``action`` [*B, A] and ``action_log_prob``. Under
    ``ExplorationType.RANDOM`` the action is a sample; under ``DETERMINISTIC`` it is the transformed
    location ``tanh(loc)`` scaled to the box: the "mean action" that behaviour cloning matches.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> from torchrl.data import Bounded
    >>> from torchrl.envs import ExplorationType, set_exploration_type
    >>> body = TensorDictModule(torch.nn.Linear(3, 2), in_keys=["observation"], out_keys=["param"])
    >>> actor = stochastic_action_head(body, Bounded(-1.0, 1.0, shape=(1,)))
    >>> with set_exploration_type(ExplorationType.DETERMINISTIC):
    ...     out = actor(TensorDict(observation=torch.randn(4, 3), batch_size=[4]))
    >>> sorted(out.keys())
    ['action', 'action_log_prob', 'loc', 'observation', 'param', 'scale']
    >>> out["action"].shape, bool(out["action"].abs().max() <= 1.0)
    (torch.Size([4, 1]), True)
    """
    split = TensorDictModule(NormalParamExtractor(), in_keys=[keys.PARAM], out_keys=[keys.LOC, keys.SCALE])
    space = action_spec.space
    return ProbabilisticActor(
        TensorDictSequential(body, split),
        in_keys=[keys.LOC, keys.SCALE],
        out_keys=[keys.ACTION],
        spec=action_spec,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": space.low, "high": space.high},
        return_log_prob=True,
        log_prob_key=keys.ACTION_LOG_PROB,
    )


def action_head(body: TensorDictModuleBase, action_spec: TensorSpec, *, stochastic: bool) -> TensorDictSequential:
    """``body`` (writes ``param``) followed by the tanh-normal head (``stochastic=True``) or the bounded one."""
    if stochastic:
        return stochastic_action_head(body, action_spec)
    return TensorDictSequential(body, bounded_action_head(action_spec))


def is_stochastic(actor: TensorDictModuleBase) -> bool:
    """Whether ``actor`` is a tanh-normal policy (built by :func:`stochastic_action_head`)."""
    return isinstance(actor, ProbabilisticActor)


__all__ = ["action_head", "bounded_action_head", "is_stochastic", "stochastic_action_head"]
