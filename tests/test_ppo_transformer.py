"""The on-policy recipe: step mode equals sequence mode, GAE over rollouts with resets, one PPO update, the value
histogram, the recipe end to end (scratch and accelerated), resume, and bad input."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from hydra import compose, initialize_config_dir
from tensordict import TensorDict

from tests.conftest import ROOT
from trl_accel import keys
from trl_accel.config import ConfigError
from trl_accel.modules.trajectory import (
    LOGITS,
    STATE_VALUE,
    make_trajectory_actor_critic,
)
from trl_accel.onpolicy.config import validate_ppo_config
from trl_accel.onpolicy.envs import make_onpolicy_env
from trl_accel.onpolicy.experiment import run_ppo
from trl_accel.onpolicy.loss import hl_gauss_target, make_ppo_loss, ppo_update
from trl_accel.onpolicy.rollout import (
    ADVANTAGE,
    VALUE_TARGET,
    add_advantages,
    collect_rollout,
)

PPO_CONFIG_DIR = ROOT / "recipes" / "ppo_config"
#: A few rollouts of a tiny model on a tiny grid: every part of the recipe in seconds.
TINY_PPO = ["env=grid_memory_small", "env.options.episode_steps=16", "num_envs=8", "env_steps=512", "eval.every=256",
            "eval.episodes=8", "checkpoint.every=128", "policy.d_model=16", "policy.d_ff=32", "value.hidden=16",
            "device=cpu", "quiet=true", "ppo.minibatches=2", "ppo.epochs=2", "logger.backend=csv"]


def compose_ppo(*overrides: str):
    with initialize_config_dir(config_dir=str(PPO_CONFIG_DIR), version_base="1.3"):
        return compose(config_name="ppo_transformer", overrides=list(overrides))


def small_env(num_envs: int = 6, episode_steps: int = 10):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"name": "grid_memory", "options": {"size": 7, "episode_steps": episode_steps}})
    return make_onpolicy_env(cfg, num_envs=num_envs, seed=0)


def model_and_env(core: str, *, context_len: int = 6, n_layers: int = 2, value_bins: int = 0, episode_steps: int = 10):
    torch.manual_seed(0)
    env = small_env(episode_steps=episode_steps)
    model = make_trajectory_actor_critic(env.observation_spec[keys.OBSERVATION].shape[-1], env.action_spec_unbatched,
                                         core=core, d_model=16, d_ff=32, context_len=context_len, n_layers=n_layers,
                                         value_hidden=16, value_bins=value_bins, value_min=0.0, value_max=4.0)
    for primer in model.env_primers():
        env.append_transform(primer)
    return model, env


def assert_sequence_mode_matches(model, rollout) -> None:
    """The sequence mode's log-probabilities and values over ``rollout`` equal those the step mode wrote (1e-5)."""
    replay = rollout.exclude(LOGITS, STATE_VALUE, "value_logits", keys.ACTION_LOG_PROB)
    with torch.no_grad():
        log_prob = model.actor().get_dist(replay.clone()).log_prob(rollout[keys.ACTION])
        value = model.critic()(replay.clone())[STATE_VALUE]
    torch.testing.assert_close(log_prob, rollout[keys.ACTION_LOG_PROB], atol=1e-5, rtol=0)
    torch.testing.assert_close(value, rollout[STATE_VALUE], atol=1e-5, rtol=0)


@pytest.mark.parametrize("core", ["transformer", "gru", "mlp"])
@pytest.mark.parametrize("context_len", [4, 32])
def test_step_mode_equals_the_sequence_mode_across_resets(core, context_len):
    """25 steps of 10-step episodes: resets inside the rollout, episodes longer and shorter than the window."""
    model, env = model_and_env(core, context_len=context_len)
    rollout, _, _ = collect_rollout(env, model.rollout_policy(), env.reset(), 25, memory_keys=model.memory_keys)
    assert rollout.shape == (6, 25) and rollout[:, 0][keys.IS_INIT].all() and rollout[:, 10][keys.IS_INIT].all()
    assert not any(key in rollout for key in model.memory_keys)
    assert_sequence_mode_matches(model, rollout)


@pytest.mark.parametrize("core", ["transformer", "gru"])
def test_step_mode_equals_the_sequence_mode_for_a_rollout_starting_mid_episode(core):
    """Envs reset at different times, and the rollout starts inside their episodes (memory cleared there)."""
    model, env = model_and_env(core, context_len=4)
    policy = model.rollout_policy()
    _, carry, _ = collect_rollout(env, policy, env.reset(), 3, memory_keys=model.memory_keys)
    carry = env.reset(carry.set("_reset", torch.tensor([True, True, True, False, False, False])[:, None]))
    _, carry, _ = collect_rollout(env, policy, carry, 4, memory_keys=model.memory_keys)
    assert carry[keys.STEP_COUNT][:3].eq(4).all() and carry[keys.STEP_COUNT][3:].eq(7).all()
    rollout, _, _ = collect_rollout(env, policy, carry, 25, memory_keys=model.memory_keys)
    assert rollout[:, 0][keys.PREV_ACTION].any() and rollout[:, 0][keys.IS_INIT].all()
    resets = rollout[keys.IS_INIT][..., 0]
    assert resets[:3, 6].all() and resets[3:, 3].all()  # episodes end at different steps in different envs
    assert_sequence_mode_matches(model, rollout)


def test_memory_starts_empty_at_each_rollout_and_is_cleared_at_resets():
    model, env = model_and_env("transformer", context_len=32)
    policy = model.rollout_policy()
    _, carry, _ = collect_rollout(env, policy, env.reset(), 15, memory_keys=model.memory_keys)
    assert carry["kv_mask"].any()  # memory of the episode in flight
    second, _, _ = collect_rollout(env, policy, carry, 5, memory_keys=model.memory_keys)
    assert second[:, 0][keys.IS_INIT].all() and second[:, 0][keys.STEP_COUNT].min() > 0  # mid-episode, memory cleared


def reference_gae(reward, value, next_value, done, gamma, lmbda):
    n, t = reward.shape[:2]
    advantage = torch.zeros(n, t, 1)
    running = torch.zeros(n, 1)
    for step in reversed(range(t)):
        keep = (~done[:, step]).float()
        delta = reward[:, step] + gamma * keep * next_value[:, step] - value[:, step]
        running = delta + gamma * lmbda * keep * running
        advantage[:, step] = running
    return advantage


def test_gae_over_the_transformers_values_with_resets_inside_the_rollout():
    model, env = model_and_env("transformer", context_len=32)
    rollout, _, bootstrap = collect_rollout(env, model.rollout_policy(), env.reset(), 25, memory_keys=model.memory_keys)
    rollout["next", keys.REWARD] = torch.randn_like(rollout["next", keys.REWARD])  # a denser signal than the task's
    add_advantages(rollout, bootstrap, gamma=0.9, lmbda=0.8)
    value = rollout[STATE_VALUE]
    next_value = torch.cat([value[:, 1:], bootstrap[:, None]], 1)
    done = rollout["next", keys.DONE]
    assert done[:, 9].all() and done.sum() == 2 * 6  # resets after steps 10 and 20 of the rollout
    expected = reference_gae(rollout["next", keys.REWARD], value, next_value, done, 0.9, 0.8)
    torch.testing.assert_close(rollout[ADVANTAGE], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rollout[VALUE_TARGET], expected + value, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("value_loss", ["mse", "hl_gauss"])
def test_one_ppo_update_lowers_the_clipped_objective_on_a_fixed_batch(value_loss):
    model, env = model_and_env("transformer", context_len=32, value_bins=21 if value_loss == "hl_gauss" else 0)
    rollout, _, bootstrap = collect_rollout(env, model.rollout_policy(), env.reset(), 20, memory_keys=model.memory_keys)
    rollout["next", keys.REWARD] = torch.randn_like(rollout["next", keys.REWARD])
    add_advantages(rollout, bootstrap, gamma=0.9, lmbda=0.95)
    loss = make_ppo_loss(model.actor(), model.critic(), clip_epsilon=0.2, entropy_coeff=0.0, critic_coeff=0.5,
                         value_loss=value_loss, support=model.value_head.support if value_loss == "hl_gauss" else None)
    before = loss(rollout.clone())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    ppo_update(loss, optimizer, scheduler, rollout, epochs=1, minibatches=1, max_grad_norm=10.0)
    after = loss(rollout.clone())
    assert abs(before["loss_objective"].item()) < 1e-5  # on-policy: ratio 1, normalised advantages average to 0
    assert after["loss_objective"].item() < before["loss_objective"].item() - 1e-3
    assert after["loss_critic"].item() < before["loss_critic"].item()


def test_the_critic_reuses_the_actors_features_with_the_same_gradients():
    model, env = model_and_env("transformer", context_len=32)
    rollout, _, bootstrap = collect_rollout(env, model.rollout_policy(), env.reset(), 20, memory_keys=model.memory_keys)
    add_advantages(rollout, bootstrap, gamma=0.9, lmbda=0.95)
    grads = []
    for reuse in (True, False):
        loss = make_ppo_loss(model.actor(), model.critic(reuse_features=reuse), clip_epsilon=0.2, entropy_coeff=0.01,
                             critic_coeff=0.5)
        out = loss(rollout.clone())
        total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
        grads.append(torch.autograd.grad(total, list(model.parameters())))
    for reused, recomputed in zip(*grads, strict=True):
        torch.testing.assert_close(reused, recomputed, atol=1e-6, rtol=1e-5)
    calls = []
    handle = model.core.blocks[0].register_forward_hook(lambda *args: calls.append(1))
    for reuse in (True, False):
        calls.clear()
        make_ppo_loss(model.actor(), model.critic(reuse_features=reuse), clip_epsilon=0.2, entropy_coeff=0.01,
                      critic_coeff=0.5)(rollout.clone())
        assert len(calls) == (1 if reuse else 2)  # the transformer runs once per minibatch when the critic reuses
    handle.remove()


def test_hl_gauss_target_is_a_distribution_centred_on_the_value():
    support = torch.linspace(0.0, 10.0, 51)
    value = torch.tensor([[0.0], [3.3], [7.77], [10.0], [25.0]])
    target = hl_gauss_target(value, support)
    torch.testing.assert_close(target.sum(-1), torch.ones(5))
    mean = (target * support).sum(-1)
    assert (mean[1:3] - value[1:3, 0]).abs().max() < 0.05  # inside the support: the mean is the value
    assert mean[4] > 9.5  # beyond the support: clamped to its end


def test_the_discrete_previous_action_embedding_is_tied_with_the_actor_head():
    model, _ = model_and_env("transformer")
    action = torch.eye(4)
    embedded = model.embedding(torch.zeros(4, model.embedding.observation.in_features), action, torch.zeros(4, 1))
    expected = model.embedding.observation(torch.zeros(4, model.embedding.observation.in_features)) + model.actor_head.weight
    torch.testing.assert_close(embedded, expected)
    assert model.embedding.action is None


# ---------------------------------------------------------------------------------------------- the recipe
REQUIRED = ("env", "seed", "policy", "mode", "env_steps", "wall_time_s", "final_return", "steps_per_s")


@pytest.mark.parametrize("policy", ["transformer", "gru", "mlp"])
def test_the_recipe_runs_each_policy_and_writes_its_summary(tmp_path, policy):
    summary = run_ppo(compose_ppo(*TINY_PPO, f"policy={policy}"), tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert all(on_disk[key] is not None for key in REQUIRED) and on_disk["policy"] == policy
    assert summary["env_steps"] == 512 and on_disk["mode"] == "scratch"
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "checkpoints" / "last.pt").is_file()
    assert [e["env_steps"] for e in on_disk["evaluations"]] == [256, 512]  # the final one is the last scheduled


@pytest.mark.parametrize("critic", ["accelerator", "fresh"])
def test_accelerated_ppo_runs_both_stages(tmp_path, critic):
    summary = run_ppo(compose_ppo(*TINY_PPO, "mode=accelerate", "accelerate.switch_steps=256",
                                  f"accelerate.critic={critic}", "accelerate.teacher.d_model=16"), tmp_path)
    assert summary["switch_step"] == 256 and summary["env_steps"] == 512
    assert "accelerator_return" in summary["stage1"] and summary["final_return"] is not None
    assert (tmp_path / "checkpoints" / "stage1.pt").is_file()
    stages = [e["stage"] for e in summary["evaluations"]]
    assert "stage1" in stages and stages[-1] == "stage2"
    at_switch = torch.load(tmp_path / "checkpoints" / "stage1.pt", weights_only=False)
    at_end = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert at_switch["run_state"]["stage"] == "stage2" and at_switch["run_state"]["stage_steps"] == 0
    changed = any(not torch.equal(at_switch["teacher"][name], at_end["teacher"][name]) for name in at_end["teacher"])
    assert changed == (critic == "accelerator")  # the accelerator's value network trains on only as the critic


def test_the_automatic_switch_ends_stage_one_early(tmp_path):
    """With fraction 0, patience 1 and no plateau asked for, the first evaluation of stage one switches."""
    summary = run_ppo(compose_ppo(*TINY_PPO, "mode=accelerate", "accelerate.switch_steps=384", "eval.every=128",
                                  "accelerate.switch.rule=auto", "accelerate.switch.fraction=0",
                                  "accelerate.switch.patience=1", "accelerate.switch.plateau_evals=0",
                                  "accelerate.teacher.d_model=16"), tmp_path)
    assert summary["switch_step"] == 128 and summary["switch_reason"].startswith("auto:")
    assert summary["env_steps"] == 512


def test_the_fixed_switch_waits_for_its_steps(tmp_path):
    summary = run_ppo(compose_ppo(*TINY_PPO, "mode=accelerate", "accelerate.switch_steps=384", "eval.every=128",
                                  "accelerate.switch.fraction=0", "accelerate.switch.patience=1",
                                  "accelerate.switch.plateau_evals=0", "accelerate.teacher.d_model=16"), tmp_path)
    assert summary["switch_step"] == 384 and summary["switch_reason"] == "accelerate.switch_steps=384"


def test_hl_gauss_value_loss_runs_in_the_recipe(tmp_path):
    summary = run_ppo(compose_ppo(*TINY_PPO, "value.loss=hl_gauss", "value.bins=11", "value.max=4"), tmp_path)
    assert summary["final_return"] is not None


def test_a_stopped_run_resumes_to_the_same_number_of_steps(tmp_path):
    command = [sys.executable, "recipes/ppo_transformer.py", *TINY_PPO, "env_steps=200000", "checkpoint.every=1024",
               "eval.every=0", f"hydra.run.dir={tmp_path}"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "metrics").exists():
        time.sleep(0.2)
    time.sleep(3.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "resume=" in stderr
    done = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["run_state"]["env_steps"]
    assert 0 < done < 200000
    target = done + 1024  # whole rollouts of 8 agents x 16 steps
    resumed = subprocess.run([sys.executable, "recipes/ppo_transformer.py", f"resume={tmp_path}", f"env_steps={target}"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["env_steps"] == target
    rows = (tmp_path / "metrics" / "scalars" / "train" / "loss_objective.csv").read_text().splitlines()
    assert len(rows) == target // 128  # one row per rollout: the resumed run cut its metric files back


def test_an_accelerated_run_resumes_in_stage_two(tmp_path, monkeypatch):
    from trl_accel.loop import Run

    original = Run.save

    def save_then_stop(self, name, payload, **kwargs):
        path = original(self, name, payload, **kwargs)
        if self.state.stage == "stage2" and self.state.stage_steps >= 128:
            raise KeyboardInterrupt("simulated kill")
        return path

    overrides = [*TINY_PPO, "mode=accelerate", "accelerate.switch_steps=256", "accelerate.teacher.d_model=16"]
    monkeypatch.setattr(Run, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_ppo(compose_ppo(*overrides), tmp_path)
    monkeypatch.setattr(Run, "save", original)
    stopped = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert stopped["run_state"]["stage"] == "stage2" and stopped["run_state"]["env_steps"] == 384
    summary = run_ppo(compose_ppo(*overrides, f"resume={tmp_path}"))
    assert summary["env_steps"] == 512 and summary["switch_step"] == 256
    assert [e["env_steps"] for e in summary["evaluations"]] == [256, 512]


BAD_INPUT = [
    ("mode=offline", "mode must be one of"),
    ("policy.kind=lstm", "policy.kind must be one of"),
    ("ppo.minibatches=999", "ppo.minibatches (999) must be at most num_envs"),
    ("+env.options.colour=3", "env.options.colour is not an option of grid_memory"),
    ("env.options.view=4", "view must be an odd int"),
    ("ppo.clip_epsilon=0", "ppo.clip_epsilon must be a number in (0"),
    ("policy.n_heads=3", "must divide by n_heads"),
    ("num_envs=0", "num_envs must be an integer >= 1"),
    ("value.loss=huber", "value.loss must be one of"),
    ("mode=accelerate accelerate.switch.rule=sometimes", "accelerate.switch.rule must be one of"),
    ("value.loss=hl_gauss value.max=abc", "value.max must be a number"),
    ("ppo.normalize_advantage=abc", "ppo.normalize_advantage must be true or false"),
    ("mode=accelerate +accelerate.teacher.kind=transformer", "accelerate.teacher is a GRU accelerator"),
    ("mode=accelerate env_steps=100000 accelerate.switch_steps=99000", "the switch comes at 131072"),
]


@pytest.mark.parametrize(("override", "message"), BAD_INPUT)
def test_bad_input_is_one_line_before_anything_is_built(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_ppo_config(compose_ppo(*override.split()))


def test_accelerate_needs_a_transformer_student_and_a_stage_two():
    with pytest.raises(ConfigError, match="use policy=transformer"):
        validate_ppo_config(compose_ppo("mode=accelerate", "policy=gru"))
    with pytest.raises(ConfigError, match="must leave stage two steps"):
        validate_ppo_config(compose_ppo("mode=accelerate", "env_steps=1000", "accelerate.switch_steps=1000"))


def test_the_command_line_reports_bad_input_with_exit_status_2(tmp_path):
    result = subprocess.run([sys.executable, "recipes/ppo_transformer.py", "ppo.minibatches=0",
                             f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ppo.minibatches")
    assert not (tmp_path / "checkpoints").exists()
    unknown = subprocess.run([sys.executable, "recipes/ppo_transformer.py", "ppo.colour=3", f"hydra.run.dir={tmp_path}"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert unknown.returncode == 2 and unknown.stderr.strip().count("\n") == 0


def test_a_policy_reads_tokens_of_the_configured_parts_only():
    torch.manual_seed(0)
    env = small_env()
    model = make_trajectory_actor_critic(env.observation_spec[keys.OBSERVATION].shape[-1], env.action_spec_unbatched,
                                         core="mlp", d_model=8, d_ff=16, tokens=("observation",))
    td = TensorDict({keys.OBSERVATION: torch.zeros(2, 100), keys.STEP_COUNT: torch.zeros(2, 1, dtype=torch.long),
                     keys.IS_INIT: torch.ones(2, 1, dtype=torch.bool)}, batch_size=[2])
    out = model.rollout_policy()(td)  # no prev_action / prev_reward needed
    assert out[keys.ACTION].shape == (2, 4)


def test_a_popgym_memory_task_runs_through_the_recipe(tmp_path):
    pytest.importorskip("popgym", reason="the popgym extra is not installed (pip install -e .[popgym])")
    summary = run_ppo(compose_ppo("env=popgym", "num_envs=4", "env_steps=204", "eval.every=0", "eval.episodes=4",
                                  "ppo.minibatches=2", "policy.d_model=16", "policy.d_ff=32", "device=cpu",
                                  "quiet=true"), tmp_path)
    assert summary["rollout_len"] == 51 and summary["env_steps"] == 204  # RepeatPreviousEasy: 51-step episodes
    assert -1.0 <= summary["final_return"] <= 1.0


def test_popgym_asks_for_a_known_task_and_names_its_extra_when_missing(monkeypatch):
    pytest.importorskip("popgym", reason="the popgym extra is not installed (pip install -e .[popgym])")
    with pytest.raises(ConfigError, match="task must name a POPGym env class"):
        validate_ppo_config(compose_ppo("env=popgym", "env.options.task=Tetris"))
    import trl_accel.onpolicy.envs as onpolicy_envs

    real = onpolicy_envs.importlib.util.find_spec
    monkeypatch.setattr(onpolicy_envs.importlib.util, "find_spec", lambda name: None if name == "popgym" else real(name))
    with pytest.raises(ConfigError, match=r"pip install -e \.\[popgym\]"):
        validate_ppo_config(compose_ppo("env=popgym"))


def test_popgym_tasks_the_policies_cannot_act_in_are_refused():
    pytest.importorskip("popgym", reason="the popgym extra is not installed (pip install -e .[popgym])")
    with pytest.raises(ConfigError, match="the policies take one discrete action"):
        validate_ppo_config(compose_ppo("env=popgym", "env.options.task=BattleshipEasy"))
