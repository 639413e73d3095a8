"""The recipes' configuration as typed dataclasses, with the valid range of every number and the
choices of every name: OmegaConf's structured configs check the types, :func:`check_ranges` the
ranges. :func:`trl_accel.config.validate_config` applies both (and the checks that relate several
keys) before anything is built.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Optional

from omegaconf import MISSING, ListConfig


def bounded(default: Any = MISSING, *, low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False, choices: tuple | None = None, factory=None):
    """A dataclass field with its valid range (``low``/``high``, inclusive unless ``*_open``) or choices."""
    metadata = {"low": low, "high": high, "low_open": low_open, "high_open": high_open, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def describe_range(meta: dict) -> str:
    """``'>= 0'``, ``'in (0, 1]'``, ``'one of (...)'``: what a value must be."""
    if meta.get("choices") is not None:
        return f"one of {meta['choices']}"
    low, high = meta.get("low"), meta.get("high")
    if low is not None and high is not None:
        return f"in {'(' if meta['low_open'] else '['}{low}, {high}{')' if meta['high_open'] else ']'}"
    if low is not None:
        return f"{'>' if meta['low_open'] else '>='} {low}"
    if high is not None:
        return f"{'<' if meta['high_open'] else '<='} {high}"
    return "valid"


def in_range(value: Any, meta: dict) -> bool:
    if value is None:
        return True
    if isinstance(value, (list, tuple, ListConfig)):
        return all(in_range(item, meta) for item in value)
    if meta.get("choices") is not None:
        return value in meta["choices"]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return True
    if isinstance(value, float) and not math.isfinite(value):
        return False
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value < low or (meta["low_open"] and value == low)):
        return False
    if high is not None and (value > high or (meta["high_open"] and value == high)):
        return False
    return True


@dataclass
class AlgoConfig:
    """``algo`` group: ``td3`` or ``sac``; each group file holds only its algorithm's keys."""

    name: str = bounded("td3", choices=("td3", "sac"))
    gamma: float = bounded(0.99, low=0.0, high=1.0)
    tau: float = bounded(0.005, low=0.0, high=1.0, low_open=True)
    lr: float = bounded(3e-4, low=0.0, low_open=True)
    batch_size: int = bounded(256, low=1)
    update_chunks: int = bounded(1, low=1)
    # TD3
    policy_noise: Optional[float] = bounded(None, low=0.0)
    noise_clip: Optional[float] = bounded(None, low=0.0)
    exploration_noise: Optional[float] = bounded(None, low=0.0)
    policy_delay: Optional[int] = bounded(None, low=1)
    # SAC
    alpha_lr: Optional[float] = bounded(None, low=0.0, low_open=True)
    alpha_init: Optional[float] = bounded(None, low=0.0, low_open=True)
    target_entropy: Any = None  # "auto" or a number: checked in trl_accel.config


@dataclass
class EnvConfig:
    """``env`` group: a gymnasium task (``name``, ``max_episode_steps``, ``pomdp``) or a ManiSkill one."""

    name: str = MISSING
    max_episode_steps: Optional[int] = bounded(None, low=1)
    pomdp: Optional[str] = bounded(None, choices=("velocities_only", "positions_only"))
    obs_mode: Optional[str] = bounded(None, choices=("state", "rgb"))
    num_envs: int = bounded(1, low=1)
    sim_backend: Optional[str] = bounded(None, choices=("physx_cpu", "physx_cuda"))
    control_mode: Optional[str] = None
    image_size: Optional[int] = bounded(None, low=36)
    options: Optional[Dict[str, Any]] = None  # keywords of a pure-torch task's factory (cue_reach)


@dataclass
class AcceleratorConfig:
    """``accelerator`` group: ``mlp`` (``hidden_sizes``), or ``lstm``/``gru`` (also ``hidden_size``, ``inputs``,
    ``embedding``, ``seq_len``, ``burn_in``, ``start_state``, ``shared_critic_trunk``)."""

    type: str = bounded("mlp", choices=("mlp", "lstm", "gru"))
    hidden_sizes: List[int] = bounded(low=1, factory=lambda: [256, 256])
    hidden_size: Optional[int] = bounded(None, low=1)
    inputs: Optional[List[str]] = bounded(None, choices=("observation", "prev_action", "prev_reward"))
    embedding: Optional[Dict[str, int]] = None
    seq_len: Optional[int] = bounded(None)  # >= 2, or -1 for whole episodes (checked in trl_accel.config)
    burn_in: Optional[int] = bounded(None, low=0)
    start_state: Optional[str] = bounded(None, choices=("stored", "zero"))
    shared_critic_trunk: Optional[bool] = None  # recurrent: the twin critics' heads share one recurrent trunk
    batch_size: Optional[int] = bounded(None, low=1)  # sequences per update (recurrent); null = algo.batch_size
    lr: Optional[float] = bounded(None, low=0.0, low_open=True)  # the accelerator learner's; null = algo.lr
    privileged: bool = False  # the accelerator actor and critics read the full state (partially observed tasks)


@dataclass
class TransformerConfig:
    """``transformer``: the keyword arguments of :func:`trl_accel.modules.make_transformer_actor`."""

    context_len: int = bounded(3, low=1)
    d_model: int = bounded(256, low=1)
    n_layers: int = bounded(1, low=1)
    n_heads: int = bounded(2, low=1)
    n_kv_heads: Optional[int] = bounded(None, low=1)
    d_ff: int = bounded(512, low=1)
    dropout: float = bounded(0.05, low=0.0, high=1.0, high_open=True)
    positions: str = bounded("learned", choices=("learned", "sinusoidal", "rotary"))
    rollout: str = bounded("window", choices=("window", "cache"))
    tokens: List[str] = bounded(choices=("observation", "prev_action", "prev_reward"), factory=lambda: ["observation"])  # cache: KV-cache rollouts (rotary positions)


@dataclass
class EncoderConfig:
    feature_dim: int = bounded(256, low=1)


@dataclass
class SwitchConfig:
    rule: str = bounded("fixed", choices=("fixed", "auto"))
    fraction: float = bounded(0.9, low=0.0, low_open=True)
    patience: int = bounded(3, low=1)
    plateau_evals: int = bounded(3, low=0)
    min_improvement: float = bounded(0.05, low=0.0)


@dataclass
class StageOneConfig:
    random_steps: int = bounded(25000, low=0)
    steps: int = bounded(1000000, low=0)
    buffer_size: int = bounded(500000, low=1)
    bc_data: str = bounded("training", choices=("training", "evaluation", "dagger"))
    dagger_teacher_share: float = bounded(0.0, low=0.0, high=1.0)
    bc_target: str = bounded("accelerator", choices=("accelerator", "executed"))
    bc_every: int = bounded(2000, low=1)
    bc_batch_size: int = bounded(256, low=1)
    bc_epochs: int = bounded(32, low=1)
    bc_rounds_kept: int = bounded(1, low=1)
    bc_final_rounds: int = bounded(0, low=0)
    bc_lr: float = bounded(3e-4, low=0.0, low_open=True)
    state_noise: float = bounded(0.0, low=0.0)
    bc_loss: str = bounded("mse", choices=("mse", "likelihood"))
    bc_precision: str = bounded("float32", choices=("float32", "bfloat16"))
    ascent_weight: float = bounded(0.0, low=0.0)
    switch: SwitchConfig = field(default_factory=SwitchConfig)


@dataclass
class StageTwoConfig:
    steps: int = bounded(1000000, low=0)
    buffer_size: int = bounded(100000, low=1)
    random_steps: int = bounded(0, low=0)
    batch_size: Optional[int] = bounded(None, low=1)
    init_from: Optional[str] = None


@dataclass
class BaselineConfig:
    buffer_size: int = bounded(500000, low=1)


@dataclass
class EvalConfig:
    every: int = bounded(5000, low=0)
    episodes: int = bounded(5, low=1)


@dataclass
class LoggerConfig:
    backend: Optional[str] = bounded("csv", choices=("csv", "tensorboard", "wandb", "none", None))
    project: str = "trl_accel"


@dataclass
class CheckpointConfig:
    every: int = bounded(50000, low=0)
    save_buffer: bool = True


@dataclass
class CollectorConfig:
    """``collector``: where the env steps come from (:mod:`trl_accel.collectors`)."""

    workers: int = bounded(1, low=1)
    sync: bool = True
    update_every: int = bounded(1, low=1)
    backend: str = bounded("local", choices=("local", "ray"))
    ray_address: Optional[str] = None


@dataclass
class ExperimentConfig:
    """The whole configuration of ``recipes/td3_accelerate.py`` and ``recipes/sac_accelerate.py``."""

    algo: AlgoConfig = field(default_factory=AlgoConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    accelerator: AcceleratorConfig = field(default_factory=AcceleratorConfig)
    mode: str = bounded("accelerate", choices=("accelerate", "accelerator_only", "transformer_only", "mlp_td3",
                                                "transformer_td3"))
    seed: int = bounded(0, low=0)
    device: str = "auto"
    compile: bool = False
    cudagraphs: bool = False
    resume: Optional[str] = None
    overwrite: bool = False
    quiet: bool = False
    frames_per_batch: int = bounded(50, low=1)
    updates_per_step: float = bounded(1.0, low=0.0, low_open=True)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    stage1: StageOneConfig = field(default_factory=StageOneConfig)
    stage2: StageTwoConfig = field(default_factory=StageTwoConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)


def range_errors(schema: type, cfg: Any, prefix: str = "") -> list[str]:
    """One message per value of ``cfg`` outside the range its ``schema`` field declares."""
    errors = []
    for spec in fields(schema):
        value = getattr(cfg, spec.name, None)
        key = f"{prefix}{spec.name}"
        nested = spec.default_factory() if spec.default_factory is not MISSING and callable(spec.default_factory) else None  # noqa: E501
        if is_dataclass(nested) and value is not None:
            errors += range_errors(type(nested), value, f"{key}.")
        elif spec.metadata and not in_range(value, spec.metadata):
            shown = list(value) if isinstance(value, ListConfig) else value
            errors.append(f"{key}={shown!r} is out of range: it must be {describe_range(spec.metadata)}.")
    return errors


def check_ranges(cfg: Any) -> list[str]:
    """Range errors of a whole :class:`ExperimentConfig`."""
    return range_errors(ExperimentConfig, cfg)


__all__ = ["ExperimentConfig", "bounded", "check_ranges", "describe_range", "in_range", "range_errors"]
