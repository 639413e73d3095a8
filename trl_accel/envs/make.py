"""Environment factories: a gymnasium task wrapped as a TorchRL env with context windows."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torchrl.envs import (
    Compose,
    DoubleToFloat,
    EnvBase,
    GymEnv,
    GymWrapper,
    InitTracker,
    RenameTransform,
    RewardSum,
    SerialEnv,
    StepCounter,
    TransformedEnv,
)

from trl_accel import keys
from trl_accel.envs.context import context_window_transforms
from trl_accel.envs.errors import EnvConfigError
from trl_accel.envs.pomdp import check_pomdp, pomdp_transform

#: Tasks with a config group in ``recipes/config/env``; any other gymnasium id works through
#: ``env.name=<id>`` as long as gymnasium knows it.
KNOWN_ENVS: dict[str, str] = {
    "halfcheetah": "HalfCheetah-v5",
    "hopper": "Hopper-v5",
    "ant": "Ant-v5",
    "walker2d": "Walker2d-v5",
    "pendulum": "Pendulum-v1",
    "inverted_pendulum": "InvertedPendulum-v5",
}

#: Batched pure-torch tasks of this package (``env.name``): built with all their envs in one, ``env.options``
#: passed to the factory, the full state under ``state``.
TORCH_TASKS = ("cue_reach",)

_MUJOCO_PREFIXES = ("HalfCheetah", "Hopper", "Ant", "Walker2d", "InvertedPendulum", "InvertedDoublePendulum",
                    "Humanoid", "Swimmer", "Reacher", "Pusher")


def needs_mujoco(env_name: str) -> bool:
    return env_name.startswith(_MUJOCO_PREFIXES)


def check_env_available(env_name: str) -> None:
    """Raise :class:`EnvConfigError` if ``env_name`` is unknown to gymnasium or MuJoCo is missing."""
    import gymnasium as gym

    if env_name in TORCH_TASKS:
        return
    if env_name not in gym.registry:
        known = ", ".join(f"{group} ({gym_id})" for group, gym_id in KNOWN_ENVS.items())
        raise EnvConfigError(
            f"Unknown environment '{env_name}'. Known env groups: {known}. "
            "Pick one with env=<group>, or pass any registered gymnasium id with env.name=<id>."
        )
    if needs_mujoco(env_name):
        try:
            import mujoco  # noqa: F401
        except ImportError as err:
            raise EnvConfigError(
                f"'{env_name}' needs MuJoCo, which is not installed ({err}). "
                "Install it with: pip install 'gymnasium[mujoco]'"
            ) from err


def make_base_env(env_name: str, device: torch.device | str = "cpu", seed: int | None = None,
                  max_episode_steps: int | None = None, pomdp: str | None = None, keep_state: bool = False,
                  num_envs: int = 1) -> EnvBase:
    """A gymnasium env as a TorchRL env with float32 observations and actions: one env, or with ``num_envs`` > 1
    gymnasium's ``SyncVectorEnv`` of ``num_envs`` copies stepped in this process (:func:`vector_env`), batch size
    ``[num_envs]``.

    With ``pomdp`` (see :data:`trl_accel.envs.pomdp.POMDP_MODES`) an
    :class:`~trl_accel.envs.pomdp.ObservationMask` follows ``DoubleToFloat``, so ``observation``
    is already masked for every transform added on top; ``keep_state`` first copies the full observation
    to ``state`` (what a privileged accelerator reads).
    """
    check_pomdp(env_name, pomdp)
    kwargs = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}
    base = vector_env(env_name, num_envs, device, **kwargs) if num_envs > 1 else GymEnv(env_name, device=device, **kwargs)
    env = TransformedEnv(base, DoubleToFloat())
    if keep_state:
        env.append_transform(RenameTransform([keys.OBSERVATION], [keys.STATE], create_copy=True))
    if pomdp is not None:
        env.append_transform(pomdp_transform(env_name, pomdp))
    if seed is not None:
        env.set_seed(seed)
    return env


def vector_env(env_name: str, num_envs: int, device: torch.device | str = "cpu", **make_kwargs) -> EnvBase:
    """``num_envs`` copies of ``env_name`` in one gymnasium ``SyncVectorEnv``, wrapped by TorchRL's ``GymWrapper``:
    one TorchRL step (one policy call, one pass through the transforms) steps every copy, so the per-step cost of
    the TorchRL env stack is shared by ``num_envs`` env steps. Gymnasium resets a finished copy within the step
    (``AutoresetMode.SAME_STEP``) and keeps its last observation in ``info``; TorchRL's ``VecGymEnvTransform`` puts
    that observation back under ``("next", "observation")``, so a finished step bootstraps from where it ended.
    A copy that finishes alone starts its next episode from gymnasium's reset within the step; when every copy
    finishes at once (tasks with a fixed episode length), TorchRL resets them all. Seeded with ``s``, copy ``i``
    starts from seed ``s + i``: its first episode is that of a single env seeded ``s + i`` given the same actions."""
    import gymnasium as gym

    factory = partial(gym.make, env_name, disable_env_checker=True, **make_kwargs)
    vector = gym.vector.SyncVectorEnv([factory] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    return GymWrapper(vector, device=device)


def env_transforms(context_len: int | None) -> Compose:
    """The transform stack shared by training and evaluation envs.

    Writes ``is_init``, ``step_count``, ``episode_reward``, and with a ``context_len`` K (``None``: no window,
    for agents that build theirs from replay and roll out with a KV cache) ``observation_window`` [K, obs_dim]
    and ``window_mask`` [K].
    """
    transforms = [InitTracker(), StepCounter(), RewardSum()]
    if context_len is not None:
        transforms.append(context_window_transforms(context_len))
    return Compose(*transforms)


def make_env(env_name: str, context_len: int | None, device: torch.device | str = "cpu", seed: int | None = None,
             max_episode_steps: int | None = None, num_envs: int = 1,
             pomdp: str | None = None, keep_state: bool = False, options: dict | None = None,
             vectorise: bool = False) -> TransformedEnv:
    """A training or evaluation env: ``num_envs`` copies plus windows; with ``num_envs > 1``, a :class:`SerialEnv`
    of TorchRL envs (what evaluation uses), or with ``vectorise=True`` one gymnasium vector env (:func:`vector_env`,
    what training uses: one TorchRL step for all copies).

    With ``num_envs > 1`` each copy gets its own seed (``seed``, ``seed + 1``, ...), which is what
    evaluation over several episodes uses. ``pomdp`` masks the observation of every copy before the
    windows are built (``None``: fully observed); ``keep_state`` keeps the full observation under ``state``.
    A task of :data:`TORCH_TASKS` is one batched env of ``num_envs`` (``options``: its factory's keywords,
    ``max_episode_steps`` its episode length); it always writes ``state``.
    """
    check_env_available(env_name)
    if env_name in TORCH_TASKS:
        base = make_torch_task(env_name, num_envs=num_envs, device=device, max_episode_steps=max_episode_steps,
                               options=options)
        env = TransformedEnv(base, env_transforms(context_len))
        if seed is not None:
            env.set_seed(seed)
        return env
    if options:
        raise EnvConfigError(f"env.options are for the tasks {TORCH_TASKS}; '{env_name}' takes none (set env.options=null).")
    check_pomdp(env_name, pomdp)
    factory: Callable[[], EnvBase] = lambda copies=1: make_base_env(
        env_name, device, None, max_episode_steps, pomdp=pomdp, keep_state=keep_state, num_envs=copies
    )
    if num_envs == 1 or vectorise:
        base = factory(num_envs)
    else:
        base = SerialEnv(num_envs, factory, device=device)
    env = TransformedEnv(base, env_transforms(context_len), auto_unwrap=True)
    if seed is not None:
        env.set_seed(seed)
    return env


def make_torch_task(env_name: str, *, num_envs: int, device: torch.device | str, max_episode_steps: int | None,
                    options: dict | None) -> EnvBase:
    """A task of :data:`TORCH_TASKS` with ``num_envs`` envs in one batch."""
    from trl_accel.envs.cue_reach import make_cue_reach_env

    kwargs = dict(options or {})
    if max_episode_steps:
        kwargs["episode_steps"] = max_episode_steps
    try:
        return make_cue_reach_env(num_envs=num_envs, device=device, **kwargs)
    except TypeError as err:
        raise EnvConfigError(f"env.options for {env_name}: {err}. See trl_accel/envs/cue_reach.py for its options.") from err


def episode_limit(env_name: str, max_episode_steps: int | None = None) -> int:
    """The episode length cap: ``max_episode_steps`` if given, else gymnasium's registered limit (a task of
    :data:`TORCH_TASKS`: its factory's default)."""
    if env_name in TORCH_TASKS:
        from trl_accel.envs.cue_reach import EPISODE_STEPS

        return max_episode_steps or EPISODE_STEPS
    import gymnasium as gym

    return max_episode_steps or gym.spec(env_name).max_episode_steps or 1000
