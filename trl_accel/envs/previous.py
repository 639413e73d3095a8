"""The previous step's action and reward as observations (TorchRL 0.14.1 has no ``LastAction`` transform)."""
from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Composite, Unbounded
from torchrl.envs import Transform

from trl_accel import keys


class PreviousActionReward(Transform):
    """Writes ``prev_action`` [*B, A] (the action executed at the previous step, noise included) and
    ``prev_reward`` [*B, 1] (the reward it earned); both are zero at an episode's first step, including
    after a partial reset of a batched env.

    >>> import torch
    >>> from torchrl.envs import GymEnv, TransformedEnv, DoubleToFloat, Compose
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(DoubleToFloat(), PreviousActionReward()))
    >>> rollout = env.rollout(3)
    >>> bool((rollout[0]["prev_action"] == 0).all()), bool((rollout[1]["prev_action"] == rollout[0]["action"]).all())
    (True, True)
    >>> bool((rollout[1]["prev_reward"] == rollout[0]["next", "reward"]).all())
    True
    """

    def __init__(self, action_key: NestedKey = keys.ACTION, reward_key: NestedKey = keys.REWARD,
                 prev_action_key: NestedKey = keys.PREV_ACTION, prev_reward_key: NestedKey = keys.PREV_REWARD):
        super().__init__(in_keys=[action_key, reward_key], out_keys=[prev_action_key, prev_reward_key])
        self.action_key, self.reward_key = action_key, reward_key
        self.prev_action_key, self.prev_reward_key = prev_action_key, prev_reward_key

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        next_tensordict.set(self.prev_action_key, tensordict.get(self.action_key).clone())
        next_tensordict.set(self.prev_reward_key, next_tensordict.get(self.reward_key).clone())
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        parent = self.parent
        zeros = {self.prev_action_key: parent.full_action_spec[self.action_key].zero(),
                 self.prev_reward_key: parent.full_reward_spec[self.reward_key].zero()}
        reset = tensordict.get("_reset", None) if tensordict is not None else None
        for key, zero in zeros.items():
            previous = tensordict.get(key, None) if tensordict is not None else None
            if previous is not None and reset is not None:  # a partial reset keeps the other envs' values
                zero = torch.where(reset.reshape(*reset.shape, *([1] * (previous.ndim - reset.ndim))), zero, previous)
            tensordict_reset.set(key, zero)
        return tensordict_reset

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        parent = self.parent
        action = parent.full_action_spec[self.action_key]
        reward = parent.full_reward_spec[self.reward_key]
        observation_spec[self.prev_action_key] = Unbounded(shape=action.shape, dtype=action.dtype, device=action.device)
        observation_spec[self.prev_reward_key] = Unbounded(shape=reward.shape, dtype=reward.dtype, device=reward.device)
        return observation_spec

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return tensordict  # an env transform only: in a replay buffer the keys are already there


__all__ = ["PreviousActionReward"]
