"""Deprecated module: z2 optimisation now lives in :mod:`navintent.steering` (``from navintent.steering import
optimize`` for the typed call; the adapter, the methods and the report by concern) and ``navintent optimize-z2`` in
:mod:`navintent.commands.optimize_z2`.

The README named ``navintent.optimize.DiffusionAdapter``, so for one release every public name of
:mod:`navintent.steering` is still reachable here, each access with a ``DeprecationWarning`` naming the new place.

Decision (as for :mod:`navintent.train`): ``navintent.optimize(...)`` is the typed call, but importing this module
makes Python set the package attribute ``navintent.optimize`` to the module. So the module itself is callable,
forwarding to :func:`navintent.steering.optimize` without a warning, and ``navintent.optimize(...)`` works either
way. This module goes in the next release.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

import navintent.steering as _steering


def __getattr__(name: str) -> Any:
    if name not in _steering.__all__:
        raise AttributeError(
            f"module 'navintent.optimize' has no attribute {name!r} (see navintent.steering)"
        )
    warnings.warn(
        f"navintent.optimize.{name} moved to navintent.steering.{name}; navintent.optimize goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(_steering, name)


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`navintent.steering.optimize` (see the module docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> _steering.OptimizeResult:
        return _steering.optimize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
