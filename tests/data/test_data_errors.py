"""Every bad-data case raises DataError naming the file; check-data lists them all; split mirrors NoMaD."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from navintent.cli import main as cli_main
from navintent.data import DataError, DataWarning, load_trajectory, read_traj_names
from navintent.data.split import write_traj_names
from navintent.data.synthetic import straight_poses, write_trajectory

N = 16


@pytest.fixture
def data(tmp_path):
    """Two good 16-frame trajectories 'a', 'b' and a split listing both."""
    p, y = straight_poses(N)
    for i, name in enumerate(["a", "b"]):
        write_trajectory(tmp_path / "d", name, p, y, traj_index=i)
    write_traj_names(tmp_path / "s", ["a", "b"])
    return tmp_path / "d", tmp_path / "s"


def rewrite_pkl(folder, **changes):
    path = folder / "traj_data.pkl"
    with open(path, "rb") as f:
        d = pickle.load(f)
    for k, v in changes.items():
        if v is None:
            d.pop(k)
        else:
            d[k] = v
    with open(path, "wb") as f:
        pickle.dump(d, f)
    return path


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def _corrupt(case, d):
    """Apply one bad-data case to trajectory 'a'; return (file that must be named, message fragment)."""
    a = d / "a"
    if case == "missing image":
        (a / "5.jpg").unlink()
        return a, "missing"
    if case == "unreadable image":
        (a / "5.jpg").write_bytes(b"this is not a jpeg")
        return a / "5.jpg", "not a readable image"
    if case == "truncated image":
        raw = (a / "5.jpg").read_bytes()
        (a / "5.jpg").write_bytes(raw[: len(raw) // 2])
        return a / "5.jpg", "truncated"
    if case == "missing traj_data.pkl":
        (a / "traj_data.pkl").unlink()
        return a / "traj_data.pkl", "missing traj_data.pkl"
    if case == "not a pickle":
        (a / "traj_data.pkl").write_bytes(b"garbage")
        return a / "traj_data.pkl", "not a readable pickle"
    if case == "code in pickle":
        (a / "traj_data.pkl").write_bytes(pickle.dumps({"position": Evil()}))
        return a / "traj_data.pkl", "refusing to unpickle builtins.print"
    if case == "missing key":
        return rewrite_pkl(a, yaw=None), "missing key 'yaw'"
    if case == "yaw length":
        return rewrite_pkl(a, yaw=np.zeros(N - 1)), "length mismatch"
    if case == "more poses than images":
        p, y = straight_poses(N + 2)
        rewrite_pkl(a, position=p, yaw=y)
        return a, "18 poses but 2 image(s) are missing"
    if case == "nan pose":
        p, _ = straight_poses(N)
        p[7, 1] = np.nan
        return rewrite_pkl(a, position=p), "non-finite"
    if case == "inf yaw":
        y = np.zeros(N)
        y[2] = np.inf
        return rewrite_pkl(a, yaw=y), "non-finite"
    if case == "position shape":
        return rewrite_pkl(a, position=np.zeros((N, 3))), "'position' must have shape [N, 2]"
    if case == "ref_traj shape":
        return rewrite_pkl(a, ref_traj=np.zeros((N, 5))), "'ref_traj' must have shape"
    if case == "ref_traj length":
        return rewrite_pkl(a, ref_traj=np.zeros((N - 3, 2))), "'ref_traj' must have shape"
    if case == "ref_traj nan":
        r = np.zeros((N, 2))
        r[0, 0] = np.nan
        return rewrite_pkl(a, ref_traj=r), "'ref_traj' has 1 non-finite"
    if case == "agents shape":
        return rewrite_pkl(a, agents=np.zeros((N, 2))), "'agents' must have shape"
    if case == "agents inf":
        g = np.zeros((N, 2, 2))
        g[3, 1, 0] = -np.inf
        return rewrite_pkl(a, agents=g), "'agents' has 1 non-finite"
    raise AssertionError(case)


CASES = [
    "missing image",
    "unreadable image",
    "truncated image",
    "missing traj_data.pkl",
    "not a pickle",
    "code in pickle",
    "missing key",
    "yaw length",
    "more poses than images",
    "nan pose",
    "inf yaw",
    "position shape",
    "ref_traj shape",
    "ref_traj length",
    "ref_traj nan",
    "agents shape",
    "agents inf",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_data_raises_naming_file_and_check_data_lists_it(case, data, make_dataset, cache_dir, capsys):
    d, s = data
    named, fragment = _corrupt(case, d)
    with pytest.raises(DataError) as err:
        make_dataset(d, s, len_traj_pred=4)
    assert str(named) in str(err.value) and fragment in str(err.value)
    assert not cache_dir.exists() or not any(cache_dir.iterdir())  # no cache, no temporary file left
    assert cli_main(["check-data", str(d)]) == 1
    out = capsys.readouterr().out
    assert str(named) in out and fragment in out
    assert str(d / "b") not in out  # the good trajectory is not blamed


def test_check_data_lists_every_problem_and_passes_clean_data(data, capsys):
    d, s = data
    assert cli_main(["check-data", str(d), "--split", str(s)]) == 0
    capsys.readouterr()
    _corrupt("nan pose", d)
    (d / "b" / "2.jpg").write_bytes(b"xx")
    write_traj_names(s, ["a", "b", "ghost"])
    assert cli_main(["check-data", str(d), "--split", str(s)]) == 1
    lines = [x for x in capsys.readouterr().out.strip().splitlines() if x.startswith("ERROR: ")]
    assert len(lines) == 3
    assert any(str(d / "a" / "traj_data.pkl") in x for x in lines)
    assert any(str(d / "b" / "2.jpg") in x for x in lines)
    assert any("ghost" in x and "traj_names.txt" in x for x in lines)


def test_split_naming_absent_trajectory(data, make_dataset):
    d, s = data
    write_traj_names(s, ["a", "nope", "b"])
    with pytest.raises(DataError, match=r"traj_names\.txt: lists trajectory 'nope'"):
        make_dataset(d, s, len_traj_pred=4)


def test_unknown_spacing_says_where_to_put_it(data, make_dataset):
    d, s = data
    with pytest.raises(
        ValueError, match=r"dataset 'go2' has no metric_waypoint_spacing \(dataset 'go2' is not in "
    ):
        make_dataset(d, s, len_traj_pred=4, dataset_name="go2", metric_waypoint_spacing=None)
    with pytest.raises(ValueError, match=r"its entry in the config's datasets: block.*navintent check-data"):
        make_dataset(d, s, len_traj_pred=4, dataset_name="go2", metric_waypoint_spacing=None)


def test_wrong_options_for_the_data(data, make_dataset):
    d, s = data
    with pytest.raises(
        DataError, match=r"a/traj_data\.pkl: ref_mode='file' but the trajectory has no 'ref_traj'"
    ):
        make_dataset(d, s, len_traj_pred=4, ref_mode="file")
    rewrite_pkl(d / "a", agents=np.zeros((N, 3, 2)))
    with pytest.raises(DataError, match=r"holds 3 agents, more than max_agents=2"):
        make_dataset(d, s, len_traj_pred=4, max_agents=2)


def test_short_trajectories_excluded_with_one_counted_warning(tmp_path, make_dataset):
    names = []
    for i, n in enumerate([30, 10, 11, 12, 13]):  # need C + T + 1 = 3 + 8 + 1 = 12 frames
        p, y = straight_poses(n)
        write_trajectory(tmp_path / "d", f"t{i}", p, y, traj_index=i)
        names.append(f"t{i}")
    write_traj_names(tmp_path / "s", names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = make_dataset(tmp_path / "d", tmp_path / "s")
    ours = [w for w in caught if issubclass(w.category, DataWarning)]
    assert len(ours) == 1 and "excluded 2 of 5 trajectories" in str(ours[0].message)
    assert len(ds) == (30 - 11) + (12 - 11) + (13 - 11)
    write_traj_names(tmp_path / "s2", ["t1", "t2"])
    with pytest.warns(DataWarning), pytest.raises(DataError, match="no usable sample"):
        make_dataset(tmp_path / "d", tmp_path / "s2")


def test_split_command_like_nomad(tmp_path, capsys):
    p, y = straight_poses(3)
    for i in range(10):
        write_trajectory(tmp_path / "d", f"t{i}", p, y, traj_index=i)
    (tmp_path / "d" / "not_a_traj").mkdir()  # no traj_data.pkl: not a candidate (as NoMaD)
    assert cli_main(["split", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--train-frac", "0.7"]) == 0
    train, test = read_traj_names(tmp_path / "o" / "train"), read_traj_names(tmp_path / "o" / "test")
    assert len(train) == 7 and len(test) == 3
    assert sorted(train + test) == [f"t{i}" for i in range(10)]
    assert cli_main(["split", str(tmp_path / "d"), "--out", str(tmp_path / "o2"), "--train-frac", "0.7"]) == 0
    assert read_traj_names(tmp_path / "o2" / "train") == train  # seeded: reproducible
    cli_main(
        ["split", str(tmp_path / "d"), "--out", str(tmp_path / "o3"), "--train-frac", "0.7", "--seed", "1"]
    )
    assert read_traj_names(tmp_path / "o3" / "train") != train


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reads_numpy1_and_numpy2_pickles(tmp_path, protocol):
    """NoMaD's traj_data.pkl files were written by numpy 1.x (module numpy.core); both layouts load."""
    p, y = straight_poses(N)
    write_trajectory(tmp_path / "d", "a", p, y)
    raw = pickle.dumps({"position": p, "yaw": y[:, None]}, protocol=protocol)
    if protocol == 2:
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    (tmp_path / "d" / "a" / "traj_data.pkl").write_bytes(raw)
    traj = load_trajectory(tmp_path / "d" / "a")
    np.testing.assert_array_equal(traj.position, p)
    np.testing.assert_array_equal(traj.yaw, y)
