"""Windows from replay: each step stored once, windows built at sampling time equal the env-built ones."""
from __future__ import annotations

import torch
from tensordict import TensorDict
from torchrl.collectors import Collector
from torchrl.envs import SerialEnv, TransformedEnv

from trl_accel import keys
from trl_accel.envs.make import env_transforms, make_base_env
from trl_accel.stages.acceleration import bc_pairs, make_trajectory_buffer
from trl_accel.stages.sequences import SequenceSettings, make_replay_buffer
from trl_accel.stages.windows import (
    STEP_KEY,
    STREAM_KEY,
    StreamWindows,
    stored_instead_of_windows,
)

K = 4
EPISODE_LIMITS = (7, 11, 5)  # three envs that reset at different times


def env_with_windows(context_len: int = K) -> TransformedEnv:
    factories = [lambda limit=limit: make_base_env("Pendulum-v1", max_episode_steps=limit) for limit in EPISODE_LIMITS]
    env = TransformedEnv(SerialEnv(len(factories), factories), env_transforms(context_len))
    env.set_seed(0)
    return env


def collected_batches(batches: int, steps_per_env: int = 8, context_len: int = K):
    """Flat env-major collector batches with the env-built windows kept under ``env_*`` keys for comparison."""
    env = env_with_windows(context_len)
    collector = Collector(env, None, frames_per_batch=len(EPISODE_LIMITS) * steps_per_env, total_frames=-1)
    out = []
    for index, batch in enumerate(collector):
        flat = batch.reshape(-1)
        stored = flat.select(keys.OBSERVATION, ("next", keys.OBSERVATION), keys.IS_INIT, keys.ACTION)
        stored.set("env_window", flat[keys.OBSERVATION_WINDOW]).set("env_mask", flat[keys.WINDOW_MASK])
        stored.set(("next", "env_window"), flat["next", keys.OBSERVATION_WINDOW])
        stored.set(("next", "env_mask"), flat["next", keys.WINDOW_MASK])
        out.append(stored)
        if index + 1 == batches:
            break
    collector.shutdown()
    return out


PAIRS = [(keys.OBSERVATION_WINDOW, "env_window"), (keys.WINDOW_MASK, "env_mask"),
         (("next", keys.OBSERVATION_WINDOW), ("next", "env_window")), (("next", keys.WINDOW_MASK), ("next", "env_mask"))]


def test_windows_from_replay_equal_the_env_built_windows():
    batches = collected_batches(4)
    replay = make_replay_buffer(1000, 300, windows=StreamWindows(context_len=K, num_streams=3, capacity=1000))
    for batch in batches:
        replay.extend(batch)
    sample = replay.sample()
    assert sample[keys.OBSERVATION_WINDOW].shape == (300, K, 3)
    for ours, env_built in PAIRS:
        assert torch.equal(sample[ours], sample[env_built]), ours
    assert not sample[keys.WINDOW_MASK].all(), "some windows should start at a reset"
    # the stored steps hold no window
    assert keys.OBSERVATION_WINDOW not in replay._storage._storage


def test_windows_after_the_storage_wraps_around():
    """Steps whose history the buffer still holds get the env's window; where it was overwritten, the window is
    shorter (masked), never wrong."""
    batches = collected_batches(7)
    replay = make_replay_buffer(40, 400, windows=StreamWindows(context_len=K, num_streams=3, capacity=40))
    for batch in batches:
        replay.extend(batch)
    sample = replay.sample()
    stored = replay._storage._storage
    oldest = {stream: int(stored[STEP_KEY][stored[STREAM_KEY] == stream].min()) for stream in range(3)}
    intact = torch.tensor([int(step) - (K - 1) >= oldest[int(stream)]
                           for step, stream in zip(sample[STEP_KEY], sample[STREAM_KEY])])
    assert intact.any() and (~intact).any()
    for ours, env_built in PAIRS:
        assert torch.equal(sample[ours][intact], sample[env_built][intact]), ours
    mask = sample[keys.WINDOW_MASK]
    assert (mask[~intact].sum(-1) <= sample["env_mask"][~intact].sum(-1)).all()
    real = mask.unsqueeze(-1).expand_as(sample[keys.OBSERVATION_WINDOW])
    assert torch.equal(sample[keys.OBSERVATION_WINDOW][real], sample["env_window"][real])
    assert (sample[keys.OBSERVATION_WINDOW][~real] == 0).all()


def test_sequences_with_windows():
    """A recurrent critic's sequence replay and the transformer's windows together (stage two with an LSTM
    accelerator): [B, T, K, D] windows, each equal to the env's."""
    batches = collected_batches(4)
    replay = make_replay_buffer(1000, 4, sequences=SequenceSettings(seq_len=5, burn_in=0, start_state="zero"),
                                windows=StreamWindows(context_len=K, num_streams=3, capacity=1000))
    for index, batch in enumerate(batches):  # SliceSampler cuts by trajectory id: one per env and episode
        streams = torch.arange(3).repeat_interleave(batch.numel() // 3)
        episode = torch.cumsum(batch[keys.IS_INIT].reshape(3, -1).long(), dim=1).reshape(-1)
        batch.set(("collector", "traj_ids"), streams * 1000 + index * 100 + episode)
        replay.extend(batch)
    sample = replay.sample()
    assert sample[keys.OBSERVATION_WINDOW].shape == (4, 5, K, 3)
    real = sample[("collector", "mask")]
    for ours, env_built in PAIRS:
        assert torch.equal(sample[ours][real], sample[env_built][real]), ours


def test_trajectory_buffer_keeps_history_across_bc_rounds():
    """T is emptied after a BC round, but the next round's first steps still see their episode's past; the
    random phase is history only; one epoch visits each fresh step once."""
    batches = collected_batches(4)
    buffer = make_trajectory_buffer(48, 16, context_len=K, num_streams=3)
    buffer.extend(batches[0], history_only=True)
    assert len(buffer) == 0 and list(buffer) == []
    buffer.extend(batches[1])
    buffer.extend(batches[2])
    assert len(buffer) == 48
    seen = torch.cat([pairs[keys.OBSERVATION] for pairs in buffer])
    assert seen.shape[0] == 48
    expected = torch.cat([batches[1][keys.OBSERVATION], batches[2][keys.OBSERVATION]])
    assert torch.equal(seen.sort(dim=0).values, expected.sort(dim=0).values)
    buffer.empty()
    buffer.extend(batches[3])
    pairs = torch.cat([pairs.select(*[key for pair in PAIRS[:2] for key in pair]) for pairs in buffer])
    for ours, env_built in PAIRS[:2]:
        assert torch.equal(pairs[ours], pairs[env_built]), ours


def test_trajectory_buffer_aggregates_the_last_rounds_when_asked():
    """rounds_kept=2: a round leaves its steps in T for the next round, the round after drops them; new_steps counts
    what came since the last round (what starts the next); the windows stay the env-built ones."""
    batches = collected_batches(3)
    buffer = make_trajectory_buffer(24, 8, context_len=K, num_streams=3, rounds_kept=2)
    observations = [batch[keys.OBSERVATION] for batch in batches]
    for index, batch in enumerate(batches):
        buffer.extend(batch)
        assert buffer.new_steps == 24 and len(buffer) == 24 * min(index + 1, 2)
        kept = torch.cat([pairs.select(keys.OBSERVATION, *[key for pair in PAIRS[:2] for key in pair]) for pairs in buffer])
        expected = torch.cat(observations[max(0, index - 1):index + 1])
        assert torch.equal(kept[keys.OBSERVATION].sort(dim=0).values, expected.sort(dim=0).values)
        for ours, env_built in PAIRS[:2]:
            assert torch.equal(kept[ours], kept[env_built]), ours
        buffer.empty()
        assert buffer.new_steps == 0 and len(buffer) == 24 * min(index + 1, 2)


def test_stored_keys_replace_windows_by_their_sources():
    assert stored_instead_of_windows([keys.OBSERVATION_WINDOW, keys.WINDOW_MASK, keys.PIXELS_WINDOW, keys.ACTION,
                                      ("next", keys.OBSERVATION_WINDOW), ("next", keys.WINDOW_MASK)]) == [
        keys.OBSERVATION, keys.PIXELS, keys.ACTION, ("next", keys.OBSERVATION), keys.IS_INIT]
    batch = collected_batches(1)[0]
    pairs = bc_pairs(batch.exclude("env_window", "env_mask", "next"), windows_from_storage=True)
    assert set(pairs.keys()) == {keys.OBSERVATION, keys.ACTION, keys.IS_INIT}


def test_replay_memory_does_not_grow_with_the_context():
    """The stored bytes per step are the same at K=3 and K=64 (the window is built at sampling time)."""
    sizes = []
    for context_len in (3, 64):
        batch = collected_batches(1, context_len=context_len)[0].exclude("env_window", "env_mask",
                                                                         ("next", "env_window"), ("next", "env_mask"))
        replay = make_replay_buffer(100, 8, windows=StreamWindows(context_len=context_len, num_streams=3, capacity=100))
        replay.extend(batch)
        sizes.append(replay._storage._storage.bytes())
        assert replay.sample()[keys.OBSERVATION_WINDOW].shape == (8, context_len, 3)
    assert sizes[0] == sizes[1]


def test_windowed_replay_state_dict_round_trip():
    batches = collected_batches(2)
    replay = make_replay_buffer(100, 32, windows=StreamWindows(context_len=K, num_streams=3, capacity=100))
    replay.extend(batches[0])
    restored = make_replay_buffer(100, 32, windows=StreamWindows(context_len=K, num_streams=3, capacity=100))
    restored.load_state_dict(replay.state_dict())
    replay.extend(batches[1])
    restored.extend(batches[1])
    torch.manual_seed(1)
    ours = replay.sample()
    torch.manual_seed(1)
    theirs = restored.sample()
    assert torch.equal(ours[keys.OBSERVATION_WINDOW], theirs[keys.OBSERVATION_WINDOW])
    for ours_key, env_built in PAIRS:
        assert torch.equal(theirs[ours_key], theirs[env_built])


def test_place_refuses_a_batch_that_is_not_env_major():
    windows = StreamWindows(context_len=K, num_streams=3, capacity=10)
    data = TensorDict({keys.IS_INIT: torch.zeros(4, 1, dtype=torch.bool)}, batch_size=[4])
    try:
        windows.place(data)
    except ValueError as err:
        assert "batch_streams=3" in str(err)
    else:
        raise AssertionError("a batch of 4 steps cannot come from 3 envs")
