"""The run directory: a new run gets a writable one that holds no other run's outputs; ``resume=`` finds
the run, its checkpoint and the overrides it may take; the metric files are cut back to the checkpoint."""
from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from trl_accel.checkpoint import load_checkpoint
from trl_accel.config import ConfigError

#: What a run writes in its directory (Hydra's own ``.hydra/`` aside).
RUN_OUTPUTS = ("checkpoints/last.pt", "metrics", "summary.json", "curves.png")
#: Keys that ``resume=`` may change: schedules and how the run is shown, never what is learned or how.
RESUMABLE_KEYS = ("stage1.steps", "stage2.steps", "eval.every", "checkpoint.every", "quiet", "device", "compile",
                  "cudagraphs", "collector.ray_address")
#: Keys that are about this invocation, not the run.
INVOCATION_KEYS = ("resume", "overwrite")


def holds_a_run(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in RUN_OUTPUTS)


def check_new_run_dir(run_dir: Path, *, overwrite: bool) -> None:
    """Refuse, for a new run, a directory that holds another run's outputs, unless ``overwrite``."""
    if holds_a_run(run_dir) and not overwrite:
        raise ConfigError(f"'{run_dir}' already holds a run: continue it with resume={run_dir}, pass overwrite=true "
                          "to delete its outputs and start over, or choose another hydra.run.dir.")


def prepare_run_dir(run_dir: Path, *, overwrite: bool, resuming: bool) -> None:
    """Refuse a directory that holds another run's outputs (unless ``overwrite``, which deletes them, or
    ``resuming``), then check that it and its ``checkpoints/`` can be written."""
    if not resuming and holds_a_run(run_dir):
        check_new_run_dir(run_dir, overwrite=overwrite)
        for name in ("checkpoints", *RUN_OUTPUTS[1:]):
            target = run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    probe = run_dir / "checkpoints" / ".write_probe"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"the run directory '{run_dir}' is not writable ({err.strerror}): choose another "
                          "hydra.run.dir.") from None


def resume_target(resume: str) -> Path:
    """The run directory that ``resume=`` names: the directory itself, or the one holding ``checkpoints/last.pt``.
    A stage's own checkpoint (``stage1.pt``, ``stage2.pt``, ``final.pt``) is refused, saying what to use instead."""
    path = Path(resume)
    if path.is_dir():
        if not (path / "checkpoints" / "last.pt").is_file():
            raise ConfigError(f"resume={resume}: no checkpoints/last.pt in this directory: the run stopped before it "
                              "started, so there is nothing to continue. Start it again (same hydra.run.dir).")
        return path
    if not path.is_file():
        raise ConfigError(f"resume={resume} does not exist: pass a run directory (with checkpoints/last.pt).")
    if path.name != "last.pt" or path.parent.name != "checkpoints":
        raise ConfigError(f"resume={resume} is a {path.stem} checkpoint, which does not continue a run: pass the run "
                          f"directory ({path.parent.parent}); to start stage two from a stage-one checkpoint, use "
                          f"stage2.init_from={resume} in a new run.")
    return path.parent.parent


def overridden_keys(overrides: list[str]) -> list[str]:
    """``key`` of each ``key=value`` command-line override (``+``/``~`` prefixes dropped, Hydra's own keys skipped)."""
    names = [override.split("=", 1)[0].lstrip("+~") for override in overrides if "=" in override]
    return [name for name in names if not name.startswith("hydra.")]


def open_unfinished_run(resume: str, new_run_hint: str = "") -> tuple[Path, dict, DictConfig]:
    """The run directory ``resume=`` names, its last checkpoint and the run's own config; a finished run is
    refused (``new_run_hint``: what to say about starting a new one)."""
    run_dir = resume_target(resume)
    checkpoint = load_checkpoint(run_dir)
    state = checkpoint["run_state"]
    if state["stage"] == "done":
        hint = f" ({new_run_hint})" if new_run_hint else ""
        raise ConfigError(f"resume={resume}: this run has finished ({state['env_steps']} env steps; see "
                          f"{run_dir / 'summary.json'}). Start a new run{hint}.")
    return run_dir, checkpoint, OmegaConf.create(checkpoint["config"])


def open_resumed_run(cfg: DictConfig, overrides: list[str] | None) -> tuple[DictConfig, Path, dict]:
    """For ``resume=``: the run directory, its last checkpoint, and the run's own configuration with the
    accepted overrides applied. ``overrides``: the command line's ``key=value`` list (``None``: every
    key of ``cfg`` that differs from the run's counts as given). Refuses a finished run and any override
    outside :data:`RESUMABLE_KEYS`, or one that would end a stage before the steps it has done."""
    run_dir, checkpoint, stored = open_unfinished_run(str(cfg.resume), "stage2.init_from= reuses its stage one")
    state = checkpoint["run_state"]
    given = overridden_keys(overrides) if overrides is not None else _differing_keys(stored, cfg)
    apply_resumable_overrides(stored, cfg, given, RESUMABLE_KEYS)
    s1, s2, stage = stored.stage1, stored.stage2, state["stage"]
    planned = {"stage1": s1.random_steps + s1.steps, "stage2": s2.random_steps + s2.steps,
               "accelerator_only": s1.random_steps + s1.steps + s2.steps}
    planned["transformer_only"] = planned["accelerator_only"]
    still_running = stage in planned and not (stage == "stage1" and state["switch_step"] is not None)
    if still_running and planned[stage] < state["stage_steps"]:
        raise ConfigError(f"resume with these steps would end {stage} at {planned[stage]} env steps, but it has already "
                          f"done {state['stage_steps']}: the stage's steps must cover them.")
    stored.resume, stored.overwrite = str(cfg.resume), False
    return stored, run_dir, checkpoint


def apply_resumable_overrides(stored: DictConfig, cfg: DictConfig, given: list[str], resumable: tuple[str, ...]) -> None:
    """Copy into ``stored`` (the run's own config) the values of ``cfg`` for the ``given`` keys that differ; a key
    outside ``resumable`` that differs is refused (:class:`ConfigError`)."""
    for key in given:
        if key in INVOCATION_KEYS:
            continue
        new, old = OmegaConf.select(cfg, key, default=None), OmegaConf.select(stored, key, default=None)
        if new == old:
            continue
        if key not in resumable:
            raise ConfigError(f"resume does not take {key}={new} (the run was made with {old}): it accepts "
                              f"{', '.join(resumable)}.")
        OmegaConf.update(stored, key, new)


def _differing_keys(stored: DictConfig, cfg: DictConfig, prefix: str = "") -> list[str]:
    out = []
    for key in set(stored.keys()) | set(cfg.keys()):
        a, b = stored.get(key), cfg.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, DictConfig) and isinstance(b, DictConfig):
            out += _differing_keys(a, b, f"{name}.")
        elif a != b:
            out.append(name)
    return sorted(out)


def truncate_metrics(run_dir: Path, metric_rows: dict[str, int]) -> None:
    """Cut each CSV metric file back to the rows it had at the checkpoint a run resumes from
    (``metric_rows``: rows per metric name), so that a resumed run logs each row once."""
    scalars = run_dir / "metrics" / "scalars"
    for path in scalars.rglob("*.csv"):
        rows = path.read_text().splitlines(keepends=True)
        kept = rows[: metric_rows.get(path.relative_to(scalars).with_suffix("").as_posix(), 0)]
        if len(kept) != len(rows):
            path.write_text("".join(kept))


__all__ = ["RESUMABLE_KEYS", "apply_resumable_overrides", "check_new_run_dir", "holds_a_run", "open_resumed_run", "open_unfinished_run", "overridden_keys", "prepare_run_dir", "resume_target",
           "truncate_metrics"]
