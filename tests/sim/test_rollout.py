from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from navintent.sim import World
from navintent.sim.render import SceneRenderer
from navintent.sim.rollout import compute_metrics, rollout, time_to_collision

HEAD_ON = [[4.5, 3.0], [0.5, 3.0]]  # walks straight at a robot starting at (1, 3) facing +x


def straight(step):
    return np.array([[0.05 * k, 0.0] for k in range(1, 9)])


def test_scripted_rollout_into_a_pedestrian_records_a_collision(make_corridor):
    scene = make_corridor(routes=[HEAD_ON], speeds=[0.3], robot_strength=0.0)  # a distracted pedestrian
    result = rollout(straight, scene, 40)
    m = result.metrics
    assert m.pedestrian_collisions >= 1
    assert m.min_distance[0] < scene.config.robot.radius + scene.config.pedestrians.radius
    assert m.min_ttc == 0.0
    assert m.static_collisions == 0


def test_scripted_avoidance_records_no_collision(make_corridor):
    scene = make_corridor(routes=[HEAD_ON], speeds=[0.3], robot_strength=0.0)
    calls = []

    def swerve(step):
        calls.append(1)
        turn = len(calls) <= 8
        return np.array([[0.1, 0.1]] * 3) if turn else np.array([[0.05, 0.0], [0.1, 0.0], [0.15, 0.0]])

    m = rollout(swerve, scene, 40).metrics
    assert m.pedestrian_collisions == 0
    assert m.min_distance[0] > scene.config.robot.radius + scene.config.pedestrians.radius
    assert np.isfinite(m.min_ttc) and m.min_ttc > 0  # they were on a collision course at the start


def test_driving_into_a_wall_is_blocked_and_counted(make_corridor):
    scene = make_corridor(start=(5.3, 3.0, 0.0), goal=(1.0, 3.0, 0.0))
    result = rollout(straight, scene, 20)
    assert result.metrics.static_collisions > 0
    assert result.poses[:, 0].max() <= 6.0 - scene.config.robot.radius
    assert not result.metrics.goal_reached


def test_rollout_reaches_goal_and_replays_exactly(make_corridor):
    scene = make_corridor(routes=[[[3.0, 5.0], [3.0, 4.0]]], speeds=[0.3])

    def to_goal(step):
        return np.array([[0.05, 0.0], [0.1, 0.0], [0.15, 0.0]])

    a = rollout(to_goal, scene, 120, context_size=2, record_images=True)
    b = rollout(to_goal, scene, 120, context_size=2, record_images=True)
    assert a.metrics.goal_reached and a.metrics.success
    assert a.metrics.steps == len(a.poses) - 1 == len(a.commands)
    assert a.metrics.path_length == pytest.approx(np.linalg.norm(a.poses[-1, :2] - a.poses[0, :2]))
    np.testing.assert_array_equal(a.poses, b.poses)
    np.testing.assert_array_equal(a.agents, b.agents)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.images.shape == (len(a.poses), 96, 96, 3)
    assert a.waypoints.shape == (a.metrics.steps, 3, 2)
    # a loop that declares arrival itself (NoMaD's navigator) keeps driving past the goal until it says so
    c = rollout(to_goal, scene, a.metrics.steps + 5, context_size=2, stop_at_goal=False)
    assert len(c.poses) == a.metrics.steps + 6
    np.testing.assert_array_equal(c.poses[: len(a.poses)], a.poses)


def test_policy_sees_context_oldest_first_padded_with_the_first_frame(make_corridor):
    scene = make_corridor()
    seen = []

    def record(step):
        seen.append(step.context.copy())
        assert step.goal_image.shape == (96, 96, 3) and step.goal_image.dtype == np.uint8
        return np.array([[0.0, 0.1]])  # turn in place so every frame differs

    result = rollout(record, scene, 5, context_size=3, record_images=True)
    frames = result.images
    assert seen[0].shape == (4, 96, 96, 3)
    np.testing.assert_array_equal(seen[0], np.stack([frames[0]] * 4))
    np.testing.assert_array_equal(seen[1], np.stack([frames[0]] * 3 + [frames[1]]))
    np.testing.assert_array_equal(seen[4], frames[1:5])


def test_policy_is_given_the_simulator_state_of_its_step(make_corridor):
    scene = make_corridor(routes=[HEAD_ON], speeds=[0.3])
    seen = []

    def record(step):
        seen.append(step)
        return np.array([[0.05, 0.02]])

    result = rollout(record, scene, 6)
    assert [s.t for s in seen] == list(range(result.metrics.steps)) and len(seen) == 6
    for s in seen:
        np.testing.assert_array_equal(s.pose, result.poses[s.t])
        np.testing.assert_array_equal(s.ped_positions, result.agents[s.t])
    world = World(scene)
    world.replay(result.poses[:4])
    np.testing.assert_array_equal(seen[3].ped_velocities, world.ped_velocities)
    assert np.abs(seen[3].ped_velocities).sum() > 0  # the pedestrian is walking
    with pytest.raises(FrozenInstanceError):
        seen[0].t = 5


def test_bad_policy_output_is_rejected(make_corridor):
    with pytest.raises(ValueError, match=r"\[T, 2\]"):
        rollout(lambda step: np.zeros(3), make_corridor(), 3)


def test_time_to_collision_against_hand_values():
    # 2 m apart, closing at 0.5 m/s, contact at 0.45 m: (2 - 0.45) / 0.5
    assert time_to_collision(np.array([2.0, 0.0]), np.array([-0.5, 0.0]), 0.45) == pytest.approx(3.1)
    assert time_to_collision(np.array([2.0, 0.0]), np.array([0.5, 0.0]), 0.45) == np.inf
    assert time_to_collision(np.array([2.0, 1.0]), np.array([-0.5, 0.0]), 0.45) == np.inf  # passes 1 m away
    assert time_to_collision(np.array([0.3, 0.0]), np.array([0.5, 0.0]), 0.45) == 0.0


def test_compute_metrics_counts_contact_onsets(make_corridor):
    scene = make_corridor(routes=[[[0.5, 0.5]]], speeds=[0.3])
    poses = np.zeros((5, 3))
    agents = np.array([[[1.0, 0.0]], [[0.3, 0.0]], [[1.0, 0.0]], [[0.2, 0.0]], [[0.1, 0.0]]])
    m = compute_metrics(scene, poses, agents, np.zeros(4, dtype=bool))
    assert m.pedestrian_collisions == 2
    assert m.min_distance[0] == pytest.approx(0.1)


def test_images_are_informative_and_change_when_the_robot_turns(make_corridor):
    scene = make_corridor(routes=[[[3.0, 3.0]]], speeds=[0.3])
    world = World(scene)
    with SceneRenderer(scene) as renderer:
        a = renderer.render(world.pose, world.ped_positions)
        b = renderer.render(world.pose + np.array([0.0, 0.0, 0.4]), world.ped_positions)
        hidden = renderer.render(world.pose, None)
    assert a.dtype == np.uint8 and a.shape == (96, 96, 3)
    assert a.std() > 10 and len(np.unique(a.reshape(-1, 3), axis=0)) > 20
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5
    assert np.abs(a.astype(int) - hidden.astype(int)).sum() > 0  # the pedestrian ahead is visible


def test_overview_shows_the_whole_room(make_corridor):
    scene = make_corridor(routes=[[[3.0, 3.0]]], speeds=[0.3])
    with SceneRenderer(scene) as renderer:
        top = renderer.overview(scene.start, np.array([[3.0, 3.0]]), size=128)
        empty = renderer.overview(scene.start, None, size=128)
    assert top.shape == (128, 128, 3) and top.std() > 10
    changed = np.abs(top.astype(int) - empty.astype(int)).sum(-1) > 0
    rows, cols = np.nonzero(changed)
    # the pedestrian stands at the room centre: the pixels it changes are around the image centre
    assert abs(rows.mean() - 64) < 12 and abs(cols.mean() - 64) < 12
