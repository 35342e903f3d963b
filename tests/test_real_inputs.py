"""The whole path on inputs made outside this project (``../shared/real/``), exactly as published.

The Go2 dataset (plain-list pickles, one trailing image without a pose, a published spacing 7x off) goes through
``check-data`` -> ``split`` -> ``train`` (a NoMaD-form config with a ``datasets:`` block) -> ``sample`` on one of its
frames -> ``optimize-z2 --dataset`` with a synthetic crossing pedestrian -> ``export`` back to NoMaD's format, on the
tiny preset for a few steps. Skipped, with the reason, only where ``../shared/real`` is absent.
"""

import json
import re
from pathlib import Path

import pytest
import torch

from navintent.checkpoint import load_policy, read_checkpoint
from navintent.cli import main
from navintent.config import TwoStageTrainingConfig

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"
GO2 = REAL / "go2_dataset"
pytestmark = pytest.mark.skipif(not GO2.is_dir(), reason=f"real inputs not found at {GO2} (../shared/real)")


def _config(path: Path, spacing: float, splits: str) -> Path:
    """A flat NoMaD-form config, as a user edits nomad.yaml: the Go2 data in its datasets: block."""
    path.write_text(
        "image_size: [32, 32]\nbatch_size: 2\nlr: 1e-3\n"
        "datasets:\n  go2_dataset:\n"
        f"    data_folder: {GO2}\n    train: {splits}/train\n    test: {splits}/test\n"
        f"    metric_waypoint_spacing: {spacing}\n"
    )
    return path


@pytest.fixture(scope="module")
def go2_run(tmp_path_factory):
    """check-data, split and train on the Go2 data; returns (work folder, checkpoint, config)."""
    work = tmp_path_factory.mktemp("go2")
    mp = pytest.MonkeyPatch()
    mp.setenv("NAVINTENT_CACHE_DIR", str(work / "cache"))
    assert main(["check-data", str(GO2), "--no-decode", "--quiet"]) == 0  # warnings only
    assert main(["split", str(GO2), "--out", str(work / "splits"), "--train-frac", "0.8", "--seed", "0"]) == 0
    config = _config(work / "go2.yaml", 0.04, "splits")
    argv = ["train", "--config", str(config), "--preset", "tiny", "--max_steps", "2", "--no_progress"]
    assert main([*argv, "--out", str(work / "run"), "--device", "cpu"]) == 0
    yield work, work / "run" / "latest.pt", config
    mp.undo()


def test_check_data_on_go2_warns_and_exits_0(capsys):
    assert main(["check-data", str(GO2), "--no-decode"]) == 0
    out = capsys.readouterr().out
    assert "go2_20250717_175015: traj_data.pkl has 109 poses but 1 image(s) lie beyond the last pose" in out
    assert "measured 0.0402 m per frame" in out
    assert main(["check-data", str(GO2), "--no-decode", "--metric-waypoint-spacing", "0.3"]) == 0
    assert "configured 0.3 m is 7.46 times the measured 0.0402 m per frame" in capsys.readouterr().out


def test_train_reads_the_datasets_block_and_records_the_scale(go2_run):
    work, ckpt, config = go2_run
    raw = read_checkpoint(ckpt)
    assert raw["train_state"]["step"] == 2
    assert [s["dataset"] for s in raw["training_scales"]] == ["go2_dataset"]
    assert raw["training_scales"][0]["metres_per_unit"] == pytest.approx(0.04)
    saved = TwoStageTrainingConfig.from_dict(raw["train_state"]["config"])
    (spec,) = saved.datasets
    assert spec.name == "go2_dataset" and Path(spec.train) == work / "splits" / "train"
    assert saved.model.image_size == (32, 32) and saved.train.lr == 1e-3


def test_train_warns_once_about_the_published_spacing(go2_run, capsys):
    work, _, _ = go2_run
    config = _config(work / "published.yaml", 0.3, "splits")
    argv = ["train", "--config", str(config), "--preset", "tiny", "--max_steps", "1", "--no_progress"]
    assert main([*argv, "--out", str(work / "published"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    # measured on the train split alone (20 of the 25 trajectories)
    pattern = (
        r"warning: go2_dataset: metric_waypoint_spacing 0.3 .* configured 0.3 m is 7\.\d\d times the measured"
    )
    assert len(re.findall(pattern, err)) == 1


def test_sample_on_a_go2_frame_uses_the_training_scale(go2_run, tmp_path, capsys):
    _, ckpt, _ = go2_run
    traj = GO2 / "go2_20250717_174636"
    obs = [str(traj / f"{i}.jpg") for i in range(4)]
    argv = ["sample", "--ckpt", str(ckpt), "--obs", *obs, "--goal", str(traj / "20.jpg")]
    assert main([*argv, "--out-dir", str(tmp_path), "--num-samples", "2"]) == 0
    assert torch.load(tmp_path / "trajectories.pt", weights_only=True)["metric_scale"] == pytest.approx(0.04)
    assert "metric scale 0.04 m per unit (checkpoint's training data go2_dataset" in capsys.readouterr().err


def test_optimize_on_go2_test_frames_with_a_crossing_pedestrian(go2_run, tmp_path):
    _, ckpt, config = go2_run
    argv = ["optimize-z2", "--ckpt", str(ckpt), "--dataset", str(config), "--index", "0", "5"]
    argv += ["--crossing-pedestrian", "1.0", "0.5", "--steps", "2", "--draws", "1", "--eval-draws", "1"]
    assert main([*argv, "--out-dir", str(tmp_path), "--no-plots"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert [s["name"] for s in report["scenarios"]] == ["test_0", "test_5"]
    assert all(s["metric_scale"] == pytest.approx(0.04) for s in report["scenarios"])


def test_export_back_to_nomad_reproduces_the_policy(go2_run, tmp_path):
    _, ckpt, _ = go2_run
    out = tmp_path / "go2_nomad.pth"
    assert main(["export", "--ckpt", str(ckpt), "--format", "nomad", str(out), "--latent", "none"]) == 0
    exported = load_policy(out, config=out.with_suffix(".yaml"))
    source = load_policy(ckpt)
    obs, goal = torch.randn(2, 12, 32, 32), torch.randn(2, 3, 32, 32)
    mask = torch.tensor([0, 1])
    with torch.no_grad():
        assert torch.equal(exported.encode(obs, goal, mask), source.encode(obs, goal, mask))


def test_train_with_nomads_own_yaml_applies_it_and_says_what_it_ignores(tmp_path, capsys, monkeypatch):
    """README: ``navintent train --data_dir DATA --config nomad.yaml`` with the unmodified released file (NoMaD's
    sizes, one step). --data_dir wins over its datasets: block, with a note."""
    from navintent.data.split import write_traj_names
    from navintent.data.synthetic import write_synthetic_dataset

    monkeypatch.setenv("NAVINTENT_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    ds = write_synthetic_dataset(data / "synth", 2, 30, split_folder=data / "splits" / "synth" / "train")
    write_traj_names(data / "splits" / "synth" / "test", [])
    (data / "data_config.yaml").write_text(
        f"synth:\n  metric_waypoint_spacing: {ds.metric_waypoint_spacing}\n"
    )
    argv = ["train", "--data_dir", str(data), "--config", str(REAL / "nomad.yaml"), "--batch_size", "2"]
    argv += ["--preset", "tiny"]
    argv += ["--num_workers", "0"]  # the file asks for 12 (applied when not overridden)
    assert main([*argv, "--max_steps", "1", "--no_progress", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "NoMaD key ignored: use_wandb" in err and "NoMaD key ignored: gpu_ids" in err
    assert "the config's model sizes override --preset tiny: model.encoding_size 32 -> 256" in err
    assert (
        "the config's datasets: block (recon, go_stanford, cory_hall, tartan_drive, sacson) was not used"
        in err
    )
    saved = TwoStageTrainingConfig.from_dict(
        read_checkpoint(tmp_path / "run" / "latest.pt")["train_state"]["config"]
    )
    assert saved.datasets == () and saved.train.lr == 1e-4 and saved.train.warmup_epochs == 4
    assert saved.train.clipping is False and saved.model.encoding_size == 256 and saved.train.epochs == 100
