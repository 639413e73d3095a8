"""A fast path that tensordict lacks, applied when ``trl_accel`` is imported.

Every output a ``TensorDictModule`` writes goes through ``TensorDict.from_any``. For a plain tensor, tensordict
0.14 falls through its list of convertible types to ``importlib.util.find_spec("pandas")``, a search of
``sys.path`` on the file system, before returning the tensor unchanged: about 0.3 ms per module output on the
2-core CPU machine, paid by every actor and critic call in collection and in every update. The fast path returns
a tensor at once, as ``from_any`` would after its search; every other object takes tensordict's own route.
"""
from __future__ import annotations

import torch
from tensordict import TensorDictBase

_TENSORDICT_FROM_ANY = TensorDictBase.__dict__["from_any"].__func__


def _from_any(cls, obj, **kwargs):
    """``TensorDict.from_any``, returning a tensor as it is without the search for optional converters."""
    if type(obj) is torch.Tensor or type(obj) is torch.nn.Parameter:
        return obj
    return _TENSORDICT_FROM_ANY(cls, obj, **kwargs)


def install() -> None:
    """Give ``TensorDictBase.from_any`` the fast path for tensors (idempotent)."""
    if TensorDictBase.__dict__["from_any"].__func__ is not _from_any:
        TensorDictBase.from_any = classmethod(_from_any)


install()

__all__ = ["install"]
