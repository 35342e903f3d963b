"""Unicycle robot kinematics and NoMaD's deployment waypoint follower.

Poses are ``(x, y, yaw)`` in the world frame (metres, radians; yaw counter-clockwise from +x). The robot
frame has x forward and y left, as :mod:`navintent.actions`.
"""

from __future__ import annotations

import math

import numpy as np

from navintent import control
from navintent.sim.config import RobotConfig


def wrap_angle(angle: float | np.ndarray) -> float | np.ndarray:
    """Wrap to ``[-pi, pi)``."""
    if isinstance(angle, np.ndarray):
        return (angle + np.pi) % (2 * np.pi) - np.pi
    return (float(angle) + math.pi) % (2 * math.pi) - math.pi


def unicycle_step(pose: np.ndarray, v: float, w: float, dt: float) -> np.ndarray:
    """Exact motion for constant ``v`` (m/s) and ``w`` (rad/s) over ``dt`` s: along an arc, or straight if w = 0."""
    x, y, yaw = (float(c) for c in pose)
    if abs(w) < 1e-9:
        return np.array([x + v * dt * math.cos(yaw), y + v * dt * math.sin(yaw), yaw])
    new_yaw = yaw + w * dt
    radius = v / w
    return np.array(
        [
            x + radius * (math.sin(new_yaw) - math.sin(yaw)),
            y - radius * (math.cos(new_yaw) - math.cos(yaw)),
            float(wrap_angle(new_yaw)),
        ]
    )


def unicycle_rollout(pose: np.ndarray, v: np.ndarray, w: np.ndarray, steps: int, dt: float) -> np.ndarray:
    """Constant commands ``v [K]``, ``w [K]`` for ``steps`` steps -> poses ``[K, steps + 1, 3]`` (row 0 = ``pose``).

    Same exact arc integration as :func:`unicycle_step`, vectorised over the K commands.
    """
    v, w = np.asarray(v, dtype=np.float64), np.asarray(w, dtype=np.float64)
    t = np.arange(steps + 1) * dt  # [H+1]
    yaw = pose[2] + w[:, None] * t[None]  # [K, H+1]
    small = np.abs(w) < 1e-9
    safe_w = np.where(small, 1.0, w)[:, None]
    arc_x = np.where(
        small[:, None],
        v[:, None] * t * np.cos(pose[2]),
        v[:, None] / safe_w * (np.sin(yaw) - np.sin(pose[2])),
    )
    arc_y = np.where(
        small[:, None],
        v[:, None] * t * np.sin(pose[2]),
        -v[:, None] / safe_w * (np.cos(yaw) - np.cos(pose[2])),
    )
    return np.stack([pose[0] + arc_x, pose[1] + arc_y, wrap_angle(yaw)], axis=-1)


def pd_follower(waypoint: np.ndarray, robot: RobotConfig, eps: float = 1e-8) -> tuple[float, float]:
    """NoMaD's deployment controller (:func:`navintent.control.pd_follower`) with the world robot's limits and
    control period: one waypoint ``(dx, dy)`` in the robot frame (m) -> ``(v, w)``."""
    return control.pd_follower(waypoint, max_v=robot.max_v, max_w=robot.max_w, dt=robot.dt, eps=eps)
