"""Deprecated module: training now lives in the package :mod:`navintent.training` (``from navintent.training
import train`` for the typed call returning a :class:`~navintent.training.TrainResult`; distributed setup, state,
optimiser, checkpoints, metrics log, evaluation and the trainer by concern) and ``navintent train`` in
:mod:`navintent.commands.train`.

The README named ``navintent.train.evaluate_model``, so for one release every public name of
:mod:`navintent.training` (and the command's ``add_train_arguments``, ``resolve_config``, ``run_train``,
``register``) is still reachable here, each access with a ``DeprecationWarning`` naming the new place. The old
``TrainResult`` (what ``Trainer.fit`` returns) is :class:`navintent.training.FitResult` now.

Decision: ``navintent.train(...)`` is the typed call, but importing this module makes Python set the package
attribute ``navintent.train`` to the module. So the module itself is callable, forwarding to
:func:`navintent.training.train` without a warning, and ``navintent.train(...)`` works either way. This module
goes in the next release.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from typing import Any

import navintent.training as _training

# old names that moved elsewhere or changed name -> (module, new name)
_RENAMED: dict[str, tuple[str, str]] = {
    "TrainResult": ("navintent.training", "FitResult"),
    "add_train_arguments": ("navintent.commands.train", "add_train_arguments"),
    "resolve_config": ("navintent.commands.train", "resolve_config"),
    "run_train": ("navintent.commands.train", "run_train"),
    "register": ("navintent.commands.train", "register"),
}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        module, new_name = _RENAMED[name]
        new, value = f"{module}.{new_name}", getattr(importlib.import_module(module), new_name)
    elif name in _training.__all__:
        new, value = f"navintent.training.{name}", getattr(_training, name)
    else:
        raise AttributeError(f"module 'navintent.train' has no attribute {name!r} (see navintent.training)")
    warnings.warn(
        f"navintent.train.{name} moved to {new}; the module navintent.train goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return value


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`navintent.training.train` (see the module docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> _training.TrainResult:
        return _training.train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
