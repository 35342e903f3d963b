import numpy as np
import pytest

from navintent.sim import World, predict_agents_at, to_robot_frame


def test_lone_pedestrian_walks_its_route_at_its_speed(make_corridor):
    scene = make_corridor(
        routes=[[[1.0, 1.0], [5.0, 1.0]]], speeds=[0.3], start=(1.0, 5.0, 0.0), goal=(4.0, 5.0, 0.0)
    )
    world = World(scene)
    for _ in range(40):  # 10 s
        world.step(0.0, 0.0)
    assert abs(np.linalg.norm(world.ped_velocities[0]) - 0.3) < 0.01
    assert world.ped_positions[0, 0] > 3.5
    assert abs(world.ped_positions[0, 1] - 1.0) < 0.05


def test_pedestrian_turns_back_at_the_route_end(make_corridor):
    scene = make_corridor(
        routes=[[[2.0, 1.0], [3.0, 1.0]]], speeds=[0.3], start=(1.0, 5.0, 0.0), goal=(4.0, 5.0, 0.0)
    )
    world = World(scene)
    xs = []
    for _ in range(60):
        world.step(0.0, 0.0)
        xs.append(world.ped_positions[0, 0])
    assert max(xs) < 3.3 and min(xs[20:]) < 2.5  # reached the end and came back


def test_predict_agents_equals_stepping_with_the_robot_still(make_corridor):
    scene = make_corridor(routes=[[[4.0, 3.2], [0.5, 3.2]], [[2.0, 5.0], [2.0, 1.0]]], speeds=[0.3, 0.25])
    world = World(scene)
    for _ in range(5):
        world.step(0.2, 0.1)
    predicted = world.predict_agents(6)
    for k in range(6):
        world.step(0.0, 0.0)
        np.testing.assert_array_equal(predicted[k], world.ped_positions)


def test_predict_agents_along_a_robot_path_equals_stepping_the_robot_along_it(make_corridor):
    scene = make_corridor(routes=[[[4.0, 3.2], [0.5, 3.2]], [[2.0, 5.0], [2.0, 1.0]]], speeds=[0.3, 0.25])
    world = World(scene)
    for _ in range(3):
        world.step(0.2, 0.1)
    held = world.predict_agents(6)
    np.testing.assert_array_equal(world.predict_agents(6, np.tile(world.pose[:2], (6, 1))), held)
    starts, realised = [], []
    probe = World(scene)
    for _ in range(3):
        probe.step(0.2, 0.1)
    for k in range(6):  # the robot drives on; the pedestrians react to where it is when each step starts
        starts.append(probe.pose[:2].copy())
        probe.step(0.2, -0.2 if k % 2 else 0.3)
        realised.append(probe.ped_positions)
    moving = world.predict_agents(6, np.array(starts))
    np.testing.assert_array_equal(moving, np.array(realised))
    assert np.abs(moving - held).max() > 1e-3  # the robot's motion changes what the pedestrians do
    with pytest.raises(ValueError, match=r"robot_xy must have shape \[2\] or \[6, 2\], got \(5, 2\)"):
        world.predict_agents(6, np.zeros((5, 2)))


def test_predict_agents_at_replays_recorded_poses(make_corridor):
    scene = make_corridor(routes=[[[4.0, 3.2], [0.5, 3.2]]], speeds=[0.3])
    world = World(scene)
    poses = [world.pose.copy()]
    for _ in range(7):
        world.step(0.2, 0.05)
        poses.append(world.pose.copy())
    np.testing.assert_array_equal(predict_agents_at(scene, np.array(poses), 4), world.predict_agents(4))


def test_world_replay_rebuilds_the_live_state(make_corridor):
    """World.replay / follow: the pedestrians' exact state of an episode from its recorded robot poses."""
    scene = make_corridor(routes=[[[4.0, 3.2], [0.5, 3.2]], [[2.0, 5.0], [2.0, 1.0]]], speeds=[0.3, 0.25])
    live = World(scene)
    poses = [live.pose.copy()]
    for k in range(9):
        live.step(0.2, 0.1 * (-1) ** k)
        poses.append(live.pose.copy())
    replayed = World(scene)
    replayed.step(0.3, 0.0)  # replay starts from scratch whatever the world did before
    replayed.replay(np.array(poses))
    assert replayed.t == live.t == 9
    np.testing.assert_array_equal(replayed.pose, live.pose)
    np.testing.assert_array_equal(replayed.ped_positions, live.ped_positions)
    np.testing.assert_array_equal(replayed.ped_velocities, live.ped_velocities)
    np.testing.assert_array_equal(replayed.predict_agents(3), live.predict_agents(3))
    stepwise = World(scene)
    stepwise.replay(np.array(poses[:1]))
    for pose in poses[1:]:
        stepwise.follow(pose)
    np.testing.assert_array_equal(stepwise.ped_positions, live.ped_positions)
    with pytest.raises(ValueError, match=r"poses must have shape \[t \+ 1, 3\], got \(2, 2\)"):
        replayed.replay(np.zeros((2, 2)))


def test_to_robot_frame():
    pose = np.array([1.0, 2.0, np.pi / 2])
    np.testing.assert_allclose(
        to_robot_frame(np.array([[1.0, 3.0], [0.0, 2.0]]), pose), [[1.0, 0.0], [0.0, 1.0]], atol=1e-12
    )


def test_pedestrian_blocked_by_the_robot_turns_back(make_corridor):
    # The route ends where the robot stands: the pedestrian cannot reach it, stalls, then walks back.
    scene = make_corridor(routes=[[[4.0, 3.0], [1.2, 3.0]]], speeds=[0.3], start=(1.0, 3.0, 0.0))
    world = World(scene)
    xs, targets = [], []
    for _ in range(70):
        world.step(0.0, 0.0)
        xs.append(world.ped_positions[0, 0])
        targets.append(int(world.ped_state.target[0]))
        assert world.pedestrian_gaps()[0] > 0  # it never walks into the robot
    closest = int(np.argmin(xs))
    assert xs[closest] > 1.2 + 0.3  # never reached its route end (within the waypoint tolerance)
    assert xs[-1] > xs[closest] + 0.5 and targets[-1] == 0  # turned back towards its first point


def test_predict_agents_local_is_in_the_robot_frame(make_corridor):
    from navintent.sim import predict_agents_local

    scene = make_corridor(routes=[[[4.0, 3.0], [4.0, 1.0]]], speeds=[0.3], start=(1.0, 3.0, np.pi / 2))
    world = World(scene)
    local = predict_agents_local(world, 3)
    world_xy = world.predict_agents(3)
    # robot faces +y: a point 3 m to the +x side of it is 3 m to its right (y = -3)
    np.testing.assert_allclose(local[:, 0, 0], world_xy[:, 0, 1] - 3.0, atol=1e-12)
    np.testing.assert_allclose(local[:, 0, 1], -(world_xy[:, 0, 0] - 1.0), atol=1e-12)
