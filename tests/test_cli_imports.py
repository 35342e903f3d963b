"""What a light command imports (the claim in navintent.cli's docstring), in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from navintent.cli import main
main(["check-data", sys.argv[1]])
print(json.dumps(sorted(m for m in sys.modules if m == "mujoco" or m.startswith("navintent."))))
"""


def test_check_data_imports_neither_mujoco_nor_the_models(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out.strip().splitlines()[-1]))
    assert "navintent.commands.check_data" in loaded  # the command ran
    heavy = {m for m in loaded if m == "mujoco" or m.startswith(("navintent.sim", "navintent.models"))}
    heavy |= {
        m for m in loaded if m.startswith(("navintent.steering", "navintent.evaluation", "navintent.train"))
    }
    assert heavy == set()
