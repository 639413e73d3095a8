"""The error raised for an environment that cannot be built."""
from __future__ import annotations


class EnvConfigError(ValueError):
    """An environment that cannot be built, with what to do about it."""


__all__ = ["EnvConfigError"]
