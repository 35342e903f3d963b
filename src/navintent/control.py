"""NoMaD's deployment controller: one waypoint in the robot frame -> linear and angular velocity.

Torch-free and simulator-free, so a robot stack, the deployment loop (:mod:`navintent.deploy`) and the built-in
world (:mod:`navintent.sim.robot`) share this one implementation. Source: visualnav-transformer's
``deployment/src/pd_controller.py`` with ``robot.yaml``'s ``max_v``, ``max_w`` and ``frame_rate``.
"""

from __future__ import annotations

import math

import numpy as np


def pd_follower(
    waypoint: np.ndarray, *, max_v: float, max_w: float, dt: float, eps: float = 1e-8
) -> tuple[float, float]:
    """One waypoint ``(dx, dy)`` in the robot frame (m, x forward, y left) -> ``(v, w)`` (m/s, rad/s).

    ``v = dx / dt`` and ``w = atan(dy / dx) / dt`` (note ``atan``, not ``atan2``: a waypoint behind the robot
    steers as NoMaD does), ``dx ~ 0`` turns at ``sign(dy) * pi / (2 dt)``; then ``v`` is clipped to
    ``[0, max_v]`` and ``w`` to ``[-max_w, max_w]``. ``dt`` is the control period (NoMaD: ``1 / frame_rate``).
    Raises ``ValueError`` for a waypoint that is not a finite pair.
    """
    waypoint = np.asarray(waypoint, dtype=np.float64)
    if waypoint.shape != (2,) or not np.all(np.isfinite(waypoint)):
        raise ValueError(f"waypoint must be a finite (dx, dy) pair, got {waypoint!r}")
    dx, dy = float(waypoint[0]), float(waypoint[1])
    if abs(dx) < eps:
        v, w = 0.0, float(np.sign(dy)) * math.pi / (2 * dt)
    else:
        v, w = dx / dt, math.atan(dy / dx) / dt
    return float(np.clip(v, 0.0, max_v)), float(np.clip(w, -max_w, max_w))
