"""The automatic stage switch."""
from __future__ import annotations

import pytest

from trl_accel.stages import SwitchCriterion


def test_fixed_rule_never_switches_early():
    switch = SwitchCriterion(rule="fixed", random_return=-100.0)
    assert all(switch.observe(100.0, 100.0) is None for _ in range(10))


def test_auto_switches_once_the_transformer_is_close_and_the_accelerator_flat():
    switch = SwitchCriterion(rule="auto", fraction=0.9, patience=3, plateau_evals=2, random_return=-100.0)
    # accelerator improving, transformer close: no switch while the accelerator still improves
    assert switch.observe(50.0, 45.0) is None
    assert switch.observe(100.0, 95.0) is None
    assert switch.observe(200.0, 190.0) is None
    # accelerator flat from here; the transformer's gain is >= 90% of the accelerator's
    assert switch.observe(201.0, 190.0) is None
    reason = switch.observe(199.0, 195.0)
    assert reason is not None and reason.startswith("auto:")


def test_auto_waits_while_the_transformer_lags():
    switch = SwitchCriterion(rule="auto", fraction=0.9, patience=2, plateau_evals=1, random_return=0.0)
    for _ in range(6):
        assert switch.observe(100.0, 50.0) is None


def test_a_transformer_streak_is_broken_by_one_bad_evaluation():
    switch = SwitchCriterion(rule="auto", fraction=0.9, patience=3, plateau_evals=0, random_return=0.0)
    assert switch.observe(100.0, 95.0) is None
    assert switch.observe(100.0, 95.0) is None
    assert switch.observe(100.0, 10.0) is None
    assert switch.observe(100.0, 95.0) is None
    assert switch.observe(100.0, 95.0) is None
    assert switch.observe(100.0, 95.0) is not None


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rule must be one of"):
        SwitchCriterion(rule="sometimes")
