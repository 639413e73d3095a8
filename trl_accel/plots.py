"""curves.png: evaluation return over env steps, accelerator and transformer, switch marked."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(evaluations: list[dict], path: str | Path, title: str, switch_step: int | None = None, *,
                ylabel: str = "evaluation return (deterministic, mean over episodes)") -> Path:
    """``evaluations``: records with ``env_steps`` and any of ``accelerator_return``,
    ``transformer_return``, ``mlp_return``, ``lstm_return``, ``gru_return`` (missing or ``None`` values are skipped)."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for key, label in (("accelerator_return", "accelerator"), ("transformer_return", "transformer"),
                       ("mlp_return", "MLP from scratch"), ("lstm_return", "LSTM from scratch"),
                       ("gru_return", "GRU from scratch")):
        points = [(e["env_steps"], e[key]) for e in evaluations if e.get(key) is not None]
        if points:
            steps, returns = zip(*points)
            axis.plot(steps, returns, marker="o", markersize=3, label=label)
    if switch_step is not None:
        axis.axvline(switch_step, color="grey", linestyle="--", label=f"switch to stage two ({switch_step})")
    axis.set_xlabel("env steps")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)
