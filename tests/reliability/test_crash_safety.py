"""Crash safety: a real ``navintent train`` process killed with SIGKILL resumes to the same bits; checkpoint writes
are atomic (a process killed inside a write leaves the previous file intact and a stale temp file that the next
run removes); truncated or corrupt checkpoints are refused with the file named.

Already covered elsewhere (not repeated here): resume from an intermediate checkpoint through ``main`` equals an
uninterrupted run (tests/test_train.py::test_resume_reproduces_the_uninterrupted_run_bit_for_bit); truncated /
garbage / empty / legacy files name the file (tests/test_checkpoint.py::test_corrupt_files_name_the_file).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from navintent.checkpoint import read_checkpoint, save_checkpoint
from navintent.cli import main
from navintent.config import SchedulerConfig, preset_model_config
from navintent.data import write_traj_names
from navintent.data.synthetic import write_synthetic_dataset
from navintent.models.nomad import NoMaDPolicy

MAX_STEPS = 4


@pytest.fixture
def train_data(tmp_path, monkeypatch):
    """Two 14-frame trajectories (6 samples: 3 steps per epoch at batch 2), no test split; a 32x32 tiny config."""
    monkeypatch.setenv("NAVINTENT_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    write_synthetic_dataset(
        data / "synth", num_trajectories=2, length=14, split_folder=data / "splits" / "synth" / "train"
    )
    write_traj_names(data / "splits" / "synth" / "train", ["traj_000", "traj_001"])
    (data / "data_config.yaml").write_text("synth:\n  metric_waypoint_spacing: 0.25\n")
    config = tmp_path / "train.yaml"
    config.write_text(
        "model:\n  image_size: [32, 32]\ntrain:\n  keep_checkpoints: 2\n  checkpoint_every: 1\n"
    )
    return [
        "train",
        "--data_dir",
        str(data),
        "--preset",
        "tiny",
        "--config",
        str(config),
        "--batch_size",
        "2",
        "--epochs",
        "4",
        "--max_steps",
        str(MAX_STEPS),
        "--device",
        "cpu",
        "--no_progress",
    ]


def _latest_step(out: Path) -> int | None:
    try:
        return int(read_checkpoint(out / "latest.pt")["train_state"]["step"])
    except (FileNotFoundError, ValueError):
        return None


def test_sigkill_mid_run_then_resume_equals_uninterrupted_run(train_data, tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    # Same intra-op thread count as this process: float reductions (hence bits) depend on it.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "navintent", *train_data, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (killed / "latest.pt").exists():  # the first checkpoint (step 1) is complete
            assert proc.poll() is None, f"train exited early: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL  # it really died by the kill, not by finishing
    at_kill = _latest_step(killed)
    assert at_kill is not None and 1 <= at_kill < MAX_STEPS

    # leftovers a kill inside a checkpoint write would leave (see the next test): the resumed run removes them
    (killed / ".step_00000099.pt.k1l.tmp").write_bytes(b"half a checkpoint")
    (killed / ".latest.pt.12345.link").write_bytes(b"")
    assert main([*train_data, "--out", str(killed), "--resume"]) == 0
    assert main([*train_data, "--out", str(reference)]) == 0

    a, b = read_checkpoint(reference / "latest.pt"), read_checkpoint(killed / "latest.pt")
    assert a["train_state"]["step"] == b["train_state"]["step"] == MAX_STEPS
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), f"{key}: {name}"
    # no temporary or link leftovers in either folder
    for out in (killed, reference):
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


_DIE_MID_WRITE = textwrap.dedent(
    """
    import io, os, signal, sys
    import torch
    from navintent.checkpoint import save_checkpoint
    from navintent.config import SchedulerConfig, preset_model_config
    from navintent.models.nomad import NoMaDPolicy

    real_save = torch.save

    def save_half_then_die(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save_half_then_die
    torch.manual_seed(1)
    save_checkpoint(sys.argv[1], NoMaDPolicy(preset_model_config("tiny")), scheduler_config=SchedulerConfig())
    """
)


def test_sigkill_inside_a_checkpoint_write_leaves_the_previous_file_intact(tmp_path):
    """The write protocol is temp file + fsync + os.replace: a process killed half-way through writing the new
    checkpoint leaves the old one byte-for-byte intact; only a hidden temp file remains (which ``navintent
    train`` deletes on its next start: see the test above)."""
    path = tmp_path / "step_00000001.pt"
    torch.manual_seed(0)
    old = NoMaDPolicy(preset_model_config("tiny"))
    save_checkpoint(path, old, scheduler_config=SchedulerConfig())
    before = path.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-c", _DIE_MID_WRITE, str(path)], capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert path.read_bytes() == before
    state = read_checkpoint(path)["model"]
    assert all(torch.equal(v, state[k]) for k, v in old.state_dict().items())
    leftovers = [p for p in tmp_path.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".step_00000001.pt.")
    assert list(tmp_path.glob(".step_*.pt.*.tmp")) == leftovers  # the pattern the trainer cleans on start
    with pytest.raises(ValueError, match=leftovers[0].name):  # the half-written file is refused, by name
        read_checkpoint(leftovers[0])
