"""Accelerated transformer with TD3: stage one (accelerator + behaviour cloning), the switch,
stage two (transformer fine-tuned with the accelerator's critics), and the baselines.

    python recipes/td3_accelerate.py experiment=quick
    python recipes/td3_accelerate.py experiment=paper_mujoco env=hopper seed=1
    python recipes/td3_accelerate.py mode=mlp_td3 env=hopper         # baseline: MLP TD3 from scratch
    python recipes/td3_accelerate.py resume=outputs/RUN_DIR          # continue a killed run
"""
from __future__ import annotations

import random
import resource
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.envs import ExplorationType
from torchrl.record.loggers import get_logger

from trl_accel.checkpoint import load_checkpoint, restore_rng_states
from trl_accel.config import ConfigError, check_checkpoint_shapes, resolve_device, validate_config
from trl_accel.envs import episode_limit, make_env
from trl_accel.evaluation import evaluate_policy
from trl_accel.loop import Run, online_phase
from trl_accel.modules import make_mlp_actor, make_transformer_actor, make_twin_q_critics
from trl_accel.plots import plot_curves
from trl_accel.stages import (BehaviourCloner, SwitchCriterion, TD3Learner, TD3Settings, bc_pairs, hand_over,
                              make_exploration_policy, make_trajectory_buffer)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_replay_buffer(size: int, batch_size: int, device: torch.device) -> ReplayBuffer:
    return ReplayBuffer(storage=LazyTensorStorage(size, device=device), batch_size=batch_size)


def make_logger(cfg: DictConfig, run_dir: Path):
    if cfg.logger.backend in (None, "", "none"):
        return None
    kwargs = {"project": cfg.logger.project} if cfg.logger.backend == "wandb" else {}
    return get_logger(cfg.logger.backend, logger_name=str(run_dir), experiment_name="metrics", **kwargs)


def print_summary(summary: dict) -> None:
    rows = [("stage one, accelerator (at switch)", summary["stage1"].get("accelerator_return")),
            ("stage one, transformer (at switch)", summary["stage1"].get("transformer_return")),
            ("stage two, transformer (end)", summary["stage2"].get("transformer_return")),
            ("baseline (end)", summary.get("final_return") if summary["mode"] != "accelerate" else None)]
    print(f"\n{summary['env']}  mode={summary['mode']}  seed={summary['seed']}  env steps={summary['env_steps']}  "
          f"wall time={summary['wall_time_s']:.0f}s  switch at {summary['switch_step']} ({summary['switch_reason']})")
    print(f"{'evaluation return (deterministic)':<40}{'mean':>12}")
    for label, value in rows:
        if value is not None:
            print(f"{label:<40}{value:>12.1f}")


def run_experiment(cfg: DictConfig, run_dir: Path) -> dict:
    checkpoint = None
    if cfg.resume is not None:
        validate_config(cfg)
        checkpoint = load_checkpoint(cfg.resume)
        cfg = OmegaConf.create(checkpoint["config"])
        run_dir = Path(checkpoint["run_dir"])
    validate_config(cfg)
    device = resolve_device(str(cfg.device))
    seed_everything(cfg.seed)

    # ---- environments: training, and a batched one for evaluation (one episode per entry, own seeds)
    context_len, episodes = cfg.transformer.context_len, cfg.eval.episodes
    env = make_env(cfg.env.name, context_len, device, seed=cfg.seed, max_episode_steps=cfg.env.max_episode_steps)
    eval_env = make_env(cfg.env.name, context_len, device, max_episode_steps=cfg.env.max_episode_steps, num_envs=episodes)
    eval_steps = episode_limit(cfg.env.name, cfg.env.max_episode_steps)
    action_spec = env.action_spec_unbatched.to(device)
    obs_dim = env.observation_spec["observation"].shape[-1]
    shapes = {"obs_dim": obs_dim, "action_dim": action_spec.shape[-1], "context_len": context_len}

    # ---- modules
    accelerator = make_mlp_actor(obs_dim, action_spec, cfg.accelerator.hidden_sizes).to(device)
    critics = [critic.to(device) for critic in make_twin_q_critics(obs_dim, action_spec.shape[-1], cfg.accelerator.hidden_sizes)]
    tcfg = cfg.transformer
    transformer = make_transformer_actor(obs_dim, action_spec, context_len, tcfg.d_model, tcfg.n_layers, tcfg.n_heads,
                                         tcfg.d_ff, tcfg.dropout, tcfg.positions, tcfg.n_kv_heads).to(device)
    td3 = TD3Settings(**OmegaConf.to_container(cfg.td3, resolve=True))
    stage1 = cfg.stage1

    def eval_seed(run: Run) -> int:
        return 1_000_000 + 1000 * cfg.seed + episodes * len(run.state["evaluations"])

    def evaluate(run: Run, **policies) -> dict:
        seed = eval_seed(run)
        return {f"{name}_return": evaluate_policy(eval_env, policy, eval_steps, seed)["return_mean"]
                for name, policy in policies.items()}

    total = stage1.random_steps + stage1.steps + cfg.stage2.steps
    logger = make_logger(cfg, run_dir)
    run = Run(run_dir, logger, total, cfg.eval.every, cfg.checkpoint.every,
              state=checkpoint["run_state"] if checkpoint else None, quiet=cfg.quiet)
    if checkpoint:
        restore_rng_states(checkpoint["rng"])
    if "random_return" not in run.state["results"]:  # the reference for the switch criterion and the summary
        run.state["results"]["random_return"] = evaluate_policy(eval_env, None, eval_steps, 12345)["return_mean"]
    summary_base = {"env": cfg.env.name, "seed": cfg.seed, "mode": cfg.mode, "config": OmegaConf.to_container(cfg, resolve=True)}

    def payload(**parts) -> dict:
        out = {"config": OmegaConf.to_container(cfg, resolve=True), "run_dir": str(run_dir), "shapes": shapes}
        for name, part in parts.items():
            if isinstance(part, ReplayBuffer):
                if cfg.checkpoint.save_buffer:
                    out[name] = part.state_dict()
            else:
                out[name] = part.state_dict()
        return out

    def resume_into(**parts) -> None:
        for name, part in parts.items():
            if checkpoint is not None and name in checkpoint:
                part.load_state_dict(checkpoint[name])

    if cfg.mode != "accelerate":
        # ---- baselines: MLP TD3 or vanilla transformer TD3 from scratch, same total env steps
        actor, name = (accelerator, "mlp") if cfg.mode == "mlp_td3" else (transformer, "transformer")
        learner = TD3Learner(actor, critics, action_spec, td3, compile=cfg.compile)
        replay = make_replay_buffer(cfg.baseline.buffer_size, cfg.td3.batch_size, device)
        resume_into(learner=learner, replay=replay)
        run.start_stage(cfg.mode)
        online_phase(run, env, make_exploration_policy(actor, action_spec, td3.exploration_noise), learner, replay,
                     stage1.steps + cfg.stage2.steps, stage1.random_steps, cfg.frames_per_batch,
                     evaluate=lambda: evaluate(run, **{name: actor}),
                     checkpoint_payload=lambda: payload(learner=learner, replay=replay))
        final = run.record_evaluation(evaluate(run, **{name: actor}))
        run.save("final", payload(learner=learner))
        summary = {**summary_base, "env_steps": run.state["env_steps"], "wall_time_s": run.wall_time(),
                   "switch_step": None, "switch_reason": None, "stage1": {}, "stage2": {},
                   "final_return": final[f"{name}_return"], "learning_steps_per_s": run.throughput(),
                   "evaluations": run.state["evaluations"]}
        return finish(run, summary, cfg)

    # ---- stage one (Algorithms 1 and 2): the accelerator learns by TD3; the transformer clones it
    accelerator_learner = TD3Learner(accelerator, critics, action_spec, td3, compile=cfg.compile)
    cloner = BehaviourCloner(transformer, accelerator, stage1.bc_target, stage1.bc_lr, td3.tau, stage1.bc_epochs,
                             stage1.state_noise)
    switch = SwitchCriterion(**OmegaConf.to_container(stage1.switch, resolve=True),
                             random_return=run.state["results"]["random_return"])
    trajectory_buffer = make_trajectory_buffer(stage1.bc_every, stage1.bc_batch_size, device)
    replay = make_replay_buffer(stage1.buffer_size, cfg.td3.batch_size, device)

    if cfg.stage2.init_from is not None:
        stage_one = load_checkpoint(cfg.stage2.init_from)
        check_checkpoint_shapes(stage_one["shapes"], shapes, cfg.stage2.init_from)
        accelerator_learner.load_state_dict(stage_one["accelerator_learner"])
        cloner.load_state_dict(stage_one["cloner"])
        run.state.update({k: stage_one["run_state"][k] for k in ("switch_step", "switch_reason")},
                         results={**run.state["results"], **stage_one["run_state"]["results"]})
    else:
        resume_into(accelerator_learner=accelerator_learner, cloner=cloner, switch=switch)

    stage_one_done = run.state["switch_step"] is not None
    if not stage_one_done:
        if run.state["stage"] == "stage1" and checkpoint is not None:
            resume_into(replay=replay)
        run.start_stage("stage1")
        teacher_rollouts = None
        if stage1.bc_data != "training":
            # pairs from separate rollouts: the accelerator's deterministic ones, or the transformer's (DAgger)
            rollout_policy = accelerator if stage1.bc_data == "evaluation" else transformer
            teacher_env = make_env(cfg.env.name, context_len, device, seed=cfg.seed + 1, max_episode_steps=cfg.env.max_episode_steps)
            teacher_rollouts = iter(Collector(teacher_env, rollout_policy, frames_per_batch=stage1.bc_every,
                                              total_frames=-1, exploration_type=ExplorationType.DETERMINISTIC))

        def train_transformer(batch) -> dict:
            """Fill T with fresh pairs; every bc_every steps, clone on T and clear it (Algorithm 1, line 12)."""
            if run.state["stage_steps"] <= stage1.random_steps:
                return {}
            if teacher_rollouts is None:
                trajectory_buffer.extend(bc_pairs(batch))
            elif run.state["stage_steps"] - stage1.random_steps >= (run.state["bc_env_steps"] // stage1.bc_every + 1) * stage1.bc_every:
                trajectory_buffer.extend(bc_pairs(next(teacher_rollouts)))
                run.state["bc_env_steps"] += stage1.bc_every
            if len(trajectory_buffer) >= stage1.bc_every:
                return {"train/loss_bc": cloner.train_on(trajectory_buffer)}
            return {}

        def switch_now(record: dict) -> str | None:
            return switch.observe(record["accelerator_return"], record["transformer_return"])

        reason = online_phase(run, env, make_exploration_policy(accelerator, action_spec, td3.exploration_noise),
                              accelerator_learner, replay, stage1.steps, stage1.random_steps, cfg.frames_per_batch,
                              evaluate=lambda: evaluate(run, accelerator=accelerator, transformer=transformer),
                              checkpoint_payload=lambda: payload(accelerator_learner=accelerator_learner, cloner=cloner,
                                                                 switch=switch, replay=replay),
                              after_batch=train_transformer, after_evaluation=switch_now)
        at_switch = run.record_evaluation(evaluate(run, accelerator=accelerator, transformer=transformer))
        run.state.update(switch_step=run.state["env_steps"],
                         switch_reason=reason if reason != "completed" else f"{stage1.switch.rule}: reached stage1.steps")
        run.state["results"]["stage1"] = {"accelerator_return": at_switch["accelerator_return"],
                                          "transformer_return": at_switch["transformer_return"]}
        run.save("stage1", payload(accelerator_learner=accelerator_learner, cloner=cloner, switch=switch))
        del replay

    # ---- stage two (Algorithm 4): the transformer is the actor; the accelerator's critics and targets carry over
    stage_two_learner = TD3Learner(transformer, critics, action_spec, td3, compile=cfg.compile)
    hand_over(accelerator_learner, cloner, stage_two_learner)
    stage_two_replay = make_replay_buffer(cfg.stage2.buffer_size, cfg.td3.batch_size, device)
    if run.state["stage"] == "stage2" and checkpoint is not None:
        resume_into(stage_two_learner=stage_two_learner, replay=stage_two_replay)
    run.start_stage("stage2")
    online_phase(run, env, make_exploration_policy(transformer, action_spec, td3.exploration_noise), stage_two_learner,
                 stage_two_replay, cfg.stage2.steps, cfg.stage2.random_steps, cfg.frames_per_batch,
                 evaluate=lambda: evaluate(run, transformer=transformer),
                 checkpoint_payload=lambda: payload(stage_two_learner=stage_two_learner, replay=stage_two_replay))
    final = run.record_evaluation(evaluate(run, transformer=transformer))
    run.state["results"]["stage2"] = {"transformer_return": final["transformer_return"]}
    run.save("stage2", payload(stage_two_learner=stage_two_learner))

    summary = {**summary_base, "env_steps": run.state["env_steps"], "bc_env_steps": run.state["bc_env_steps"],
               "wall_time_s": run.wall_time(), "switch_step": run.state["switch_step"],
               "switch_reason": run.state["switch_reason"], "random_return": run.state["results"]["random_return"],
               "stage1": run.state["results"].get("stage1", {}), "stage2": run.state["results"]["stage2"],
               "learning_steps_per_s": run.throughput(), "evaluations": run.state["evaluations"]}
    return finish(run, summary, cfg)


def finish(run: Run, summary: dict, cfg: DictConfig) -> dict:
    run.state["stage"] = "done"
    summary["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run.close()
    run.write_json("summary.json", summary)
    plot_curves(run.state["evaluations"], run.run_dir / "curves.png", f"{cfg.env.name} ({cfg.mode}, seed {cfg.seed})",
                run.state["switch_step"])
    print_summary(summary)
    print(f"outputs in {run.run_dir}: summary.json, curves.png, checkpoints/, metrics/")
    return summary


@hydra.main(config_path="config", config_name="td3_accelerate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        run_experiment(cfg, Path(HydraConfig.get().runtime.output_dir))
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
