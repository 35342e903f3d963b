"""Expert driver: A* on an occupancy grid, path shortcutting, and a pedestrian-aware path follower.

The expert has privileged state (exact map, pedestrians' positions and velocities). Its planned path
(:func:`plan_path`) is the dataset's reference trajectory; the follower (:class:`Expert`) tracks it with
pure pursuit and filters the command through a small velocity search that predicts pedestrians at
constant velocity over ``horizon`` control steps and rejects commands that come too close to them or to
static obstacles. Stopping is always allowed, so the expert yields to people crossing its path; after
``patience`` steps of waiting it replans around the people (A* with them as discs) and accepts a smaller
margin, so a person who is stuck in front of it cannot block it forever.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from navintent.sim.config import ExpertConfig, RobotConfig
from navintent.sim.geometry import StaticMap
from navintent.sim.robot import unicycle_rollout, wrap_angle


def astar(free: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]] | None:
    """8-connected A* on ``free [nx, ny]`` (bool) between cells; ``None`` when no path exists.

    Diagonal moves may not cut a blocked corner. Ties are broken by insertion order, so the result is
    deterministic.
    """
    nx, ny = free.shape
    if not (free[start] and free[goal]):
        return None
    moves = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]
    sqrt2 = math.sqrt(2.0)

    def heuristic(c: tuple[int, int]) -> float:
        dx, dy = abs(c[0] - goal[0]), abs(c[1] - goal[1])
        return max(dx, dy) + (sqrt2 - 1.0) * min(dx, dy)

    g = {start: 0.0}
    parent: dict[tuple[int, int], tuple[int, int]] = {}
    heap = [(heuristic(start), 0, start)]
    counter = 1
    closed = set()
    while heap:
        _, _, cell = heapq.heappop(heap)
        if cell in closed:
            continue
        if cell == goal:
            path = [cell]
            while cell in parent:
                cell = parent[cell]
                path.append(cell)
            return path[::-1]
        closed.add(cell)
        for dx, dy in moves:
            nxt = (cell[0] + dx, cell[1] + dy)
            if not (0 <= nxt[0] < nx and 0 <= nxt[1] < ny) or not free[nxt] or nxt in closed:
                continue
            if dx and dy and not (free[cell[0] + dx, cell[1]] and free[cell[0], cell[1] + dy]):
                continue
            cost = g[cell] + (sqrt2 if dx and dy else 1.0)
            if cost < g.get(nxt, math.inf):
                g[nxt] = cost
                parent[nxt] = cell
                heapq.heappush(heap, (cost + heuristic(nxt), counter, nxt))
                counter += 1
    return None


def plan_path(
    static: StaticMap, start: np.ndarray, goal: np.ndarray, *, clearance: float, resolution: float
) -> np.ndarray | None:
    """Shortest grid path from ``start [2]`` to ``goal [2]`` keeping ``clearance`` m from static geometry.

    Returns the shortcut polyline ``[M, 2]`` (world, metres; first row = start, last = goal), or ``None``.
    Cells whose centre is closer than ``clearance`` are blocked; the start and goal cells are always free.
    """
    n = int(round(static.room_size / resolution))
    centres = (np.arange(n) + 0.5) * resolution
    xx, yy = np.meshgrid(centres, centres, indexing="ij")
    free = static.clearance(np.stack([xx, yy], axis=-1)) >= clearance

    def cell(p: np.ndarray) -> tuple[int, int]:
        idx = np.clip((np.asarray(p) / resolution).astype(int), 0, n - 1)
        return int(idx[0]), int(idx[1])

    s, g = cell(start), cell(goal)
    free[s] = free[g] = True
    cells = astar(free, s, g)
    if cells is None:
        return None
    points = [np.asarray(start, dtype=np.float64)]
    points += [np.array([centres[i], centres[j]]) for i, j in cells[1:-1]]
    points.append(np.asarray(goal, dtype=np.float64))
    return shortcut(static, np.array(points), clearance=clearance)


def shortcut(static: StaticMap, points: np.ndarray, *, clearance: float) -> np.ndarray:
    """Greedy line-of-sight shortening of a polyline ``[M, 2]``: from each kept vertex jump to the farthest
    later vertex reachable by a straight segment that keeps ``clearance`` (sampled every 5 cm)."""
    kept = [0]
    i = 0
    while i < len(points) - 1:
        j = len(points) - 1
        while j > i + 1 and static.segment_clearance(points[i], points[j]) < clearance:
            j -= 1
        kept.append(j)
        i = j
    return points[kept]


def path_arc_length(path: np.ndarray) -> np.ndarray:
    """Cumulative arc length ``[M]`` of a polyline ``[M, 2]`` (first entry 0)."""
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])


def point_at_arc_length(path: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Points ``[K, 2]`` at arc lengths ``s [K]`` along ``path [M, 2]``; ``s`` beyond the end gives the last point."""
    arc = path_arc_length(path)
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, arc[-1])
    return np.stack([np.interp(s, arc, path[:, 0]), np.interp(s, arc, path[:, 1])], axis=-1)


def resample_path(path: np.ndarray, num: int, spacing: float) -> np.ndarray:
    """Reference trajectory ``[num, 2]``: row ``i`` is the path point at arc length ``i * spacing`` from the
    start, or the goal (the path's last point) once ``i * spacing`` exceeds the path length."""
    return point_at_arc_length(path, np.arange(num) * spacing)


def project_on_path(path: np.ndarray, point: np.ndarray) -> float:
    """Arc length of the point of ``path [M, 2]`` closest to ``point [2]``."""
    arc = path_arc_length(path)
    a, b = path[:-1], path[1:]
    ab = b - a
    denom = np.maximum((ab**2).sum(axis=1), 1e-12)
    t = np.clip(((point - a) * ab).sum(axis=1) / denom, 0.0, 1.0)
    closest = a + t[:, None] * ab
    k = int(np.argmin(np.linalg.norm(closest - point, axis=1)))
    return float(arc[k] + t[k] * np.sqrt(denom[k]))


class Expert:
    """Privileged path follower for one episode; call :meth:`act` once per control step.

    Progress along the path (arc length of the robot's projection on it) never decreases and grows by at most
    0.5 m per step, so the pursuit target never jumps back, nor far ahead where a path passes near itself.
    """

    def __init__(
        self,
        static: StaticMap,
        path: np.ndarray,
        goal: np.ndarray,
        *,
        robot: RobotConfig,
        config: ExpertConfig,
        pedestrian_radius: float,
        goal_radius: float,
        resolution: float = 0.1,
    ) -> None:
        self.static = static
        self.path = np.asarray(path, dtype=np.float64)
        self.goal = np.asarray(goal, dtype=np.float64)
        self.robot = robot
        self.config = config
        self.pedestrian_radius = pedestrian_radius
        self.goal_radius = goal_radius
        self.resolution = resolution
        self._arc = path_arc_length(self.path)
        self._progress = 0.0
        self._waiting = 0
        self.replans = 0
        v = np.linspace(0.0, robot.max_v, config.n_v)
        w = np.linspace(-robot.max_w, robot.max_w, config.n_w)
        vv, ww = np.meshgrid(v, w, indexing="ij")
        self._grid = np.stack([vv.ravel(), ww.ravel()], axis=1)

    def replan(self, pose: np.ndarray, ped_pos: np.ndarray) -> bool:
        """Plan a detour from ``pose`` to the goal treating pedestrians as discs of ``pedestrian_radius + 0.15`` m;
        on success follow it from now on. Returns whether a detour was found."""
        discs = np.concatenate([ped_pos, np.full((len(ped_pos), 1), self.pedestrian_radius + 0.15)], axis=1)
        crowded = StaticMap(
            self.static.room_size,
            self.static.boxes,
            np.concatenate([self.static.cylinders, discs]).reshape(-1, 3),
        )
        path = plan_path(
            crowded,
            pose[:2],
            self.goal,
            clearance=self.robot.radius + self.config.inflation,
            resolution=self.resolution,
        )
        if path is None:
            return False
        self.path, self._arc, self._progress = path, path_arc_length(path), 0.0
        self.replans += 1
        return True

    def preferred(self, pose: np.ndarray) -> tuple[float, float]:
        """Pure pursuit towards the path point ``lookahead`` m past the robot's progress: ``(v, w)``."""
        s = project_on_path(self.path, pose[:2])
        self._progress = max(self._progress, min(s, self._progress + 0.5))
        target = point_at_arc_length(self.path, np.array([self._progress + self.config.lookahead]))[0]
        delta = target - pose[:2]
        alpha = wrap_angle(math.atan2(delta[1], delta[0]) - pose[2])
        dt = self.robot.dt
        w = float(np.clip(alpha / (2 * dt), -self.robot.max_w, self.robot.max_w))
        v = self.robot.max_v * max(0.0, math.cos(alpha)) ** 4 if abs(alpha) < math.pi / 3 else 0.0
        dist_goal = float(np.linalg.norm(self.goal - pose[:2]))
        v = min(v, max(dist_goal - 0.5 * self.goal_radius, 0.0) / dt)
        return float(v), w

    def act(self, pose: np.ndarray, ped_pos: np.ndarray, ped_vel: np.ndarray) -> tuple[float, float]:
        """``pose [3]`` (x, y, yaw), pedestrians ``[N, 2]`` positions and velocities -> command ``(v, w)``."""
        cfg, dt = self.config, self.robot.dt
        if self._waiting == cfg.patience and len(ped_pos):
            self.replan(pose, ped_pos)
        v_pref, w_pref = self.preferred(pose)
        cands = np.concatenate([[[v_pref, w_pref], [0.0, w_pref], [0.0, 0.0]], self._grid])
        traj = unicycle_rollout(pose, cands[:, 0], cands[:, 1], cfg.horizon, dt)[:, 1:, :2]  # [K, H, 2]
        static_ok = self.static.clearance(traj).min(axis=1) >= self.robot.radius + cfg.static_margin
        static_ok |= cands[:, 0] == 0.0  # turning in place never hits static geometry
        cost = ((cands[:, 0] - v_pref) / self.robot.max_v) ** 2 + (
            (cands[:, 1] - w_pref) / self.robot.max_w
        ) ** 2
        if len(ped_pos):
            steps = np.arange(1, cfg.horizon + 1)[:, None, None] * dt
            future = ped_pos[None] + steps * ped_vel[None]  # [H, N, 2]
            dist = np.linalg.norm(traj[:, :, None, :] - future[None], axis=-1)  # [K, H, N]
            now = np.linalg.norm(ped_pos - pose[:2], axis=-1)  # [N]
            gap = dist - (self.robot.radius + self.pedestrian_radius)
            min_gap = gap.min(axis=(1, 2))
            margin = cfg.creep_margin if self._waiting >= cfg.patience else cfg.person_margin
            unsafe = min_gap < margin
            # Moving while a person is predicted within the margin is only allowed if it opens the gap.
            moving = cands[:, 0] > 0
            gap_now = now.min() - (self.robot.radius + self.pedestrian_radius)
            cost = cost + 4.0 * np.exp(-np.maximum(min_gap, 0.0) / 0.3)
            cost = np.where(unsafe & moving & (min_gap < gap_now), np.inf, cost)
            cost = np.where(unsafe & moving, cost + 10.0, cost)
        cost = np.where(static_ok, cost, np.inf)
        k = int(np.argmin(cost))
        v, w = (float(cands[k, 0]), float(cands[k, 1])) if np.isfinite(cost[k]) else (0.0, 0.0)
        self._waiting = self._waiting + 1 if (v == 0.0 and v_pref > 0.0) else 0
        return v, w
