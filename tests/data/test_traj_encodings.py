"""traj_data.pkl in every encoding real files use loads with the right values; unusable content is a DataError
naming file and key; images beyond the last pose are a counted warning, missing images an error."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from navintent.cli import main as cli_main
from navintent.data import DataError, DataWarning, check_trajectory, load_trajectory
from navintent.data.split import write_traj_names
from navintent.data.synthetic import arc_poses, write_trajectory

N = 14


@pytest.fixture
def traj(tmp_path):
    """A 14-frame arc 'a' (distinct values on every row) written with numpy arrays; returns (folder, p, y)."""
    p, y = arc_poses(N, step=0.3, turn=0.2, heading=0.4)
    p = p + np.array([1.5, -2.25])
    folder = write_trajectory(tmp_path / "d", "a", p, y)
    return folder, p, y


def write_pkl(folder, data):
    with open(folder / "traj_data.pkl", "wb") as f:
        pickle.dump(data, f, protocol=4)


def obj_array(items):
    """A 1-D object array holding ``items`` as they are (np.array(list) would stack them)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def encodings(p, y):
    """name -> (position value, yaw value, expected position, expected yaw)."""
    p32, y32 = p.astype(np.float32), y.astype(np.float32)
    obj_p = np.array([[np.float64(a), np.float64(b)] for a, b in p], dtype=object)
    assert obj_p.shape == (N, 2) and obj_p.dtype == object
    ints_p = np.array([[3 * i, -i] for i in range(N)])
    return {
        "numpy float64": (p, y, p, y),
        "numpy float32": (p32, y32, p32.astype(np.float64), y32.astype(np.float64)),
        "python lists": (p.tolist(), y.tolist(), p, y),
        "tuples": (tuple(tuple(r) for r in p.tolist()), tuple(y.tolist()), p, y),
        "object [N, 2] of np.float64, yaw object [N] of 1-element arrays": (
            obj_p,
            obj_array([np.array([v]) for v in y]),
            p,
            y,
        ),
        "list of position arrays, yaw list of 1-element arrays": (
            [row.copy() for row in p],
            [np.array([v]) for v in y],
            p,
            y,
        ),
        "yaw [N, 1] float64": (p, y[:, None], p, y),
        "yaw [N, 1] object of np.float32": (
            p,
            np.array([[np.float32(v)] for v in y], dtype=object),
            p,
            y.astype(np.float32).astype(np.float64),
        ),
        "yaw list of 1-element lists": (p, [[v] for v in y.tolist()], p, y),
        "yaw mixing floats, numpy scalars and 1-element arrays": (
            p,
            [
                float(v) if i % 3 == 0 else (np.float64(v) if i % 3 == 1 else np.array([v]))
                for i, v in enumerate(y)
            ],
            p,
            y,
        ),
        "ints": (ints_p, list(range(N)), ints_p.astype(np.float64), np.arange(N, dtype=np.float64)),
        "int32 arrays": (ints_p.astype(np.int32), np.arange(N, dtype=np.int32), ints_p, np.arange(N)),
    }


ENCODING_NAMES = list(encodings(np.zeros((N, 2)), np.zeros(N)))


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_every_encoding_loads_with_the_right_values(traj, name):
    folder, p, y = traj
    position, yaw, want_p, want_y = encodings(p, y)[name]
    write_pkl(folder, {"position": position, "yaw": yaw})
    t = load_trajectory(folder)
    assert t.position.dtype == np.float64 and t.yaw.dtype == np.float64
    assert t.position.shape == (N, 2) and t.yaw.shape == (N,)
    np.testing.assert_array_equal(t.position, want_p)
    np.testing.assert_array_equal(t.yaw, want_y)


def test_optional_keys_in_object_and_list_encodings(traj):
    folder, p, y = traj
    ref = np.stack([p[:, 0] + 0.1, p[:, 1], y], axis=1)
    agents = np.arange(N * 2 * 2, dtype=np.float64).reshape(N, 2, 2) / 7
    write_pkl(
        folder,
        {
            "position": p.tolist(),
            "yaw": obj_array([np.array([v]) for v in y]),
            "ref_traj": np.array([[np.float64(v) for v in row] for row in ref], dtype=object),
            "agents": [[np.array(a) for a in frame] for frame in agents],
        },
    )
    t = load_trajectory(folder)
    np.testing.assert_array_equal(t.ref_traj, ref)
    np.testing.assert_array_equal(t.agents, agents)
    assert t.agents.shape == (N, 2, 2)


def test_one_agent_is_not_flattened(traj):
    """Only single NUMBERS collapse: one agent per frame ([N, 1, 2]) keeps its axis."""
    folder, p, y = traj
    agents = np.arange(N * 2, dtype=np.float64).reshape(N, 1, 2)
    write_pkl(folder, {"position": p, "yaw": y, "agents": [[list(a[0])] for a in agents]})
    np.testing.assert_array_equal(load_trajectory(folder).agents, agents)


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        (
            "position",
            [[0.0, 1.0]] * (N - 1) + [[0.0, 1.0, 2.0]],
            "'position' has rows of different shapes (ragged)",
        ),
        ("position", [[0.0, 1.0]] * (N - 1) + [[0.0, "1.5"]], f"'position'[{N - 1}][1] is a str ('1.5')"),
        ("yaw", [0.0] * 5 + [None] + [0.0] * (N - 6), "'yaw'[5] is None"),
        ("yaw", None, "missing key 'yaw'"),
        (
            "yaw",
            obj_array([np.array([0.1, 0.2])] + [np.array([0.0])] * (N - 1)),
            "'yaw' has rows of different",
        ),
        ("yaw", np.array(["north"] * N), "'yaw' has dtype <U5, not a number type"),
        ("yaw", np.zeros(N, dtype=bool), "'yaw' has dtype bool"),
        ("yaw", [True] * N, "'yaw'[0] is a boolean"),
        ("yaw", "0.5", "'yaw' is a str"),
        ("position", {"x": 1}, "'position' is a dict"),
        ("position", np.zeros((N, 2), dtype=np.complex128), "'position' has dtype complex128"),
        ("yaw", np.zeros((N, 2)), "'yaw' must have shape [N] or [N, 1], got [14, 2]"),
    ],
)
def test_unusable_content_names_file_and_key(traj, key, value, fragment):
    folder, p, y = traj
    data = {"position": p, "yaw": y}
    if value is None:
        del data[key]
    else:
        data[key] = value
    write_pkl(folder, data)
    with pytest.raises(DataError) as err:
        load_trajectory(folder)
    assert str(folder / "traj_data.pkl") in str(err.value) and fragment in str(err.value)


def test_images_beyond_the_last_pose_are_one_counted_warning(traj, tmp_path, make_dataset, capsys):
    folder, p, y = traj
    for k in (N, N + 1, N + 4):
        (folder / f"{k}.jpg").write_bytes((folder / "0.jpg").read_bytes())
    check = check_trajectory(folder)
    assert check.problems == () and check.extra_frames == (N, N + 1, N + 4)
    assert len(check.warnings) == 1
    assert "14 poses but 3 image(s) lie beyond the last pose" in check.warnings[0]
    assert "frames 0..13 are used" in check.warnings[0]
    with pytest.warns(DataWarning, match="3 image"):
        t = load_trajectory(folder)
    assert len(t) == N

    write_trajectory(tmp_path / "d", "b", p, y, traj_index=1)
    write_traj_names(tmp_path / "s", ["a", "b"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = make_dataset(tmp_path / "d", tmp_path / "s", len_traj_pred=4)
    ours = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(ours) == 1
    assert "1 of 2 trajectories has images beyond the last pose" in ours[0]
    assert f"{folder}: 14 poses, 3 image(s) beyond frame 13" in ours[0]
    assert [len(x) for x in ds.trajectories] == [N, N]

    assert cli_main(["check-data", str(tmp_path / "d"), "--quiet", "--metric-waypoint-spacing", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "ERROR" not in out
    assert f"WARNING: {folder}: traj_data.pkl has 14 poses but 3 image(s)" in out


def test_missing_images_stay_an_error_even_with_extra_ones(traj, capsys):
    folder, _, _ = traj
    (folder / "3.jpg").rename(folder / f"{N}.jpg")  # the count matches, the frame numbers do not
    check = check_trajectory(folder)
    assert check.trajectory is None
    assert len(check.problems) == 1 and "1 image(s) are missing, e.g. ['3.jpg']" in check.problems[0]
    assert len(check.warnings) == 1 and f"['{N}.jpg']" in check.warnings[0]
    assert cli_main(["check-data", str(folder.parent), "--quiet"]) == 1
    assert f"ERROR: {folder}: length mismatch" in capsys.readouterr().out
