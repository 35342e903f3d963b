"""The held-out scenes of a closed-loop evaluation and what is known about them before any method drives.

Owns: the scene seeds (``EVAL_SEED_BASE + 1000 * seed + i``, small integers, while ``navintent make-data`` draws
32-bit ``SeedSequence`` hashes, so they never collide), the robot-free pedestrian walk, the target pedestrian, the
expert's plan as Encoder1's reference, and :class:`PedestrianTracker`, which replays an episode's pedestrians
along the robot poses a policy was given (:class:`navintent.sim.rollout.Step`) to predict their future.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from navintent.evaluation.config import EVAL_SEED_BASE, SCENARIOS
from navintent.sim import SimConfig, World, generate_scene, to_robot_frame
from navintent.sim.planner import point_at_arc_length, project_on_path


def evaluation_scenes(
    num: int, seed: int = 0, config: SimConfig | None = None, scenario: str = "mixed"
) -> list:
    """``num`` held-out scenes with at least one pedestrian: scene seeds ``EVAL_SEED_BASE + 1000 * seed + i`` for
    i = 0, 1, ... (scenes without pedestrians skipped) of ``config`` (default :class:`SimConfig`).

    ``scenario`` ``"mixed"``: the config's scenes as they are. ``"crossing"``: the same seeds drawn with
    ``scene.crossing_probability = 1``, keeping only scenes with at least one crosser (a pedestrian whose route cuts
    the expert's plan at 30-70 % of its length, timed to reach it when the robot does; step 3 of
    :mod:`navintent.sim.scene`). A pedestrian with no free crossing line still wanders, so the target
    (:func:`target_pedestrian`) is a crosser in most scenes, not all (31 of the first 40 at seed 0). Raises
    ``ValueError`` for an unknown scenario, ``RuntimeError`` after ``50 * num`` draws."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {list(SCENARIOS)}, got {scenario!r}")
    config = config or SimConfig()
    if scenario == "crossing":
        config = config.replace(scene=config.scene.replace(crossing_probability=1.0))
    scenes = []
    base = EVAL_SEED_BASE + 1000 * int(seed)
    for i in range(50 * num):
        scene = generate_scene(base + i, config)
        if scene.num_pedestrians and (scenario == "mixed" or scene.crossing.any()):
            scenes.append(scene)
            if len(scenes) == num:
                return scenes
    raise RuntimeError(
        f"found only {len(scenes)} {scenario} scenes with pedestrians among seeds {base}..{base + 50 * num - 1}"
    )


def free_walk(scene, steps: int) -> np.ndarray:
    """Pedestrians' world positions ``[steps + 1, N, 2]`` when they ignore the robot (``robot_strength = 0``)."""
    cfg = scene.config
    quiet = dataclasses.replace(
        scene, config=cfg.replace(pedestrians=cfg.pedestrians.replace(robot_strength=0.0))
    )
    world = World(quiet)
    out = [world.ped_positions]
    for _ in range(steps):
        world.step(0.0, 0.0)
        out.append(world.ped_positions)
    return np.array(out).reshape(steps + 1, scene.num_pedestrians, 2)


# Steps of the robot-free walk over which evaluate chooses a scene's target (100 s at 4 Hz), whatever the episode
# length, so --max-episode-steps / --explore-steps do not change which pedestrian is the target.
TARGET_HORIZON_STEPS = 400


def target_pedestrian(scene, free: np.ndarray) -> int:
    """Index of the pedestrian whose robot-free walk ``free [S+1, N, 2]`` comes closest to the expert's plan."""
    if scene.num_pedestrians == 0:
        raise ValueError(f"scene {scene.seed} has no pedestrian to target")
    d = np.linalg.norm(free[:, :, None, :] - scene.path[None, None], axis=-1)  # [S+1, N, P]
    return int(d.min(axis=(0, 2)).argmin())


def reference_from_plan(
    path: np.ndarray, pose: np.ndarray, horizon: int, spacing: float, ref_dim: int
) -> np.ndarray:
    """The expert's plan as Encoder1's reference at ``pose``: ``[horizon, ref_dim]`` in spacing units, robot frame.

    Rows are the plan's points ``spacing``, ``2 * spacing``, ... metres of arc length beyond the robot's projection
    on it (the goal once past the end) — what ``ref_mode="future"`` training data hold: the next positions one frame
    apart. ``ref_dim`` 4 appends cos/sin of the path heading relative to the robot's yaw.
    """
    if ref_dim not in (2, 4):
        raise ValueError(f"ref_dim must be 2 or 4, got {ref_dim}")
    s0 = project_on_path(path, np.asarray(pose[:2], dtype=np.float64))
    pts = point_at_arc_length(path, s0 + spacing * np.arange(1, horizon + 1))
    local = to_robot_frame(pts, pose) / spacing
    if ref_dim == 2:
        return local
    prev = np.vstack([np.asarray(pose[:2])[None], pts[:-1]])
    step = pts - prev
    heading = np.where(np.linalg.norm(step, axis=1) > 1e-9, np.arctan2(step[:, 1], step[:, 0]), pose[2])
    rel = heading - pose[2]
    return np.concatenate([local, np.cos(rel)[:, None], np.sin(rel)[:, None]], axis=1)


class PedestrianTracker:
    """Replays the episode's pedestrians incrementally along the observed robot poses (as
    :func:`navintent.sim.world.predict_agents_at` does from scratch, through :meth:`navintent.sim.World.replay`
    and :meth:`~navintent.sim.World.follow`) so predictions cost O(1) per step."""

    def __init__(self, scene) -> None:
        self.world = World(scene)
        self.k = 0

    def sync(self, poses: list[np.ndarray], peds: list[np.ndarray]) -> None:
        """Catch up with the episode: ``poses`` (``[3]`` each) and ``peds`` (``[N, 2]`` each) of steps ``0..t``
        (a list that only grows between calls). Raises ``RuntimeError`` when the replayed pedestrians are not at
        ``peds[-1]`` (the replay diverged from the rollout)."""
        world = self.world
        if self.k == 0:
            world.replay(np.asarray(poses[:1]))
        while self.k < len(poses) - 1:
            self.k += 1
            world.follow(poses[self.k])
        if not np.allclose(world.ped_positions, peds[-1], atol=1e-9):
            raise RuntimeError(f"pedestrian replay diverged from the rollout at step {self.k}")

    def predict(self, horizon: int, robot_path: np.ndarray | None = None) -> np.ndarray:
        """World positions ``[horizon, N, 2]`` after the current step, the robot held still or moving along
        ``robot_path [horizon, 2]`` (world, m; :meth:`navintent.sim.World.predict_agents`)."""
        return self.world.predict_agents(horizon, robot_path)
