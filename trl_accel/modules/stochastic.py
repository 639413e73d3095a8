"""Tanh-normal policy heads for SAC (any body that writes ``param`` [*B, 2A])."""
from __future__ import annotations

from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictModuleBase, TensorDictSequential
from torchrl.data import TensorSpec
from torchrl.modules import ProbabilisticActor, TanhNormal

from trl_accel import keys


def stochastic_action_head(body: TensorDictModuleBase, action_spec: TensorSpec) -> ProbabilisticActor:
    """``body`` (writes ``param`` [*B, 2A]) followed by a tanh-normal distribution over the spec's box.

    Writes ``loc``, ``scale`` (softplus-positive), ``action`` [*B, A] and ``action_log_prob``. Under
    ``ExplorationType.RANDOM`` the action is a sample; under ``DETERMINISTIC`` it is the transformed
    location ``tanh(loc)`` scaled to the box: the "mean action" that behaviour cloning matches.
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


def is_stochastic(actor: TensorDictModuleBase) -> bool:
    return isinstance(actor, ProbabilisticActor)
