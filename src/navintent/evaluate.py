"""Deprecated module: closed-loop evaluation now lives in the package :mod:`navintent.evaluation` (``from
navintent.evaluation import evaluate`` for the typed call returning an :class:`~navintent.evaluation.EvaluateResult`;
config, scenes, policy, closed loop, metrics, report and experiments by concern) and ``navintent evaluate`` /
``navintent experiment`` in :mod:`navintent.commands.evaluate`.

The README named ``navintent.evaluate``, so for one release every public name of :mod:`navintent.evaluation` is
still reachable here, each access with a ``DeprecationWarning`` naming the new place. ``navintent.evaluate.evaluate``
keeps its old return value, the ``metrics.json`` dict (:meth:`~navintent.evaluation.EvaluateResult.to_json`).

Decision (as for :mod:`navintent.train`): ``navintent.evaluate(...)`` is the typed call, but importing this module
makes Python set the package attribute ``navintent.evaluate`` to the module. So the module itself is callable,
forwarding to :func:`navintent.evaluation.evaluate` (returning the :class:`~navintent.evaluation.EvaluateResult`)
without a warning, and ``navintent.evaluate(...)`` works either way. This module goes in the next release.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import navintent.evaluation as _evaluation

# old names that moved elsewhere or changed name -> (module, new name)
_RENAMED: dict[str, tuple[str, str]] = {
    "_PedestrianTracker": ("navintent.evaluation.scenes", "PedestrianTracker"),
    "register": ("navintent.commands.evaluate", "register"),
    "run_evaluate_cli": ("navintent.commands.evaluate", "run_evaluate_cli"),
    "run_experiment_cli": ("navintent.commands.evaluate", "run_experiment_cli"),
}


def _evaluate_dict(loaded: Any, config: Any, out_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """The old ``navintent.evaluate.evaluate``: :func:`navintent.evaluation.evaluate`'s result as the
    ``metrics.json`` dict (``{"rank", "scenes"}`` on a ``torchrun`` rank other than 0)."""
    return _evaluation.evaluate(loaded, config, out_dir, **kwargs).to_json()


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        new, value = (
            "navintent.evaluation.evaluate (returns EvaluateResult; .to_json() is this dict)",
            _evaluate_dict,
        )
    elif name in _RENAMED:
        module, new_name = _RENAMED[name]
        new, value = f"{module}.{new_name}", getattr(importlib.import_module(module), new_name)
    elif name in _evaluation.__all__:
        new, value = f"navintent.evaluation.{name}", getattr(_evaluation, name)
    else:
        raise AttributeError(
            f"module 'navintent.evaluate' has no attribute {name!r} (see navintent.evaluation)"
        )
    warnings.warn(
        f"navintent.evaluate.{name} moved to {new}; navintent.evaluate goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return value


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`navintent.evaluation.evaluate` (see the module docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> _evaluation.EvaluateResult:
        return _evaluation.evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
