"""The recipes' command line: every bad input is one ``error:`` line on stderr and exit status 2, before
anything is built; then the experiment runs under Hydra.

Hydra reports a bad override (an unknown key or group, a malformed value) in several lines with exit
status 1, after creating the run directory. So the command line is first composed here with Hydra's
compose API and checked (:func:`trl_accel.config.validate_config`, the run directory, ``resume=``);
only then does ``hydra.main`` compose it again and run it. Exit status: 0 done, 2 bad input, 3 training
diverged, 130/143 stopped by SIGINT/SIGTERM after writing a checkpoint (``resume=`` continues).
"""
from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from trl_accel.checkpoint import CheckpointError
from trl_accel.config import ConfigError, one_line, validate_config
from trl_accel.experiment import run_experiment
from trl_accel.loop import RunInterrupted, TrainingDiverged
from trl_accel.run_dir import check_new_run_dir, resume_target

#: Exit statuses of a recipe.
EXIT_BAD_INPUT, EXIT_DIVERGED = 2, 3


def fail(message: str, status: int = EXIT_BAD_INPUT) -> None:
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(status)


def check_command_line(config_dir: Path, config_name: str, overrides: list[str], *,
                       validate: Callable[[DictConfig], DictConfig] = validate_config) -> list[str]:
    """Compose and check the run the overrides describe (``validate``: the recipe's config checks); return Hydra
    arguments to add (a resumed run keeps its own directory and Hydra writes no new ``.hydra/`` into it). Exits
    with status 2 on bad input."""
    try:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
        run_dir = Path(cfg.hydra.run.dir)
        given = {override.split("=", 1)[0] for override in overrides}
        validate(cfg)
        if cfg.resume is not None:
            target = resume_target(str(cfg.resume))
            extra = [] if "hydra.run.dir" in given else [f"hydra.run.dir={target}"]
            return [*extra, "hydra.output_subdir=null"]
        check_new_run_dir(run_dir, overwrite=cfg.overwrite)
        return []
    except (ConfigError, CheckpointError) as err:
        fail(str(err))
    except (HydraException, OmegaConfBaseException) as err:
        hint = " (the algorithm's settings are algo.*: algo=td3|sac)" if any(
            o.startswith(("td3.", "sac.")) for o in overrides) else ""
        fail(f"{err}{hint}")
    finally:
        GlobalHydra.instance().clear()
    return []


def run_and_report(cfg: DictConfig, run: Callable[..., dict] = run_experiment) -> None:
    """Run the experiment Hydra composed (``run``: the recipe's ``run(cfg, run_dir, overrides=...)``); every way
    it can end is one line and an exit status."""
    hydra_cfg = HydraConfig.get()
    try:
        run(cfg, Path(hydra_cfg.runtime.output_dir), overrides=list(hydra_cfg.overrides.task))
    except (ConfigError, CheckpointError) as err:
        fail(str(err))
    except TrainingDiverged as err:
        fail(str(err), EXIT_DIVERGED)
    except RunInterrupted as err:
        signum = signal.SIGTERM if "SIGTERM" in str(err) else signal.SIGINT
        print(f"interrupted: {err}", file=sys.stderr)
        sys.exit(128 + signum)
    except KeyboardInterrupt:
        print("interrupted: stopped at once; the last checkpoint (if any) is intact: continue with resume=RUN_DIR",
              file=sys.stderr)
        sys.exit(128 + signal.SIGINT)


def main(config_dir: Path, config_name: str, *, validate: Callable[[DictConfig], DictConfig] = validate_config,
         run: Callable[..., dict] = run_experiment) -> None:
    """``python recipes/<name>.py key=value ...``: checks, then Hydra runs the experiment. Hydra's own flags
    (``--help``, ``--cfg``, ``-m``) skip the first check; each job is still checked before it builds anything."""
    arguments = sys.argv[1:]
    if not any(argument.startswith("-") for argument in arguments):
        sys.argv += check_command_line(config_dir, config_name, arguments, validate=validate)

    def task(cfg: DictConfig) -> None:
        run_and_report(cfg, run)

    hydra.main(config_path=str(config_dir), config_name=config_name, version_base="1.3")(task)()


__all__ = ["EXIT_BAD_INPUT", "EXIT_DIVERGED", "check_command_line", "main", "run_and_report"]
