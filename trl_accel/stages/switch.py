"""When stage one ends: a fixed step, or an automatic criterion that needs no monitoring."""
from __future__ import annotations

from dataclasses import dataclass

SWITCH_RULES = ("fixed", "auto")


@dataclass
class SwitchCriterion:
    """Decides after each evaluation whether to switch to stage two.

    ``rule="fixed"``: never early; stage one runs its full ``stage1.steps``.
    ``rule="auto"``: switch once (a) the transformer's return, measured from the random policy's,
    has reached ``fraction`` of the accelerator's for ``patience`` evaluations in a row, and (b) the
    accelerator has not improved its best return by more than ``min_improvement`` (relative to its
    gain over random) for ``plateau_evals`` evaluations. ``stage1.steps`` stays the maximum.
    """

    rule: str = "fixed"
    fraction: float = 0.9
    patience: int = 3
    plateau_evals: int = 3
    min_improvement: float = 0.05
    random_return: float = 0.0
    streak: int = 0
    best_accelerator: float = float("-inf")
    evals_since_improvement: int = 0

    def __post_init__(self) -> None:
        if self.rule not in SWITCH_RULES:
            raise ValueError(f"stage1.switch.rule must be one of {SWITCH_RULES}, got '{self.rule}'.")

    def relative_return(self, transformer_return: float, accelerator_return: float) -> float:
        """Transformer's gain over random as a fraction of the accelerator's gain over random."""
        gain = accelerator_return - self.random_return
        return (transformer_return - self.random_return) / gain if gain > 0 else 0.0

    def observe(self, accelerator_return: float, transformer_return: float) -> str | None:
        """Record one evaluation; return the reason to switch, or ``None`` to go on."""
        ratio = self.relative_return(transformer_return, accelerator_return)
        self.streak = self.streak + 1 if ratio >= self.fraction else 0
        scale = max(abs(self.best_accelerator - self.random_return), 1e-8) if self.best_accelerator > float("-inf") else 1.0
        if accelerator_return > self.best_accelerator + self.min_improvement * scale:
            self.best_accelerator = accelerator_return
            self.evals_since_improvement = 0
        else:
            self.evals_since_improvement += 1
        if self.rule != "auto":
            return None
        if self.streak >= self.patience and self.evals_since_improvement >= self.plateau_evals:
            return (f"auto: transformer at {ratio:.2f} of the accelerator's gain over random for {self.streak} "
                    f"evaluations, accelerator without improvement for {self.evals_since_improvement}")
        return None

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("streak", "best_accelerator", "evals_since_improvement", "random_return")}

    def load_state_dict(self, state: dict) -> None:
        for key in ("streak", "best_accelerator", "evals_since_improvement", "random_return"):
            setattr(self, key, state[key])
