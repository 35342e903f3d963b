import dataclasses

import mujoco
import numpy as np
import pytest

from navintent.sim import CameraConfig, SceneConfig, SimConfig, generate_scene
from navintent.sim.geometry import StaticMap
from navintent.sim.scene import scene_to_mjcf


def _assert_scenes_equal(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "static":
            np.testing.assert_array_equal(x.boxes, y.boxes)
            np.testing.assert_array_equal(x.cylinders, y.cylinders)
        elif f.name == "routes":
            assert len(x) == len(y)
            for r, s in zip(x, y, strict=True):
                np.testing.assert_array_equal(r, s)
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y, f.name


def test_same_seed_same_scene_and_different_seeds_differ():
    _assert_scenes_equal(generate_scene(7), generate_scene(7))
    a, b = generate_scene(7), generate_scene(8)
    assert not np.array_equal(a.start, b.start)


def test_generated_scenes_respect_the_contract():
    config = SimConfig()
    crossing = 0
    for seed in range(10):
        scene = generate_scene(seed, config)
        lo, hi = config.scene.start_goal_distance
        assert lo <= np.linalg.norm(scene.goal[:2] - scene.start[:2]) <= hi
        assert scene.static.clearance(scene.start[:2]) >= config.scene.start_clearance
        assert scene.static.clearance(scene.goal[:2]) >= config.scene.start_clearance
        np.testing.assert_array_equal(scene.path[0], scene.start[:2])
        np.testing.assert_array_equal(scene.path[-1], scene.goal[:2])
        keep = config.robot.radius + config.expert.inflation
        for a, b in zip(scene.path[:-1], scene.path[1:], strict=True):
            assert scene.static.segment_clearance(a, b) >= keep - 1e-9
        n_lo, n_hi = config.scene.n_obstacles
        assert n_lo <= len(scene.static.boxes) + len(scene.static.cylinders) <= n_hi
        assert scene.num_pedestrians <= config.scene.n_pedestrians[1]
        crossing += int(scene.crossing.sum())
    assert crossing > 0


def test_static_map_distances_against_hand_values():
    static = StaticMap(6.0, np.array([[3.0, 3.0, 0.5, 0.25]]), np.array([[1.0, 1.0, 0.3]]))
    pts = np.array([[4.0, 3.0], [3.0, 3.1], [1.0, 2.0], [0.1, 5.0], [4.5, 4.25]])
    d, n = static.distances_and_normals(pts)
    # shapes: walls x=0, x=6, y=0, y=6, box, cylinder
    np.testing.assert_allclose(d[0], [4.0, 2.0, 3.0, 3.0, 0.5, np.hypot(3, 2) - 0.3])
    assert d[1, 4] == pytest.approx(-0.15)  # inside the box, 0.15 from the top face
    np.testing.assert_allclose(n[1, 4], [0.0, 1.0])
    assert d[2, 5] == pytest.approx(0.7)
    np.testing.assert_allclose(n[2, 5], [0.0, 1.0])
    np.testing.assert_allclose(static.clearance(pts), [0.5, -0.15, 0.7, 0.1, np.hypot(1.0, 1.0)])


def test_mjcf_compiles_with_named_bodies_and_camera_fov():
    scene = generate_scene(3)
    model = mujoco.MjModel.from_xml_string(
        scene_to_mjcf(scene, CameraConfig(image_size=(128, 64), hfov_deg=100))
    )
    cam = model.camera("robot_cam")
    # horizontal fov = 2 atan(tan(fovy / 2) * W / H)
    hfov = 2 * np.degrees(np.arctan(np.tan(np.radians(model.cam_fovy[cam.id]) / 2) * 2))
    assert hfov == pytest.approx(100.0, abs=1e-4)
    for k in range(scene.num_pedestrians):
        assert model.body_mocapid[model.body(f"ped{k}").id] >= 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"room_size": 2.0},
        {"n_obstacles": (3, 1)},
        {"crossing_probability": 1.5},
        {"start_goal_distance": (1, 50)},
        {"start_yaw_spread": 200.0},
    ],
)
def test_scene_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        SceneConfig(**kwargs)


def test_camera_config_rejects_fov_outside_90_120():
    with pytest.raises(ValueError, match="hfov_deg"):
        CameraConfig(hfov_deg=60)


def test_sim_config_yaml_round_trip(tmp_path):
    config = SimConfig(camera=CameraConfig(image_size=(64, 48)))
    config.save_yaml(tmp_path / "sim.yaml")
    assert SimConfig.load_yaml(tmp_path / "sim.yaml") == config


def _yaw_offsets(spread: float, seeds: range) -> np.ndarray:
    config = SimConfig(scene=SceneConfig(start_yaw_spread=spread))
    offsets = []
    for seed in seeds:
        scene = generate_scene(seed, config)
        d = scene.path[1] - scene.path[0]
        offset = scene.start[2] - np.arctan2(d[1], d[0])
        offsets.append(np.arctan2(np.sin(offset), np.cos(offset)))  # wrapped to (-pi, pi]
    return np.degrees(np.array(offsets))


def test_start_yaw_spread_bounds_the_start_heading_around_the_path():
    assert np.all(np.abs(_yaw_offsets(0.0, range(5))) < 1e-9)
    assert np.all(np.abs(_yaw_offsets(45.0, range(20))) <= 45.0)
    wide = _yaw_offsets(180.0, range(20))
    assert np.abs(wide).max() > 90.0  # some starts face away from the path


def test_default_start_yaw_spread_keeps_the_recorded_scenes():
    """The default (45 deg) draws exactly what the fixed +-pi/4 drew before the option existed (value recorded
    with that code)."""
    assert generate_scene(3).start.tolist() == [4.878982435167365, 4.92083424976174, -2.0159844150887354]


def test_via_points_make_the_path_detour_and_stay_clear():
    """Two via points: paths still join start to goal with the robot's clearance, and detour well beyond the
    straight line (the default keeps every path within 1.6x of it)."""
    config = SimConfig(scene=SceneConfig(via_points=2))
    ratios = []
    for seed in range(8):
        scene = generate_scene(seed, config)
        np.testing.assert_array_equal(scene.path[0], scene.start[:2])
        np.testing.assert_array_equal(scene.path[-1], scene.goal[:2])
        dense = np.concatenate(
            [np.linspace(a, b, 20) for a, b in zip(scene.path[:-1], scene.path[1:], strict=True)]
        )
        assert scene.static.clearance(dense).min() >= config.robot.radius
        length = np.linalg.norm(np.diff(scene.path, axis=0), axis=1).sum()
        ratios.append(length / np.linalg.norm(scene.goal[:2] - scene.start[:2]))
    assert np.mean(ratios) > 1.6


@pytest.mark.parametrize("kwargs", [{"via_points": -1}, {"via_points": 1.5}, {"via_distance": (2.0, 1.0)}])
def test_via_point_options_reject_bad_values(kwargs):
    with pytest.raises(ValueError, match="via_"):
        SceneConfig(**kwargs)


def test_near_obstacle_starts_face_a_close_surface_and_the_expert_turns_away():
    """Every scene starts 0.25-0.45 m (centre) from its nearest surface, heading at it within +-30 deg; the
    expert never touches the surface and in most scenes turns in place (>= 45 deg) before it first moves (one
    of these six starts at the spread's edge where its path leaves sideways: 0 deg)."""
    from navintent.sim.rollout import run_expert

    config = SimConfig(scene=SceneConfig(near_obstacle_starts=1.0))
    turned = []
    for seed in range(6):
        scene = generate_scene(seed, config)
        d, normals = scene.static.distances_and_normals(scene.start[None, :2])
        nearest = int(np.argmin(d[0]))
        assert 0.25 <= d[0, nearest] <= 0.45
        towards = -normals[0, nearest]
        heading = np.array([np.cos(scene.start[2]), np.sin(scene.start[2])])
        assert np.degrees(np.arccos(np.clip(heading @ towards, -1, 1))) <= 30.0 + 1e-6
        run = run_expert(scene, max_steps=400)
        assert run.metrics.static_collisions == 0
        first_move = int(np.argmax(np.linalg.norm(np.diff(run.poses[:, :2], axis=0), axis=1) > 1e-9))
        turned.append(
            abs(
                np.degrees(np.remainder(run.poses[first_move, 2] - scene.start[2] + np.pi, 2 * np.pi) - np.pi)
            )
        )
    assert sum(t >= 45.0 for t in turned) >= 5, turned


def test_near_obstacle_starts_off_draws_the_scenes_drawn_before_the_option():
    _assert_scenes_equal(
        generate_scene(3), generate_scene(3, SimConfig(scene=SceneConfig(near_obstacle_starts=0)))
    )
    assert generate_scene(3).start.tolist() == [4.878982435167365, 4.92083424976174, -2.0159844150887354]


@pytest.mark.parametrize(
    "kwargs",
    [{"near_obstacle_starts": 1.5}, {"near_obstacle_starts": True}, {"near_obstacle_clearance": (0.5, 0.3)},
     {"near_obstacle_spread": 200.0}],
)  # fmt: skip
def test_near_obstacle_options_reject_bad_values(kwargs):
    with pytest.raises(ValueError, match="near_obstacle"):
        SceneConfig(**kwargs)


def test_near_obstacle_starts_refuse_a_clearance_inside_the_robot():
    with pytest.raises(ValueError, match="near_obstacle_clearance must start beyond robot.radius"):
        SimConfig(scene=SceneConfig(near_obstacle_starts=0.5, near_obstacle_clearance=(0.1, 0.3)))
