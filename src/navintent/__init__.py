"""navintent: steer and stress-test NoMaD diffusion navigation policies with a two-stage latent intent.

The typed calls, each returning a dataclass: ``navintent.optimize(...)`` (:func:`navintent.steering.optimize` ->
:class:`~navintent.steering.OptimizeResult`), ``navintent.evaluate(...)`` (:func:`navintent.evaluation.evaluate` ->
:class:`~navintent.evaluation.EvaluateResult`) and ``navintent.train(...)`` (:func:`navintent.training.train` ->
:class:`~navintent.training.TrainResult`).

``import navintent`` stays light (no torch import): :func:`load_policy` imports the checkpoint code on first use,
and the three calls are looked up on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers only; at run time __getattr__ below imports it on first access
    from navintent.evaluation import evaluate
    from navintent.steering import optimize
    from navintent.training import train

__version__ = "0.1.0"

# The three calls, imported on first access so ``import navintent`` does not import torch. Each is the module of the
# same name: deprecated for its old contents (which it still forwards, with a warning, for one release) and callable
# as the typed call. Returning the module (not the function) keeps ``navintent.train(...)`` and the README's
# ``navintent.train.evaluate_model`` both working whichever is touched first.
_LAZY = ("evaluate", "optimize", "train")


def load_policy(path: Any, config: Any = None, trust_checkpoint: bool = False, **kwargs: Any) -> Any:
    """Load a policy from a native checkpoint, a nomad.pth (+ ``config``) or, with ``trust_checkpoint``, a packaged
    file. See :func:`navintent.checkpoint.load_policy`."""
    from navintent.checkpoint import load_policy as _load_policy

    return _load_policy(path, config=config, trust_checkpoint=trust_checkpoint, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"navintent.{name}")
    raise AttributeError(f"module 'navintent' has no attribute {name!r}")


__all__ = ["__version__", "evaluate", "load_policy", "optimize", "train"]
