"""Every bad input to a recipe is one ``error:`` line on stderr and exit status 2, before anything is
built: types and ranges from the config schema, the checks that relate keys, Hydra's own errors,
the run directory and ``resume=``."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import CONFIG_DIR, ROOT, TINY
from trl_accel.checkpoint import save_checkpoint
from trl_accel.recipe import check_command_line

#: (override, what the one line must say), tried against the TD3 recipe.
TD3_BAD_INPUTS = [
    ("transformer.n_heads=3", r"transformer.d_model \(256\) must be a multiple of transformer.n_heads \(3\)"),
    ("transformer.n_kv_heads=3", r"transformer.n_heads \(2\) must be a multiple of transformer.n_kv_heads \(3\)"),
    ("stage1.steps=abc", r"stage1.steps: Value 'abc' of type 'str' could not be converted to Integer"),
    ("seed=abc", r"seed: Value 'abc'"),
    ("seed=-1", r"seed=-1 is out of range: it must be >= 0"),
    ("algo.lr=-1", r"algo.lr=-1.0 is out of range: it must be > 0"),
    ("algo.lr=nan", r"algo.lr=nan is out of range"),
    ("algo.tau=0", r"algo.tau=0.0 is out of range: it must be in \(0.0, 1.0\]"),
    ("algo.gamma=1.5", r"algo.gamma=1.5 is out of range: it must be in \[0.0, 1.0\]"),
    ("algo.policy_delay=0", r"algo.policy_delay=0 is out of range: it must be >= 1"),
    ("algo.exploration_noise=-1", r"algo.exploration_noise=-1.0 is out of range: it must be >= 0"),
    ("algo.batch_size=0", r"algo.batch_size=0 is out of range: it must be >= 1"),
    ("frames_per_batch=0", r"frames_per_batch=0 is out of range: it must be >= 1"),
    ("updates_per_step=0", r"updates_per_step=0.0 is out of range: it must be > 0"),
    ("updates_per_step=-2", r"updates_per_step=-2.0 is out of range"),
    ("stage1.state_noise=-1", r"stage1.state_noise=-1.0 is out of range: it must be >= 0"),
    ("stage1.bc_epochs=0", r"stage1.bc_epochs=0 is out of range"),
    ("stage1.bc_lr=0", r"stage1.bc_lr=0.0 is out of range"),
    ("stage1.steps=-5", r"stage1.steps=-5 is out of range"),
    ("stage1.steps=100", r"stage1.steps \(100\) is below stage1.bc_every \(2000\), so the transformer would never be cloned"),
    ("stage1.switch.rule=auto eval.every=0", r"switch.rule=auto decides at evaluations: set eval.every > 0"),
    ("stage1.switch.rule=sometimes", r"stage1.switch.rule='sometimes' is out of range: it must be one of \('fixed', 'auto'\)"),
    ("stage1.bc_data=replay", r"stage1.bc_data='replay' is out of range"),
    ("stage1.bc_precision=float16", r"stage1.bc_precision='float16' is out of range: it must be one of \('float32', 'bfloat16'\)"),
    ("stage1.bc_final_rounds=2", r"stage1.bc_final_rounds=2 needs rollouts of its own after the accelerator's last step: set stage1.bc_data=dagger"),
    ("stage1.bc_data=dagger stage1.bc_final_rounds=-1", r"stage1.bc_final_rounds=-1 is out of range"),
    ("stage1.dagger_teacher_share=0.5", r"stage1.dagger_teacher_share=0.5 mixes the teacher into the transformer's own rollouts: set stage1.bc_data=dagger"),
    ("stage1.bc_data=dagger stage1.dagger_teacher_share=1.5", r"stage1.dagger_teacher_share=1.5 is out of range: it must be in \[0.0, 1.0\]"),
    ("transformer.d_model=0", r"transformer.d_model=0 is out of range: it must be >= 1"),
    ("transformer.n_layers=0", r"transformer.n_layers=0 is out of range: it must be >= 1"),
    ("transformer.dropout=2", r"transformer.dropout=2.0 is out of range: it must be in \[0.0, 1.0\)"),
    ("transformer.positions=foo", r"transformer.positions='foo' is out of range: it must be one of \('learned', 'sinusoidal', 'rotary'\)"),
    ("transformer.rollout=cache", r"transformer.rollout=cache needs transformer.positions=rotary"),
    ("transformer.tokens=[prev_action]", r"transformer.tokens must start with observation"),
    ("transformer.tokens=[observation,prev_speed]", r"transformer.tokens.*prev_speed"),
    ("transformer.rollout=cache transformer.positions=rotary transformer.context_len=1",
     r"transformer.rollout=cache needs transformer.context_len >= 2, got 1"),
    ("transformer.positions=rotary transformer.n_heads=3 transformer.d_model=9",
     r"transformer.positions=rotary needs an even head size, got d_model // n_heads = 3"),
    ("transformer.context_len=0", r"transformer.context_len=0 is out of range"),
    ("eval.episodes=0", r"eval.episodes=0 is out of range"),
    ("env.max_episode_steps=0", r"env.max_episode_steps=0 is out of range"),
    ("accelerator.hidden_sizes=[256,0]", r"accelerator.hidden_sizes=\[256, 0\] is out of range"),
    ("accelerator=lstm accelerator.seq_len=1", r"accelerator.seq_len=1 is out of range: it must be >= 2"),
    ("accelerator=lstm accelerator.burn_in=64", r"accelerator.burn_in must be in \[0, accelerator.seq_len=64\), got 64"),
    ("accelerator=gru accelerator.seq_len=0", r"accelerator.seq_len=0 is out of range: it must be >= 2"),
    ("accelerator=lstm accelerator.seq_len=-1 accelerator.burn_in=300", r"accelerator.burn_in \(300\) must be below the whole episodes' length \(200 steps\)"),
    ("accelerator=gru accelerator.seq_len=-2", r"accelerator.seq_len=-2 is out of range: it must be >= 2, or -1 for whole"),
    ("accelerator=gru accelerator.inputs=[velocity]", r"accelerator.inputs=\['velocity'\] is out of range: it must be one of"),
    ("accelerator=gru accelerator.inputs=[]", r"accelerator.inputs must name at least one of"),
    ("accelerator=gru accelerator.start_state=random", r"accelerator.start_state='random' is out of range"),
    ("accelerator=lstm accelerator.shared_critic_trunk=maybe", r"accelerator.shared_critic_trunk: Value .maybe. is not a valid bool"),
    ("accelerator=gru stage1.ascent_weight=0.1", r"holds no prev_action: set accelerator.inputs=\[observation\]"),
    ("logger.backend=foo", r"logger.backend='foo' is out of range: it must be one of"),
    ("logger.backend=tensorboard", r"logger.backend=tensorboard needs the tensorboard package.*pip install -e '.\[tensorboard\]'"),
    ("device=tpu", r"device must be auto, cpu or cuda\[:N\], got 'tpu'"),
    ("mode=fast", r"mode='fast' is out of range"),
    ("env=nope", r"Could not find 'env/nope'"),
    ("algo=ppo", r"Could not find 'algo/ppo'"),
    ("foo=1", r"Could not override 'foo'"),
    ("td3.lr=0.1", r"Could not override 'td3.lr'.*algo.\*: algo=td3\|sac"),
    ("stage1.steps=", r"stage1.steps"),
    ("env.name=NoSuchEnv-v0", r"Unknown environment 'NoSuchEnv-v0'"),
    ("stage1.bc_loss=likelihood", r"needs a stochastic transformer"),
    ("stage2.buffer_size=10", r"does not fit in stage2.buffer_size \(10\)"),
]

#: The same against the SAC recipe's own keys.
SAC_BAD_INPUTS = [
    ("algo.target_entropy=foo", r"algo.target_entropy must be 'auto' \(= -action_dim\) or a number, got 'foo'"),
    ("algo.alpha_init=0", r"algo.alpha_init=0.0 is out of range: it must be > 0"),
    ("algo.policy_delay=2", r"Could not override 'algo.policy_delay'"),
]


def expect_one_line_exit_2(capsys, recipe: str, overrides: list[str], pattern: str) -> None:
    started = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        check_command_line(CONFIG_DIR, recipe, overrides)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    import re
    assert re.search(pattern, err), err
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("overrides, pattern", TD3_BAD_INPUTS, ids=[case[0] for case in TD3_BAD_INPUTS])
def test_bad_input_to_the_td3_recipe_is_one_line_and_exit_2(capsys, tmp_path, overrides, pattern):
    expect_one_line_exit_2(capsys, "td3_accelerate", [*overrides.split(), f"hydra.run.dir={tmp_path}"], pattern)


@pytest.mark.parametrize("overrides, pattern", SAC_BAD_INPUTS, ids=[case[0] for case in SAC_BAD_INPUTS])
def test_bad_input_to_the_sac_recipe_is_one_line_and_exit_2(capsys, tmp_path, overrides, pattern):
    expect_one_line_exit_2(capsys, "sac_accelerate", [*overrides.split(), f"hydra.run.dir={tmp_path}"], pattern)


def test_good_input_passes_the_check(tmp_path):
    assert check_command_line(CONFIG_DIR, "td3_accelerate", [*TINY, f"hydra.run.dir={tmp_path / 'run'}"]) == []
    assert check_command_line(CONFIG_DIR, "sac_accelerate", [*TINY, f"hydra.run.dir={tmp_path / 'run'}"]) == []


def test_an_existing_run_directory_is_not_reused(capsys, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    expect_one_line_exit_2(capsys, "td3_accelerate", [*TINY, f"hydra.run.dir={tmp_path}"],
                           r"already holds a run: continue it with resume=.*overwrite=true")
    assert check_command_line(CONFIG_DIR, "td3_accelerate", [*TINY, f"hydra.run.dir={tmp_path}", "overwrite=true"]) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_run_directory_is_refused_before_training(tmp_path):
    from trl_accel.config import ConfigError
    from trl_accel.run_dir import prepare_run_dir

    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="is not writable"):
            prepare_run_dir(tmp_path / "run", overwrite=False, resuming=False)
    finally:
        tmp_path.chmod(0o700)


def test_a_run_directory_under_a_file_is_refused_before_training(tmp_path):
    from trl_accel.config import ConfigError
    from trl_accel.run_dir import prepare_run_dir

    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not writable"):
        prepare_run_dir(tmp_path / "file" / "run", overwrite=False, resuming=False)


@pytest.mark.parametrize("content, pattern", [
    (b"", r"cannot be read as a checkpoint \(truncated or damaged\?\)"),
    (None, r"is not a trl_accel checkpoint"),
])
def test_a_truncated_or_foreign_checkpoint_names_the_file(capsys, tmp_path, content, pattern):
    from trl_accel.experiment import run_experiment
    from trl_accel.checkpoint import CheckpointError
    from tests.conftest import compose_config

    path = tmp_path / "run" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    if content is None:
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        save_checkpoint(path, {"run_state": {}})
        path.write_bytes(path.read_bytes()[:100])  # a write cut short
    with pytest.raises(CheckpointError, match=pattern):
        run_experiment(compose_config(*TINY, f"resume={tmp_path / 'run'}"))


def test_resume_of_a_missing_directory_or_a_stage_checkpoint_is_refused(capsys, tmp_path):
    expect_one_line_exit_2(capsys, "td3_accelerate", [f"resume={tmp_path / 'nope'}"], r"does not exist")
    stage_one = tmp_path / "run" / "checkpoints" / "stage1.pt"
    stage_one.parent.mkdir(parents=True)
    stage_one.write_bytes(b"x")
    expect_one_line_exit_2(capsys, "td3_accelerate", [f"resume={stage_one}"],
                           r"is a stage1 checkpoint, which does not continue a run.*stage2.init_from=")


def test_the_recipe_exits_2_with_one_line_and_no_traceback(tmp_path):
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "recipes/sac_accelerate.py", "algo.gamma=1.5", f"hydra.run.dir={tmp_path / 'r'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: algo.gamma=1.5 is out of range: it must be in [0.0, 1.0]."
    assert not (tmp_path / "r").exists()  # refused before Hydra made the run directory
    assert time.perf_counter() - started < 60
