"""The typed calls at the package's top: ``navintent.optimize``, ``navintent.evaluate`` and ``navintent.train``
forward to :mod:`navintent.steering`, :mod:`navintent.evaluation` and :mod:`navintent.training`, whether the
deprecated module of the same name was imported (the module is callable) or not (a lazy attribute), and
``import navintent`` imports no torch."""

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
    assert navintent.__getattr__(name) is fake  # the lazy attribute, before the module is imported
    assert seen == [(("ckpt",), {"seed": 3})]


PROBE = """
import json, sys
import navintent
print(json.dumps(sorted(m for m in sys.modules if m == "torch" or m.startswith("navintent"))))
"""


def test_import_navintent_imports_no_torch():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == ["navintent"]


def test_the_lazy_attribute_is_the_function_in_a_fresh_interpreter():
    probe = (
        "import navintent, navintent.steering, navintent.evaluation\n"
        "assert navintent.optimize is navintent.steering.optimize\n"
        "assert navintent.evaluate is navintent.evaluation.evaluate\n"
        "assert 'navintent.optimize' not in __import__('sys').modules\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
