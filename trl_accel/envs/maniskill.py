"""ManiSkill3 tabletop tasks (PushCube-v1, PullCube-v1, PickCube-v1, ...) as batched TorchRL envs.

:func:`make_maniskill_env` wraps ManiSkill's own torch tensors (no numpy round trip) in an
:class:`~torchrl.envs.EnvBase` of batch size ``[num_envs]``; :func:`make_maniskill_training_env`
adds the transforms of the MuJoCo envs (:func:`trl_accel.envs.make.env_transforms`) and, in rgb
mode, a window of camera frames (:func:`pixel_window_transforms`).

Simulation back ends:

* ``physx_cuda`` (needs a CUDA GPU): one ManiSkill env simulates all ``num_envs`` copies at once.
* ``physx_cpu``: ManiSkill simulates one copy per env, so ``num_envs`` copies are ``num_envs``
  ManiSkill envs in this process; their batched tensors are concatenated along the batch dim.

Set-up: ``bash scripts/setup_maniskill.sh`` (ManiSkill, and a Vulkan driver where none works).
"""
from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import Compose, EnvBase, TransformedEnv

from trl_accel import keys
from trl_accel.envs.context import frame_window
from trl_accel.envs.make import EnvConfigError, env_transforms

#: Observation modes this wrapper supports.
OBS_MODES = ("state", "rgb")
SIM_BACKENDS = ("physx_cpu", "physx_cuda")
#: The camera whose frames become ``pixels`` in rgb mode.
CAMERA = "base_camera"

_SETUP_HINT = 'run `bash scripts/setup_maniskill.sh` (or `pip install -e ".[maniskill]"`)'
_VULKAN_HINT = (
    "ManiSkill renders with SAPIEN, which needs a working Vulkan device. Without a GPU, install Mesa's "
    "lavapipe from Mesa >= 24.3 (Debian 12: add 'bookworm-backports' to the Suites of "
    "/etc/apt/sources.list.d/debian.sources, then `apt-get update && apt-get install -y -t bookworm-backports "
    "mesa-vulkan-drivers libvulkan1`; Debian 12's own Mesa 22.3 lacks VK_KHR_external_semaphore_fd), "
    "or run `bash scripts/setup_maniskill.sh` as root."
)


def maniskill_available() -> bool:
    """Whether the ``mani_skill`` package is importable (without importing it)."""
    return importlib.util.find_spec("mani_skill") is not None


@functools.lru_cache(maxsize=1)
def vulkan_available() -> tuple[bool, str]:
    """Whether SAPIEN finds a Vulkan device it supports, and a one-line reason.

    Cheap (~0.1 s, cached): asks SAPIEN for its device summary without building a renderer.
    Every ManiSkill task needs one, state observations included (SAPIEN builds render materials).
    """
    if not maniskill_available():
        return False, f"mani_skill is not installed: {_SETUP_HINT}"
    try:
        import sapien

        summary = sapien.render.get_device_summary()
    except Exception as err:  # SAPIEN raises RuntimeError("failed to find a rendering device")
        return False, f"SAPIEN finds no Vulkan device ({err}). {_VULKAN_HINT}"
    devices = [line.split(":", 1)[1].strip() for line in summary.splitlines() if line.startswith("GPU:")]
    if "Supported: 1" not in summary:
        return False, f"SAPIEN finds no supported Vulkan device (found: {devices or 'none'}). {_VULKAN_HINT}"
    return True, f"Vulkan device: {devices[0] if devices else 'unknown'}"


def _import_maniskill() -> Any:
    """``gymnasium`` with ManiSkill's tasks registered, or :class:`EnvConfigError`."""
    try:
        import gymnasium as gym
        import mani_skill.envs  # noqa: F401  (registers the tasks with gymnasium)
    except ImportError as err:
        raise EnvConfigError(f"ManiSkill tasks need the 'mani_skill' package ({err}): {_SETUP_HINT}.") from err
    return gym


def default_max_episode_steps(env_id: str) -> int:
    """ManiSkill's registered episode length for ``env_id`` (50 for PushCube/PullCube/PickCube-v1)."""
    _import_maniskill()
    from mani_skill.utils.registration import REGISTERED_ENVS

    if env_id not in REGISTERED_ENVS:
        raise EnvConfigError(f"Unknown ManiSkill task '{env_id}'. Known tasks include "
                             "PushCube-v1, PullCube-v1, PickCube-v1.")
    return REGISTERED_ENVS[env_id].max_episode_steps or 50


class ManiSkillEnv(EnvBase):
    """A ManiSkill task as a TorchRL env of batch size ``[num_envs]``.

    Step output keys (all ``[num_envs, ...]``):

    * ``observation`` float32 ``[N, obs_dim]``: the flat state vector (state mode), or the flat
      proprioceptive + task state (``agent`` and ``extra``: joint positions and velocities, TCP pose,
      goal, ...) in rgb mode;
    * ``pixels`` uint8 ``[N, 3, H, W]`` (rgb mode only): the ``base_camera`` frame, channels first;
    * ``success`` bool ``[N, 1]``: the task's success flag at this step (also in reset output);
    * ``reward`` float32 ``[N, 1]`` (ManiSkill's ``normalized_dense`` reward by default);
    * ``done``, ``terminated``, ``truncated`` bool ``[N, 1]``.

    Reads ``action`` float32 ``[N, A]`` and, on reset, the optional ``_reset`` mask ``[N, 1]``: only
    masked envs are reset, the others keep their current observation.

    With ``sim_backend="physx_cpu"`` each of the ``num_envs`` copies is its own ManiSkill env (the CPU
    sim holds one copy), stepped in turn; with ``physx_cuda`` one ManiSkill env steps all copies at once.

    Episodes are truncated after ``max_episode_steps``. With ``terminate_on_success=False`` (default,
    as ManiSkill's RL baselines do) success does not end an episode; ``terminated`` is then only set by a
    task's ``fail`` flag (none of the tabletop tasks has one).
    """

    def __init__(self, env_id: str, num_envs: int, obs_mode: str = "state", sim_backend: str = "physx_cpu",
                 control_mode: str | None = None, device: torch.device | str = "cpu", seed: int | None = None,
                 max_episode_steps: int | None = None, image_size: int = 64, terminate_on_success: bool = False,
                 reward_mode: str | None = None, render_backend: str | None = None):
        _check_args(env_id, num_envs, obs_mode, sim_backend, image_size)
        gym = _import_maniskill()
        limit = max_episode_steps or default_max_episode_steps(env_id)
        # Even state observations need a Vulkan device: SAPIEN builds the objects' render materials.
        ok, reason = vulkan_available()
        if not ok:
            raise EnvConfigError(f"Cannot make ManiSkill task '{env_id}' (obs_mode={obs_mode}): {reason}")
        if render_backend is None:
            # State observations skip the per-env renderer (faster to build and step); rgb frames need it.
            render_backend = "none" if obs_mode == "state" else ("gpu" if torch.cuda.is_available() else "cpu")
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.env_id = env_id
        self.obs_mode = obs_mode
        self.image_size = image_size
        self.terminate_on_success = terminate_on_success
        self.max_episode_steps = limit
        # physx_cpu simulates a single copy per ManiSkill env; physx_cuda simulates all of them in one.
        n_sims = num_envs if sim_backend == "physx_cpu" else 1
        self._per_sim = num_envs // n_sims
        kwargs = dict(num_envs=self._per_sim, obs_mode=obs_mode, sim_backend=sim_backend,
                      render_backend=render_backend, enhanced_determinism=True,
                      sensor_configs=dict(width=image_size, height=image_size))
        if control_mode is not None:
            kwargs["control_mode"] = control_mode
        if reward_mode is not None:
            kwargs["reward_mode"] = reward_mode
        self._sims: list[Any] = []
        try:
            for _ in range(n_sims):
                self._sims.append(gym.make(env_id, **kwargs).unwrapped)
        except RuntimeError as err:
            self._close_sims()
            raise _explain(err, env_id, obs_mode, sim_backend) from err
        except (AssertionError, KeyError, gym.error.Error) as err:  # ManiSkill asserts on a bad control mode
            self._close_sims()
            raise EnvConfigError(f"Cannot make ManiSkill task '{env_id}' (control_mode={control_mode}): {err}. "
                                 "Check env.name and env.control_mode.") from err
        self.control_mode = self._sims[0].control_mode
        self._current: list[dict[str, torch.Tensor]] = [{} for _ in self._sims]
        self._seed_sims(seed)
        self._make_specs()

    # ---------------------------------------------------------------- specs
    def _make_specs(self) -> None:
        first = self._current[0]
        n = self.batch_size[0]
        obs_dim = first[keys.OBSERVATION].shape[-1]
        specs = {keys.OBSERVATION: Unbounded(shape=(n, obs_dim), dtype=torch.float32, device=self.device),
                 keys.SUCCESS: Categorical(2, shape=(n, 1), dtype=torch.bool, device=self.device)}
        if self.obs_mode == "rgb":
            specs[keys.PIXELS] = Bounded(low=0, high=255, shape=(n, *first[keys.PIXELS].shape[1:]),
                                        dtype=torch.uint8, device=self.device)
        self.observation_spec = Composite(specs, shape=(n,), device=self.device)
        space = self._sims[0].single_action_space
        low = torch.as_tensor(np.asarray(space.low), dtype=torch.float32, device=self.device)
        high = torch.as_tensor(np.asarray(space.high), dtype=torch.float32, device=self.device)
        self.action_spec = Bounded(low=low.expand(n, -1), high=high.expand(n, -1), shape=(n, low.shape[-1]),
                                   dtype=torch.float32, device=self.device)
        self.reward_spec = Unbounded(shape=(n, 1), dtype=torch.float32, device=self.device)
        flag = Categorical(2, shape=(n, 1), dtype=torch.bool, device=self.device)
        self.done_spec = Composite(done=flag.clone(), terminated=flag.clone(), truncated=flag.clone(),
                                   shape=(n,), device=self.device)

    # ---------------------------------------------------------------- conversion
    def _read_obs(self, obs: Any, info: dict) -> dict[str, torch.Tensor]:
        """ManiSkill's observation (tensor or dict of tensors) -> ``observation`` [, ``pixels``], ``success``."""
        if self.obs_mode == "state":
            out = {keys.OBSERVATION: obs.to(torch.float32)}
        else:
            from mani_skill.utils.common import flatten_state_dict

            state = flatten_state_dict({"agent": obs["agent"], "extra": obs["extra"]}, use_torch=True)
            out = {keys.OBSERVATION: state.to(torch.float32),
                   keys.PIXELS: obs["sensor_data"][CAMERA]["rgb"].permute(0, 3, 1, 2).contiguous()}
        success = info.get("success")
        batch = out[keys.OBSERVATION].shape[0]
        out[keys.SUCCESS] = (success.reshape(batch, 1).to(torch.bool) if success is not None
                            else torch.zeros(batch, 1, dtype=torch.bool, device=out[keys.OBSERVATION].device))
        return out

    def _gather(self, parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Per-copy tensors -> full-batch tensors on ``self.device``, key by key."""
        if len(parts) == 1:
            return {key: value.to(self.device) for key, value in parts[0].items()}
        return {key: torch.cat([part[key] for part in parts]).to(self.device) for key in parts[0]}

    def _output(self, values: dict[str, torch.Tensor]) -> TensorDict:
        return TensorDict(values, batch_size=self.batch_size, device=self.device)

    # ---------------------------------------------------------------- EnvBase API
    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        mask = tensordict.get("_reset", None) if tensordict is not None else None
        if mask is not None:
            mask = mask.reshape(-1).to(torch.bool)
        for j, sim in enumerate(self._sims):
            options: dict[str, Any] = {}
            if mask is not None:
                local = mask[j * self._per_sim:(j + 1) * self._per_sim]
                if not local.any():
                    continue  # keeps this copy's current observation
                if not local.all():
                    options["env_idx"] = local.nonzero().squeeze(-1).to(sim.device)
            obs, info = sim.reset(options=options)
            self._current[j] = self._read_obs(obs, info)
        out = self._gather(self._current)
        flags = torch.zeros(self.batch_size[0], 1, dtype=torch.bool, device=self.device)
        out.update({"done": flags, "terminated": flags.clone(), "truncated": flags.clone()})
        return self._output(out)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action")
        actions = action.split(self._per_sim) if len(self._sims) > 1 else (action,)
        parts = []
        for j, (sim, act) in enumerate(zip(self._sims, actions)):
            obs, reward, _, _, info = sim.step(act.to(sim.device))
            self._current[j] = current = self._read_obs(obs, info)
            fail = info.get("fail")
            part = dict(current, reward=reward.reshape(-1, 1),
                        truncated=(sim.elapsed_steps >= self.max_episode_steps).reshape(-1, 1))
            if fail is not None:
                part["terminated"] = fail.reshape(-1, 1).to(torch.bool)
            parts.append(part)
        out = self._gather(parts)
        out["reward"] = out["reward"].to(torch.float32)
        term = out.get("terminated", torch.zeros_like(out[keys.SUCCESS]))
        if self.terminate_on_success:
            term = term | out[keys.SUCCESS]
        out["terminated"] = term
        out["done"] = term | out["truncated"]
        return self._output(out)

    def _set_seed(self, seed: int | None) -> None:
        self._seed_sims(seed)

    def _seed_sims(self, seed: int | None) -> None:
        """Seed ManiSkill's episode RNG: copy ``j`` of the CPU sim gets ``seed + j`` (random when None).

        Every ManiSkill env otherwise starts from the same fixed seed, so the CPU copies would
        replay identical episodes. Resets all copies.
        """
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31 - len(self._sims)))
        for j, sim in enumerate(self._sims):
            obs, info = sim.reset(seed=seed + j)
            self._current[j] = self._read_obs(obs, info)

    def _close_sims(self) -> None:
        for sim in self._sims:
            try:
                sim.close()
            except Exception:  # a half-built ManiSkill env may fail to close; nothing to release then
                pass
        self._sims = []

    def close(self, *, raise_if_closed: bool = True) -> None:
        self._close_sims()
        super().close(raise_if_closed=raise_if_closed)


def _check_args(env_id: str, num_envs: int, obs_mode: str, sim_backend: str, image_size: int) -> None:
    if obs_mode not in OBS_MODES:
        raise EnvConfigError(f"Unsupported ManiSkill obs_mode '{obs_mode}' for '{env_id}': use one of {OBS_MODES} "
                             "(env.obs_mode).")
    if sim_backend not in SIM_BACKENDS:
        raise EnvConfigError(f"Unsupported ManiSkill sim_backend '{sim_backend}': use one of {SIM_BACKENDS} "
                             "(env.sim_backend).")
    if sim_backend == "physx_cuda" and not torch.cuda.is_available():
        raise EnvConfigError("sim_backend='physx_cuda' needs a CUDA GPU, and torch sees none: "
                             "use env.sim_backend=physx_cpu.")
    if num_envs < 1:
        raise EnvConfigError(f"num_envs must be >= 1, got {num_envs}.")
    if image_size < 1:
        raise EnvConfigError(f"image_size must be >= 1, got {image_size}.")


def _explain(err: RuntimeError, env_id: str, obs_mode: str, sim_backend: str) -> Exception:
    """Turn SAPIEN's device errors into :class:`EnvConfigError` with the fix; keep anything else."""
    text = str(err)
    if any(s in text.lower() for s in ("vulkan", "vk::", "physical device", "rendering device")):
        return EnvConfigError(f"Cannot make '{env_id}' (obs_mode={obs_mode}): {text.strip()}. {_VULKAN_HINT}")
    if "cuda" in text.lower() and sim_backend == "physx_cuda":
        return EnvConfigError(f"Cannot make '{env_id}' with sim_backend=physx_cuda: {text.strip()}. "
                              "Use env.sim_backend=physx_cpu.")
    return err


def make_maniskill_env(env_id: str, num_envs: int, obs_mode: str = "state", sim_backend: str = "physx_cpu",
                       control_mode: str | None = None, device: torch.device | str = "cpu",
                       seed: int | None = None, max_episode_steps: int | None = None, image_size: int = 64,
                       terminate_on_success: bool = False) -> EnvBase:
    """A ManiSkill task as a TorchRL env of batch size ``[num_envs]``; see :class:`ManiSkillEnv` for keys.

    ``control_mode=None`` keeps the task's default (``pd_joint_delta_pos`` for the Panda tasks);
    ``max_episode_steps=None`` keeps ManiSkill's registered limit (50 for PushCube/PullCube/PickCube-v1).
    ``terminate_on_success=True`` ends an episode at its first success (default: episodes run to the limit).
    Raises :class:`EnvConfigError` when ManiSkill or a Vulkan device (needed in both obs modes) is missing.
    """
    return ManiSkillEnv(env_id, num_envs, obs_mode=obs_mode, sim_backend=sim_backend, control_mode=control_mode,
                        device=device, seed=seed, max_episode_steps=max_episode_steps, image_size=image_size,
                        terminate_on_success=terminate_on_success)


def pixel_window_transforms(context_len: int) -> Compose:
    """Transforms that add ``pixels_window`` uint8 [*B, K, 3, H, W]: the episode's last K frames.

    Expects ``pixels`` [*B, 3, H, W]. Positions before the episode's first frame are zero-padded and
    masked out by the same ``window_mask`` as ``observation_window`` (from
    :func:`trl_accel.envs.context.context_window_transforms`); :class:`CatFrames` clears its buffer on
    every (partial) reset, so a window never crosses an episode boundary.
    """
    return Compose(*frame_window(keys.PIXELS, keys.PIXELS_WINDOW, context_len, frame_dims=3))


def make_maniskill_training_env(env_id: str, num_envs: int, context_len: int | None, obs_mode: str = "state",
                                **kwargs: Any) -> TransformedEnv:
    """:func:`make_maniskill_env` plus the shared transforms, for training and evaluation.

    Adds ``is_init``, ``step_count``, ``episode_reward``, ``observation_window`` [N, K, obs_dim] and
    ``window_mask`` [N, K]; in rgb mode also ``pixels_window`` uint8 [N, K, 3, H, W].
    ``kwargs`` go to :func:`make_maniskill_env`.
    """
    base = make_maniskill_env(env_id, num_envs, obs_mode=obs_mode, **kwargs)
    transforms = env_transforms(context_len)
    if obs_mode == "rgb" and context_len is not None:
        transforms.append(pixel_window_transforms(context_len))
    return TransformedEnv(base, transforms)


def is_maniskill_config(env_cfg: Any) -> bool:
    """Whether an ``env`` config section describes a ManiSkill task (its groups set ``obs_mode``)."""
    return env_cfg.get("obs_mode") is not None


__all__ = [
    "CAMERA",
    "OBS_MODES",
    "ManiSkillEnv",
    "default_max_episode_steps",
    "is_maniskill_config",
    "make_maniskill_env",
    "make_maniskill_training_env",
    "maniskill_available",
    "pixel_window_transforms",
    "vulkan_available",
]
