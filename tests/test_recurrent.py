"""The LSTM accelerator: recurrent state across resets, sequence sampling, stored-state replay."""
from __future__ import annotations

import torch
from torchrl.collectors import Collector
from torchrl.envs import ExplorationType
from torchrl.modules import set_recurrent_mode

from trl_accel import keys
from trl_accel.envs import PreviousActionReward, make_env
from trl_accel.modules.recurrent import make_lstm_actor, make_twin_lstm_q_critics, recurrent_state_primer
from trl_accel.stages import TD3Learner, TD3Settings
from trl_accel.stages.sequences import SequenceSettings, make_replay_buffer

K, EPISODE = 3, 9


def collect(frames: int = 120, seed: int = 0):
    """Deterministic LSTM actor on masked Pendulum (angular velocity hidden), short episodes."""
    torch.manual_seed(seed)
    env = make_env("Pendulum-v1", K, seed=seed, max_episode_steps=EPISODE, pomdp="positions_only")
    actor = make_lstm_actor(2, env.action_spec_unbatched, hidden_size=16, hidden_sizes=(16,))
    env.append_transform(PreviousActionReward())
    env.append_transform(recurrent_state_primer(actor))
    collector = Collector(env, actor, frames_per_batch=frames, total_frames=frames,
                          exploration_type=ExplorationType.DETERMINISTIC)
    batch = next(iter(collector))
    collector.shutdown()
    return actor, batch


def test_recurrent_state_does_not_leak_into_a_new_episode():
    actor, batch = collect()
    starts = batch["is_init"].squeeze(-1)
    assert starts.sum() >= 10, "the batch should hold many episodes"
    assert (batch["actor_h"][starts] == 0).all() and (batch["actor_c"][starts] == 0).all()  # the primer's reset
    # and the module itself ignores whatever state arrives with is_init: a mid-episode state marked as a start
    middle = batch[~starts & (batch["step_count"].squeeze(-1) > 3)][:10].clone()
    assert (middle["actor_h"] != 0).any()
    as_start = middle.clone().set("is_init", torch.ones_like(middle["is_init"]))
    zeroed = middle.clone().set("is_init", torch.ones_like(middle["is_init"]))
    zeroed["actor_h"].zero_()
    zeroed["actor_c"].zero_()
    with torch.no_grad():
        torch.testing.assert_close(actor(as_start)["action"], actor(zeroed)["action"])
        assert not torch.allclose(actor(middle.clone())["action"], actor(zeroed)["action"])


def test_sequences_stay_inside_one_episode_pad_short_ones_and_mask_the_burn_in():
    _, batch = collect(frames=200)
    replay = make_replay_buffer(1000, batch_size=16, sequences=SequenceSettings(seq_len=12, burn_in=2))
    replay.extend(batch)
    padded = 0
    for _ in range(5):
        sequences = replay.sample()
        assert sequences.shape == (16, 12)
        real = sequences["collector", "mask"].reshape(16, 12)
        assert real[:, 0].all() and (real[:, :-1] >= real[:, 1:]).all()  # padding only at the end
        padded += int((~real).sum())
        assert not (sequences["is_init"].squeeze(-1)[:, 1:] & real[:, 1:]).any()
        steps = sequences["step_count"].squeeze(-1)
        assert ((steps[:, 1:] - steps[:, :-1] == 1) | ~real[:, 1:]).all()
        expected = real.clone()
        expected[:, :2] = False
        assert (sequences[keys.LOSS_MASK] == expected).all()
    assert padded > 0  # the 9-step episodes are shorter than a sequence: kept, padded, masked


def test_recurrent_mode_from_the_stored_state_replays_the_collected_actions():
    actor, batch = collect(frames=200)
    replay = make_replay_buffer(1000, batch_size=8, sequences=SequenceSettings(seq_len=6, burn_in=0))
    replay.extend(batch)
    sequences = replay.sample()
    with torch.no_grad(), set_recurrent_mode(True):
        replayed = actor(sequences.clone())["action"]
    real = sequences["collector", "mask"].reshape(sequences.shape)  # padding repeats a step: its action differs
    torch.testing.assert_close(replayed[real], sequences["action"][real], rtol=1e-4, atol=1e-5)


def test_lstm_td3_update_ignores_burn_in_steps():
    actor, batch = collect(frames=200)
    spec = make_env("Pendulum-v1", K).action_spec_unbatched
    learner = TD3Learner(actor, make_twin_lstm_q_critics(2, 1, hidden_size=16, hidden_sizes=(16,)), spec, TD3Settings())
    replay = make_replay_buffer(1000, batch_size=8, sequences=SequenceSettings(seq_len=6, burn_in=3))
    replay.extend(batch)
    sequences = replay.sample()
    torch.manual_seed(1)  # the same target-policy noise in both calls
    loss, _ = learner.loss.value_loss(sequences)
    poisoned = sequences.clone()
    poisoned["next", "reward"][:, :3] = 1e6  # rewards of burn-in steps must not reach the loss
    torch.manual_seed(1)
    poisoned_loss, _ = learner.loss.value_loss(poisoned)
    torch.testing.assert_close(loss, poisoned_loss)
    assert "loss_qvalue" in learner.update(sequences)


def test_recurrent_cores_match_torchrl_modules_over_a_sequence():
    # LSTMCore / GRUCore write a sequence's next state with one allocation; values and gradients are TorchRL's.
    from tensordict import TensorDict
    from torchrl.modules import GRUModule, LSTMModule

    from trl_accel.modules.recurrent import GRUCore, LSTMCore

    for ours_class, theirs_class, state_keys in ((LSTMCore, LSTMModule, ["h", "c"]), (GRUCore, GRUModule, ["h"])):
        kwargs = {"input_size": 3, "hidden_size": 5, "in_keys": ["x", *state_keys],
                  "out_keys": ["y", *(("next", key) for key in state_keys)]}
        torch.manual_seed(0)
        ours, theirs = ours_class(**kwargs), theirs_class(**kwargs)
        theirs.load_state_dict(ours.state_dict())
        is_init = torch.zeros(4, 6, 1, dtype=torch.bool)
        is_init[:, 0] = True
        sequences = TensorDict(x=torch.randn(4, 6, 3), is_init=is_init, batch_size=[4, 6])
        outputs = []
        for module in (ours, theirs):
            with set_recurrent_mode(True):
                out = module(sequences.clone())
            loss = out["y"].square().sum() + sum(out["next", key][:, -1].sum() for key in state_keys)
            loss.backward()
            outputs.append((out, [p.grad.clone() for p in module.parameters()]))
        (ours_out, ours_grads), (theirs_out, theirs_grads) = outputs
        for key in ["y", *(("next", key) for key in state_keys)]:
            torch.testing.assert_close(ours_out[key], theirs_out[key], rtol=0, atol=0)
        for a, b in zip(ours_grads, theirs_grads):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_sequences_from_zero_store_no_recurrent_state():
    from trl_accel.experiment import replay_keys

    actor, batch = collect(frames=40)
    critics = make_twin_lstm_q_critics(2, 1, hidden_size=8, hidden_sizes=(8,))
    learner = TD3Learner(actor, critics, make_env("Pendulum-v1", K).action_spec_unbatched, TD3Settings())
    for start_state, stored in (("zero", False), ("stored", True)):
        settings = SequenceSettings(seq_len=4, burn_in=0, start_state=start_state, state_keys=("actor_h", "actor_c"))
        kept = replay_keys(learner.loss, settings)(batch.reshape(-1))
        for key in ("actor_h", "actor_c", ("next", "actor_h"), ("next", "actor_c")):
            assert (key in kept.keys(True)) is stored, (start_state, key)
        assert ("collector", "traj_ids") in kept.keys(True) and "observation" in kept.keys()


def test_whole_episode_sequences_are_as_long_as_the_episode_limit():
    from tests.conftest import TINY, TINY_LSTM, compose_config
    from trl_accel.config import validate_config
    from trl_accel.experiment import Agents

    cfg = validate_config(compose_config(*TINY, *TINY_LSTM, "accelerator.seq_len=-1", "env.max_episode_steps=12"))
    env = make_env("Pendulum-v1", K, max_episode_steps=12, pomdp="positions_only")
    agents = Agents(cfg, 2, env.action_spec_unbatched, torch.device("cpu"))
    assert agents.sequences.seq_len == 12
    replay = make_replay_buffer(1000, batch_size=4, sequences=agents.sequences)
    _, batch = collect(frames=60)  # episodes of 9 steps: each sequence one whole episode, padded to 12
    replay.extend(batch)
    sequences = replay.sample()
    assert sequences.shape == (4, 12)
    assert sequences["is_init"][:, 0].all() and not sequences["is_init"][:, 1:].any()
    assert (sequences["loss_mask"].sum(-1) <= EPISODE).all()


def lstm_teacher_rollout(steps: int):
    """A small LSTM teacher (observation, previous action and reward) and its deterministic rollout of ``steps``
    steps on the velocity-masked Pendulum (episodes of 30 steps); with the action spec."""
    from torchrl.data import Bounded
    from torchrl.envs import set_exploration_type

    from trl_accel.modules.recurrent import make_recurrent_actor

    torch.manual_seed(0)
    spec = Bounded(-2.0, 2.0, shape=(1,))
    teacher = make_recurrent_actor(2, spec, cell="lstm", hidden_size=16, hidden_sizes=[16],
                                   inputs=["observation", "prev_action", "prev_reward"])
    env = make_env("Pendulum-v1", 3, seed=0, max_episode_steps=30, pomdp="positions_only")
    env.append_transform(PreviousActionReward())
    env.append_transform(recurrent_state_primer(teacher))
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        return teacher, env.rollout(steps, teacher, break_when_any_done=False), spec


def test_a_recurrent_teacher_relabels_from_its_rebuilt_memory():
    """With its history in T, the LSTM teacher's label is the action it takes when run over the episode so far with
    its current weights, not with the (stale) recurrent state stored when the weights were older."""
    from trl_accel.modules import make_transformer_actor
    from trl_accel.stages import BehaviourCloner
    from trl_accel.stages.acceleration import bc_pairs, make_trajectory_buffer

    teacher, rollout, spec = lstm_teacher_rollout(50)  # two episodes, the second cut at 20 steps
    sources = ("observation", "prev_action", "prev_reward")
    buffer = make_trajectory_buffer(50, 50, context_len=3, teacher_len=30, teacher_sources=sources)
    keys_needed = tuple(key for key in teacher.in_keys if isinstance(key, str))
    buffer.extend(bc_pairs(rollout, keys_needed, windows_from_storage=True))
    with torch.no_grad(), set_recurrent_mode(True):  # the teacher learns on: its weights move after the collection
        for parameter in teacher.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
        expected = teacher(rollout.select(*keys_needed).exclude("actor_h", "actor_c").unsqueeze(0).clone())
    cloner = BehaviourCloner(make_transformer_actor(2, spec, context_len=3, d_model=8, d_ff=16), teacher)
    pairs = next(iter(buffer))
    labelled = cloner.label(pairs)
    order = torch.argsort(pairs[("window", "step")])
    torch.testing.assert_close(labelled["target_action"][order], expected["action"][0], atol=1e-5, rtol=0)
    assert not torch.allclose(expected["action"][0], rollout["action"], atol=1e-3), "the weights did move"


def test_a_recurrent_teacher_labels_each_pair_once_per_round():
    """The teacher's weights do not move during a BC round, so its rebuilt-memory labels are computed in the first
    epoch only; the later epochs train on the same labelled pairs, reshuffled into batches of the same size."""
    from trl_accel.modules import make_transformer_actor
    from trl_accel.stages import BehaviourCloner
    from trl_accel.stages.acceleration import bc_pairs, make_trajectory_buffer

    teacher, rollout, spec = lstm_teacher_rollout(48)
    buffer = make_trajectory_buffer(48, 16, context_len=3, teacher_len=30,
                                    teacher_sources=("observation", "prev_action", "prev_reward"))
    buffer.extend(bc_pairs(rollout, tuple(key for key in teacher.in_keys if isinstance(key, str)),
                           windows_from_storage=True))
    cloner = BehaviourCloner(make_transformer_actor(2, spec, context_len=3, d_model=8, d_ff=16), teacher, epochs=3)
    labelled_batches, fitted = [], []
    label, fit = cloner.label, cloner.fit
    cloner.label = lambda pairs: labelled_batches.append(label(pairs)) or labelled_batches[-1]
    cloner.fit = lambda pairs: fitted.append(pairs) or fit(pairs)
    cloner.train_on(buffer)
    assert len(labelled_batches) == 3 and len(fitted) == 9 and cloner.num_updates == 9
    assert [batch.batch_size[0] for batch in fitted] == [16] * 9
    first_labels = {int(step): action for batch in labelled_batches
                    for step, action in zip(batch[("window", "step")], batch["target_action"], strict=True)}
    for batch in fitted[3:]:
        assert "teacher" not in batch.keys()
        for step, action in zip(batch[("window", "step")], batch["target_action"], strict=True):
            torch.testing.assert_close(action, first_labels[int(step)], rtol=0, atol=0)
    assert sorted(int(step) for batch in fitted[6:] for step in batch[("window", "step")]) == sorted(first_labels)
