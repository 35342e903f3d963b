"""Pedestrians: the social force model (Helbing & Molnar, Phys. Rev. E 51, 1995), deterministic.

Each pedestrian walks back and forth along its route (a polyline of waypoints: 0, 1, ..., K-1, K-2, ..., 0, ...).
Its acceleration is

    (v0 * e_target - v) / tau                                   drive towards the current waypoint
  + sum_j  A   exp((r_i + r_j - d_ij) / B)   * w(phi) * n_ij    other pedestrians
  + A_robot exp((r_i + r_robot - d) / B)     * w(phi) * n       the robot (``robot_strength``; 0 = ignored)
  + sum_k  A_s exp((r_i - d_k) / B_s) * n_k                     walls and obstacles (signed distance d_k)

plus, for someone ahead, an evasive sidestep to the right of one's heading (``evasion`` times the repulsion
magnitude times the cosine of the angle to them): without it two parties meeting head-on only brake and can
block each other forever. The anisotropy is ``w(phi) = lambda + (1 - lambda) (1 + cos phi) / 2`` (people react less to what is behind
them). The model is integrated with semi-implicit Euler in ``substeps`` sub-steps per control step, and the speed
is capped at ``max_speed_factor * v0``. A pedestrian that stands blocked for ``stall_patience`` control steps
turns back along its route (see ``_turn_back_if_stalled``). There is no noise: the same initial state gives the same motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from navintent.sim.config import PedestrianConfig
from navintent.sim.geometry import StaticMap


@dataclass
class PedestrianState:
    """Positions ``[N, 2]`` (m), velocities ``[N, 2]`` (m/s), current route target ``[N]``, direction ``[N]``
    (+1/-1) and ``stalled [N]``: control steps spent nearly standing while walking a route."""

    position: np.ndarray
    velocity: np.ndarray
    target: np.ndarray
    direction: np.ndarray
    stalled: np.ndarray

    def copy(self) -> PedestrianState:
        return PedestrianState(
            self.position.copy(),
            self.velocity.copy(),
            self.target.copy(),
            self.direction.copy(),
            self.stalled.copy(),
        )


class SocialForcePedestrians:
    """Routes ``list of [K_i, 2]`` arrays and preferred speeds ``[N]`` (m/s) in a static map."""

    def __init__(
        self, routes: list[np.ndarray], speeds: np.ndarray, static: StaticMap, config: PedestrianConfig
    ) -> None:
        self.routes = [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in routes]
        self.speeds = np.asarray(speeds, dtype=np.float64).reshape(-1)
        if len(self.routes) != len(self.speeds):
            raise ValueError(f"got {len(self.routes)} routes but {len(self.speeds)} speeds")
        self.static = static
        self.config = config

    @property
    def num(self) -> int:
        return len(self.routes)

    def initial_state(self) -> PedestrianState:
        """Everyone at their route's first point, at rest, heading for the second point."""
        n = self.num
        pos = np.array([r[0] for r in self.routes]).reshape(n, 2)
        target = np.array([1 if len(r) > 1 else 0 for r in self.routes], dtype=np.int64)
        ones = np.ones(n, dtype=np.int64)
        return PedestrianState(pos, np.zeros((n, 2)), target, ones, np.zeros(n, dtype=np.int64))

    def _targets(self, state: PedestrianState) -> np.ndarray:
        return np.array([r[t] for r, t in zip(self.routes, state.target, strict=True)]).reshape(self.num, 2)

    def _advance_targets(self, state: PedestrianState) -> None:
        tol = self.config.waypoint_tolerance
        for i, route in enumerate(self.routes):
            if len(route) < 2 or np.linalg.norm(route[state.target[i]] - state.position[i]) > tol:
                continue
            nxt = state.target[i] + state.direction[i]
            if not 0 <= nxt < len(route):
                state.direction[i] *= -1
                nxt = state.target[i] + state.direction[i]
            state.target[i] = nxt

    def _anisotropy(self, heading: np.ndarray, towards_other: np.ndarray) -> np.ndarray:
        lam = self.config.anisotropy
        cos_phi = (heading * towards_other).sum(-1)
        return lam + (1 - lam) * (1 + cos_phi) / 2

    def _evasion(self, heading: np.ndarray, away: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
        """Sidestep to the right of one's heading, for someone ahead (``away`` points from them to us)."""
        right = np.stack([heading[..., 1], -heading[..., 0]], axis=-1)
        ahead = np.maximum((heading * -away).sum(-1), 0.0)
        return (self.config.evasion * magnitude * ahead)[..., None] * right

    def accelerations(
        self, state: PedestrianState, robot_xy: np.ndarray | None, robot_radius: float
    ) -> np.ndarray:
        """Social force ``[N, 2]`` (m/s^2) at ``state`` with the robot at ``robot_xy [2]`` (None = no robot)."""
        cfg = self.config
        pos, vel = state.position, state.velocity
        to_target = self._targets(state) - pos
        dist_target = np.linalg.norm(to_target, axis=1, keepdims=True)
        e = np.where(dist_target > 1e-9, to_target / np.maximum(dist_target, 1e-9), 0.0)
        # Standing still at a single-point route: the drive only brakes.
        desired = e * self.speeds[:, None] * np.minimum(1.0, dist_target / cfg.waypoint_tolerance)
        acc = (desired - vel) / cfg.relaxation_time
        speed = np.linalg.norm(vel, axis=1, keepdims=True)
        heading = np.where(speed > 1e-6, vel / np.maximum(speed, 1e-6), e)
        if self.num > 1:
            diff = pos[:, None, :] - pos[None, :, :]  # i - j
            d = np.linalg.norm(diff, axis=-1)
            np.fill_diagonal(d, np.inf)
            n = diff / np.maximum(d, 1e-9)[..., None]
            mag = cfg.agent_strength * np.exp((2 * cfg.radius - d) / cfg.agent_range)
            w = self._anisotropy(heading[:, None, :], -n)
            acc += ((mag * w)[..., None] * n + self._evasion(heading[:, None, :], n, mag)).sum(axis=1)
        if robot_xy is not None and cfg.robot_strength > 0:
            diff = pos - np.asarray(robot_xy, dtype=np.float64)[None]
            d = np.linalg.norm(diff, axis=1)
            n = diff / np.maximum(d, 1e-9)[:, None]
            mag = cfg.robot_strength * np.exp((cfg.radius + robot_radius - d) / cfg.agent_range)
            acc += (mag * self._anisotropy(heading, -n))[:, None] * n + self._evasion(heading, n, mag)
        if cfg.static_strength > 0:
            d, n = self.static.distances_and_normals(pos)
            mag = cfg.static_strength * np.exp((cfg.radius - d) / cfg.static_range)
            acc += (mag[..., None] * n).sum(axis=1)
        return acc

    def step(
        self, state: PedestrianState, dt: float, robot_xy: np.ndarray | None, robot_radius: float
    ) -> PedestrianState:
        """Advance a copy of ``state`` by ``dt`` seconds with the robot held at ``robot_xy``."""
        state = state.copy()
        if self.num == 0:
            return state
        h = dt / self.config.substeps
        cap = self.config.max_speed_factor * self.speeds[:, None]
        for _ in range(self.config.substeps):
            self._advance_targets(state)
            vel = state.velocity + h * self.accelerations(state, robot_xy, robot_radius)
            speed = np.linalg.norm(vel, axis=1, keepdims=True)
            vel = np.where(speed > cap, vel * cap / np.maximum(speed, 1e-12), vel)
            state.velocity = vel
            state.position = state.position + h * vel
        self._advance_targets(state)
        self._turn_back_if_stalled(state)
        return state

    def _turn_back_if_stalled(self, state: PedestrianState) -> None:
        """Someone blocked (speed < ``stall_speed``) for ``stall_patience`` control steps turns back towards the
        previous route point: it ends mutual waiting between a pedestrian and a robot that yields to it."""
        cfg = self.config
        speed = np.linalg.norm(state.velocity, axis=1)
        for i, route in enumerate(self.routes):
            if len(route) < 2 or speed[i] >= cfg.stall_speed:
                state.stalled[i] = 0
                continue
            state.stalled[i] += 1
            if state.stalled[i] >= cfg.stall_patience:
                state.direction[i] *= -1
                state.target[i] = int(np.clip(state.target[i] + state.direction[i], 0, len(route) - 1))
                state.stalled[i] = 0

    def predict(
        self,
        state: PedestrianState,
        horizon: int,
        dt: float,
        robot_xy: np.ndarray | None,
        robot_radius: float,
    ) -> np.ndarray:
        """Positions ``[horizon, N, 2]`` after 1..horizon steps, the robot held still at ``robot_xy [2]``, or at
        ``robot_xy[k]`` during step k when it is a path ``[horizon, 2]``. Raises ``ValueError`` for another shape."""
        path = None if robot_xy is None else np.asarray(robot_xy, dtype=np.float64)
        if path is not None and path.shape not in ((2,), (horizon, 2)):
            raise ValueError(f"robot_xy must have shape [2] or [{horizon}, 2], got {path.shape}")
        out = np.zeros((horizon, self.num, 2))
        for k in range(horizon):
            here = path if path is None or path.ndim == 1 else path[k]
            state = self.step(state, dt, here, robot_radius)
            out[k] = state.position
        return out
