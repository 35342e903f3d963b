"""navintent.metric_scale: the resolution order, the checkpoint record, and one scale across every command."""

import json

import pytest
import torch
import yaml

from navintent import evaluation as ev
from navintent.checkpoint import load_inference_model, read_checkpoint
from navintent.cli import main
from navintent.config import preset_training_config
from navintent.data.split import write_traj_names
from navintent.data.synthetic import write_synthetic_dataset
from navintent.metric_scale import (
    MetricScale,
    RobotConfig,
    TrainingScale,
    read_training_scales,
    resolve_metric_scale,
)
from navintent.models.intent import TwoStageIntentModel

GO2 = TrainingScale("go2", 0.04, 4)
RECON = TrainingScale("recon", 0.25, 1)


# ------------------------------------------------------------------------------------------------ resolution
def test_training_scale_round_trip_and_units():
    assert GO2.metres_per_unit == pytest.approx(0.16)
    assert TrainingScale("raw", 0.3, 2, normalize=False).metres_per_unit == 1.0
    for scale in (GO2, TrainingScale("raw", 0.3, 2, normalize=False)):
        assert TrainingScale.from_dict(scale.to_dict(), where="x") == scale
    assert read_training_scales(None, where="x") == ()
    with pytest.raises(ValueError, match=r"ckpt.pt: training_scales\[0\].*'dataset'"):
        read_training_scales([{"metric_waypoint_spacing": 0.1}], where="ckpt.pt")
    with pytest.raises(ValueError, match="metric_waypoint_spacing must be a positive number, got -1"):
        TrainingScale.from_dict({"dataset": "a", "metric_waypoint_spacing": -1}, where="x")


def test_resolution_order_explicit_then_data_then_checkpoint_then_robot():
    explicit = resolve_metric_scale(explicit=0.3, data=(RECON,), checkpoint=(GO2,))
    assert explicit == MetricScale(0.3, "--metric-scale")
    data = resolve_metric_scale(data=(RECON,), checkpoint=(GO2,))
    assert data.metres_per_unit == 0.25 and data.source.startswith("data being read recon")
    ckpt = resolve_metric_scale(checkpoint=(GO2,))
    assert ckpt.metres_per_unit == pytest.approx(0.16)
    assert "metric_waypoint_spacing 0.04 m x waypoint_spacing 4" in ckpt.source
    robot = resolve_metric_scale()
    assert robot.metres_per_unit == pytest.approx(
        0.2 / 4
    )  # NoMaD's robot.yaml: max_v 0.2 m/s, frame_rate 4 Hz
    assert "max_v / frame_rate" in robot.source and "records no training scale" in robot.source
    assert "0.05 m per unit" in robot.describe()
    with pytest.raises(ValueError, match="--metric-scale must be a positive number, got 0"):
        resolve_metric_scale(explicit=0)


def test_a_mixture_must_be_picked_and_the_error_names_the_datasets():
    with pytest.raises(ValueError, match=r"different metres per unit \(go2: 0.16 m, recon: 0.25 m\)"):
        resolve_metric_scale(checkpoint=(GO2, RECON))
    assert resolve_metric_scale(checkpoint=(GO2, RECON), pick="recon").metres_per_unit == 0.25
    with pytest.raises(ValueError, match=r"'scand' is not among .*\['go2', 'recon'\]"):
        resolve_metric_scale(checkpoint=(GO2, RECON), pick="scand")
    same = resolve_metric_scale(checkpoint=(GO2, TrainingScale("go2_night", 0.08, 2)))
    assert same.metres_per_unit == pytest.approx(0.16) and "go2, go2_night" in same.source


def test_robot_yaml_with_nomads_keys(tmp_path):
    path = tmp_path / "robot.yaml"
    path.write_text("max_v: 0.4\nmax_w: 0.8\nframe_rate: 5\nvel_navi_topic: /cmd_vel_mux/input/navi\n")
    robot = RobotConfig.from_yaml(path)
    assert robot.metres_per_unit == pytest.approx(0.08) and robot.max_w == 0.8
    assert resolve_metric_scale(robot=robot).metres_per_unit == pytest.approx(0.08)
    partial = tmp_path / "partial.yaml"
    partial.write_text("max_v: 0.3\n")
    robot = RobotConfig.from_yaml(partial)
    assert robot.metres_per_unit == pytest.approx(0.3 / 4) and "frame_rate, max_w not set" in robot.source
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_v: fast\n")
    with pytest.raises(ValueError, match=r"bad.yaml .*: max_v must be a positive number, got 'fast'"):
        RobotConfig.from_yaml(bad)


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def spaced_run(tmp_path_factory):
    """A tiny checkpoint trained by ``navintent train`` at waypoint_spacing 4 on data of known spacing 0.04 m."""
    root = tmp_path_factory.mktemp("scale")
    data = root / "data"
    ds = write_synthetic_dataset(
        data / "synth",
        num_trajectories=3,
        length=60,
        step=0.04,
        num_agents=1,
        split_folder=data / "splits" / "synth" / "train",
    )
    write_traj_names(data / "splits" / "synth" / "test", [ds.names[-1]])
    (data / "data_config.yaml").write_text("synth:\n  metric_waypoint_spacing: 0.04\n")
    config = root / "train.yaml"
    config.write_text("model:\n  image_size: [32, 32]\ntrain:\n  waypoint_spacing: 4\n  max_dist_cat: 5\n")
    out = root / "run"
    argv = [
        "train",
        "--data_dir",
        str(data),
        "--preset",
        "tiny",
        "--config",
        str(config),
        "--batch_size",
        "2",
    ]
    argv += ["--device", "cpu", "--no_progress", "--max_steps", "1", "--out", str(out)]
    assert main(argv) == 0
    return out / "latest.pt", data


def test_training_records_the_scale_and_every_command_uses_it(spaced_run, tmp_path, capsys):
    ckpt, data = spaced_run
    raw = read_checkpoint(ckpt)
    assert raw["training_scales"] == [
        {
            "dataset": "synth",
            "metric_waypoint_spacing": 0.04,
            "waypoint_spacing": 4,
            "normalize": True,
            "metres_per_unit": pytest.approx(0.16),
        }
    ]
    loaded = load_inference_model(ckpt)
    assert loaded.training_scales == (TrainingScale("synth", 0.04, 4),) and loaded.waypoint_spacing == 4
    expected = 0.04 * 4
    line = "metric scale 0.16 m per unit (checkpoint's training data synth"

    capsys.readouterr()
    assert main(["sample", "--ckpt", str(ckpt), "--out-dir", str(tmp_path / "s"), "--num-samples", "2"]) == 0
    saved = torch.load(tmp_path / "s" / "trajectories.pt", weights_only=True)
    assert saved["metric_scale"] == pytest.approx(expected)
    assert line in capsys.readouterr().err

    argv = [
        "optimize-z2",
        "--ckpt",
        str(ckpt),
        "--steps",
        "1",
        "--draws",
        "1",
        "--eval-draws",
        "1",
        "--no-plots",
    ]
    assert main([*argv, "--out-dir", str(tmp_path / "o")]) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["scenarios"][0]["metric_scale"] == pytest.approx(expected)
    assert line in capsys.readouterr().err
    # --dataset: the data being read (the same data, so the same value), named as such
    assert main([*argv, "--out-dir", str(tmp_path / "d"), "--dataset", str(data), "--index", "0"]) == 0
    report = json.loads((tmp_path / "d" / "report.json").read_text())
    assert report["scenarios"][0]["metric_scale"] == pytest.approx(expected)
    assert "metric scale 0.16 m per unit (data being read synth" in capsys.readouterr().err

    common = ["--ckpt", str(ckpt), "--scenes", "1", "--no-plots", "--no-progress"]
    ev_argv = ["evaluate", *common, "--methods", "nomad", "--max-episode-steps", "3"]
    assert main([*ev_argv, "--out-dir", str(tmp_path / "e")]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["metric_scale"] == pytest.approx(expected)
    assert metrics["metric_scale_source"].startswith("checkpoint's training data synth")
    assert line in capsys.readouterr().err
    assert main([*ev_argv, "--out-dir", str(tmp_path / "e2"), "--data-dir", str(data)]) == 0
    assert json.loads((tmp_path / "e2" / "metrics.json").read_text())["metric_scale"] == pytest.approx(
        expected
    )
    assert main(["experiment", "all", *common, "--samples", "2", "--out-dir", str(tmp_path / "x")]) == 0
    for name in ("diversity.json", "perturb.json"):
        assert json.loads((tmp_path / "x" / name).read_text())["metric_scale"] == pytest.approx(expected)
    assert line in capsys.readouterr().err
    assert main([*ev_argv, "--out-dir", str(tmp_path / "e3"), "--metric-scale", "0.5"]) == 0

    # exported to NoMaD's format, the YAML carries the scale, and export says what robot.yaml must hold
    pth = tmp_path / "exported.pth"
    assert main(["export", "--ckpt", str(ckpt), "--format", "nomad", str(pth), "--latent", "none"]) == 0
    assert "set max_v = 0.64 m/s at 4 Hz" in capsys.readouterr().err
    exported = load_inference_model(pth, config=pth.with_suffix(".yaml"))
    assert exported.training_scales == loaded.training_scales
    argv = ["sample", "--ckpt", str(pth), "--config", str(pth.with_suffix(".yaml")), "--num-samples", "2"]
    assert main([*argv, "--out-dir", str(tmp_path / "xs")]) == 0
    assert torch.load(tmp_path / "xs" / "trajectories.pt", weights_only=True)[
        "metric_scale"
    ] == pytest.approx(expected)
    assert json.loads((tmp_path / "e3" / "metrics.json").read_text())["metric_scale"] == 0.5


def test_evaluate_and_sim_scenarios_agree_without_a_cli(spaced_run, tmp_path):
    """The library calls resolve the same scale as the commands (no per-frame estimate of their own)."""
    ckpt, _ = spaced_run
    loaded = load_inference_model(ckpt)
    config = ev.EvalConfig(scenes=1, methods=("nomad",), min_steps=2, max_episode_steps=2, max_plots=0)
    report = ev.evaluate(loaded, config, tmp_path, plots=False, progress=False).to_json()
    assert report["metric_scale"] == pytest.approx(0.16)


def test_nomad_pth_uses_the_robot_rule(tmp_path, capsys):
    cfg = preset_training_config("tiny")
    model = TwoStageIntentModel(cfg.model, cfg.intent, cfg.scheduler)
    nomad_only = {k: v for k, v in model.state_dict().items() if not k.startswith(model.NEW_MODULE_PREFIXES)}
    pth = tmp_path / "nomad.pth"
    torch.save(nomad_only, pth)
    yaml_path = tmp_path / "sections.yaml"  # the tiny preset's sizes need navintent's sectioned form
    yaml_path.write_text(yaml.safe_dump({"model": cfg.model.to_dict(), "scheduler": cfg.scheduler.to_dict()}))
    robot = tmp_path / "robot.yaml"
    robot.write_text("max_v: 0.4\nframe_rate: 4\n")
    out = tmp_path / "s"
    argv = [
        "sample",
        "--ckpt",
        str(pth),
        "--config",
        str(yaml_path),
        "--out-dir",
        str(out),
        "--num-samples",
        "2",
    ]
    assert main(argv) == 0
    assert torch.load(out / "trajectories.pt", weights_only=True)["metric_scale"] == pytest.approx(0.05)
    assert "max_v / frame_rate = 0.2 / 4" in capsys.readouterr().err
    assert main([*argv, "--robot", str(robot)]) == 0
    assert torch.load(out / "trajectories.pt", weights_only=True)["metric_scale"] == pytest.approx(0.1)
