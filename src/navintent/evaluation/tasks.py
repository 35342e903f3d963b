"""NoMaD's deployment tasks in the built-in world: a map recorded once, then navigation or exploration episodes.

Tasks (``navintent evaluate --task``):

- ``navigate``: :func:`record_topomap` drives the expert through the held-out scene *without pedestrians* and keeps
  a node every ``every_frames`` frames (as a user teleoperates once to record a map; NoMaD's
  ``create_topomap.py`` saves a frame every second, 4 frames at 4 Hz), then :func:`run_navigation` runs a
  :class:`navintent.deploy.TopomapNavigator` through the map with the pedestrians present;
- ``explore``: :func:`run_exploration` runs a :class:`navintent.deploy.Explorer` (goal masked) for a fixed number
  of steps;
- ``goal-image``: one goal image of the final pose, the loop ``navintent evaluate`` ran before these tasks.

Each tick renders the robot camera, asks the loop for a waypoint, and applies NoMaD's controller
(:func:`navintent.control.pd_follower`) for one control period (:class:`navintent.sim.world.World`). Before the
context queue is full the loop plans nothing and the robot stands still, as NoMaD's does.

Metrics (:func:`navigation_metrics`, :func:`exploration_metrics`), all from one episode:

- ``goal_reached``: the navigator declared ``reached_goal`` while the robot was within ``goal_tolerance`` metres of
  the scene's goal (a declaration far from the goal is a localisation failure, not a success);
- ``success``: goal reached with no static and no pedestrian collision;
- ``static_collision`` / ``pedestrian_collision``: any during the episode; ``static_collisions_per_100m`` /
  ``pedestrian_collisions_per_100m``: collision events per 100 m driven (None if it did not move). A static
  collision event is the onset of a run of blocked steps (a robot pushing against a wall for ten steps collides
  once); a pedestrian event is a contact onset;
- ``spl``: success weighted by path length (Anderson et al. 2018), ``success * L / max(L, path_length)`` with
  ``L`` the expert's pedestrian-free path length (the map's traversal);
- ``path_length`` (m), ``time_to_goal`` (s; None unless reached);
- ``min_distance_pedestrian`` (m, centre to centre, any pedestrian; None without pedestrians),
  ``min_distance_target`` (the same for the caller's target pedestrian);
- ``time_within_0.5m`` / ``time_within_1.2m``: seconds with some pedestrian's centre within 0.5 m / 1.2 m of the
  robot's (personal-space intrusions; 1.2 m is Hall's personal distance);
- ``localisation_consistency``: share of consecutive planned ticks whose closest node moved by at most one;
- ``replan_ms_median`` / ``replan_ms_p95``: planning time of the loop per tick (vision pass, distances, sampling,
  latent), wall-clock on this machine.
- exploration: ``static_collisions`` (static collision events per episode), ``static_blocked_steps``,
  ``pedestrian_collisions`` (contact onsets), ``coverage_m2`` (area of the distinct 0.5 m grid cells the robot's
  centre visited), ``path_length``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from navintent.control import pd_follower
from navintent.deploy import DeployStep, Explorer, Topomap, TopomapNavigator, TopomapRecorder
from navintent.sim.rollout import compute_metrics, run_expert
from navintent.sim.scene import Scene
from navintent.sim.world import World

TASKS = ("navigate", "explore", "goal-image")
PERSONAL_RADII = (0.5, 1.2)
COVERAGE_CELL_M = 0.5


def without_pedestrians(scene: Scene) -> Scene:
    """The same scene with nobody in it (for recording the map)."""
    return dataclasses.replace(
        scene,
        routes=(),
        speeds=np.zeros(0),
        pedestrian_colors=np.zeros((0, 4)),
        crossing=np.zeros(0, dtype=bool),
    )


@dataclass
class RecordedMap:
    """A map recorded by the expert: the ``topomap`` (with node poses), the traversal's ``path_length`` (m) and
    ``steps``, and whether the expert reached the goal."""

    topomap: Topomap
    path_length: float
    steps: int
    goal_reached: bool


def record_topomap(scene: Scene, renderer, *, every_frames: int = 4, max_steps: int = 400) -> RecordedMap:
    """Drive the expert through ``scene`` without pedestrians and keep a node every ``every_frames`` frames (the
    last frame is the goal node). ``renderer`` renders ``scene`` (pedestrians are hidden when rendering)."""
    empty = without_pedestrians(scene)
    run = run_expert(empty, max_steps=max_steps)
    recorder = TopomapRecorder(every_frames=every_frames)
    for pose in run.poses:
        recorder.add(renderer.render(pose, None), pose)
    return RecordedMap(
        recorder.topomap(), run.metrics.path_length, run.metrics.steps, run.metrics.goal_reached
    )


@dataclass
class TaskEpisode:
    """One episode: ``poses [S+1, 3]``, ``agents [S+1, N, 2]``, ``static_hits [S]``, the loop's ``steps`` (one
    :class:`navintent.deploy.DeployStep` per tick, planned or not), ``declared_at`` (tick of ``reached_goal``)."""

    task: str
    scene: Scene
    poses: np.ndarray
    agents: np.ndarray
    static_hits: np.ndarray
    steps: list[DeployStep] = field(default_factory=list)
    declared_at: int | None = None


def _drive(scene: Scene, loop, renderer, max_steps: int, stop_on_goal: bool, task: str) -> TaskEpisode:
    world = World(scene)
    robot = scene.config.robot
    poses, agents, hits, steps = [world.pose.copy()], [world.ped_positions], [], []
    declared = None
    for t in range(max_steps):
        out = loop.step(renderer.render(world.pose, world.ped_positions))
        steps.append(out)
        if stop_on_goal and out.reached_goal:
            declared = t
            break
        v, w = (
            pd_follower(out.waypoint, max_v=robot.max_v, max_w=robot.max_w, dt=robot.dt)
            if out.ready
            else (0, 0)
        )
        world.step(v, w)
        poses.append(world.pose.copy())
        agents.append(world.ped_positions)
        hits.append(world.last_static_collision)
    return TaskEpisode(
        task,
        scene,
        np.array(poses),
        np.array(agents).reshape(len(poses), scene.num_pedestrians, 2),
        np.array(hits, dtype=bool),
        steps,
        declared,
    )


def run_navigation(scene: Scene, navigator: TopomapNavigator, renderer, *, max_steps: int) -> TaskEpisode:
    """``navigator`` (reset here) drives ``scene`` with its pedestrians until it declares the goal or ``max_steps``
    ticks pass."""
    navigator.reset()
    return _drive(scene, navigator, renderer, max_steps, True, "navigate")


def run_exploration(scene: Scene, explorer: Explorer, renderer, *, steps: int = 200) -> TaskEpisode:
    """``explorer`` (reset here) drives ``scene`` for exactly ``steps`` ticks, goal masked."""
    explorer.reset()
    return _drive(scene, explorer, renderer, steps, False, "explore")


def _personal_space(episode: TaskEpisode, dt: float) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    n = episode.agents.shape[1]
    dist = np.linalg.norm(episode.agents - episode.poses[:, None, :2], axis=-1) if n else np.zeros((0, 0))
    out["min_distance_pedestrian"] = float(dist.min()) if n else None
    for r in PERSONAL_RADII:
        out[f"time_within_{r}m"] = float((dist.min(axis=1) < r).sum() * dt) if n else 0.0
    return out


def static_collision_events(static_hits: np.ndarray) -> int:
    """Onsets of runs of blocked steps in ``static_hits [S]`` (bool)."""
    hits = np.asarray(static_hits, dtype=bool)
    if not len(hits):
        return 0
    return int(hits[0]) + int((hits[1:] & ~hits[:-1]).sum())


def _per_100m(count: int, length: float) -> float | None:
    return None if length <= 1e-9 else 100.0 * count / length


def _latency(episode: TaskEpisode) -> dict[str, float | None]:
    ms = [s.latency_ms for s in episode.steps if s.ready]
    if not ms:
        return {"replan_ms_median": None, "replan_ms_p95": None}
    return {"replan_ms_median": float(np.median(ms)), "replan_ms_p95": float(np.percentile(ms, 95))}


def navigation_metrics(
    episode: TaskEpisode, reference_length: float, *, target: int | None = None, goal_tolerance: float = 1.0
) -> dict[str, Any]:
    """The navigation metrics of the module docstring. ``reference_length``: the expert's pedestrian-free path
    (m); ``target``: the pedestrian whose minimum distance is reported as ``min_distance_target``."""
    scene, dt = episode.scene, episode.scene.config.robot.dt
    base = compute_metrics(scene, episode.poses, episode.agents, episode.static_hits)
    declared = episode.declared_at is not None
    near = float(np.linalg.norm(scene.goal[:2] - episode.poses[-1, :2])) <= goal_tolerance
    reached = declared and near
    success = reached and base.static_collisions == 0 and base.pedestrian_collisions == 0
    closest = [s.closest_node for s in episode.steps if s.ready]
    moves = np.abs(np.diff(closest)) if len(closest) > 1 else np.zeros(0)
    out: dict[str, Any] = {
        "goal_reached": bool(reached),
        "goal_declared": bool(declared),
        "success": bool(success),
        "static_collision": base.static_collisions > 0,
        "pedestrian_collision": base.pedestrian_collisions > 0,
        "static_collisions_per_100m": _per_100m(
            static_collision_events(episode.static_hits), base.path_length
        ),
        "pedestrian_collisions_per_100m": _per_100m(base.pedestrian_collisions, base.path_length),
        "spl": float(success) * reference_length / max(reference_length, base.path_length, 1e-9),
        "path_length": base.path_length,
        "time_to_goal": episode.declared_at * dt if reached else None,
        "steps": len(episode.steps),
        "min_distance_target": (
            float(base.min_distance[target]) if target is not None and episode.agents.shape[1] else None
        ),
        "localisation_consistency": float((moves <= 1).mean()) if len(moves) else None,
        **_personal_space(episode, dt),
        **_latency(episode),
    }
    return out


def exploration_metrics(episode: TaskEpisode) -> dict[str, Any]:
    """The exploration metrics of the module docstring."""
    base = compute_metrics(episode.scene, episode.poses, episode.agents, episode.static_hits)
    cells = {tuple(c) for c in np.floor(episode.poses[:, :2] / COVERAGE_CELL_M).astype(np.int64)}
    return {
        "static_collisions": static_collision_events(episode.static_hits),
        "static_blocked_steps": base.static_collisions,
        "pedestrian_collisions": base.pedestrian_collisions,
        "static_collision": base.static_collisions > 0,
        "coverage_m2": len(cells) * COVERAGE_CELL_M**2,
        "path_length": base.path_length,
        **_personal_space(episode, episode.scene.config.robot.dt),
        **_latency(episode),
    }
