"""navintent.evaluation.tasks: a map recorded by the expert, a scripted navigator that must reach the goal along it,
exploration's collision count against a hand count, and the metrics' definitions on hand-built episodes."""

import numpy as np
import pytest
import torch

from navintent.actions import waypoints_to_normalized_deltas
from navintent.config import preset_model_config
from navintent.deploy import DeployStep, Explorer, TopomapNavigator
from navintent.evaluation.tasks import (
    TaskEpisode,
    exploration_metrics,
    navigation_metrics,
    record_topomap,
    run_exploration,
    run_navigation,
    without_pedestrians,
)
from navintent.models.nomad import NoMaDPolicy
from navintent.sim import generate_scene, to_robot_frame
from navintent.sim.world import World

CFG = preset_model_config("tiny").replace(image_size=(32, 32))
SCALE = 0.05  # metres per normalised unit


class PoseSpy:
    """Stands in for the MuJoCo renderer: a blank frame, and the pose it was asked to render (the oracle's view)."""

    def __init__(self):
        self.pose = None

    def render(self, pose, peds):
        self.pose = np.array(pose, dtype=float)
        return np.zeros((24, 32, 3), dtype=np.uint8)


class OracleNoMaD(NoMaDPolicy):
    """A scripted policy that knows the robot's pose (from the renderer) and the map's node poses: the distance
    head returns the true distance to each window node in waypoint steps; sampling heads straight for the node
    whose condition it is given (cond[:, 0] holds the node index)."""

    def __init__(self, spy, node_poses, step_m):
        super().__init__(CFG)
        self.spy, self.nodes, self.step_m, self.navigator = spy, np.array(node_poses), step_m, None

    def encode(self, obs_img, goal_img, goal_mask=None, return_tokens=False):
        start, end = self.navigator.window()
        cond = torch.zeros(goal_img.shape[0], CFG.encoding_size)
        cond[:, 0] = torch.arange(start, end + 1, dtype=torch.float32)
        return (
            (cond, torch.zeros(cond.shape[0], CFG.context_size + 2, CFG.encoding_size))
            if return_tokens
            else cond
        )

    def predict_distance(self, obsgoal_cond):
        nodes = self.nodes[obsgoal_cond[:, 0].long().numpy(), :2]
        return torch.tensor(np.linalg.norm(nodes - self.spy.pose[:2], axis=1) / self.step_m)[:, None].float()

    def sample_from_condition(self, cond, num_samples=8, latent_z=None, lambda_cfg=0.0, generator=None, **_):
        target = to_robot_frame(self.nodes[int(cond[0, 0]), :2], self.spy.pose) / SCALE  # normalised units
        k = torch.arange(1, CFG.len_traj_pred + 1, dtype=torch.float32)[:, None]
        reach = float(np.linalg.norm(target))
        wps = torch.tensor(target, dtype=torch.float32) * torch.clamp(k * 1.2 / max(reach, 1e-6), max=1.0)
        nd = waypoints_to_normalized_deltas(wps, CFG.action_min, CFG.action_max)
        return nd.expand(cond.shape[0], num_samples, -1, -1).clone()


def test_a_scripted_navigator_reaches_the_goal_along_the_recorded_map():
    scene = without_pedestrians(generate_scene(3))
    spy = PoseSpy()
    recorded = record_topomap(scene, spy, every_frames=4)
    assert recorded.goal_reached and len(recorded.topomap) == -(-(recorded.steps + 1) // 4) + (
        recorded.steps % 4 != 0
    )
    policy = OracleNoMaD(spy, recorded.topomap.poses, step_m=0.05)
    navigator = TopomapNavigator(
        policy, recorded.topomap, metric_scale=SCALE, num_samples=2, close_threshold=3
    )
    policy.navigator = navigator
    episode = run_navigation(scene, navigator, spy, max_steps=3 * recorded.steps)
    m = navigation_metrics(episode, recorded.path_length)
    assert m["goal_declared"] and m["goal_reached"] and m["success"], m
    assert m["localisation_consistency"] == 1.0 and m["static_collisions_per_100m"] == 0.0
    assert 0.5 < m["spl"] <= 1.0 and m["spl"] == pytest.approx(
        recorded.path_length / max(recorded.path_length, m["path_length"])
    )
    assert m["time_to_goal"] == pytest.approx(episode.declared_at * scene.config.robot.dt)
    assert m["min_distance_pedestrian"] is None and m["replan_ms_median"] > 0


class Straight(NoMaDPolicy):
    """Exploration stub: always the waypoint 1 m straight ahead."""

    def sample_from_condition(self, cond, num_samples=8, **_):
        wps = torch.tensor(
            [[1.0 / SCALE * (k + 1) / CFG.len_traj_pred, 0.0] for k in range(CFG.len_traj_pred)]
        )
        nd = waypoints_to_normalized_deltas(wps, CFG.action_min, CFG.action_max)
        return nd.expand(cond.shape[0], num_samples, -1, -1).clone()


def test_exploration_counts_static_collisions_as_a_hand_rerun_does():
    scene = generate_scene(5)
    spy = PoseSpy()
    explorer = Explorer(Straight(CFG), metric_scale=SCALE, num_samples=1)
    episode = run_exploration(scene, explorer, spy, steps=120)
    m = exploration_metrics(episode)
    # hand count: the same commands in a fresh world (stand still while the context fills, then full speed ahead)
    world, blocked, poses, onsets, before = World(scene), 0, [World(scene).pose.copy()], 0, False
    robot = scene.config.robot
    for t in range(120):
        world.step(0.0 if t < CFG.context_size else robot.max_v, 0.0)
        blocked += world.last_static_collision
        onsets += world.last_static_collision and not before
        before = world.last_static_collision
        poses.append(world.pose.copy())
    assert (
        m["static_blocked_steps"] == blocked and blocked > 1
    )  # 120 steps x 5 cm reaches a wall and pushes on
    assert m["static_collisions"] == onsets == 1  # one collision: straight ahead stays against the wall
    np.testing.assert_allclose(episode.poses, np.array(poses))
    cells = {(int(np.floor(x / 0.5)), int(np.floor(y / 0.5))) for x, y, _ in poses}
    assert m["coverage_m2"] == pytest.approx(0.25 * len(cells))
    assert m["path_length"] == pytest.approx(
        np.linalg.norm(np.diff(np.array(poses)[:, :2], axis=0), axis=1).sum()
    )


def test_static_collision_events_count_onsets():
    from navintent.evaluation.tasks import static_collision_events

    assert static_collision_events(np.array([True, True, False, True, False, False, True, True])) == 3
    assert static_collision_events(np.zeros(0, dtype=bool)) == 0


def test_navigation_metrics_on_a_hand_built_episode():
    """Two pedestrians, five steps: hand values for personal space, per-100 m rates, SPL and consistency."""
    scene = generate_scene(3)
    scene = scene.__class__(**{**scene.__dict__, "goal": np.array([0.4, 0.0, 0.0])})
    poses = np.array([[0.0, 0.0, 0.0], [0.1, 0, 0], [0.2, 0, 0], [0.3, 0, 0], [0.4, 0, 0], [0.4, 0, 0]])
    peds = np.zeros((6, 2, 2))
    peds[:, 0] = [
        [1.5, 0],
        [1.0, 0],
        [0.6, 0],
        [0.6, 0],
        [1.5, 0],
        [3.0, 0],
    ]  # 1.5, 0.9, 0.4, 0.3, 1.1, 2.6 m away
    peds[:, 1] = [[5.0, 5.0]] * 6
    hits = np.array([False, True, False, False, False])
    steps = [
        DeployStep(True, np.zeros(2), closest_node=c, latency_ms=ms)
        for c, ms in zip([0, 1, 1, 3, 3], [10, 20, 30, 40, 50], strict=True)
    ]
    episode = TaskEpisode("navigate", scene, poses, peds, hits, steps, declared_at=5)
    m = navigation_metrics(episode, reference_length=0.3, target=0, goal_tolerance=0.25)
    dt = scene.config.robot.dt
    assert m["goal_reached"] and not m["success"]  # a static collision
    assert m["static_collisions_per_100m"] == pytest.approx(100 * 1 / 0.4)  # one event in 0.4 m
    assert m["spl"] == 0.0 and m["path_length"] == pytest.approx(0.4)
    assert m["time_within_0.5m"] == pytest.approx(2 * dt) and m["time_within_1.2m"] == pytest.approx(4 * dt)
    assert m["min_distance_target"] == pytest.approx(0.3) and m["min_distance_pedestrian"] == pytest.approx(
        0.3
    )
    assert m["localisation_consistency"] == pytest.approx(3 / 4)  # 0->1, 1->1, 1->3 (a jump of 2), 3->3
    assert m["replan_ms_median"] == 30 and m["replan_ms_p95"] == pytest.approx(48.0)
    far = navigation_metrics(
        episode, reference_length=0.3, goal_tolerance=0.01
    )  # declared 0.4 m... at the goal
    assert far["goal_reached"]
    moved = TaskEpisode("navigate", scene, poses[:3], peds[:3], hits[:2], steps[:2], declared_at=2)
    assert not navigation_metrics(moved, 0.3, goal_tolerance=0.1)[
        "goal_reached"
    ]  # declared 0.2 m from the goal
