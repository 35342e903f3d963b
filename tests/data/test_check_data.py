"""check-data on the three targets (dataset folder, data root, NoMaD config) and the spacing report's numbers."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from navintent.actions import to_local, waypoints_to_normalized_deltas
from navintent.cli import main as cli_main
from navintent.config import NOMAD_ACTION_MAX, NOMAD_ACTION_MIN
from navintent.data import (
    DataError,
    Trajectory,
    metres_per_frame,
    normalized_deltas,
    read_traj_names,
    spacing_report,
)
from navintent.data.spacing import configured_spacing
from navintent.data.split import write_traj_names
from navintent.data.synthetic import arc_poses, straight_poses, write_trajectory

SIM = "navintent_sim"


def line(position, yaw, name="t"):
    return Trajectory(name, Path(name), np.asarray(position, float), np.asarray(yaw, float), None, None)


# ----------------------------------------------------------------------------------------- spacing report
def test_metres_per_frame_is_total_length_over_steps():
    a = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]])  # 5 m in 2 steps
    b = np.array([[1.0, 1.0], [1.0, 2.0]])  # 1 m in 1 step
    assert metres_per_frame([a, b]) == pytest.approx(6.0 / 3)
    assert metres_per_frame([a, np.zeros((1, 2))]) == pytest.approx(2.5)  # one frame: no step
    with pytest.raises(ValueError, match="no trajectory has two frames"):
        metres_per_frame([np.zeros((1, 2))])


@pytest.mark.parametrize(
    "configured, n_x, outside, sliver, warns",
    [
        # 0.25 m per frame forward. delta = 0.25 / configured spacing units along x, 0 along y;
        # n_x = (delta + 2.5) / 7.5 * 2 - 1, n_y = (0 + 4) / 8 * 2 - 1 = 0; standing still maps to n_x = -1/3.
        (0.25, (1 + 2.5) / 7.5 * 2 - 1, 0.0, 0.0, False),  # -0.0667: 0.267 from standing still
        (0.5, (0.5 + 2.5) / 7.5 * 2 - 1, 0.0, 0.0, True),  # -0.2: 0.133 > 0.1, not a sliver; ratio 2
        (1.0, (0.25 + 2.5) / 7.5 * 2 - 1, 0.0, 1.0, True),  # -0.267: within 0.1 of -1/3
        (0.04, (6.25 + 2.5) / 7.5 * 2 - 1, 1.0, 0.0, True),  # 1.333 > 1: outside
    ],
)
def test_spacing_report_on_a_straight_line_matches_hand_computation(configured, n_x, outside, sliver, warns):
    p, y = straight_poses(30, step=0.25, heading=0.7)  # any heading: the robot frame makes it x forward
    traj = line(p, y)
    nd = normalized_deltas([traj], configured)
    # NoMaD's index with context 3, len_traj_pred 8: t = 3 .. 30 - 8 - 1 -> 19 frames
    assert nd.shape == (19, 8, 2)
    np.testing.assert_allclose(nd[..., 0], n_x, atol=1e-12)
    np.testing.assert_allclose(nd[..., 1], 0.0, atol=1e-12)
    r = spacing_report([traj], configured, dataset="line", source="test")
    assert r.measured == pytest.approx(0.25)
    assert r.per_trajectory_min == pytest.approx(0.25) and r.per_trajectory_max == pytest.approx(0.25)
    assert r.num_steps == 29 and r.num_deltas == 19 * 8 and r.num_trajectories == 1
    assert r.outside == outside and r.sliver == sliver
    assert r.fit_outside == 0.0 and r.fit_sliver == 0.0
    assert r.ratio == pytest.approx(configured / 0.25)
    message = r.warning()
    assert (message is not None) == warns
    if warns:
        assert "line: metric_waypoint_spacing" in message and "measured 0.2500 m per frame" in message


def test_spacing_report_waypoint_spacing_context_and_end_slack():
    p, y = straight_poses(30, step=0.25)
    r = spacing_report([line(p, y)], 0.25, waypoint_spacing=2, context_size=1, end_slack=3)
    # t from 1*2 = 2 to 30 - 3 - 8*2 = 11 (exclusive): 9 frames; each delta 0.5 m / (0.25 * 2) = 1 unit
    assert r.num_deltas == 9 * 8 and r.outside == 0.0 and r.sliver == 0.0 and r.warning() is None
    assert spacing_report([line(p[:5], y[:5])], 0.25).num_deltas == 0  # too short for the index
    assert math.isnan(spacing_report([line(p[:5], y[:5])], 0.25).outside)


def test_normalized_deltas_equal_the_torch_pipeline_on_an_arc():
    """Rotation convention and normalisation agree with navintent.actions (what training uses)."""
    p, y = arc_poses(20, step=0.3, turn=0.15, heading=-1.1)
    nd = normalized_deltas([line(p, y)], 0.2, context_size=0, len_traj_pred=5)
    t = 4
    future = torch.as_tensor(p[t + 1 : t + 6])
    local = to_local(future, torch.as_tensor(p[t]), torch.as_tensor(y[t])) / 0.2
    want = waypoints_to_normalized_deltas(local, NOMAD_ACTION_MIN, NOMAD_ACTION_MAX)
    np.testing.assert_allclose(nd[t], want.numpy(), atol=1e-12)
    assert nd.shape == (20 - 5, 5, 2)


def test_unknown_spacing_and_still_poses_warn():
    p, y = straight_poses(20, step=0.1)
    r = spacing_report([line(p, y)], None, dataset="d", source="dataset 'd' is not in x.yaml")
    assert r.configured is None and r.ratio is None and math.isnan(r.outside)
    assert r.warning() == (
        "d: metric_waypoint_spacing unknown (dataset 'd' is not in x.yaml); the spacing that fits these poses "
        "is the measured 0.1000 m per frame (per trajectory 0.1000..0.1000); set it as metric_waypoint_spacing in the "
        "dataset's entry of a data_config.yaml or of a config's datasets: block"
    )
    still = spacing_report([line(np.zeros((20, 2)), np.zeros(20))], 0.3, dataset="s")
    assert still.measured == 0.0 and "the poses never move (0 m over 19 steps)" in still.warning()


# --------------------------------------------------------------------------------------- data-config lookup
def test_configured_spacing_lookup(tmp_path):
    assert configured_spacing("recon") == (0.25, configured_spacing("recon")[1])
    assert "shipped" in configured_spacing("recon")[1]
    value, source = configured_spacing("go2_dataset")
    assert value is None and "dataset 'go2_dataset' is not in shipped" in source
    cfg = tmp_path / "dc.yaml"
    cfg.write_text("mine:\n  metric_waypoint_spacing: 0.04\nbad:\n  metric_waypoint_spacing: '0.3'\n")
    assert configured_spacing("mine", cfg) == (0.04, str(cfg))
    with pytest.raises(DataError, match=rf"{cfg}: 'bad.metric_waypoint_spacing' must be a positive number"):
        configured_spacing("bad", cfg)


# ------------------------------------------------------------------------------------------ check-data forms
@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A data root written by the simulator's recorder (make-data): 3 episodes, 32x24 frames."""
    root = tmp_path_factory.mktemp("root") / "DATA"
    args = ["make-data", "--out", str(root), "--episodes", "3", "--seed", "4", "--image-size", "32", "24"]
    assert cli_main(args) == 0
    return root


def test_check_data_on_a_recorded_data_root(data_root, capsys):
    capsys.readouterr()
    assert cli_main(["check-data", str(data_root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ERROR" not in out and "WARNING" not in out
    train, test = (data_root / "splits" / SIM / s for s in ("train", "test"))
    assert f"== {SIM}: {data_root / SIM} (3 valid trajectories" in out
    assert f"splits: {train}, {test})" in out
    assert len(read_traj_names(train)) + len(read_traj_names(test)) == 3
    configured = yaml.safe_load((data_root / "data_config.yaml").read_text())[SIM]["metric_waypoint_spacing"]
    assert (
        f"configured metric_waypoint_spacing {configured:g} ({data_root / 'data_config.yaml'}), ratio 1.00"
        in out
    )
    assert f"{data_root}: 1 dataset(s), 0 error(s), 0 warning(s): no problems found" in out
    assert "splits/traj_data.pkl" not in out


def test_check_data_on_a_data_root_lists_errors_per_split(data_root, tmp_path, capsys):
    import shutil

    root = tmp_path / "DATA"
    shutil.copytree(data_root, root)
    test_split = root / "splits" / SIM / "test"
    write_traj_names(test_split, [*read_traj_names(test_split), "ghost"])
    (root / "splits" / "other").mkdir()  # names a dataset folder that is missing
    (root / "stray").mkdir()  # a folder no split names
    capsys.readouterr()
    assert cli_main(["check-data", str(root), "--quiet"]) == 1
    out = capsys.readouterr().out.splitlines()
    errors = [x for x in out if x.startswith("ERROR: ")]
    warns = [x for x in out if x.startswith("WARNING: ")]
    assert errors == [
        f"ERROR: {root / 'splits' / 'other'}: names dataset 'other' but {root / 'other'} does not exist",
        f"ERROR: {test_split / 'traj_names.txt'}: lists trajectory 'ghost' but {root / SIM / 'ghost'} does not exist",
    ]
    assert warns == [
        f"WARNING: {root / 'stray'}: no {root / 'splits' / 'stray'} names it, so training does not read it (not checked)"
    ]
    with pytest.raises(ValueError, match="is a data root; its splits are read from"):
        cli_main(["check-data", str(root), "--split", str(test_split)])


def test_check_data_on_a_one_dataset_data_root(tmp_path, capsys):
    """DIR/<traj>/... with DIR/splits/{train,test}: the 'splits' folder is not a trajectory."""
    p, y = straight_poses(20, step=0.2)
    for i in range(3):
        write_trajectory(tmp_path / "mine", f"t{i}", p, y, traj_index=i)
    write_traj_names(tmp_path / "mine" / "splits" / "train", ["t0", "t1"])
    write_traj_names(tmp_path / "mine" / "splits" / "test", ["t2"])
    (tmp_path / "mine" / "data_config.yaml").write_text("mine:\n  metric_waypoint_spacing: 0.2\n")
    assert cli_main(["check-data", str(tmp_path / "mine"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(3 valid trajectories, 60 poses" in out and "0 error(s), 0 warning(s)" in out
    assert "configured metric_waypoint_spacing 0.2" in out and "ratio 1.00" in out


def test_check_data_warning_only_exit_codes(tmp_path, capsys):
    p, y = straight_poses(20, step=0.2)
    write_trajectory(tmp_path / "d", "a", p, y)
    assert cli_main(["check-data", str(tmp_path / "d"), "--quiet", "--metric-waypoint-spacing", "0.2"]) == 0
    assert "WARNING" not in capsys.readouterr().out
    assert cli_main(["check-data", str(tmp_path / "d"), "--quiet", "--metric-waypoint-spacing", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: d: metric_waypoint_spacing 1 (--metric-waypoint-spacing) does not fit the poses" in out
    assert "configured 1 m is 5.00 times the measured 0.2000 m per frame" in out
    assert "0 error(s), 1 warning(s): usable, with warnings" in out
    cfg = tmp_path / "dc.yaml"
    cfg.write_text("d:\n  metric_waypoint_spacing: 0.21\nsim:\n  metric_waypoint_spacing: 0.9\n")
    assert cli_main(["check-data", str(tmp_path / "d"), "--quiet", "--data-config", str(cfg)]) == 0
    assert f"configured metric_waypoint_spacing 0.21 ({cfg})" in capsys.readouterr().out
    assert (
        cli_main(["check-data", str(tmp_path / "d"), "--quiet", "--data-config", str(cfg), "--name", "sim"])
        == 0
    )
    assert "configured 0.9 m is 4.50 times" in capsys.readouterr().out
    with pytest.raises(ValueError, match="give a PATH"):
        cli_main(["check-data"])


REAL_NOMAD_YAML = Path(__file__).resolve().parents[3] / "shared" / "real" / "nomad.yaml"


def test_check_data_config_on_a_nomad_yaml(data_root, tmp_path, capsys):
    """NoMaD's released nomad.yaml with its datasets: block pointed at a recorded data root (relative paths,
    resolved against the YAML's folder) plus an entry with its own spacing and waypoint_spacing."""
    if REAL_NOMAD_YAML.is_file():
        config = yaml.safe_load(REAL_NOMAD_YAML.read_text())
    else:
        config = {"len_traj_pred": 8, "context_size": 3}
    splits = data_root / "splits" / SIM
    config["datasets"] = {
        SIM: {
            "data_folder": os.path.relpath(data_root / SIM, tmp_path / "cfg"),
            "train": str(splits / "train"),
            "test": str(splits / "test"),
            "end_slack": 3,
            "data_config": str(data_root / "data_config.yaml"),
        },
        "sim_again": {
            "data_folder": str(data_root / SIM),
            "train": str(splits / "train"),
            "waypoint_spacing": 2,
            "metric_waypoint_spacing": 0.4,
        },
    }
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "nomad.yaml"
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert cli_main(["check-data", "--config", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert not [x for x in out.splitlines() if x.startswith("ERROR")]
    relative = tmp_path / "cfg" / os.path.relpath(data_root / SIM, tmp_path / "cfg")
    assert f"== {SIM}: {relative} (3 valid" in out
    assert f"({data_root / 'data_config.yaml'}), ratio 1.00" in out
    assert "WARNING: sim_again: metric_waypoint_spacing 0.4 (" in out and f"{path}: datasets.sim_again" in out
    assert "(waypoint_spacing 2, len_traj_pred 8)" in out
    assert f"{path}: 2 dataset(s), 0 error(s), 1 warning(s): usable, with warnings" in out
    with pytest.raises(ValueError, match="either --config NOMAD_YAML or a PATH"):
        cli_main(["check-data", str(data_root), "--config", str(path)])


@pytest.mark.skipif(
    not REAL_NOMAD_YAML.is_file(), reason=f"NoMaD's nomad.yaml not present at {REAL_NOMAD_YAML}"
)
def test_check_data_config_on_the_released_nomad_yaml_names_every_missing_folder(capsys):
    assert cli_main(["check-data", "--config", str(REAL_NOMAD_YAML), "--quiet"]) == 1
    out = capsys.readouterr().out
    names = ["recon", "go_stanford", "cory_hall", "tartan_drive", "sacson"]
    for name in names:
        assert f"== {name}: /home/<username>/nomad_dataset/" in out
        assert f"ERROR: /home/<username>/data_splits/{name}/train/traj_names.txt: split file not found" in out
    assert out.count(": dataset folder does not exist") == 5
    assert f"{REAL_NOMAD_YAML}: 5 dataset(s), 15 error(s), 0 warning(s): errors found" in out
    assert "hint: the datasets' paths still hold the placeholder(s) ['<username>']: edit them" in out


def test_check_data_on_a_root_without_splits_says_so(data_root, tmp_path, capsys):
    import shutil

    root = tmp_path / "DATA"
    shutil.copytree(data_root, root)
    shutil.rmtree(root / "splits")
    assert cli_main(["check-data", str(root), "--quiet"]) == 1
    errors = [x for x in capsys.readouterr().out.splitlines() if x.startswith("ERROR: ")]
    assert errors == [
        f"ERROR: {root / SIM / 'traj_data.pkl'}: missing traj_data.pkl (its sub-folders hold traj_data.pkl: "
        f"is {root} a data root without splits/?)"
    ]
