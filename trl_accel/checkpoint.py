"""Atomic checkpoints with modules, targets, optimisers, counters and RNG states."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_states() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_states(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


#: Written into every checkpoint, so that a foreign file is recognised.
CHECKPOINT_FORMAT = "trl_accel/1"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated or not one of ours, with the file named."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` plus the RNG states to ``path`` atomically (temp file, fsync, rename), so
    a kill mid-write leaves the previous checkpoint intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        torch.save({**payload, "format": CHECKPOINT_FORMAT, "rng": rng_states()}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path`` (a file, or a run directory: its ``checkpoints/last.pt``). Raises
    :class:`CheckpointError` naming the file when it is missing, unreadable (truncated) or not a
    checkpoint of this package."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at '{path}': pass a run directory that has checkpoints/last.pt, or a checkpoint file.")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch.load raises many types for a damaged file
        reason = " ".join(str(err).split())[:160]
        raise CheckpointError(f"'{path}' cannot be read as a checkpoint (truncated or damaged?): {reason}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"'{path}' is not a trl_accel checkpoint (format {CHECKPOINT_FORMAT} expected).")
    return checkpoint
