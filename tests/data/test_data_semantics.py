"""NavDataset fields against independently computed values (NoMaD semantics, ref_traj, agents)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from navintent.config import IntentConfig, ModelConfig, TrainConfig, TwoStageTrainingConfig
from navintent.data import NavDataset, as_nomad_tuple
from navintent.data.dataset import planner_route
from navintent.data.split import write_traj_names
from navintent.data.synthetic import (
    arc_poses,
    decode_frame_ids,
    straight_poses,
    write_synthetic_dataset,
    write_trajectory,
)


def local_frame(points, origin, yaw):
    """World -> robot frame (x forward, y left), written out independently of navintent.actions."""
    d = np.asarray(points, dtype=np.float64) - origin
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)


def future(t, n, ws, steps):
    return np.minimum(t + ws * np.arange(1, steps + 1), n - 1)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """4 trajectories of 30 frames: +x line, left arc, +y line (yaw 90 deg), right arc; ref_traj and 2 agents."""
    root = tmp_path_factory.mktemp("synth")
    return write_synthetic_dataset(
        root / "data", num_trajectories=4, length=30, with_ref_traj=True, num_agents=2
    )


def check_sample(ds, synth, index, sample):
    """Assert every field of ``sample`` against values computed here from the known poses."""
    ws, T, scale = ds.waypoint_spacing, ds.len_traj_pred, 0.25 * ds.waypoint_spacing
    obs_ids = decode_frame_ids(sample["obs_img"])
    j, t = obs_ids[-1]
    name = synth.names[j]
    pos, yaw = synth.poses[name]
    n = len(pos)
    # context: C+1 frames of the same trajectory, oldest first, current last, ws apart
    assert obs_ids == [(j, t - ws * k) for k in range(ds.context_size, -1, -1)]
    assert ds.context_size * ws <= t < n - ds.end_slack - T * ws
    # actions: next T waypoints, local frame, spacing units
    expected = local_frame(pos[future(t, n, ws, T)], pos[t], yaw[t]) / scale
    if ds.learn_angle:
        rel = yaw[future(t, n, ws, T)] - yaw[t]
        expected = np.concatenate([expected, np.cos(rel)[:, None], np.sin(rel)[:, None]], -1)
    np.testing.assert_allclose(sample["actions"].numpy(), expected, atol=1e-5)
    # goal
    ((gj, gt),) = decode_frame_ids(sample["goal_img"])
    distance = int(sample["distance"])
    negative = distance == ds.max_dist_cat and (gj != j or gt != t + ws * distance)
    if negative:
        np.testing.assert_array_equal(sample["goal_pos"].numpy(), [0.0, 0.0])
        assert float(sample["action_mask"]) == 0.0
    else:
        assert gj == j and gt == t + ws * distance and gt <= n - 1
        assert 1 <= distance <= ds.max_dist_cat
        np.testing.assert_allclose(
            sample["goal_pos"].numpy(), local_frame(pos[gt], pos[t], yaw[t]) / scale, atol=1e-5
        )
        assert float(sample["action_mask"]) == float(
            ds.min_action_distance < distance < ds.max_action_distance
        )
    assert sample["metric_scale"].item() == pytest.approx(scale)
    assert sample["dataset_idx"].dtype == torch.long and sample["distance"].dtype == torch.long
    return j, t, negative


@pytest.mark.parametrize("ws", [1, 2])
@pytest.mark.parametrize("learn_angle", [False, True])
def test_every_sample_matches_independent_computation(synth, make_dataset, ws, learn_angle):
    ds = make_dataset(
        synth.data_folder, synth.split_folder, waypoint_spacing=ws, learn_angle=learn_angle, goal_seed=3
    )
    T, C = 8, 3
    # index as NoMaD: t in [C*ws, n - end_slack - T*ws) for each 30-frame trajectory
    assert len(ds) == 4 * (30 - T * ws - C * ws)
    seen, negatives = set(), 0
    for i in range(len(ds)):
        j, t, negative = check_sample(ds, synth, i, ds[i])
        seen.add((j, t))
        negatives += negative
    assert len(seen) == len(ds)
    assert negatives > 0  # P(negative) = 1 / (k_max + 1) per sample


def test_closed_form_cases(tmp_path, make_dataset):
    """Straight line, 90-degree yaw moving sideways, and a turn, with hand-written expected actions."""
    n = 16
    pos_x, yaw_x = straight_poses(n, 0.25, 0.0)
    side = pos_x.copy()  # moves along world +x while facing world +y: the motion is to the robot's right
    yaw_side = np.full(n, np.pi / 2)
    pos_arc, yaw_arc = arc_poses(n, 0.25, np.pi / 8)
    for i, (p, y) in enumerate([(pos_x, yaw_x), (side, yaw_side), (pos_arc, yaw_arc)]):
        write_trajectory(tmp_path / "d", f"t{i}", p, y, traj_index=i)
    write_traj_names(tmp_path / "s", ["t0", "t1", "t2"])
    ds = make_dataset(tmp_path / "d", tmp_path / "s", context_size=0, len_traj_pred=4, goal_seed=0)
    by_traj = {decode_frame_ids(ds[i]["obs_img"])[0]: ds[i] for i in range(len(ds))}
    k = np.arange(1, 5, dtype=np.float32)
    np.testing.assert_allclose(by_traj[(0, 2)]["actions"].numpy(), np.stack([k, 0 * k], -1), atol=1e-5)
    np.testing.assert_allclose(by_traj[(1, 2)]["actions"].numpy(), np.stack([0 * k, -k], -1), atol=1e-5)
    # arc turning 22.5 deg per frame: first waypoint is straight ahead (heading held for one step),
    # second is 1 step ahead + 1 step at 22.5 deg to the left
    arc = by_traj[(2, 0)]["actions"].numpy()
    a = np.pi / 8
    np.testing.assert_allclose(arc[0], [1.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(arc[1], [1 + np.cos(a), np.sin(a)], atol=1e-5)
    assert arc[2, 1] > arc[1, 1] > 0  # keeps turning left


def test_goal_distribution_and_waypoint_spacing_fix(tmp_path, make_dataset):
    """ws=2 near the end of a trajectory: NoMaD would draw goals past the end; here offsets stay inside."""
    n = 40
    p, y = straight_poses(n)
    write_trajectory(tmp_path / "d", "a", p, y)
    write_traj_names(tmp_path / "s", ["a"])
    ds = make_dataset(tmp_path / "d", tmp_path / "s", waypoint_spacing=2)
    rng = np.random.default_rng(0)
    for i in range(ds.num_observations):
        t = int(ds.index_time[i])
        kmax = min(20, (n - 1 - t) // 2)
        draws = [ds.sample_goal(i, rng) for _ in range(400)]
        positives = {(gt - t) // 2 for _, gt, neg in draws if not neg}
        assert positives == set(range(1, kmax + 1))
        assert all((gt - t) % 2 == 0 and gt <= n - 1 for _, gt, neg in draws if not neg)
        assert any(neg for *_, neg in draws)
    no_neg = make_dataset(
        tmp_path / "d", tmp_path / "s", waypoint_spacing=2, negative_mining=False, min_dist_cat=2
    )
    draws = [no_neg.sample_goal(0, rng) for _ in range(300)]
    t0 = int(no_neg.index_time[0])
    assert not any(neg for *_, neg in draws)
    assert {(gt - t0) // 2 for _, gt, _ in draws} == set(range(2, min(20, (n - 1 - t0) // 2) + 1))


def test_ref_modes_and_padding(synth, make_dataset):
    ws, T = 2, 8
    fut = make_dataset(synth.data_folder, synth.split_folder, waypoint_spacing=ws, goal_seed=0, ref_yaw=True)
    file = make_dataset(
        synth.data_folder, synth.split_folder, waypoint_spacing=ws, goal_seed=0, ref_mode="file"
    )
    none = make_dataset(
        synth.data_folder, synth.split_folder, waypoint_spacing=ws, goal_seed=0, ref_mode="none"
    )
    padded = 0
    for i in range(len(fut)):
        s_f, s_file, s_none = fut[i], file[i], none[i]
        j, t = decode_frame_ids(s_f["obs_img"])[-1]
        pos, yaw = synth.poses[synth.names[j]]
        n = len(pos)
        times = future(t, n, ws, 2 * T)
        padded += int(t + ws * 2 * T > n - 1)
        # future: [2T, 4] (ref_yaw), starts at the first future waypoint, last pose repeats past the end
        rel = yaw[times] - yaw[t]
        exp = np.concatenate(
            [
                local_frame(pos[times], pos[t], yaw[t]) / (0.25 * ws),
                np.cos(rel)[:, None],
                np.sin(rel)[:, None],
            ],
            -1,
        )
        np.testing.assert_allclose(s_f["ref_traj"].numpy(), exp, atol=1e-5)
        torch.testing.assert_close(s_f["ref_traj"][:T, :2], s_f["actions"], rtol=0, atol=0)
        assert s_f["ref_mask"].item() == 1.0
        # file: the synthetic ref_traj is the path shifted 0.1 m to the robot's left at each frame
        left = np.stack([-np.sin(yaw[times]), np.cos(yaw[times])], -1)
        exp_file = local_frame(pos[times] + 0.1 * left, pos[t], yaw[t]) / (0.25 * ws)
        np.testing.assert_allclose(s_file["ref_traj"].numpy(), exp_file, atol=1e-5)
        assert s_file["ref_mask"].item() == 1.0
        # none: zeros, masked
        assert s_none["ref_traj"].shape == (2 * T, 2) and not s_none["ref_traj"].any()
        assert s_none["ref_mask"].item() == 0.0
    assert padded > 0


# ref_mode="planner" on a hand-made trajectory (yaw 0, metres): still for 3 frames, then frame 3 at the origin,
# forward with a pause (frames 4-7), a left turn (frames 8-11). Anchors every 4 waypoints, 0.25 m per waypoint.
PLANNER_POS = np.array(
    [[-0.3, 0], [-0.2, 0], [-0.1, 0], [0, 0], [0.1, 0], [0.1, 0], [0.3, 0], [0.5, 0]]
    + [[0.5, 0.1], [0.5, 0.3], [0.5, 0.4], [0.5, 0.5]]
)
# By hand, in units of 0.25 m (len_traj_pred 4 -> 8 reference rows at arc length 0.25 * i m along the route):
# t = 3: anchors (0, 0), (0.5, 0) [waypoint 4 = frame 7], (0.5, 0.5) [waypoint 8 = frame 11]; the pause and the
#   wiggle between anchors vanish, the route is 1 m long, so rows 1-4 are (1, 0), (2, 0), (2, 1), (2, 2), then the end.
# t = 5: anchors (0.1, 0), (0.5, 0.3) [frame 9], (0.5, 0.5) [frame 11, the last frame repeats]: a 0.5 m segment
#   (3-4-5) and a 0.2 m one; 0.25 m is halfway along the first -> (0.3, 0.15) - (0.1, 0) = (0.2, 0.15) m.
PLANNER_EXPECTED = {
    3: [[1, 0], [2, 0], [2, 1], [2, 2]] + [[2, 2]] * 4,
    5: [[0.8, 0.6], [1.6, 1.2]] + [[1.6, 2.0]] * 6,
}


@pytest.mark.parametrize("world_yaw", [0.0, 2.0])
def test_planner_reference_by_hand(tmp_path, make_dataset, world_yaw):
    """The same trajectory rotated by ``world_yaw`` and shifted in the world gives the same local reference."""
    c, s = np.cos(world_yaw), np.sin(world_yaw)
    pos = PLANNER_POS @ np.array([[c, s], [-s, c]]) + np.array([3.0, -1.0])
    write_trajectory(tmp_path / "d", "a", pos, np.full(len(pos), world_yaw))
    write_traj_names(tmp_path / "s", ["a"])
    ds = make_dataset(tmp_path / "d", tmp_path / "s", len_traj_pred=4, ref_mode="planner", goal_seed=0)
    fut = make_dataset(tmp_path / "d", tmp_path / "s", len_traj_pred=4, goal_seed=0)
    by_time = {decode_frame_ids(ds[i]["obs_img"])[-1][1]: i for i in range(len(ds))}
    for t, expected in PLANNER_EXPECTED.items():
        sample = ds[by_time[t]]
        np.testing.assert_allclose(sample["ref_traj"].numpy(), expected, atol=1e-5)
        assert sample["ref_mask"].item() == 1.0
        # the target is untouched, and differs from the planner's reference
        torch.testing.assert_close(sample["actions"], fut[by_time[t]]["actions"], rtol=0, atol=0)
        assert not torch.allclose(sample["ref_traj"][:4], sample["actions"], atol=0.05)


def test_planner_route_by_hand():
    # anchors every 2 rows: (0, 0), (1, 0), (3, 1); segments 1 and sqrt(5); 1.5 m per row
    points = np.array([[0, 0], [1, 0], [1, 0], [3, 0], [3, 1]], dtype=float)
    u = np.array([2.0, 1.0]) / np.sqrt(5.0)
    expected = [[1, 0] + 0.5 * u, [1, 0] + 2.0 * u, [3, 1], [3, 1]]
    np.testing.assert_allclose(planner_route(points, 2, 1.5), expected, atol=1e-12)
    # anchor_every 1 keeps every point; repeated points (a pause) add no length
    np.testing.assert_allclose(planner_route(points, 1, 1.0), [[1, 0], [2, 0], [3, 0], [3, 1]], atol=1e-12)
    # a robot that stands still: its position repeated
    np.testing.assert_array_equal(planner_route(np.ones((4, 2)), 2, 0.3), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"points must be \[H \+ 1, 2\] with H >= 1, got shape \[1, 2\]"):
        planner_route(np.zeros((1, 2)), 2, 1.0)
    with pytest.raises(ValueError, match="anchor_every must be an integer >= 1, got 0"):
        planner_route(points, 0, 1.0)
    with pytest.raises(ValueError, match="step must be a positive number of metres, got 0.0"):
        planner_route(points, 2, 0.0)


def test_planner_reference_has_no_yaw(synth, make_dataset):
    with pytest.raises(ValueError, match="ref_mode 'planner' gives positions only.*got ref_yaw=True"):
        make_dataset(synth.data_folder, synth.split_folder, ref_mode="planner", learn_angle=True)
    assert TrainConfig(ref_mode="planner").ref_mode == "planner"
    with pytest.raises(
        ValueError, match="ref_mode must be 'future', 'file', 'planner' or 'none', got 'plan'"
    ):
        TrainConfig(ref_mode="plan")
    with pytest.raises(ValueError, match="got train.ref_mode='planner' with model.learn_angle=True"):
        TwoStageTrainingConfig(
            model=ModelConfig(learn_angle=True),
            intent=IntentConfig(ref_dim=4),
            train=TrainConfig(ref_mode="planner"),
        )


def test_agents(tmp_path, make_dataset):
    n = 24
    p, y = arc_poses(n, 0.25, 0.05)
    rng = np.random.default_rng(1)
    agents = rng.normal(size=(n, 3, 2)) * 3
    write_trajectory(tmp_path / "d", "with", p, y, traj_index=0, agents=agents)
    write_trajectory(tmp_path / "d", "without", p, y, traj_index=1)
    write_traj_names(tmp_path / "s", ["with", "without"])
    ds = make_dataset(tmp_path / "d", tmp_path / "s", max_agents=4, goal_seed=0)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=len(ds))))
    assert batch["agents"].shape == (len(ds), 8, 4, 2) and batch["agents_mask"].shape == (len(ds), 4)
    for b in range(len(ds)):
        j, t = decode_frame_ids(batch["obs_img"][b])[-1]
        if j == 0:
            exp = local_frame(agents[future(t, n, 1, 8)], p[t], y[t]) / 0.25
            np.testing.assert_allclose(batch["agents"][b, :, :3].numpy(), exp, atol=1e-4)
            np.testing.assert_array_equal(batch["agents_mask"][b].numpy(), [1, 1, 1, 0])
        else:
            np.testing.assert_array_equal(batch["agents_mask"][b].numpy(), [0, 0, 0, 0])
        assert not batch["agents"][b, :, 3:].any()
    # no trajectory has agents -> keys absent; with_agents=True -> present, masked
    write_traj_names(tmp_path / "s2", ["without"])
    assert "agents" not in make_dataset(tmp_path / "d", tmp_path / "s2")[0]
    forced = make_dataset(tmp_path / "d", tmp_path / "s2", with_agents=True)[0]
    assert forced["agents"].shape == (8, 8, 2) and not forced["agents_mask"].any()


def test_metadata_normalize_and_nomad_tuple(synth, make_dataset):
    ds = make_dataset(
        synth.data_folder, synth.split_folder, dataset_name="recon", metric_waypoint_spacing=None
    )
    # NoMaD: index among the sorted top-level keys of data_config.yaml (action_stats included)
    nomad_keys = ["recon", "scand", "tartan_drive", "go_stanford", "cory_hall", "seattle", "racer"]
    nomad_keys += ["carla_intvns", "carla_cil", "carla", "sacson", "action_stats"]
    assert ds.dataset_index == sorted(nomad_keys).index("recon") == 7
    assert ds.metric_waypoint_spacing == 0.25
    s = ds[0]
    tup = as_nomad_tuple(s)
    assert len(tup) == 7 and tup[0] is s["obs_img"] and tup[2] is s["actions"] and tup[6] is s["action_mask"]
    metres = make_dataset(
        synth.data_folder, synth.split_folder, normalize=False, goal_seed=1, waypoint_spacing=2
    )
    units = make_dataset(synth.data_folder, synth.split_folder, goal_seed=1, waypoint_spacing=2)
    a, b = metres[5], units[5]
    assert a["metric_scale"].item() == 1.0 and b["metric_scale"].item() == 0.5
    torch.testing.assert_close(a["actions"], b["actions"] * 0.5)
    with pytest.raises(ValueError, match="no metric_waypoint_spacing"):
        make_dataset(
            synth.data_folder, synth.split_folder, dataset_name="unknown", metric_waypoint_spacing=None
        )
    with pytest.raises(ValueError, match="context_type"):
        make_dataset(synth.data_folder, synth.split_folder, context_type="randomized")
    with pytest.raises(ValueError, match="goal_type"):
        make_dataset(synth.data_folder, synth.split_folder, goal_type="position")


def test_accepts_nomad_train_py_call(synth, cache_dir):
    """The keyword call visualnav-transformer's train.py makes, plus the split folder's trailing slash."""
    ds = NavDataset(
        data_folder=str(synth.data_folder),
        data_split_folder=str(synth.split_folder) + "/",
        dataset_name="recon",
        image_size=[96, 96],
        waypoint_spacing=1,
        min_dist_cat=0,
        max_dist_cat=20,
        min_action_distance=3,
        max_action_distance=20,
        negative_mining=True,
        len_traj_pred=8,
        learn_angle=False,
        context_size=3,
        context_type="temporal",
        end_slack=3,
        goals_per_obs=1,
        normalize=True,
        goal_type="image",
        cache_dir=cache_dir,
        progress=False,
    )
    assert len(ds) == 4 * (30 - 3 - 8 - 3)
    assert ds[0]["obs_img"].shape == (12, 96, 96) and ds[0]["goal_img"].shape == (3, 96, 96)


def test_goals_per_obs_and_workers_agree(synth, make_dataset):
    ds = make_dataset(synth.data_folder, synth.split_folder, goals_per_obs=2, goal_seed=7)
    assert len(ds) == 2 * ds.num_observations
    loader = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=2)
    got = torch.cat([b["goal_img"] for b in loader])
    expected = torch.stack([ds[i]["goal_img"] for i in range(len(ds))])
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
