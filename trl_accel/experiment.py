"""One experiment, read top to bottom: build -> stage one (the accelerator learns; the transformer clones
it) -> the switch -> stage two (the transformer fine-tuned with the accelerator's critics) -> summary;
or a from-scratch baseline. ``recipes/td3_accelerate.py`` and ``recipes/sac_accelerate.py`` call
:func:`run_experiment` with their Hydra config (``cfg.algo.name`` is ``td3`` or ``sac``).

Each stage's loop body is written out in :func:`stage_one`, :func:`stage_two` and :func:`baseline`, in
the order of the paper's algorithms; what every stage shares (collect, store, RL updates) is the
iterator :func:`trl_accel.loop.collect_and_learn`. Each stage lists the objects it checkpoints once
(its ``parts``); resume loads them, hand-over happens only when stage two starts afresh.
"""
from __future__ import annotations

import random
import resource
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer, TensorSpec
from torchrl.envs import EnvBase, ExplorationType
from torchrl.objectives import LossModule
from torchrl.record.loggers import get_logger

from trl_accel import keys
from trl_accel.checkpoint import load_checkpoint, restore_rng_states, save_checkpoint
from trl_accel.collectors import CollectorSettings, Workers
from trl_accel.config import (
    RECURRENT,
    ConfigError,
    canonical_mode,
    check_checkpoint_shapes,
    env_window,
    episode_steps,
    resolve_device,
    sequence_length,
    transformer_acts,
    transformer_window,
    validate_config,
)
from trl_accel.envs import PreviousActionReward, make_env
from trl_accel.envs.context import frame_window
from trl_accel.envs.maniskill import is_maniskill_config, make_maniskill_training_env
from trl_accel.evaluation import evaluate_policy
from trl_accel.loop import Run, RunState, collect_and_learn
from trl_accel.modules import (
    make_mlp_actor,
    make_transformer_actor,
    make_twin_q_critics,
)
from trl_accel.modules.encoders import PixelEncoder
from trl_accel.modules.kv_cache import cached_transformer_actor, kv_cache_primer
from trl_accel.modules.pixels import make_pixel_mlp_actor, make_pixel_twin_q_critics
from trl_accel.modules.recurrent import (
    make_recurrent_actor,
    make_twin_recurrent_q_critics,
    recurrent_state_keys,
    recurrent_state_primer,
)
from trl_accel.modules.transformer import TOKEN_WINDOWS
from trl_accel.plots import plot_curves
from trl_accel.run_dir import open_resumed_run, prepare_run_dir, truncate_metrics
from trl_accel.stages import (
    BehaviourCloner,
    SwitchCriterion,
    bc_pairs,
    hand_over,
    make_trajectory_buffer,
)
from trl_accel.stages.ascent import frozen_first_critic
from trl_accel.stages.dagger import EpisodeMixture
from trl_accel.stages.learners import make_collection_policy, make_learner
from trl_accel.stages.sequences import (
    TRAJECTORY_KEY,
    SequenceSettings,
    make_replay_buffer,
)
from trl_accel.stages.windows import (
    StreamWindows,
    WindowedTrajectoryBuffer,
    reads_windows,
    stored_instead_of_windows,
)

#: What a recurrent accelerator reads at each step: T gives it these over its history to rebuild its memory.
RECURRENT_INPUTS = (keys.OBSERVATION, keys.PREV_ACTION, keys.PREV_REWARD)


# ---------------------------------------------------------------------------------------------------- building
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_logger(cfg: DictConfig, run_dir: Path):
    if cfg.logger.backend in (None, "", "none"):
        return None
    kwargs = {"project": cfg.logger.project} if cfg.logger.backend == "wandb" else {}
    return get_logger(cfg.logger.backend, logger_name=str(run_dir), experiment_name="metrics", **kwargs)


class Agents:
    """The accelerator (MLP, LSTM, or CNN + MLP on pixels), its twin critics and the transformer, for
    ``cfg.algo.name``.

    ``sequences`` is set when the critics are recurrent: replay then samples sequences. The critics'
    inputs other than the action (``observation``; ``is_init`` of a recurrent critic, ``pixels`` of a
    pixel critic; ``state`` of a privileged one) are declared here as the transformer's pass-through keys, so
    that ``TD3Loss`` hands them on to the critics in stage two. With pixels every module has its own encoder.
    ``accelerator.privileged``: the MLP accelerator and its critics read the full ``state`` [*B, state_dim]
    while the transformer reads the (masked) observation; stage two keeps these critics (asymmetric
    actor-critic).
    """

    def __init__(self, cfg: DictConfig, obs_dim: int, action_spec: TensorSpec, device: torch.device,
                 state_dim: int | None = None):
        stochastic = cfg.algo.name == "sac"
        action_dim = action_spec.shape[-1]
        acc = cfg.accelerator
        self.recurrent = acc.type in RECURRENT
        self.pixels = cfg.env.obs_mode == "rgb"
        self.sequences, frame_encoder, self.previous = None, None, False
        hidden_sizes = list(acc.hidden_sizes)
        if self.recurrent:
            network = {"cell": acc.type, "hidden_size": acc.hidden_size, "hidden_sizes": hidden_sizes,
                       "inputs": list(acc.inputs), "embedding": dict(acc.embedding or {})}
            self.accelerator = make_recurrent_actor(obs_dim, action_spec, **network, stochastic=stochastic)
            self.critics = make_twin_recurrent_q_critics(obs_dim, action_dim, **network,
                                                         shared_trunk=bool(acc.shared_critic_trunk))
            self.sequences = SequenceSettings(sequence_length(cfg), acc.burn_in, acc.start_state,
                                              tuple(recurrent_state_keys(self.accelerator)))
            self.previous = bool({keys.PREV_ACTION, keys.PREV_REWARD} & set(acc.inputs))
        elif self.pixels:
            image = {"image_size": cfg.env.image_size, "feature_dim": cfg.encoder.feature_dim}
            self.accelerator = make_pixel_mlp_actor(obs_dim, action_spec, hidden_sizes=hidden_sizes, stochastic=stochastic,
                                                    **image)
            self.critics = make_pixel_twin_q_critics(obs_dim, action_dim, hidden_sizes=hidden_sizes, **image)
            frame_encoder = PixelEncoder(**image)
        elif acc.privileged:  # the teacher and the critics read the full state; the transformer its observations
            self.accelerator = make_mlp_actor(state_dim, action_spec, hidden_sizes=hidden_sizes, stochastic=stochastic,
                                              in_keys=[keys.STATE])
            self.critics = make_twin_q_critics(state_dim, action_dim, hidden_sizes=hidden_sizes,
                                               in_keys=[keys.STATE, keys.ACTION])
        else:
            self.accelerator = make_mlp_actor(obs_dim, action_spec, hidden_sizes=hidden_sizes, stochastic=stochastic)
            self.critics = make_twin_q_critics(obs_dim, action_dim, hidden_sizes=hidden_sizes)
        critic = self.critics[0]
        critic_inputs = [key for key in critic.in_keys if key != keys.ACTION and ("next", key) not in critic.out_keys]
        network = {key: value for key, value in cfg.transformer.items() if key != "rollout"}
        self.extra_tokens = [name for name in cfg.transformer.tokens if name != keys.OBSERVATION]
        self.previous = self.previous or bool(self.extra_tokens)
        self.transformer_acts = transformer_acts(cfg)
        self.window = env_window(cfg)
        self.transformer = make_transformer_actor(obs_dim, action_spec, **network, stochastic=stochastic,
                                                  passthrough_keys=critic_inputs, frame_encoder=frame_encoder)
        self.accelerator.to(device)
        self.transformer.to(device)
        # what acts in the envs: the window actor itself, or its KV-cache twin (same parameters)
        self.cached = cfg.transformer.rollout == "cache"
        self.transformer_policy = cached_transformer_actor(self.transformer) if self.cached else self.transformer
        self.critics = [critic.to(device) for critic in self.critics]

    def env_transforms(self) -> list:
        """What the envs need for these agents: a recurrent actor's state primer, the previous action and
        reward when it reads them, and the transformer's KV-cache primer when it rolls out with one."""
        token_windows = ([transform for name in self.extra_tokens
                          for transform in frame_window(name, TOKEN_WINDOWS[name], self.window, frame_dims=1)]
                         if self.window is not None else [])
        return ([PreviousActionReward(), *token_windows] if self.previous else []) + (
            [recurrent_state_primer(self.accelerator)] if self.recurrent else []) + (
            [kv_cache_primer(self.transformer)] if self.cached and self.transformer_acts else [])

    def pair_keys(self) -> tuple:
        """What a pair in T holds: the transformer's inputs, the accelerator's (to label it) and the action."""
        pair = [*self.transformer.in_keys, *self.accelerator.in_keys, keys.ACTION]
        return tuple(dict.fromkeys(key for key in pair if isinstance(key, str)))


def build_env(cfg: DictConfig, device: torch.device, seed: int | None = None, num_envs: int | None = None,
              extra_transforms: list = ()) -> EnvBase:
    """The task of ``cfg.env`` with the window transforms: ``num_envs`` copies of a gymnasium task (as many as
    evaluation runs: a :class:`~torchrl.envs.SerialEnv`; by default the training env, ``env.num_envs`` copies in
    one gymnasium vector env), or a ManiSkill task (``num_envs`` parallel envs, ``env.num_envs`` by default). With KV-cache
    rollouts (``transformer.rollout=cache``), or with ``mode=accelerator_only`` (the transformer never acts), nothing
    acts on a window, and the env builds none (:func:`~trl_accel.config.env_window`)."""
    e = cfg.env
    window = env_window(cfg)
    if is_maniskill_config(e):
        env = make_maniskill_training_env(e.name, num_envs or e.num_envs, window, e.obs_mode,
                                          sim_backend=e.sim_backend, control_mode=e.control_mode, device=device,
                                          seed=seed, max_episode_steps=e.max_episode_steps, image_size=e.image_size)
    else:
        env = make_env(e.name, window, device, seed=seed, max_episode_steps=e.max_episode_steps,
                       num_envs=num_envs or e.num_envs, pomdp=e.pomdp, keep_state=cfg.accelerator.privileged,
                       options=OmegaConf.to_container(e.options) if e.options else None, vectorise=num_envs is None)
    for transform in extra_transforms:
        env.append_transform(transform.clone())
    return env


class Evaluator:
    """Deterministic evaluation of named policies on a batched env, one episode per entry, each evaluation
    on its own seeds. Returns ``<name>_return``, and on tasks that report success ``<name>_success``
    (success_once) and ``<name>_success_at_end``."""

    def __init__(self, cfg: DictConfig, device: torch.device, agents: Agents):
        self.episodes = cfg.eval.episodes
        self.env = build_env(cfg, device, num_envs=self.episodes, extra_transforms=agents.env_transforms())
        self.max_steps = episode_steps(cfg)
        self.first_seed = 1_000_000 + 1000 * cfg.seed

    def random_return(self) -> float:
        return evaluate_policy(self.env, None, self.max_steps, 12345)["return_mean"]

    def __call__(self, run: Run, **policies: TensorDictModule) -> dict:
        seed = self.first_seed + self.episodes * len(run.state.evaluations)
        record = {}
        with run.off_the_clock():
            for name, policy in policies.items():
                result = evaluate_policy(self.env, policy, self.max_steps, seed)
                record[f"{name}_return"] = result["return_mean"]
                if "success_once" in result:
                    record[f"{name}_success"] = result["success_once"]
                    record[f"{name}_success_at_end"] = result["success_at_end"]
        return run.record_evaluation(record)


def replay_keys(loss: LossModule, sequences: SequenceSettings | None = None):
    """What the replay buffer stores for ``loss``: the loss's own in-keys (and the ``next`` entries of them),
    nothing the learner never reads (windows for the accelerator, pixels windows, collector bookkeeping but
    the trajectory ids that cut sequences; nor the actor's recurrent state when sequences start from zero).
    A loss that reads context windows gets the steps they are built from instead (each step stored once; the
    buffer builds the windows, :mod:`trl_accel.stages.windows`)."""
    unread = ({*sequences.state_keys, *(("next", key) for key in sequences.state_keys)}
              if sequences is not None and sequences.start_state == "zero" else set())
    wanted = list(dict.fromkeys([*(key for key in loss.in_keys if key not in unread),
                                 *(("next", key) for key in loss.in_keys if isinstance(key, str) and key not in unread),
                                 *([TRAJECTORY_KEY] if sequences is not None else [])]))
    if reads_windows(loss.in_keys):
        wanted = [*stored_instead_of_windows(wanted), keys.WORKER]  # the worker places an asynchronous batch

    def select(batch: TensorDictBase) -> TensorDictBase:
        return batch.select(*wanted, strict=False)

    return select


def state_dicts(parts: dict, save_buffer: bool) -> dict:
    """``{name: part.state_dict()}``; replay buffers only with ``save_buffer``."""
    return {name: part.state_dict() for name, part in parts.items() if save_buffer or not isinstance(part, ReplayBuffer)}


def load_state_dicts(parts: dict, checkpoint: dict) -> None:
    for name, part in parts.items():
        if name in checkpoint:
            part.load_state_dict(checkpoint[name])


class Experiment:
    """What every stage of one run needs: the config, the run, the env, the agents and the evaluator; ``workers``:
    the collector workers (``None``: ``env`` steps in this process)."""

    def __init__(self, cfg: DictConfig, run: Run, env: EnvBase, agents: Agents, evaluate: Evaluator,
                 device: torch.device, checkpoint: dict | None, workers: Workers | None = None):
        self.cfg, self.run, self.env, self.agents, self.evaluate = cfg, run, env, agents, evaluate
        self.device, self.checkpoint, self.workers = device, checkpoint, workers
        # the env streams of the training steps, and those of one collector batch
        self.num_streams = workers.num_streams if workers is not None else env.batch_size.numel()
        self.batch_streams = workers.batch_streams if workers is not None else self.num_streams
        self.shapes = {"obs_dim": env.observation_spec[keys.OBSERVATION].shape[-1],
                       "action_dim": env.action_spec_unbatched.shape[-1], "context_len": cfg.transformer.context_len}

    def learner(self, actor: TensorDictModule):
        """TD3/SAC for ``actor`` with the twin critics; the accelerator's at ``accelerator.lr`` when set."""
        settings = self.settings()
        if actor is self.agents.accelerator and self.cfg.accelerator.lr is not None:
            settings["lr"] = self.cfg.accelerator.lr
        return make_learner(self.cfg.algo.name, actor, self.agents.critics, self.env.action_spec_unbatched.to(self.device),
                            settings=settings, compile=self.cfg.compile, cudagraphs=self.cfg.cudagraphs)

    def settings(self) -> dict:
        return {key: value for key, value in OmegaConf.to_container(self.cfg.algo).items() if key != "name" and value is not None}

    def collection_policy(self, actor: TensorDictModule):
        return make_collection_policy(self.cfg.algo.name, actor, self.env.action_spec_unbatched.to(self.device),
                                      self.settings())

    def replay(self, size: int, batch_size: int | None = None, *, windows: bool = False) -> ReplayBuffer:
        """A replay buffer of ``batch_size`` samples (a stage's own), else ``accelerator.batch_size`` sequences (a
        recurrent accelerator's), else ``algo.batch_size``. ``windows``: samples get the transformer's context
        windows, built from the storage."""
        sequences = self.agents.sequences
        batch_size = batch_size or (self.cfg.accelerator.batch_size if sequences else None) or self.cfg.algo.batch_size
        step_windows = (StreamWindows(context_len=transformer_window(self.cfg), num_streams=self.num_streams,
                                      capacity=size, device=self.device, batch_streams=self.batch_streams)
                        if windows else None)
        return make_replay_buffer(size, batch_size, self.device, sequences, step_windows)

    def resuming(self, *stages: str) -> bool:
        return self.checkpoint is not None and self.run.state.stage in stages

    def save(self, name: str, parts: dict, learners: tuple) -> None:
        payload = {"config": OmegaConf.to_container(self.cfg), "shapes": self.shapes,
                   **state_dicts(parts, self.cfg.checkpoint.save_buffer)}
        self.run.save(name, payload, modules=learners)


# ---------------------------------------------------------------------------------------------------- stages
def stage_one(x: Experiment) -> dict:
    """Algorithms 1-3: the accelerator learns online (TD3/SAC); its fresh steps fill T; every ``bc_every``
    steps the transformer is cloned on T and T is emptied; evaluations decide the switch; then
    ``stage1.bc_final_rounds`` rounds with the teacher fixed (:func:`final_bc_rounds`). Returns the
    parts stage two takes over (the accelerator's learner and the cloner)."""
    cfg, run, agents, s1 = x.cfg, x.run, x.agents, x.cfg.stage1
    learner = x.learner(agents.accelerator)
    cloner = BehaviourCloner(agents.transformer, agents.accelerator, target=s1.bc_target, lr=s1.bc_lr,
                             tau=cfg.algo.tau, epochs=s1.bc_epochs, state_noise=s1.state_noise,
                             likelihood=s1.bc_loss == "likelihood",
                             critic_value=frozen_first_critic(learner.loss) if s1.ascent_weight > 0 else None,
                             ascent_weight=s1.ascent_weight, student_dtype=getattr(torch, s1.bc_precision))
    switch = SwitchCriterion(**OmegaConf.to_container(s1.switch), random_return=run.state.random_return)
    teacher_sources = tuple(key for key in agents.accelerator.in_keys if key in RECURRENT_INPUTS) if agents.recurrent else ()
    # T is fed by the training steps (every worker's), or by separate rollouts in this process
    streams = ({"num_streams": x.num_streams, "batch_streams": x.batch_streams} if s1.bc_data == "training"
               else {"num_streams": x.env.batch_size.numel()})
    trajectory_buffer = make_trajectory_buffer(s1.bc_every, s1.bc_batch_size, x.device,
                                               context_len=transformer_window(cfg), **streams,
                                               teacher_len=sequence_length(cfg) if agents.recurrent else None,
                                               teacher_sources=teacher_sources, rounds_kept=s1.bc_rounds_kept)
    replay = x.replay(s1.buffer_size)
    parts = {"accelerator_learner": learner, "cloner": cloner, "switch": switch, "trajectory_buffer": trajectory_buffer,
             "replay": replay}
    if cfg.stage2.init_from is not None:
        load_stage_one(x, parts, cfg.stage2.init_from)
        return parts
    if x.resuming("stage1"):  # stopped inside stage one, or at the switch (then stage two starts afresh)
        load_state_dicts(parts, x.checkpoint)
    if run.state.switch_step is not None:
        return parts

    run.start_stage("stage1")
    pair_keys = agents.pair_keys()
    teacher_rollouts = bc_rollouts(x) if s1.bc_data != "training" else None
    switch_reason = None
    for step in collect_and_learn(run, x.env, x.collection_policy(agents.accelerator), learner, replay,
                                  steps=s1.steps, random_steps=s1.random_steps, frames_per_batch=cfg.frames_per_batch,
                                  updates_per_step=cfg.updates_per_step, stored_keys=replay_keys(learner.loss, x.agents.sequences),
                                  workers=x.workers):
        metrics = step.metrics
        if teacher_rollouts is None:  # Algorithm 1: fresh (window, action) pairs into T; the random phase as history
            trajectory_buffer.extend(bc_pairs(step.batch, pair_keys, windows_from_storage=True),
                                     history_only=not step.learning)
        elif step.learning and (run.state.stage_steps - s1.random_steps
                                >= (run.state.bc_env_steps // s1.bc_every + 1) * s1.bc_every):
            add_rollouts(run, trajectory_buffer, teacher_rollouts, pair_keys)
        if trajectory_buffer.new_steps >= s1.bc_every:  # Algorithm 2: a BC round on T, then T is emptied (or kept)
            metrics.update(bc_round(run, cloner, trajectory_buffer))
        run.log(metrics)
        if run.evaluation_due():
            record = x.evaluate(run, accelerator=agents.accelerator, transformer=agents.transformer_policy)
            switch_reason = switch.observe(record["accelerator_return"], record["transformer_return"])
        if run.checkpoint_due() or switch_reason:
            x.save("last", parts, (learner, cloner.loss))
        if switch_reason:
            break
    final_bc_rounds(x, parts, teacher_rollouts, pair_keys, (learner, cloner.loss))

    # the switch
    at_switch = x.evaluate(run, accelerator=agents.accelerator, transformer=agents.transformer_policy)
    run.state.switch_step = run.state.env_steps
    run.state.switch_reason = switch_reason or f"{s1.switch.rule}: reached stage1.steps"
    run.state.results["stage1"] = {key: value for key, value in at_switch.items()
                                   if key.startswith(("accelerator_", "transformer_"))}
    del parts["replay"], parts["trajectory_buffer"]  # stage two has its own replay; T is empty or unused
    x.save("stage1", parts, (learner, cloner.loss))
    x.save("last", parts, (learner, cloner.loss))
    return parts


def final_bc_rounds(x: Experiment, parts: dict, teacher_rollouts: Iterator[TensorDictBase], pair_keys: tuple[str, ...],
                    learners: tuple) -> None:
    """``stage1.bc_final_rounds`` DAgger rounds after the accelerator's last step, before the switch: the teacher
    fixed, each round ``bc_every`` steps of fresh rollouts (``bc_data``'s, counted in ``bc_env_steps``) into T and a
    BC round on it, so that a transformer whose teacher became good late catches up with it. A checkpoint after each
    round; a resumed run does the rounds it has not done."""
    run, trajectory_buffer = x.run, parts["trajectory_buffer"]
    while run.state.bc_final_rounds < x.cfg.stage1.bc_final_rounds:
        add_rollouts(run, trajectory_buffer, teacher_rollouts, pair_keys)
        metrics = bc_round(run, parts["cloner"], trajectory_buffer)
        run.state.bc_final_rounds += 1
        run.log(metrics)
        x.save("last", parts, learners)


def add_rollouts(run: Run, trajectory_buffer: ReplayBuffer | WindowedTrajectoryBuffer,
                 teacher_rollouts: Iterator[TensorDictBase], pair_keys: tuple[str, ...]) -> None:
    """The next batch of ``bc_rollouts`` (``bc_every`` env steps) into T as (window, action) pairs, counted in
    ``bc_env_steps``."""
    batch = next(teacher_rollouts)
    trajectory_buffer.extend(bc_pairs(batch, pair_keys, windows_from_storage=True))
    run.state.bc_env_steps += batch.numel()


def bc_round(run: Run, cloner: BehaviourCloner,
             trajectory_buffer: ReplayBuffer | WindowedTrajectoryBuffer) -> dict[str, float]:
    """A BC round on T (Algorithm 2; T then emptied, or kept), counted in ``bc_rounds``; its losses as ``train/``
    metrics."""
    metrics = {f"train/{name}": value for name, value in cloner.train_on(trajectory_buffer).items()}
    run.state.bc_rounds += 1
    return metrics


def bc_rollouts(x: Experiment):
    """Separate rollouts that fill T (``bc_data=evaluation``: the accelerator's deterministic ones;
    ``dagger``: the transformer's own, the accelerator's in ``stage1.dagger_teacher_share`` of the episodes),
    ``bc_every`` steps at a time."""
    s1 = x.cfg.stage1
    policy = x.agents.accelerator if s1.bc_data == "evaluation" else x.agents.transformer_policy
    if s1.bc_data == "dagger" and s1.dagger_teacher_share > 0:
        policy = EpisodeMixture(policy, x.agents.accelerator, s1.dagger_teacher_share)
    env = build_env(x.cfg, x.device, seed=x.cfg.seed + 1, extra_transforms=x.agents.env_transforms())
    return iter(Collector(env, policy, frames_per_batch=x.cfg.stage1.bc_every, total_frames=-1,
                          exploration_type=ExplorationType.DETERMINISTIC))


def load_stage_one(x: Experiment, parts: dict, path: str) -> None:
    """``stage2.init_from``: stage one's learner and cloner, and its switch record, from another run's checkpoint."""
    stage_one_checkpoint = load_checkpoint(path)
    check_checkpoint_shapes(stage_one_checkpoint.get("shapes"), x.shapes, path)
    for name in ("accelerator_learner", "cloner"):
        if name not in stage_one_checkpoint:
            raise ConfigError(f"stage2.init_from={path} holds no stage-one {name}: point it at RUN_DIR/checkpoints/stage1.pt.")
        parts[name].load_state_dict(stage_one_checkpoint[name])
    state = stage_one_checkpoint["run_state"]
    x.run.state.switch_step, x.run.state.switch_reason = state["switch_step"], state["switch_reason"]
    x.run.state.results.update(state["results"])


def stage_two(x: Experiment, stage_one_parts: dict) -> None:
    """Algorithm 4: the transformer is the actor; the accelerator's twin critics and their targets carry over
    (the hand-over, done once, when stage two starts afresh); TD3/SAC continues with a small replay buffer."""
    cfg, run, transformer = x.cfg, x.run, x.agents.transformer
    learner = x.learner(transformer)
    replay = x.replay(cfg.stage2.buffer_size, cfg.stage2.batch_size, windows=reads_windows(transformer.in_keys))
    parts = {"stage_two_learner": learner, "replay": replay}
    if x.resuming("stage2"):
        load_state_dicts(parts, x.checkpoint)
    else:
        hand_over(stage_one_parts["accelerator_learner"], stage_one_parts["cloner"], learner)
    run.start_stage("stage2")
    for step in collect_and_learn(run, x.env, x.collection_policy(x.agents.transformer_policy), learner, replay,
                                  steps=cfg.stage2.steps, random_steps=cfg.stage2.random_steps,
                                  frames_per_batch=cfg.frames_per_batch, updates_per_step=cfg.updates_per_step,
                                  stored_keys=replay_keys(learner.loss, x.agents.sequences), workers=x.workers):
        run.log(step.metrics)
        if run.evaluation_due():
            x.evaluate(run, transformer=x.agents.transformer_policy)
        if run.checkpoint_due():
            x.save("last", parts, (learner,))
    final = x.evaluate(run, transformer=x.agents.transformer_policy)
    run.state.results["stage2"] = {key: value for key, value in final.items() if key.startswith("transformer_")}
    run.state.stage = "done"
    x.save("stage2", {"stage_two_learner": learner}, (learner,))
    x.save("last", {"stage_two_learner": learner}, (learner,))


def baseline(x: Experiment, mode: str) -> None:
    """``accelerator_only`` (the accelerator's architecture) or ``transformer_only`` (the vanilla
    transformer), from scratch, for as many env steps as the accelerated run takes."""
    cfg, run = x.cfg, x.run
    actor, acting, name = ((x.agents.accelerator, x.agents.accelerator, cfg.accelerator.type) if mode == "accelerator_only"
                           else (x.agents.transformer, x.agents.transformer_policy, "transformer"))
    learner = x.learner(actor)
    replay = x.replay(cfg.baseline.buffer_size, windows=reads_windows(actor.in_keys))
    parts = {"learner": learner, "replay": replay}
    if x.resuming(mode):
        load_state_dicts(parts, x.checkpoint)
    run.start_stage(mode)
    for step in collect_and_learn(run, x.env, x.collection_policy(acting), learner, replay,
                                  steps=cfg.stage1.steps + cfg.stage2.steps, random_steps=cfg.stage1.random_steps,
                                  frames_per_batch=cfg.frames_per_batch, updates_per_step=cfg.updates_per_step,
                                  stored_keys=replay_keys(learner.loss, x.agents.sequences), workers=x.workers):
        run.log(step.metrics)
        if run.evaluation_due():
            x.evaluate(run, **{name: acting})
        if run.checkpoint_due():
            x.save("last", parts, (learner,))
    final = x.evaluate(run, **{name: acting})
    run.state.results["final"] = {"return": final[f"{name}_return"], "success": final.get(f"{name}_success")}
    run.state.stage = "done"
    x.save("final", {"learner": learner}, (learner,))
    x.save("last", {"learner": learner}, (learner,))


# ---------------------------------------------------------------------------------------------------- the run
def open_run(cfg: DictConfig, run_dir: Path | None, overrides: list[str] | None) -> tuple[DictConfig, Path, dict | None]:
    """The checked config, the run directory and, with ``resume=``, the checkpoint to continue from."""
    checkpoint = None
    if cfg.resume is not None:
        cfg, run_dir, checkpoint = open_resumed_run(validate_config(cfg), overrides)
    cfg = validate_config(cfg)
    if run_dir is None:
        raise ConfigError("no run directory: pass run_dir (the recipes use hydra.run.dir).")
    prepare_run_dir(Path(run_dir), overwrite=cfg.overwrite, resuming=checkpoint is not None)
    return cfg, Path(run_dir), checkpoint


def run_experiment(cfg: DictConfig, run_dir: Path | str | None = None, *, overrides: list[str] | None = None) -> dict:
    """Run the experiment described by ``cfg`` in ``run_dir`` (or continue the run ``cfg.resume`` names, in
    its own directory) and return the summary. ``overrides``: the command line's ``key=value`` list,
    which tells ``resume=`` which keys were asked to change. Every check on the config and the run
    directory happens before anything is built."""
    cfg, run_dir, checkpoint = open_run(cfg, run_dir, overrides)
    if checkpoint is None or checkpoint["run_state"]["stage"] is None:  # a new run, or one stopped before it started
        checkpoint = None
        truncate_metrics(run_dir, {})
        save_checkpoint(run_dir / "checkpoints" / "last.pt",  # so that resume= finds the run whenever it is stopped
                        {"config": OmegaConf.to_container(cfg), "run_state": RunState().state_dict()})
    device = resolve_device(str(cfg.device))
    seed_everything(cfg.seed)
    env = build_env(cfg, device, seed=cfg.seed)
    state_spec = env.observation_spec.get(keys.STATE, None)
    agents = Agents(cfg, env.observation_spec[keys.OBSERVATION].shape[-1], env.action_spec_unbatched.to(device), device,
                    state_dim=state_spec.shape[-1] if state_spec is not None else None)
    for transform in agents.env_transforms():  # what the agents need of the env (an LSTM's state primer)
        env.append_transform(transform)
    evaluate = Evaluator(cfg, device, agents)
    state = RunState()
    if checkpoint is not None:
        state = RunState.from_state_dict(checkpoint["run_state"])
        truncate_metrics(run_dir, state.metric_rows)
    total = cfg.stage1.random_steps + cfg.stage1.steps + cfg.stage2.steps
    with Run(run_dir, make_logger(cfg, run_dir), total, eval_every=cfg.eval.every,
             checkpoint_every=cfg.checkpoint.every, state=state, quiet=cfg.quiet) as run:
        x = Experiment(cfg, run, env, agents, evaluate, device, checkpoint, make_workers(cfg, device, env, agents))
        if checkpoint is not None:
            restore_rng_states(checkpoint["rng"])
        if run.state.random_return is None:  # the reference for the switch criterion and the summary
            run.state.random_return = evaluate.random_return()
        mode = canonical_mode(cfg.mode)
        if mode == "accelerate":
            stage_two(x, stage_one(x))
        else:
            baseline(x, mode)
        return finish(run, cfg)


def make_workers(cfg: DictConfig, device: torch.device, env: EnvBase, agents: Agents) -> Workers | None:
    """The collector workers of ``collector.*``, each building the task with the agents' env transforms (the same env
    as ``env``, of ``env.batch_size`` envs); ``None`` for one local worker (``env`` steps in this process)."""
    settings = CollectorSettings.from_config(cfg.collector)
    if settings.in_process:
        return None
    make_env = partial(build_env, cfg, device, extra_transforms=tuple(agents.env_transforms()))
    return Workers(settings, make_env, seed=cfg.seed, streams_per_worker=env.batch_size.numel())


def summarise(run: Run, cfg: DictConfig) -> dict:
    """``summary.json``: what the run was, its counters, the returns at the switch and at the end, throughput."""
    state = run.state
    final = state.results.get("final", {})
    return {"env": cfg.env.name, "seed": cfg.seed, "mode": cfg.mode, "algorithm": cfg.algo.name,
            "accelerator": cfg.accelerator.type, "pomdp": cfg.env.pomdp, "env_steps": state.env_steps,
            "bc_env_steps": state.bc_env_steps, "bc_rounds": state.bc_rounds,
            "bc_final_rounds": state.bc_final_rounds, "wall_time_s": run.wall_time(),
            "switch_step": state.switch_step, "switch_reason": state.switch_reason, "random_return": state.random_return,
            "stage1": state.results.get("stage1", {}), "stage2": state.results.get("stage2", {}),
            "final_return": final.get("return"), "final_success": final.get("success"),
            "learning_steps_per_s": run.throughput(),
            "collector": CollectorSettings.from_config(cfg.collector).summary(),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "evaluations": state.evaluations, "config": OmegaConf.to_container(cfg)}


def print_summary(summary: dict) -> None:
    rows = [("stage one, accelerator (at switch)", summary["stage1"].get("accelerator_return")),
            ("stage one, transformer (at switch)", summary["stage1"].get("transformer_return")),
            ("stage two, transformer (end)", summary["stage2"].get("transformer_return")),
            ("baseline (end)", summary.get("final_return"))]
    print(f"\n{summary['env']}  {summary['algorithm']}  accelerator={summary['accelerator']}  mode={summary['mode']}  "
          f"seed={summary['seed']}  env steps={summary['env_steps']}  wall time={summary['wall_time_s']:.0f}s  "
          f"switch at {summary['switch_step']} ({summary['switch_reason']})")
    print(f"{'evaluation return (deterministic)':<40}{'mean':>12}")
    for label, value in rows:
        if value is not None:
            print(f"{label:<40}{value:>12.1f}")


def finish(run: Run, cfg: DictConfig) -> dict:
    summary = summarise(run, cfg)
    run.close()
    run.write_json("summary.json", summary)
    plot_curves(run.state.evaluations, run.run_dir / "curves.png",
                f"{cfg.env.name} ({cfg.algo.name}, {cfg.mode}, seed {cfg.seed})", run.state.switch_step)
    print_summary(summary)
    print(f"outputs in {run.run_dir}: summary.json, curves.png, checkpoints/, metrics/")
    return summary


__all__ = ["Agents", "ConfigError", "Evaluator", "build_env", "run_experiment", "summarise"]
