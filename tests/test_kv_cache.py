"""KV-cache rollouts equal the full-window forward; rotary positions see only position differences."""
from __future__ import annotations

import pytest
import torch
from torchrl.data import Bounded
from torchrl.envs import SerialEnv, TransformedEnv

from trl_accel import keys
from trl_accel.envs.context import frame_window
from trl_accel.envs.make import env_transforms, make_base_env
from trl_accel.envs.previous import PreviousActionReward
from trl_accel.modules.kv_cache import (
    KV_CACHE,
    KV_MASK,
    cached_transformer_actor,
    kv_cache_primer,
)
from trl_accel.modules.transformer import (
    TOKEN_WINDOWS,
    make_transformer_actor,
    rotary_angles,
    rotate,
    window_length,
)

K = 4
EPISODE_LIMITS = (3, 9)  # one episode shorter than K, one longer, resetting at different times


def rotary_actor(n_layers: int, n_kv_heads: int | None = None, tokens: tuple[str, ...] = ("observation",)):
    torch.manual_seed(0)
    return make_transformer_actor(3, Bounded(-2.0, 2.0, shape=(1,)), context_len=K, d_model=16, d_ff=32,
                                  n_layers=n_layers, n_heads=4, n_kv_heads=n_kv_heads, dropout=0.0,
                                  positions="rotary", tokens=tokens).eval()


def env_for(actor, tokens: tuple[str, ...] = ("observation",)) -> TransformedEnv:
    """Two envs with the primer of the cache and the env-built windows the full forward reads (with the previous
    action and reward, and their windows, when the tokens hold them)."""
    factories = [lambda limit=limit: make_base_env("Pendulum-v1", max_episode_steps=limit) for limit in EPISODE_LIMITS]
    width = window_length(K, actor_layers(actor), "rotary")
    env = TransformedEnv(SerialEnv(len(factories), factories), env_transforms(width))
    if len(tokens) > 1:
        env.append_transform(PreviousActionReward())
        for name in tokens[1:]:
            for transform in frame_window(name, TOKEN_WINDOWS[name], width, frame_dims=1):
                env.append_transform(transform)
    env.append_transform(kv_cache_primer(actor))
    env.set_seed(0)
    return env


def actor_layers(actor) -> int:
    return next(module for module in actor.modules() if hasattr(module, "n_layers")).n_layers


@pytest.mark.parametrize("n_layers,n_kv_heads,tokens", [
    (1, None, ("observation",)), (2, None, ("observation",)), (2, 2, ("observation",)),
    (1, None, ("observation", "prev_action", "prev_reward")),
])
def test_cached_rollout_equals_the_full_window_forward(n_layers, n_kv_heads, tokens):
    actor = rotary_actor(n_layers, n_kv_heads, tokens)
    cached = cached_transformer_actor(actor)
    env = env_for(actor, tokens)
    with torch.no_grad():
        rollout = env.rollout(25, cached, break_when_any_done=False)
        full = actor(rollout.select(*(key for key in actor.in_keys if key in rollout.keys())).clone())
    assert rollout["next", "done"].sum() >= 4, "several resets, at different times in the two envs"
    assert (rollout[keys.STEP_COUNT].max() + 1) > K, "an episode longer than K"
    torch.testing.assert_close(rollout[keys.PARAM], full[keys.PARAM], atol=1e-5, rtol=0)
    torch.testing.assert_close(rollout[keys.ACTION], full[keys.ACTION], atol=1e-5, rtol=0)
    # the cache at an episode's first step is empty
    first = rollout[keys.IS_INIT].squeeze(-1)
    assert not rollout[("next", KV_MASK)][first][:, :-1].any()
    for name in tokens[1:]:  # the previous action and reward are zero at an episode's start
        assert (rollout[name][first] == 0).all() and (rollout[name][~first] != 0).any()


def test_the_cache_stays_out_of_the_learner_keys():
    actor = rotary_actor(1)
    cached = cached_transformer_actor(actor)
    assert KV_CACHE in cached.in_keys and KV_CACHE not in actor.in_keys
    # the cached actor shares the window actor's parameters
    ours = {id(p) for p in actor.parameters()}
    assert {id(p) for p in cached.parameters()} <= ours


def test_rotary_attention_sees_only_position_differences():
    torch.manual_seed(0)
    query, key = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    scores = []
    for shift in (0, 37, 1000):
        cos, sin = (angle.unsqueeze(0).unsqueeze(0) for angle in rotary_angles(torch.arange(5) + shift, 8))
        scores.append(rotate(query, cos, sin) @ rotate(key, cos, sin).transpose(-1, -2))
    torch.testing.assert_close(scores[0], scores[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(scores[0], scores[2], atol=1e-5, rtol=0)
    cos, sin = (angle.unsqueeze(0).unsqueeze(0) for angle in rotary_angles(torch.arange(5) * 2, 8))
    moved = rotate(query, cos, sin) @ rotate(key, cos, sin).transpose(-1, -2)
    assert not torch.allclose(scores[0], moved, atol=1e-3), "different relative positions give different scores"


def test_the_cache_needs_rotary_positions():
    torch.manual_seed(0)
    learned = make_transformer_actor(3, Bounded(-2.0, 2.0, shape=(1,)), context_len=K, d_model=16, d_ff=32)
    with pytest.raises(ValueError, match="rotary"):
        cached_transformer_actor(learned)
