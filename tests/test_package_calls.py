"""The typed calls at the package's top: ``navintent.optimize``, ``navintent.evaluate`` and ``navintent.train``
forward to :mod:`navintent.steering`, :mod:`navintent.evaluation` and :mod:`navintent.training`: each is the
deprecated module of the same name, callable (imported lazily), and ``import navintent`` imports no torch."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import navintent

CALLS = [
    ("optimize", "navintent.steering"),
    ("evaluate", "navintent.evaluation"),
    ("train", "navintent.training"),
]


@pytest.mark.parametrize(("name", "target"), CALLS, ids=[c[0] for c in CALLS])
def test_the_call_forwards_to_the_package(name, target, monkeypatch):
    seen = []

    def fake(*args, **kwargs):
        seen.append((args, kwargs))
        return "result"

    monkeypatch.setattr(importlib.import_module(target), name, fake)
    old_module = importlib.import_module(f"navintent.{name}")  # the deprecated module: callable
    assert callable(old_module) and callable(getattr(navintent, name))
    assert old_module("ckpt", seed=3) == "result"
    assert navintent.__getattr__(name) is old_module  # the lazy attribute is that callable module
    assert navintent.__getattr__(name)("ckpt", seed=4) == "result"
    assert seen == [(("ckpt",), {"seed": 3}), (("ckpt",), {"seed": 4})]


PROBE = """
import json, sys
import navintent
print(json.dumps(sorted(m for m in sys.modules if m == "torch" or m.startswith("navintent"))))
"""


def test_import_navintent_imports_no_torch():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == ["navintent"]


def test_the_lazy_attribute_calls_and_forwards_the_old_names_in_a_fresh_interpreter():
    """After a plain ``import navintent``: ``navintent.train(...)`` is the typed call and the README's
    ``navintent.train.evaluate_model`` still resolves (with a DeprecationWarning), in either order."""
    probe = (
        "import warnings, navintent, navintent.training\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    assert navintent.train.evaluate_model is navintent.training.evaluate_model\n"
        "assert [w.category for w in caught] == [DeprecationWarning]\n"
        "assert callable(navintent.train) and callable(navintent.optimize) and callable(navintent.evaluate)\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
