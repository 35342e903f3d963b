"""The real Go2 dataset (plain-list pickles, one trailing image, a published spacing ~7x the poses) as published.

Reads ``/work/shared/real/go2_dataset`` (see ``/work/shared/real/README.md``) in place; skipped where absent.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from navintent.cli import main as cli_main
from navintent.data import DataWarning, check_trajectory, load_trajectory, spacing_report
from navintent.data.split import write_traj_names

GO2 = Path(__file__).resolve().parents[3] / "shared" / "real" / "go2_dataset"
ODD = "go2_20250717_175015"

pytestmark = pytest.mark.skipif(not GO2.is_dir(), reason=f"real Go2 dataset not present at {GO2}")


def folders() -> list[Path]:
    return sorted(p for p in GO2.iterdir() if p.is_dir())


def raw(folder: Path) -> dict:
    with open(folder / "traj_data.pkl", "rb") as f:  # the published files: trusted test input
        return pickle.load(f)


def independent_metres_per_frame() -> float:
    total, steps = 0.0, 0
    for folder in folders():
        p = np.array(raw(folder)["position"], dtype=float)
        total += np.hypot(*(p[1:] - p[:-1]).T).sum()
        steps += len(p) - 1
    return total / steps


def test_every_go2_trajectory_loads_with_the_published_values():
    assert len(folders()) == 25
    for folder in folders():
        data = raw(folder)
        assert isinstance(data["position"], list) and isinstance(data["yaw"], list)
        check = check_trajectory(folder)
        assert check.problems == (), check.problems
        t = check.trajectory
        np.testing.assert_array_equal(t.position, np.array(data["position"], dtype=float))
        np.testing.assert_array_equal(t.yaw, np.array(data["yaw"], dtype=float))
        if folder.name == ODD:
            assert len(t) == 109 and len(list(folder.glob("*.jpg"))) == 110
            assert check.extra_frames == (109,)
            assert check.warnings == (
                f"{folder}: traj_data.pkl has 109 poses but 1 image(s) lie beyond the last pose, e.g. "
                "['109.jpg']: frames 0..108 are used, the extra images ignored",
            )
        else:
            assert check.warnings == () and len(list(folder.glob("*.jpg"))) == len(t)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(load_trajectory(GO2 / ODD)) == 109
    assert len([w for w in caught if issubclass(w.category, DataWarning)]) == 1


def test_nav_dataset_trains_on_go2_with_one_counted_warning(tmp_path, make_dataset):
    names = [f.name for f in folders()]
    write_traj_names(tmp_path / "split", names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = make_dataset(GO2, tmp_path / "split", dataset_name="go2_dataset", metric_waypoint_spacing=0.04)
    ours = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert ours == [
        "dataset 'go2_dataset': 1 of 25 trajectories has images beyond the last pose "
        f"(e.g. {GO2 / ODD}: 109 poses, 1 image(s) beyond frame 108): frames 0..N-1 are used, "
        "the extra images ignored"
    ]
    assert sum(len(t) for t in ds.trajectories) == 2277
    assert len(ds) == sum(len(t) - 3 - 8 for t in ds.trajectories)  # NoMaD's index: context 3, horizon 8
    sample = ds[0]
    assert sample["obs_img"].shape == (12, 24, 32) and sample["actions"].shape == (8, 2)


def test_spacing_report_on_go2_as_published():
    trajectories = [load_trajectory(f) for f in folders() if f.name != ODD] + [
        check_trajectory(GO2 / ODD).trajectory
    ]
    measured = independent_metres_per_frame()
    assert 0.035 < measured < 0.045
    r = spacing_report(trajectories, 0.3, dataset="go2_dataset", source="the authors' data config")
    assert r.measured == pytest.approx(measured, rel=1e-12)
    assert r.ratio == pytest.approx(0.3 / measured)
    assert r.sliver > 0.9 and r.outside == 0.0  # nearly every target in a sliver of the range
    assert r.fit_sliver < 0.5 and r.fit_outside < 0.05  # with the measured spacing they spread out
    message = r.warning()
    assert message is not None and f"the measured {measured:.4f} m per frame" in message
    assert f"configured 0.3 m is {0.3 / measured:.2f} times the measured" in message
    assert spacing_report(trajectories, measured).warning() is None


def test_check_data_on_go2_exits_0_with_warnings_only(capsys):
    measured = independent_metres_per_frame()
    assert cli_main(["check-data", str(GO2), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert not [x for x in out if x.startswith("ERROR")]
    warns = [x for x in out if x.startswith("WARNING: ")]
    assert len(warns) == 2
    assert warns[0].startswith(f"WARNING: {GO2 / ODD}: traj_data.pkl has 109 poses but 1 image(s)")
    assert "metric_waypoint_spacing unknown (dataset 'go2_dataset' is not in shipped" in warns[1]
    assert f"the measured {measured:.4f} m per frame" in warns[1]
    assert (
        out[0] == f"== go2_dataset: {GO2} (25 valid trajectories, 2277 poses; images decoded; splits: none)"
    )
    assert out[-1] == (
        f"{GO2}: 1 dataset(s), 0 error(s), 2 warning(s): usable once metric_waypoint_spacing is set for "
        "['go2_dataset'] (train refuses it until then)"
    )
    # with the spacing given, what remains is a warning
    assert cli_main(["check-data", str(GO2), "--quiet", "--metric-waypoint-spacing", f"{measured:.4f}"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("1 warning(s): usable, with warnings")

    assert (
        cli_main(["check-data", str(GO2), "--quiet", "--no-decode", "--metric-waypoint-spacing", "0.3"]) == 0
    )
    text = capsys.readouterr().out
    assert "metric_waypoint_spacing 0.3 (--metric-waypoint-spacing) does not fit the poses" in text
    assert f"configured 0.3 m is {0.3 / measured:.2f} times the measured {measured:.4f} m per frame" in text
