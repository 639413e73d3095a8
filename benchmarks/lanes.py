"""Running the recipe once per cell of a benchmark's grid, in its own process, two at a time on two cores.

Shared by the benchmarks that compare many runs (``teachers.py``, ``pomdp_curves.py``), with their CSV writer: each run writes its own
directory, a finished run (one with ``summary.json``) is read back instead of rerun, so a stopped benchmark starts
again where it stopped, and with two lanes each run is pinned to one core and one thread (two torch processes that
share the cores slow each other far more than twice).
"""
from __future__ import annotations

import csv
import json
import os
import queue
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
Cell = TypeVar("Cell")


def overrides_for(owner_name: str, overrides: list[str]) -> list[str]:
    """The overrides of every run, and those marked ``<owner_name>:`` for this owner's runs (unmarked)."""
    mine = []
    for override in overrides:
        owner, marked, rest = override.partition(":")
        if not marked or "=" in owner:  # a plain override (a value may hold a colon)
            mine.append(override)
        elif owner == owner_name:
            mine.append(rest)
    return mine


def unknown_owners(overrides: list[str], owners: Sequence[str]) -> list[str]:
    """The overrides marked ``<owner>:`` for an owner not in ``owners``."""
    unknown = []
    for override in overrides:
        owner, marked, _ = override.partition(":")
        if marked and "=" not in owner and owner not in owners:
            unknown.append(override)
    return unknown


def write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    """``rows`` (dicts keyed by ``fields``) as a CSV file with a header line."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def run_recipe(recipe: str, overrides: list[str], directory: Path, core: int | None, label: str) -> dict:
    """``recipes/<recipe>`` with ``overrides`` into ``directory`` (pinned to ``core`` with one thread when given);
    its ``summary.json``, read back without running when the run already finished; a run stopped after a checkpoint is
    resumed from it. Exits with the run's error."""
    summary_path = directory / "summary.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    resume = directory / "checkpoints" / "last.pt"
    command = [sys.executable, f"recipes/{recipe}", *overrides, "quiet=true", f"hydra.run.dir={directory}",
               f"resume={directory}" if resume.is_file() else "overwrite=true"]
    env = dict(os.environ)
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
        env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise SystemExit(f"error: {label} failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    return json.loads(summary_path.read_text())


def run_grid(cells: list[Cell], run_cell: Callable[[Cell, int | None], dict], jobs: int) -> list[dict]:
    """``run_cell(cell, core)`` for every cell: one after another, unpinned (``jobs=1``), or in two lanes pinned to
    cores 0 and 1 (``jobs=2``), each lane taking the next cell in order when its run ends. The summaries in the
    cells' order."""
    if jobs == 1:
        return [run_cell(cell, None) for cell in cells]
    pending = queue.SimpleQueue()
    for index, cell in enumerate(cells):
        pending.put((index, cell))
    summaries: list[dict | None] = [None] * len(cells)

    def lane(core: int) -> None:
        while True:
            try:
                index, cell = pending.get_nowait()
            except queue.Empty:
                return
            summaries[index] = run_cell(cell, core)

    with ThreadPoolExecutor(max_workers=2) as pool:  # a thread per core; the runs are processes
        for future in [pool.submit(lane, core) for core in (0, 1)]:
            future.result()
    return summaries
