"""Runtime state of one episode: the robot, the pedestrians, collisions; stepping and agent prediction.

Order of one control step ``t -> t + 1`` (``dt = robot.dt``): the pedestrians move for ``dt`` reacting to
the robot's pose at ``t``, and the robot moves for ``dt`` with its command (simultaneous update). A robot
move whose end point would overlap a wall or obstacle (clearance < robot radius) is blocked: the robot
rotates but stays in place, and the step counts as a static collision. Pedestrians are not blocked by the
robot (they are simulated, not physical); overlap counts as a pedestrian collision.

Replay: pedestrians react to the robot, so their state at step ``t`` depends on the robot's past poses.
:meth:`World.replay` (from the start) and :meth:`World.follow` (one step) rebuild it from recorded poses, the same
update as :meth:`World.step` with the robot's motion taken from the record.
"""

from __future__ import annotations

import numpy as np

from navintent.sim.pedestrians import PedestrianState, SocialForcePedestrians
from navintent.sim.robot import unicycle_step
from navintent.sim.scene import Scene


class World:
    """Mutable episode state for ``scene``; :meth:`reset` restores the exact initial state."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.config = scene.config
        self.pedestrians = SocialForcePedestrians(
            list(scene.routes), scene.speeds, scene.static, scene.config.pedestrians
        )
        self.reset()

    def reset(self) -> None:
        self.t = 0
        self.pose = np.array(self.scene.start, dtype=np.float64)
        self.ped_state: PedestrianState = self.pedestrians.initial_state()
        self.last_static_collision = False

    @property
    def ped_positions(self) -> np.ndarray:
        """``[N, 2]`` world positions (m) of the pedestrians now."""
        return self.ped_state.position.copy()

    @property
    def ped_velocities(self) -> np.ndarray:
        """``[N, 2]`` world velocities (m/s) of the pedestrians now."""
        return self.ped_state.velocity.copy()

    def distance_to_goal(self) -> float:
        return float(np.linalg.norm(self.scene.goal[:2] - self.pose[:2]))

    def goal_reached(self) -> bool:
        return self.distance_to_goal() <= self.config.goal_radius

    def pedestrian_gaps(self) -> np.ndarray:
        """``[N]`` centre distance minus both radii (m); <= 0 means contact."""
        d = np.linalg.norm(self.ped_state.position - self.pose[:2], axis=1)
        return d - self.config.robot.radius - self.config.pedestrians.radius

    def step(self, v: float, w: float) -> None:
        """Apply ``(v, w)`` (clipped to ``[0, max_v]`` x ``[-max_w, max_w]``) for one control period."""
        robot = self.config.robot
        v = float(np.clip(v, 0.0, robot.max_v))
        w = float(np.clip(w, -robot.max_w, robot.max_w))
        self.ped_state = self.pedestrians.step(self.ped_state, robot.dt, self.pose[:2], robot.radius)
        new = unicycle_step(self.pose, v, w, robot.dt)
        self.last_static_collision = bool(self.scene.static.clearance(new[:2]) < robot.radius)
        if self.last_static_collision:
            new[:2] = self.pose[:2]
        self.pose = new
        self.t += 1

    def follow(self, pose: np.ndarray) -> None:
        """One control step along a recorded robot pose: the pedestrians move for ``dt`` reacting to the robot at
        its current pose (exactly as in :meth:`step`), then the robot is put at ``pose [3]`` (x, y in m, yaw in
        rad) instead of moving by a command (no collision check; ``last_static_collision`` is left as it was)."""
        robot = self.config.robot
        self.ped_state = self.pedestrians.step(self.ped_state, robot.dt, self.pose[:2], robot.radius)
        self.pose = np.array(pose, dtype=np.float64)
        self.t += 1

    def replay(self, poses: np.ndarray) -> None:
        """Reset, put the robot at ``poses[0]`` and :meth:`follow` ``poses[1:]``: afterwards the world is at step
        ``t = len(poses) - 1`` with the pedestrians' exact state of an episode whose robot moved along
        ``poses [t + 1, 3]`` (row k = the pose at step k). Raises ``ValueError`` for another shape."""
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] != 3 or len(poses) < 1:
            raise ValueError(f"poses must have shape [t + 1, 3], got {poses.shape}")
        self.reset()
        self.pose = poses[0].copy()
        for pose in poses[1:]:
            self.follow(pose)

    def predict_agents(self, horizon: int, robot_path: np.ndarray | None = None) -> np.ndarray:
        """Pedestrians' future world positions ``[horizon, N, 2]`` after steps ``t+1 .. t+horizon``.

        Assumption: the social force model rolls forward with the robot HELD STILL at its current pose (the
        pedestrians keep reacting to it there), or, given ``robot_path [horizon, 2]`` (world, m), with the robot at
        ``robot_path[k]`` when step ``t+1+k`` starts (as in :meth:`step`, pedestrians react to where the robot is
        then; row 0 is its current position), e.g. along a plan it is expected to drive. This is the
        pedestrians' model, not the ground truth of a rollout; it matches exactly when the robot moves as assumed.
        Raises ``ValueError`` for a horizon below 1 or a path of another shape.
        """
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        robot = self.config.robot
        at = self.pose[:2] if robot_path is None else robot_path
        return self.pedestrians.predict(self.ped_state, horizon, robot.dt, at, robot.radius)


def predict_agents_local(world: World, horizon: int) -> np.ndarray:
    """:meth:`World.predict_agents` in the robot frame at the current pose: ``[horizon, N, 2]`` metres, x forward,
    y left (the frame of the policy's waypoints)."""
    return to_robot_frame(world.predict_agents(horizon), world.pose)


def predict_agents_at(scene: Scene, poses: np.ndarray, horizon: int) -> np.ndarray:
    """Replay ``scene`` along recorded robot ``poses [t + 1, 3]`` (row k = pose at step k) and return the
    pedestrians' predicted world positions ``[horizon, N, 2]`` after step ``t`` (see :meth:`World.predict_agents`).

    Because pedestrians react to the robot, their state at step ``t`` depends on the robot's past poses,
    which is why the recorded poses are needed (e.g. ``position``/``yaw`` of a recorded episode). Raises
    ``ValueError`` for ``poses`` not of shape ``[t + 1, 3]``.
    """
    world = World(scene)
    world.replay(poses)
    return world.predict_agents(horizon)


def to_robot_frame(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World points ``[..., 2]`` -> robot frame at ``pose (x, y, yaw)``: x forward, y left (``(p - o) @ R(yaw)``)."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    rot = np.array([[c, -s], [s, c]])
    return (np.asarray(points) - pose[:2]) @ rot
