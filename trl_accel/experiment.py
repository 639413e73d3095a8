"""One experiment, read top to bottom: build -> stage one (accelerator + behaviour cloning) -> the
switch -> stage two (transformer fine-tuned with the accelerator's critics) -> summary; or a
from-scratch baseline. ``recipes/td3_accelerate.py`` and ``recipes/sac_accelerate.py`` call
:func:`run_experiment` with their Hydra config (``cfg.algorithm`` is ``td3`` or ``sac``).
"""
from __future__ import annotations

import random
import resource
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tensordict.nn import TensorDictModule
from torchrl.collectors import Collector
from torchrl.data import ReplayBuffer, TensorSpec
from torchrl.envs import EnvBase, ExplorationType
from torchrl.record.loggers import get_logger

from trl_accel import keys
from trl_accel.checkpoint import load_checkpoint, restore_rng_states
from trl_accel.config import ConfigError, canonical_mode, check_checkpoint_shapes, resolve_device, validate_config
from trl_accel.envs import episode_limit, make_env
from trl_accel.envs.maniskill import default_max_episode_steps, is_maniskill_config, make_maniskill_training_env
from trl_accel.evaluation import evaluate_policy
from trl_accel.loop import Run, online_phase
from trl_accel.modules import make_mlp_actor, make_transformer_actor, make_twin_q_critics
from trl_accel.modules.encoders import PixelEncoder
from trl_accel.modules.lstm import make_lstm_actor, make_twin_lstm_q_critics, recurrent_state_primer
from trl_accel.modules.pixels import make_pixel_mlp_actor, make_pixel_twin_q_critics
from trl_accel.plots import plot_curves
from trl_accel.stages import BehaviourCloner, SwitchCriterion, bc_pairs, hand_over, make_trajectory_buffer
from trl_accel.stages.ascent import frozen_first_critic
from trl_accel.stages.learners import make_collection_policy, make_learner
from trl_accel.stages.sequences import SequenceSettings, make_replay_buffer


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
    ``cfg.algorithm``.

    ``sequences`` is set when the critics are recurrent: replay then samples sequences. The
    transformer declares the critics' extra inputs (``is_init`` of a recurrent critic, ``pixels`` of a
    pixel critic) so that ``TD3Loss`` passes them on. With pixels every module has its own encoder.
    """

    def __init__(self, cfg: DictConfig, obs_dim: int, action_spec: TensorSpec, device: torch.device):
        stochastic = cfg.algorithm == "sac"
        action_dim = action_spec.shape[-1]
        acc = cfg.accelerator
        self.recurrent = acc.type == "lstm"
        self.pixels = cfg.env.get("obs_mode") == "rgb"
        self.sequences, critic_keys, frame_encoder = None, (), None
        if self.recurrent:
            self.accelerator = make_lstm_actor(obs_dim, action_spec, acc.hidden_size, acc.hidden_sizes, stochastic)
            self.critics = make_twin_lstm_q_critics(obs_dim, action_dim, acc.hidden_size, acc.hidden_sizes)
            self.sequences = SequenceSettings(acc.seq_len, acc.burn_in)
            critic_keys = (keys.IS_INIT,)
        elif self.pixels:
            size, features = cfg.env.image_size, cfg.encoder.feature_dim
            self.accelerator = make_pixel_mlp_actor(obs_dim, action_spec, acc.hidden_sizes, size, features, stochastic)
            self.critics = make_pixel_twin_q_critics(obs_dim, action_dim, acc.hidden_sizes, size, features)
            critic_keys, frame_encoder = (keys.PIXELS,), PixelEncoder(size, features)
        else:
            self.accelerator = make_mlp_actor(obs_dim, action_spec, acc.hidden_sizes, stochastic)
            self.critics = make_twin_q_critics(obs_dim, action_dim, acc.hidden_sizes)
        t = cfg.transformer
        self.transformer = make_transformer_actor(obs_dim, action_spec, t.context_len, t.d_model, t.n_layers, t.n_heads,
                                                  t.d_ff, t.dropout, t.positions, t.n_kv_heads, stochastic,
                                                  critic_keys=critic_keys, frame_encoder=frame_encoder)
        self.accelerator.to(device)
        self.transformer.to(device)
        self.critics = [critic.to(device) for critic in self.critics]

    def env_transforms(self) -> list:
        """What the envs need for these agents: the LSTM actor's recurrent-state primer."""
        return [recurrent_state_primer(self.accelerator)] if self.recurrent else []

    def window_keys(self) -> tuple:
        """The window entries (current and next) that only the transformer reads."""
        keys = [key for key in (keys.OBSERVATION_WINDOW, keys.WINDOW_MASK, keys.PIXELS_WINDOW) if key not in self.accelerator.in_keys]
        return (*keys, *(("next", key) for key in keys))

    def pair_keys(self) -> tuple:
        """What a pair in T holds: the transformer's inputs, the accelerator's (to label it) and the action."""
        keys = [*self.transformer.in_keys, *self.accelerator.in_keys, keys.ACTION]
        return tuple(dict.fromkeys(key for key in keys if isinstance(key, str)))


def build_env(cfg: DictConfig, device: torch.device, seed: int | None = None, num_envs: int | None = None,
              extra_transforms: list = ()) -> EnvBase:
    """The task of ``cfg.env`` with the window transforms: a gymnasium task (``num_envs`` copies, 1 by
    default), or a ManiSkill task (``num_envs`` parallel envs, ``env.num_envs`` by default)."""
    if is_maniskill_config(cfg.env):
        e = cfg.env
        env = make_maniskill_training_env(e.name, num_envs or e.num_envs, cfg.transformer.context_len, e.obs_mode,
                                          sim_backend=e.sim_backend, control_mode=e.control_mode, device=device,
                                          seed=seed, max_episode_steps=e.max_episode_steps, image_size=e.image_size)
    else:
        env = make_env(cfg.env.name, cfg.transformer.context_len, device, seed=seed,
                       max_episode_steps=cfg.env.max_episode_steps, num_envs=num_envs or 1, pomdp=cfg.env.get("pomdp"))
    for transform in extra_transforms:
        env.append_transform(transform.clone())
    return env


def episode_steps(cfg: DictConfig) -> int:
    if is_maniskill_config(cfg.env):
        return cfg.env.max_episode_steps or default_max_episode_steps(cfg.env.name)
    return episode_limit(cfg.env.name, cfg.env.max_episode_steps)


def run_experiment(cfg: DictConfig, run_dir: Path) -> dict:
    """Run (or resume) the experiment described by ``cfg``; writes its outputs in ``run_dir`` and returns the summary."""
    checkpoint = None
    if cfg.resume is not None:
        validate_config(cfg)
        checkpoint = load_checkpoint(cfg.resume)
        cfg = OmegaConf.create(checkpoint["config"])
        run_dir = Path(checkpoint["run_dir"])
    validate_config(cfg)
    device = resolve_device(str(cfg.device))
    seed_everything(cfg.seed)
    mode, algorithm = canonical_mode(cfg.mode), cfg.algorithm
    settings = OmegaConf.to_container(cfg[algorithm], resolve=True)
    batch_size = settings["batch_size"]

    # ---- environments: training, and a batched one for evaluation (one episode per entry, own seeds)
    env = build_env(cfg, device, seed=cfg.seed)
    action_spec = env.action_spec_unbatched.to(device)
    obs_dim = env.observation_spec["observation"].shape[-1]
    agents = Agents(cfg, obs_dim, action_spec, device)
    accelerator, critics, transformer = agents.accelerator, agents.critics, agents.transformer
    for transform in agents.env_transforms():  # what the agents need of the env (an LSTM's state primer)
        env.append_transform(transform)
    episodes = cfg.eval.episodes
    eval_env = build_env(cfg, device, num_envs=episodes, extra_transforms=agents.env_transforms())
    eval_steps = episode_steps(cfg)
    shapes = {"obs_dim": obs_dim, "action_dim": action_spec.shape[-1], "context_len": cfg.transformer.context_len}
    stage1 = cfg.stage1

    def evaluate(run: Run, **policies) -> dict:
        """``<name>_return`` per policy, and ``<name>_success`` (success_once) and
        ``<name>_success_at_end`` on tasks that report success."""
        seed = 1_000_000 + 1000 * cfg.seed + episodes * len(run.state["evaluations"])
        record = {}
        for name, policy in policies.items():
            result = evaluate_policy(eval_env, policy, eval_steps, seed)
            record[f"{name}_return"] = result["return_mean"]
            if "success_once" in result:
                record[f"{name}_success"] = result["success_once"]
                record[f"{name}_success_at_end"] = result["success_at_end"]
        return record

    total = stage1.random_steps + stage1.steps + cfg.stage2.steps
    run = Run(run_dir, make_logger(cfg, run_dir), total, cfg.eval.every, cfg.checkpoint.every,
              state=checkpoint["run_state"] if checkpoint else None, quiet=cfg.quiet)
    if checkpoint:
        restore_rng_states(checkpoint["rng"])
    if "random_return" not in run.state["results"]:  # the reference for the switch criterion and the summary
        run.state["results"]["random_return"] = evaluate_policy(eval_env, None, eval_steps, 12345)["return_mean"]
    summary_base = {"env": cfg.env.name, "seed": cfg.seed, "mode": cfg.mode, "algorithm": algorithm,
                    "accelerator": cfg.accelerator.type, "pomdp": cfg.env.get("pomdp"),
                    "config": OmegaConf.to_container(cfg, resolve=True)}

    def payload(**parts) -> dict:
        out = {"config": OmegaConf.to_container(cfg, resolve=True), "run_dir": str(run_dir), "shapes": shapes}
        for name, part in parts.items():
            if not isinstance(part, ReplayBuffer) or cfg.checkpoint.save_buffer:
                out[name] = part.state_dict()
        return out

    def resume_into(**parts) -> None:
        for name, part in parts.items():
            if checkpoint is not None and name in checkpoint:
                part.load_state_dict(checkpoint[name])

    def learner_for(actor: TensorDictModule):
        return make_learner(algorithm, actor, critics, action_spec, settings, compile=cfg.compile)

    def collection_policy(actor: TensorDictModule):
        return make_collection_policy(algorithm, actor, action_spec, settings)

    if mode != "accelerate":
        # ---- baselines: the accelerator's architecture or the vanilla transformer, from scratch, same total steps
        actor, name = (accelerator, cfg.accelerator.type) if mode == "accelerator_only" else (transformer, "transformer")
        learner = learner_for(actor)
        replay = make_replay_buffer(cfg.baseline.buffer_size, batch_size, device, agents.sequences)
        resume_into(learner=learner, replay=replay)
        run.start_stage(mode)
        online_phase(run, env, collection_policy(actor), learner, replay, stage1.steps + cfg.stage2.steps,
                     stage1.random_steps, cfg.frames_per_batch, evaluate=lambda: evaluate(run, **{name: actor}),
                     checkpoint_payload=lambda: payload(learner=learner, replay=replay),
                     updates_per_step=cfg.updates_per_step)
        final = run.record_evaluation(evaluate(run, **{name: actor}))
        run.save("final", payload(learner=learner))
        summary = {**summary_base, "env_steps": run.state["env_steps"], "wall_time_s": run.wall_time(),
                   "switch_step": None, "switch_reason": None, "random_return": run.state["results"]["random_return"],
                   "stage1": {}, "stage2": {}, "final_return": final[f"{name}_return"],
                   "final_success": final.get(f"{name}_success"),
                   "learning_steps_per_s": run.throughput(), "evaluations": run.state["evaluations"]}
        return finish(run, summary, cfg)

    # ---- stage one (Algorithms 1-3): the accelerator learns online; the transformer clones it
    accelerator_learner = learner_for(accelerator)
    ascent = stage1.ascent_weight > 0
    cloner = BehaviourCloner(transformer, accelerator, stage1.bc_target, stage1.bc_lr, settings["tau"], stage1.bc_epochs,
                             stage1.state_noise, likelihood=stage1.bc_loss == "likelihood",
                             critic_value=frozen_first_critic(accelerator_learner.loss) if ascent else None,
                             ascent_weight=stage1.ascent_weight)
    switch = SwitchCriterion(**OmegaConf.to_container(stage1.switch, resolve=True),
                             random_return=run.state["results"]["random_return"])
    trajectory_buffer = make_trajectory_buffer(stage1.bc_every, stage1.bc_batch_size, device)
    replay = make_replay_buffer(stage1.buffer_size, batch_size, device, agents.sequences)
    pair_keys = agents.pair_keys()

    if cfg.stage2.init_from is not None:
        stage_one = load_checkpoint(cfg.stage2.init_from)
        check_checkpoint_shapes(stage_one["shapes"], shapes, cfg.stage2.init_from)
        accelerator_learner.load_state_dict(stage_one["accelerator_learner"])
        cloner.load_state_dict(stage_one["cloner"])
        run.state.update({k: stage_one["run_state"][k] for k in ("switch_step", "switch_reason")},
                         results={**run.state["results"], **stage_one["run_state"]["results"]})
    else:
        resume_into(accelerator_learner=accelerator_learner, cloner=cloner, switch=switch)

    if run.state["switch_step"] is None:
        if run.state["stage"] == "stage1" and checkpoint is not None:
            resume_into(replay=replay)
        run.start_stage("stage1")
        teacher_rollouts = None
        if stage1.bc_data != "training":
            # pairs from separate rollouts: the accelerator's deterministic ones, or the transformer's (DAgger)
            rollout_policy = accelerator if stage1.bc_data == "evaluation" else transformer
            teacher_env = build_env(cfg, device, seed=cfg.seed + 1, extra_transforms=agents.env_transforms())
            teacher_rollouts = iter(Collector(teacher_env, rollout_policy, frames_per_batch=stage1.bc_every,
                                              total_frames=-1, exploration_type=ExplorationType.DETERMINISTIC))

        def train_transformer(batch) -> dict:
            """Fill T with fresh pairs; every bc_every steps, clone on T and clear it (Algorithm 1, line 12)."""
            if run.state["stage_steps"] <= stage1.random_steps:
                return {}
            if teacher_rollouts is None:
                trajectory_buffer.extend(bc_pairs(batch, pair_keys))
            elif run.state["stage_steps"] - stage1.random_steps >= (run.state["bc_env_steps"] // stage1.bc_every + 1) * stage1.bc_every:
                trajectory_buffer.extend(bc_pairs(next(teacher_rollouts), pair_keys))
                run.state["bc_env_steps"] += stage1.bc_every
            if len(trajectory_buffer) >= stage1.bc_every:
                return {f"train/{name}": value for name, value in cloner.train_on(trajectory_buffer).items()}
            return {}

        def switch_now(record: dict) -> str | None:
            return switch.observe(record["accelerator_return"], record["transformer_return"])

        reason = online_phase(run, env, collection_policy(accelerator), accelerator_learner, replay, stage1.steps,
                              stage1.random_steps, cfg.frames_per_batch,
                              evaluate=lambda: evaluate(run, accelerator=accelerator, transformer=transformer),
                              checkpoint_payload=lambda: payload(accelerator_learner=accelerator_learner, cloner=cloner,
                                                                 switch=switch, replay=replay),
                              after_batch=train_transformer, after_evaluation=switch_now,
                              updates_per_step=cfg.updates_per_step, unstored_keys=agents.window_keys())
        at_switch = run.record_evaluation(evaluate(run, accelerator=accelerator, transformer=transformer))
        run.state.update(switch_step=run.state["env_steps"],
                         switch_reason=reason if reason != "completed" else f"{stage1.switch.rule}: reached stage1.steps")
        run.state["results"]["stage1"] = {key: at_switch[key] for key in at_switch
                                          if key.startswith(("accelerator_", "transformer_"))}
        run.save("stage1", payload(accelerator_learner=accelerator_learner, cloner=cloner, switch=switch))
        del replay

    # ---- stage two (Algorithm 4): the transformer is the actor; the accelerator's critics and targets carry over
    stage_two_learner = learner_for(transformer)
    hand_over(accelerator_learner, cloner, stage_two_learner)
    stage_two_replay = make_replay_buffer(cfg.stage2.buffer_size, cfg.stage2.get("batch_size") or batch_size, device,
                                          agents.sequences)
    if run.state["stage"] == "stage2" and checkpoint is not None:
        resume_into(stage_two_learner=stage_two_learner, replay=stage_two_replay)
    run.start_stage("stage2")
    online_phase(run, env, collection_policy(transformer), stage_two_learner, stage_two_replay, cfg.stage2.steps,
                 cfg.stage2.random_steps, cfg.frames_per_batch, evaluate=lambda: evaluate(run, transformer=transformer),
                 checkpoint_payload=lambda: payload(stage_two_learner=stage_two_learner, replay=stage_two_replay),
                 updates_per_step=cfg.updates_per_step)
    final = run.record_evaluation(evaluate(run, transformer=transformer))
    run.state["results"]["stage2"] = {key: final[key] for key in final if key.startswith("transformer_")}
    run.save("stage2", payload(stage_two_learner=stage_two_learner))

    summary = {**summary_base, "env_steps": run.state["env_steps"], "bc_env_steps": run.state["bc_env_steps"],
               "wall_time_s": run.wall_time(), "switch_step": run.state["switch_step"],
               "switch_reason": run.state["switch_reason"], "random_return": run.state["results"]["random_return"],
               "stage1": run.state["results"].get("stage1", {}), "stage2": run.state["results"]["stage2"],
               "learning_steps_per_s": run.throughput(), "evaluations": run.state["evaluations"]}
    return finish(run, summary, cfg)


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


def finish(run: Run, summary: dict, cfg: DictConfig) -> dict:
    run.state["stage"] = "done"
    summary["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run.close()
    run.write_json("summary.json", summary)
    plot_curves(run.state["evaluations"], run.run_dir / "curves.png",
                f"{cfg.env.name} ({cfg.algorithm}, {cfg.mode}, seed {cfg.seed})", run.state["switch_step"])
    print_summary(summary)
    print(f"outputs in {run.run_dir}: summary.json, curves.png, checkpoints/, metrics/")
    return summary


__all__ = ["Agents", "ConfigError", "build_env", "run_experiment"]
