import pickle

import numpy as np
import pytest
import yaml

from navintent.cli import main
from navintent.data import NavDataset
from navintent.data.check import check_dataset
from navintent.sim.planner import path_arc_length

NAME = "navintent_sim"


def _read(out):
    data = {}
    for ep in sorted((out / NAME).iterdir()):
        with open(ep / "traj_data.pkl", "rb") as f:
            traj = pickle.load(f)
        jpegs = [(ep / f"{i}.jpg").read_bytes() for i in range(len(traj["position"]))]
        data[ep.name] = (traj, jpegs)
    return data


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    for run, workers in (("a", "1"), ("b", "1"), ("c", "2")):
        args = ["--out", str(root / run), "--episodes", "3", "--seed", "5", "--image-size", "64", "48"]
        assert main(["make-data", *args, "--workers", workers]) == 0
    return root


@pytest.mark.parametrize("other", ["b", "c"])  # c: two forked workers
def test_make_data_is_deterministic(recorded, other):
    a, b = _read(recorded / "a"), _read(recorded / other)
    assert list(a) == list(b) == ["ep00000", "ep00001", "ep00002"]
    for name in a:
        (ta, ja), (tb, jb) = a[name], b[name]
        assert sorted(ta) == ["agents", "position", "ref_traj", "yaw"]
        for key in ta:
            np.testing.assert_array_equal(ta[key], tb[key])
        assert ja == jb
    config = "data_config.yaml"
    assert (recorded / "a" / config).read_bytes() == (recorded / other / config).read_bytes()


def test_refuses_to_overwrite(recorded):
    with pytest.raises(FileExistsError, match="not empty"):
        main(["make-data", "--out", str(recorded / "a"), "--episodes", "1"])


def test_layout_and_contents(recorded):
    out = recorded / "a"
    spacing = yaml.safe_load((out / "data_config.yaml").read_text())[NAME]["metric_waypoint_spacing"]
    total, steps = 0.0, 0
    meta = yaml.safe_load((out / "sim_episodes.yaml").read_text())["episodes"]
    for name, (traj, jpegs) in _read(out).items():
        n = len(traj["position"])
        assert traj["position"].shape == (n, 2) and traj["yaw"].shape == (n,)
        assert traj["ref_traj"].shape == (n, 2)
        assert traj["agents"].shape == (n, meta[name]["pedestrians"], 2)
        np.testing.assert_allclose(traj["ref_traj"][0], traj["position"][0])
        step = np.linalg.norm(np.diff(traj["ref_traj"], axis=0), axis=1)
        arc = path_arc_length(traj["ref_traj"])[-1]
        assert np.all(step <= 0.05 + 1e-9) and arc > 2.5
        assert np.linalg.norm(traj["ref_traj"][-1] - traj["position"][-1]) <= 0.2 + 1e-9  # goal radius
        assert jpegs[0][:2] == b"\xff\xd8"
        total += np.linalg.norm(np.diff(traj["position"], axis=0), axis=1).sum()
        steps += n - 1
    assert spacing == pytest.approx(total / steps)
    assert 0.02 < spacing <= 0.05
    train = (out / "splits" / NAME / "train" / "traj_names.txt").read_text().split()
    test = (out / "splits" / NAME / "test" / "traj_names.txt").read_text().split()
    assert sorted(train + test) == ["ep00000", "ep00001", "ep00002"]


def test_check_data_passes_and_nav_dataset_loads(recorded, tmp_path):
    out = recorded / "a"
    splits = [out / "splits" / NAME / s for s in ("train", "test")]
    assert check_dataset(out / NAME, splits, progress=False) == []
    assert main(["check-data", str(out / NAME)]) == 0
    ds = NavDataset(
        data_folder=out / NAME,
        data_split_folder=splits[0],
        dataset_name=NAME,
        image_size=(64, 48),
        waypoint_spacing=1,
        min_dist_cat=0,
        max_dist_cat=20,
        min_action_distance=2,
        max_action_distance=10,
        negative_mining=True,
        len_traj_pred=8,
        learn_angle=False,
        context_size=3,
        data_config=out / "data_config.yaml",
        ref_mode="file",
        cache_dir=tmp_path,
        progress=False,
    )
    assert len(ds) > 0
    sample = ds[0]
    assert sample["obs_img"].shape == (12, 48, 64)
    assert sample["actions"].shape == (8, 2)
    assert float(sample["ref_mask"]) == 1.0
    assert "agents" in sample and sample["agents"].shape[-1] == 2


def test_recorded_episode_replays_from_its_scene_seed(recorded):
    from navintent.sim import SimConfig, generate_scene, predict_agents_at

    out = recorded / "a"
    meta = yaml.safe_load((out / "sim_episodes.yaml").read_text())
    config = SimConfig.from_dict(meta["config"])
    for name, (traj, _) in _read(out).items():
        scene = generate_scene(meta["episodes"][name]["scene_seed"], config)
        poses = np.concatenate([traj["position"], traj["yaw"][:, None]], axis=1)
        np.testing.assert_array_equal(scene.path[0], traj["position"][0])
        t = len(poses) // 2
        # pedestrians move while the robot holds its step-t pose, so a 1-step prediction IS the recorded step t+1
        np.testing.assert_array_equal(predict_agents_at(scene, poses[: t + 1], 1)[0], traj["agents"][t + 1])


def test_goals_per_start_shares_the_start_and_splits_whole_groups(tmp_path):
    """Two goals per start: same room and start pose, first headings >= 60 deg apart, each group on one side of
    the split, every branch replays from what sim_episodes.yaml records."""
    from navintent.sim import SimConfig, generate_scene
    from navintent.sim.scene import branch_scene, start_heading

    out = tmp_path / "groups"
    args = ["--out", str(out), "--episodes", "6", "--seed", "2", "--image-size", "32", "32"]
    assert main(["make-data", *args, "--goals-per-start", "2", "--train-frac", "0.5"]) == 0
    meta = yaml.safe_load((out / "sim_episodes.yaml").read_text())
    assert meta["goals_per_start"] == 2
    config = SimConfig.from_dict(meta["config"])
    data = _read(out)
    assert list(data) == [f"ep{i:05d}" for i in range(6)]
    headings = {}
    for name, (traj, _) in data.items():
        m = meta["episodes"][name]
        assert m["start_group"] == int(name[2:]) // 2 and m["branch"] == int(name[2:]) % 2
        room = generate_scene(m["start_scene_seed"], config)
        scene = room if m["branch"] == 0 else branch_scene(room, m["scene_seed"], tuple(m["avoid_headings"]))
        np.testing.assert_array_equal(scene.path[0], traj["position"][0])
        np.testing.assert_array_equal(scene.path[-1], scene.goal[:2])
        assert traj["yaw"][0] == room.start[2]
        headings.setdefault(m["start_group"], []).append((start_heading(scene.path), traj["position"][-1]))
    for (h0, end0), (h1, end1) in headings.values():
        assert abs(np.degrees(np.angle(np.exp(1j * (h1 - h0))))) >= 60.0
        assert np.linalg.norm(end1 - end0) > 0.5
    for split in ("train", "test"):
        names = (out / "splits" / NAME / split / "traj_names.txt").read_text().split()
        groups = [meta["episodes"][n]["start_group"] for n in names]
        assert len(names) == 2 * len(set(groups))  # whole groups only


def test_goals_per_start_must_divide_the_episodes(tmp_path):
    from navintent.sim.recorder import record_dataset

    with pytest.raises(ValueError, match="divide episodes=5, got 2"):
        record_dataset(tmp_path / "bad", 5, 0, goals_per_start=2, progress=False)


def test_the_world_of_a_recording_loads_from_its_folder_record_or_a_config_file(recorded, tmp_path):
    """load_sim_config reads make-data's record (folder or sim_episodes.yaml) and a SimConfig YAML; make-data
    --config takes the record to record again in the same world; bad inputs are named."""
    from navintent.sim import SimConfig, load_sim_config, sim_config_changes

    folder = recorded / "a"
    world, source = load_sim_config(folder)
    assert source == folder / "sim_episodes.yaml"
    assert world == SimConfig().replace(camera=SimConfig().camera.replace(image_size=(64, 48)))
    assert load_sim_config(source) == (world, source)
    assert sim_config_changes(world) == ["camera.image_size [96, 96] -> [64, 48]"]
    assert sim_config_changes(SimConfig(), world) == ["camera.image_size [64, 48] -> [96, 96]"]
    again = tmp_path / "again"
    assert main(["make-data", "--out", str(again), "--episodes", "2", "--config", str(folder)]) == 0
    assert yaml.safe_load((again / "sim_episodes.yaml").read_text())["config"] == world.to_dict()
    plain = tmp_path / "world.yaml"
    plain.write_text("camera:\n  hfov_deg: 120\nrobot:\n  max_v: 0.3\n")
    loaded, _ = load_sim_config(plain)
    assert sim_config_changes(loaded) == ["robot.max_v 0.2 -> 0.3", "camera.hfov_deg 100.0 -> 120"]
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is a folder without sim_episodes.yaml"):
        load_sim_config(tmp_path)
    plain.write_text("camera:\n  fov: 120\n")
    with pytest.raises(ValueError, match=r"unknown CameraConfig keys in .*world.yaml:camera: \['fov'\]"):
        load_sim_config(plain)
