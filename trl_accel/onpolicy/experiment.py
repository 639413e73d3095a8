"""The on-policy recipe's run: PPO of a transformer (or a GRU, or an MLP) over whole rollouts, or the accelerated
version (stage one: a GRU accelerator by PPO teaches the transformer by behaviour cloning on each fresh rollout;
stage two: the transformer by PPO, with the accelerator's value network or its own value head as the critic).

Each iteration: one rollout of ``num_envs`` agents for ``rollout_len`` steps with the step-mode policy (KV cache,
GRU state), TorchRL's GAE over it, then ``ppo.epochs`` passes of ``ClipPPOLoss`` over minibatches of whole
trajectories. Counters, evaluations, checkpoints and ``resume=`` are :class:`~trl_accel.loop.Run`'s; a resumed run
starts fresh episodes at its checkpoint (the episodes in flight are not saved; with rollouts of whole episodes, the
default, none is in flight between rollouts).
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tensordict import TensorDictBase
from torchrl.envs import TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from trl_accel import keys
from trl_accel.checkpoint import restore_rng_states, save_checkpoint
from trl_accel.config import ConfigError, resolve_device
from trl_accel.experiment import make_logger, seed_everything
from trl_accel.loop import Run, RunState
from trl_accel.modules.trajectory import (
    LOGITS,
    TrajectoryActorCritic,
    make_trajectory_actor_critic,
)
from trl_accel.onpolicy.config import rollout_length, validate_ppo_config
from trl_accel.onpolicy.envs import episode_length, make_onpolicy_env
from trl_accel.onpolicy.loss import make_ppo_loss, ppo_update, trajectory_minibatches
from trl_accel.onpolicy.rollout import add_advantages, collect_rollout, episode_returns
from trl_accel.plots import plot_curves
from trl_accel.run_dir import (
    apply_resumable_overrides,
    open_unfinished_run,
    overridden_keys,
    prepare_run_dir,
    truncate_metrics,
)
from trl_accel.stages.switch import SwitchCriterion

#: Keys that ``resume=`` may change: the schedule and how the run is shown.
RESUMABLE_KEYS = ("env_steps", "eval.every", "checkpoint.every", "quiet", "device")
TEACHER_LOGITS, TEACHER_LOC, TEACHER_SCALE = "teacher_logits", "teacher_loc", "teacher_scale"


# ------------------------------------------------------------------------------------------------ building
def build_model(network: DictConfig, value: DictConfig, env: TransformedEnv, rollout_len: int,
                device: torch.device) -> TrajectoryActorCritic:
    """The actor-critic ``network`` describes (``policy.*`` or ``accelerate.teacher``) for ``env``; a transformer
    attends over ``network.context_len`` steps, or the whole rollout when it is null."""
    context_len = network.get("context_len") or rollout_len
    bins = value.bins if value.loss == "hl_gauss" else 0
    return make_trajectory_actor_critic(
        env.observation_spec[keys.OBSERVATION].shape[-1], env.action_spec_unbatched.to(device),
        core=network.get("kind", "gru"), d_model=network.d_model, tokens=tuple(network.tokens),
        context_len=max(2, context_len), n_layers=network.n_layers, n_heads=network.get("n_heads", 4),
        n_kv_heads=network.get("n_kv_heads", 1), d_ff=network.d_ff, value_hidden=value.hidden, value_bins=bins,
        value_min=value.min, value_max=value.max).to(device)


def make_optimizer(parameters, ppo: DictConfig):
    """AdamW and a linear warm-up over ``ppo.warmup_updates`` gradient steps."""
    optimizer = torch.optim.AdamW(parameters, lr=ppo.lr, weight_decay=ppo.weight_decay)
    warmup = ppo.warmup_updates
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0)
    return optimizer, scheduler


class Learner:
    """One PPO learner: the actor's and critic's models, ``ClipPPOLoss``, optimiser and schedule."""

    def __init__(self, cfg: DictConfig, actor_model: TrajectoryActorCritic, critic_model: TrajectoryActorCritic):
        self.cfg, self.actor_model, self.critic_model = cfg, actor_model, critic_model
        shared = critic_model is actor_model
        support = critic_model.value_head.support if cfg.value.loss == "hl_gauss" else None
        self.loss = make_ppo_loss(actor_model.actor(), critic_model.critic(reuse_features=shared),
                                  clip_epsilon=cfg.ppo.clip_epsilon, entropy_coeff=cfg.ppo.entropy_coeff,
                                  critic_coeff=cfg.ppo.critic_coeff, normalize_advantage=cfg.ppo.normalize_advantage,
                                  value_loss=cfg.value.loss, support=support)
        parameters = list(actor_model.parameters()) + ([] if shared else list(critic_model.parameters()))
        self.optimizer, self.scheduler = make_optimizer(parameters, cfg.ppo)
        self.policy = actor_model.rollout_policy(value_from=None if shared else critic_model)

    def update(self, rollout: TensorDictBase) -> dict[str, float]:
        return ppo_update(self.loss, self.optimizer, self.scheduler, rollout, epochs=self.cfg.ppo.epochs,
                          minibatches=self.cfg.ppo.minibatches, max_grad_norm=self.cfg.ppo.max_grad_norm)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


class BehaviourCloning:
    """Stage one's student update: the transformer matches the accelerator's action distribution on its rollout.

    Discrete actions: the KL divergence from the accelerator's categorical (its ``logits``, stored by the rollout)
    to the transformer's; continuous: the squared error of the tanh-normal's ``loc`` and log ``scale``. The student
    reads the rollout's tokens (the accelerator's actions as previous actions) with memory from the rollout's start."""

    def __init__(self, cfg: DictConfig, student: TrajectoryActorCritic):
        self.cfg, self.student = cfg, student
        self.distribution = student.distribution_params()
        self.optimizer = torch.optim.AdamW(student.parameters(), lr=cfg.accelerate.bc_lr, weight_decay=cfg.ppo.weight_decay)

    def loss(self, batch: TensorDictBase) -> torch.Tensor:
        out = self.distribution(batch.clone(False))
        if self.student.discrete:
            teacher = F.log_softmax(batch.get(TEACHER_LOGITS), -1)
            return F.kl_div(F.log_softmax(out.get(LOGITS), -1), teacher, log_target=True, reduction="none").sum(-1).mean()
        return (F.mse_loss(out.get(keys.LOC), batch.get(TEACHER_LOC))
                + F.mse_loss(out.get(keys.SCALE).log(), batch.get(TEACHER_SCALE).log()))

    def update(self, rollout: TensorDictBase) -> dict[str, float]:
        teacher = ({TEACHER_LOGITS: LOGITS} if self.student.discrete
                   else {TEACHER_LOC: keys.LOC, TEACHER_SCALE: keys.SCALE})
        pairs = rollout.select(*self.student.token_keys, keys.STEP_COUNT, keys.IS_INIT)
        for name, key in teacher.items():
            pairs.set(name, rollout.get(key))
        losses = []
        for _ in range(self.cfg.accelerate.bc_epochs):
            for batch in trajectory_minibatches(pairs, self.cfg.ppo.minibatches):
                loss = self.loss(batch)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.cfg.ppo.max_grad_norm)
                self.optimizer.step()
                losses.append(loss.detach())
        return {"bc_loss": torch.stack(losses).mean().item()}


# ------------------------------------------------------------------------------------------------ evaluation
class Evaluator:
    """Mean return (and success at the episode's last step, on tasks that report it) of a policy over the first
    episode of each of the ``eval.episodes`` evaluation envs: a fixed set of episodes (the evaluation env reseeded
    with ``eval.seed`` each time) with a fixed stream of action samples, the same for every run, evaluation and
    policy. An episode that ends early (some POPGym tasks) is counted up to its end."""

    def __init__(self, cfg: DictConfig, env: TransformedEnv):
        self.env, self.seed, self.steps = env, int(cfg.eval.seed), episode_length(cfg.env)

    @torch.no_grad()
    def __call__(self, policy) -> dict[str, float]:
        env = self.env
        env.set_seed(self.seed)
        carry = env.reset()
        total = torch.zeros(env.batch_size[0], device=env.device)
        running = torch.ones_like(total, dtype=torch.bool)  # until the env's first episode ends
        success = torch.zeros_like(total)
        devices = [env.device] if env.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), set_exploration_type(ExplorationType.RANDOM):
            torch.manual_seed(self.seed)
            for _ in range(self.steps):
                step, carry = env.step_and_maybe_reset(policy(carry))
                total += step.get(("next", keys.REWARD))[:, 0] * running
                done = step.get(("next", keys.DONE))[:, 0]
                if ("next", keys.SUCCESS) in step.keys(True):
                    success = torch.where(running & done, step.get(("next", keys.SUCCESS))[:, 0].float(), success)
                running &= ~done
                if not running.any():
                    break
        result = {"return": total.mean().item()}
        if ("next", keys.SUCCESS) in step.keys(True):
            result["success"] = success.mean().item()
        return result

    def random_policy(self):
        spec = self.env.full_action_spec[keys.ACTION]
        return lambda td: td.set(keys.ACTION, spec.rand())


# ------------------------------------------------------------------------------------------------ run directory
def open_ppo_run(cfg: DictConfig, run_dir: Path | None, overrides: list[str] | None):
    """The checked config, run directory and (with ``resume=``) the checkpoint to continue from."""
    checkpoint = None
    if cfg.resume is not None:
        run_dir, checkpoint, stored = open_unfinished_run(str(cfg.resume))
        state = checkpoint["run_state"]
        apply_resumable_overrides(stored, cfg, overridden_keys(overrides or []), RESUMABLE_KEYS)
        if stored.env_steps < state["env_steps"]:
            raise ConfigError(f"resume with env_steps={stored.env_steps}: the run has already done {state['env_steps']}.")
        stored.resume, stored.overwrite = str(cfg.resume), False
        cfg = stored
    cfg = validate_ppo_config(cfg)
    if run_dir is None:
        raise ConfigError("no run directory: pass run_dir (the recipe uses hydra.run.dir).")
    prepare_run_dir(Path(run_dir), overwrite=cfg.overwrite, resuming=checkpoint is not None)
    return cfg, Path(run_dir), checkpoint


# ------------------------------------------------------------------------------------------------ the run
class OnPolicyExperiment:
    """The envs, models, learners and the loop of one run (see the module docstring)."""

    def __init__(self, cfg: DictConfig, run: Run, device: torch.device, checkpoint: dict | None):
        self.cfg, self.run, self.device = cfg, run, device
        self.rollout_len = rollout_length(cfg)
        self.env = make_onpolicy_env(cfg.env, num_envs=cfg.num_envs, seed=cfg.seed, device=device)
        eval_env = make_onpolicy_env(cfg.env, num_envs=cfg.eval.episodes, seed=cfg.eval.seed, device=device)
        self.model = build_model(cfg.policy, cfg.value, self.env, self.rollout_len, device)
        self.teacher = (build_model(cfg.accelerate.teacher, cfg.value, self.env, self.rollout_len, device)
                        if cfg.mode == "accelerate" else None)
        for model in (self.model, self.teacher):
            for env in (self.env, eval_env):
                for primer in model.env_primers() if model is not None else ():
                    env.append_transform(primer)
        #: The memory every primer on the env carries (the acting model's and, in accelerated runs, the other's):
        #: never stored in a rollout (a primer copies a memory no module writes into every step's ``next``).
        self.memory_keys = tuple(dict.fromkeys(key for model in (self.model, self.teacher) if model is not None
                                               for key in model.memory_keys))
        self.evaluate = Evaluator(cfg, eval_env)
        self.bc = BehaviourCloning(cfg, self.model) if self.teacher is not None else None
        self.learner = self._learner(run.state.stage)
        self.switch = (SwitchCriterion(**OmegaConf.to_container(cfg.accelerate.switch), random_return=0.0)
                       if self.teacher is not None else None)
        if checkpoint is not None and "model" in checkpoint:
            self.model.load_state_dict(checkpoint["model"])
            if self.teacher is not None:
                self.teacher.load_state_dict(checkpoint["teacher"])
                self.bc.optimizer.load_state_dict(checkpoint["bc_optimizer"])
                self.switch.load_state_dict(checkpoint["switch"])
            self.learner.load_state_dict(checkpoint["learner"])
            self.env.set_seed(cfg.seed + 1 + run.state.env_steps)  # fresh episodes after a resume
        self.carry = self.env.reset()

    @property
    def name(self) -> str:
        return self.cfg.policy.kind

    def _learner(self, stage: str | None) -> Learner:
        if self.teacher is None:
            return Learner(self.cfg, self.model, self.model)
        if stage in (None, "stage1"):
            return Learner(self.cfg, self.teacher, self.teacher)
        critic = self.teacher if self.cfg.accelerate.critic == "accelerator" else self.model
        return Learner(self.cfg, self.model, critic)

    def evaluation(self) -> dict[str, float | None]:
        with self.run.off_the_clock():
            if self.teacher is None:
                result = self.evaluate(self.model.rollout_policy())
                return {f"{self.name}_return": result["return"], f"{self.name}_success": result.get("success")}
            record = {}
            if self.run.state.stage == "stage1":
                teacher = self.evaluate(self.teacher.rollout_policy())
                record |= {"accelerator_return": teacher["return"], "accelerator_success": teacher.get("success")}
            student = self.evaluate(self.model.rollout_policy())
            return record | {"transformer_return": student["return"], "transformer_success": student.get("success")}

    def evaluation_at_this_step(self) -> dict:
        """The evaluation record of the current env step: the scheduled one if it just ran, else a new one."""
        records = self.run.state.evaluations
        if records and records[-1]["env_steps"] == self.run.state.env_steps and records[-1]["stage"] == self.run.state.stage:
            return records[-1]
        return self.run.record_evaluation(self.evaluation())

    def iterate(self, bc: bool) -> None:
        """One rollout, its advantages and the PPO update (and, in stage one, the student's BC on it)."""
        run, learner = self.run, self.learner
        started = time.perf_counter()
        rollout, self.carry, bootstrap = collect_rollout(self.env, learner.policy, self.carry, self.rollout_len,
                                                         memory_keys=self.memory_keys)
        add_advantages(rollout, bootstrap, gamma=self.cfg.ppo.gamma, lmbda=self.cfg.ppo.lmbda)
        metrics = learner.update(rollout)
        if bc:
            metrics |= self.bc.update(rollout)
        frames = rollout.numel()
        run.add_learning_time(frames, time.perf_counter() - started)
        run.advance(frames)
        returns = episode_returns(rollout)
        if returns.numel():
            metrics["episode_return"] = returns.mean().item()
        metrics["lr"] = learner.scheduler.get_last_lr()[0]
        run.log({f"train/{name}": value for name, value in metrics.items()})

    def payload(self) -> dict:
        out = {"config": OmegaConf.to_container(self.cfg), "model": self.model.state_dict(),
               "learner": self.learner.state_dict()}
        if self.teacher is not None:
            out |= {"teacher": self.teacher.state_dict(), "bc_optimizer": self.bc.optimizer.state_dict(),
                    "switch": self.switch.state_dict()}
        return out

    def stage(self, stage: str, until: int, *, bc: bool = False) -> str | None:
        """Iterate until ``until`` env steps; in stage one, until the switch criterion says so (its reason)."""
        run = self.run
        run.start_stage(stage)
        while run.state.env_steps < until:
            self.iterate(bc)
            reason = None
            if run.evaluation_due():
                record = run.record_evaluation(self.evaluation())
                if stage == "stage1":
                    self.switch.random_return = run.state.random_return
                    reason = self.switch.observe(record["accelerator_return"], record["transformer_return"])
            if run.checkpoint_due():
                run.save("last", self.payload(), modules=(self.model,))
            if reason is not None:
                return reason
        return None

    def __call__(self) -> None:
        cfg, run = self.cfg, self.run
        if self.teacher is None:
            self.stage("scratch", cfg.env_steps)
        else:
            if run.state.stage in (None, "stage1"):
                reason = self.stage("stage1", cfg.accelerate.switch_steps, bc=True)
                run.state.switch_step = run.state.env_steps
                run.state.switch_reason = reason or f"accelerate.switch_steps={cfg.accelerate.switch_steps}"
                run.state.results["stage1"] = self.evaluation_at_this_step()
                self.learner = self._learner("stage2")
                run.start_stage("stage2")
                payload = self.payload()
                save_checkpoint(run.run_dir / "checkpoints" / "stage1.pt",  # the switch, kept
                                {**payload, "run_state": run.state.state_dict()})
                run.save("last", payload, modules=(self.model,))  # where a resume continues
            self.stage("stage2", cfg.env_steps)
        final = self.evaluation_at_this_step()
        key = f"{self.name}_return"
        run.state.results["final"] = {"return": final[key], "success": final.get(key.replace("_return", "_success"))}
        run.state.stage = "done"
        run.save("last", self.payload(), modules=(self.model,))


def summarise(run: Run, cfg: DictConfig) -> dict:
    state = run.state
    final = state.results.get("final", {})
    learning = {stage: entry["steps"] / entry["seconds"] for stage, entry in state.throughput.items() if entry["seconds"]}
    seconds = sum(entry["seconds"] for entry in state.throughput.values())
    return {"env": cfg.env.name, "seed": cfg.seed, "policy": cfg.policy.kind, "mode": cfg.mode,
            "env_steps": state.env_steps, "wall_time_s": run.wall_time(), "final_return": final.get("return"),
            "final_success": final.get("success"), "random_return": state.random_return,
            "steps_per_s": state.env_steps / seconds if seconds else None, "learning_steps_per_s": learning,
            "switch_step": state.switch_step, "switch_reason": state.switch_reason, "stage1": state.results.get("stage1", {}),
            "num_envs": cfg.num_envs, "rollout_len": rollout_length(cfg),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "evaluations": state.evaluations, "config": OmegaConf.to_container(cfg)}


def run_ppo(cfg: DictConfig, run_dir: Path | str | None = None, *, overrides: list[str] | None = None) -> dict:
    """Run the on-policy experiment ``cfg`` describes in ``run_dir`` (or continue ``cfg.resume``) and return the
    summary (also written to ``summary.json``, with ``curves.png``)."""
    cfg, run_dir, checkpoint = open_ppo_run(cfg, run_dir, overrides)
    if checkpoint is None or checkpoint["run_state"]["stage"] is None:
        checkpoint = None
        truncate_metrics(run_dir, {})
        save_checkpoint(run_dir / "checkpoints" / "last.pt",
                        {"config": OmegaConf.to_container(cfg), "run_state": RunState().state_dict()})
    device = resolve_device(str(cfg.device))
    seed_everything(cfg.seed)
    state = RunState.from_state_dict(checkpoint["run_state"]) if checkpoint is not None else RunState()
    if checkpoint is not None:
        truncate_metrics(run_dir, state.metric_rows)
    with Run(run_dir, make_logger(cfg, run_dir), cfg.env_steps, eval_every=cfg.eval.every,
             checkpoint_every=cfg.checkpoint.every, state=state, quiet=cfg.quiet) as run:
        experiment = OnPolicyExperiment(cfg, run, device, checkpoint)
        if checkpoint is not None:
            restore_rng_states(checkpoint["rng"])
        if run.state.random_return is None:
            run.state.random_return = experiment.evaluate(experiment.evaluate.random_policy())["return"]
        experiment()
        summary = summarise(run, cfg)
        run.close()
    run.write_json("summary.json", summary)
    plot_curves(run.state.evaluations, run.run_dir / "curves.png",
                f"{cfg.env.name} (PPO, {cfg.policy.kind}, {cfg.mode}, seed {cfg.seed})", run.state.switch_step,
                ylabel="evaluation return (sampled actions, fixed episodes)")
    print(f"\n{cfg.env.name}  PPO  policy={cfg.policy.kind}  mode={cfg.mode}  seed={cfg.seed}  env steps={summary['env_steps']}"
          f"  wall time={summary['wall_time_s']:.0f}s  {summary['steps_per_s'] or 0:.0f} env-steps/s")
    print(f"final return {summary['final_return']:.2f} (random policy {summary['random_return']:.2f})")
    print(f"outputs in {run.run_dir}: summary.json, curves.png, checkpoints/, metrics/")
    return summary


__all__ = ["Evaluator", "Learner", "OnPolicyExperiment", "build_model", "run_ppo", "summarise"]
