"""The examples in the modules' docstrings run as written."""
from __future__ import annotations

import doctest

import pytest

from trl_accel.envs import previous
from trl_accel.modules import encoders, heads, kv_cache, mlp, pixels, recurrent, transformer
from trl_accel.stages import actor_critic, windows

MODULES = [actor_critic, encoders, heads, kv_cache, mlp, pixels, previous, recurrent, transformer, windows]


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module.__name__} has no examples"
    assert result.failed == 0


def test_every_public_factory_has_an_example():
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if name.startswith("make_") or name in ("bounded_action_head", "stochastic_action_head"):
                assert ">>>" in (obj.__doc__ or ""), f"{module.__name__}.{name} has no example"
