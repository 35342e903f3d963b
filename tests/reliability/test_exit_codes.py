"""The one error policy (:mod:`navintent.errors`, applied in :func:`navintent.cli.main`): an input error exits 2 and
a numerical stop exits 3, each as ``navintent <command>: error: <message>`` on stderr, without a traceback; Python
callers that pass ``argv`` get the exception."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import torch

from navintent.checkpoint import save_checkpoint
from navintent.cli import main
from navintent.config import IntentConfig, SchedulerConfig, preset_model_config
from navintent.data import DataError
from navintent.errors import EXIT_INPUT, EXIT_NUMERICAL, NumericalStopError, exit_code
from navintent.models.intent import TwoStageIntentModel
from navintent.steering import NonFiniteObjectiveError
from navintent.training import NonFiniteLossError

B, H = 2, 64


def test_exit_code_of_each_error_type():
    assert exit_code(DataError("x")) == exit_code(FileNotFoundError("x")) == EXIT_INPUT == 2
    assert exit_code(FileExistsError("x")) == exit_code(ValueError("x")) == EXIT_INPUT
    assert (
        exit_code(NonFiniteLossError("x")) == exit_code(NonFiniteObjectiveError("x")) == EXIT_NUMERICAL == 3
    )
    assert issubclass(NonFiniteLossError, NumericalStopError) and issubclass(NonFiniteLossError, RuntimeError)
    assert exit_code(RuntimeError("a bug")) is None and exit_code(KeyError("k")) is None  # keep the traceback


def test_sample_input_error_exits_2_naming_the_flag(tmp_path):
    """``sample`` used to raise ``SystemExit("...")`` (exit 1); the documented status is 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "navintent", "sample", "--config", str(tmp_path / "nomad.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.strip()
        == "navintent sample: error: --config is only used with --ckpt (a nomad.pth needs it)"
    )


def test_missing_file_exits_2_naming_the_file(tmp_path, capsys):
    missing = tmp_path / "missing.pt"
    assert (
        main(["optimize-z2", "--ckpt", str(missing), "--out-dir", str(tmp_path / "o")], report_errors=True)
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("navintent optimize-z2: error: ") and str(missing) in err and "Traceback" not in err
    with pytest.raises(FileNotFoundError):
        main(["optimize-z2", "--ckpt", str(missing), "--out-dir", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def _nan_objective(waypoints, ctx):
    """NaN for every row (a user objective gone wrong)."""
    return (waypoints * float("nan")).sum((1, 2))


def test_nan_objective_exits_3_and_writes_nothing(tmp_path, capsys, monkeypatch):
    module = types.ModuleType("navintent_exit_codes_obj")
    module.fn = _nan_objective
    monkeypatch.setitem(sys.modules, module.__name__, module)
    torch.manual_seed(0)
    model = TwoStageIntentModel(preset_model_config("tiny"), IntentConfig(z1_dim=4, enc2_hidden=16)).eval()
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, model, scheduler_config=SchedulerConfig(num_train_timesteps=4))
    g = torch.Generator().manual_seed(1)
    sample = {
        "obs_img": torch.randn(B, 12, H, H, generator=g),
        "goal_img": torch.randn(B, 3, H, H, generator=g),
    }
    torch.save({**sample, "metric_scale": torch.full((B,), 0.1)}, tmp_path / "sample.pt")
    out = tmp_path / "o"
    argv = ["optimize-z2", "--ckpt", str(ckpt), "--data_sample", str(tmp_path / "sample.pt"), "--steps", "2"]
    argv += ["--draws", "1", "--objective", f"user:1@fn={module.__name__}:fn", "--out-dir", str(out)]
    assert main(argv, report_errors=True) == 3
    err = capsys.readouterr().err
    assert "navintent optimize-z2: error: objective is NaN/inf for scenario 0 ('scenario_0')" in err, err
    assert "Traceback" not in err and not (out / "report.json").exists()
    with pytest.raises(NonFiniteObjectiveError):  # Python callers get the exception
        main(argv)
