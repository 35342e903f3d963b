"""Seeded scene generation and the MuJoCo model (MJCF) of a scene.

A :class:`Scene` is plain data (numpy arrays): the room, obstacles with colours, the robot's start and goal
poses, the expert's planned path, and the pedestrians' routes and speeds. ``generate_scene(seed, config)`` is a
pure function of its arguments, so a seed replays exactly. Generation (rejection sampling, all draws from
``numpy.random.default_rng(seed)``):

1. 3-6 obstacles (boxes of half size 0.15-0.5 m, cylinders of radius 0.15-0.4 m, 0.3-1.0 m tall, saturated
   random colours) at least 0.6 m from the walls and 0.7 m from each other, so passages stay open;
2. start and goal with >= ``start_clearance`` m of free space, 3-4.5 m apart, joined by an A* path (keeping
   ``robot.radius + expert.inflation`` from obstacles) no longer than 1.6x the straight line; start yaw =
   the path's first heading +- ``start_yaw_spread`` (45 deg by default), goal yaw = its last heading, with >= 1.2 m
   free in front of the goal (so the goal image shows more than a wall); with ``via_points`` > 0 the path is
   instead A* legs through that many random free points (``via_distance`` apart) to the same goal; with
   ``near_obstacle_starts`` > 0 that share of scenes starts close to a surface and facing it instead;
3. 0-3 pedestrians; each is, with ``crossing_probability``, a *crosser* whose route cuts the planned path
   perpendicularly at 30-70 % of its length, starting about as far from the crossing point as it walks
   while the robot drives there (so they meet), else a *wanderer* between 2-3 random free points.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from navintent.sim.config import CameraConfig, SimConfig
from navintent.sim.geometry import StaticMap
from navintent.sim.planner import path_arc_length, plan_path, point_at_arc_length


@dataclass(frozen=True)
class Scene:
    """One generated world. Poses are ``(x, y, yaw)``; colours RGBA in [0, 1]; ``routes`` one ``[K, 2]`` per pedestrian."""

    seed: int
    config: SimConfig
    static: StaticMap
    box_heights: np.ndarray
    box_colors: np.ndarray
    cylinder_heights: np.ndarray
    cylinder_colors: np.ndarray
    wall_colors: np.ndarray
    start: np.ndarray
    goal: np.ndarray
    path: np.ndarray
    routes: tuple[np.ndarray, ...]
    speeds: np.ndarray
    pedestrian_colors: np.ndarray
    crossing: np.ndarray

    @property
    def num_pedestrians(self) -> int:
        return len(self.routes)


def _color(
    rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]
) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value))
    return np.array([*rgb, 1.0])


def _sample_obstacles(rng: np.random.Generator, size: float, count: int):
    boxes, box_h, box_c, cyls, cyl_h, cyl_c, discs = [], [], [], [], [], [], []
    for _ in range(count):
        for _attempt in range(50):
            is_box = rng.random() < 0.5
            if is_box:
                half = rng.uniform(0.15, 0.5, size=2)
                extent, reach = float(np.linalg.norm(half)), float(half.max())
            else:
                radius = rng.uniform(0.15, 0.4)
                extent = reach = radius
            centre = rng.uniform(reach + 0.6, size - reach - 0.6, size=2)
            if all(np.linalg.norm(centre - c) >= extent + e + 0.7 for c, e in discs):
                break
        else:
            continue
        discs.append((centre, extent))
        height, color = rng.uniform(0.3, 1.0), _color(rng, (0.6, 1.0), (0.5, 1.0))
        if is_box:
            boxes.append([*centre, *half])
            box_h.append(height)
            box_c.append(color)
        else:
            cyls.append([*centre, radius])
            cyl_h.append(height)
            cyl_c.append(color)
    return (
        np.array(boxes).reshape(-1, 4),
        np.array(box_h),
        np.array(box_c).reshape(-1, 4),
        np.array(cyls).reshape(-1, 3),
        np.array(cyl_h),
        np.array(cyl_c).reshape(-1, 4),
    )


def _free_point(rng: np.random.Generator, static: StaticMap, clearance: float) -> np.ndarray | None:
    for _ in range(200):
        p = rng.uniform(0.0, static.room_size, size=2)
        if static.clearance(p) >= clearance:
            return p
    return None


def _near_obstacle_start(rng: np.random.Generator, static: StaticMap, config: SimConfig) -> np.ndarray | None:
    """A start pose ``(x, y, yaw)`` whose centre lies ``near_obstacle_clearance`` m from the nearest surface,
    facing it +- ``near_obstacle_spread`` degrees, or None when 200 draws found no such point."""
    sc = config.scene
    low, high = sc.near_obstacle_clearance
    for _ in range(200):
        p = rng.uniform(0.0, static.room_size, size=2)
        dists, normals = static.distances_and_normals(p[None])
        nearest = int(np.argmin(dists[0]))
        if low <= dists[0, nearest] <= high:
            towards = -normals[0, nearest]  # the normal points away from the surface
            spread = math.radians(sc.near_obstacle_spread)
            return np.array([*p, math.atan2(towards[1], towards[0]) + rng.uniform(-spread, spread)])
    return None


def _heading(a: np.ndarray, b: np.ndarray) -> float:
    return math.atan2(b[1] - a[1], b[0] - a[0])


def _free_run(
    static: StaticMap, origin: np.ndarray, direction: np.ndarray, limit: float, clearance: float
) -> float:
    """How far (m, in 0.1 m steps, at most ``limit``) one can walk from ``origin`` along ``direction`` keeping ``clearance``."""
    d = 0.0
    while d + 0.1 <= limit and static.clearance(origin + (d + 0.1) * direction) >= clearance:
        d += 0.1
    return d


def _crossing_route(rng, static, path, ped_radius, speed, robot_speed, start_xy):
    """Route ``[2, 2]`` crossing ``path`` perpendicularly, or None if no free crossing line was found."""
    arc = path_arc_length(path)
    for _ in range(10):
        s = rng.uniform(0.3, 0.7) * arc[-1]
        cross = point_at_arc_length(path, np.array([s - 0.05, s, s + 0.05]))
        tangent = cross[2] - cross[0]
        tangent /= max(np.linalg.norm(tangent), 1e-9)
        normal = np.array([-tangent[1], tangent[0]]) * (1 if rng.random() < 0.5 else -1)
        point = cross[1]
        needed = speed * s / robot_speed  # walking distance while the robot drives to the crossing point

        a = _free_run(static, point, normal, max(needed, 1.0), ped_radius + 0.15)
        b = _free_run(static, point, -normal, 2.0, ped_radius + 0.15)
        if a < 0.8 or b < 0.8:
            continue
        first = point + a * normal
        if np.linalg.norm(first - start_xy) < 1.0:
            continue
        return np.stack([first, point - b * normal])
    return None


def _wander_route(rng, static, ped_radius, start_xy):
    count = int(rng.integers(2, 4))
    for _ in range(20):
        points = [_free_point(rng, static, ped_radius + 0.3) for _ in range(count)]
        if any(p is None for p in points) or np.linalg.norm(points[0] - start_xy) < 1.2:
            continue
        if all(np.linalg.norm(b - a) > 1.0 for a, b in zip(points[:-1], points[1:], strict=True)) and all(
            static.segment_clearance(a, b) >= ped_radius + 0.1
            for a, b in zip(points[:-1], points[1:], strict=True)
        ):
            return np.stack(points)
    return None


def _draw_goal(
    rng: np.random.Generator, static: StaticMap, start_xy: np.ndarray, config: SimConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """Step 2 of the module docstring without the poses: ``(goal_xy, A* path)`` or None when the draw failed."""
    sc = config.scene
    goal_xy = None
    for _ in range(100):
        p = _free_point(rng, static, sc.start_clearance)
        if (
            p is not None
            and sc.start_goal_distance[0] <= np.linalg.norm(p - start_xy) <= sc.start_goal_distance[1]
        ):
            goal_xy = p
            break
    if goal_xy is None:
        return None
    clearance = config.robot.radius + config.expert.inflation
    path = plan_path(static, start_xy, goal_xy, clearance=clearance, resolution=sc.grid_resolution)
    if path is None or path_arc_length(path)[-1] > 1.6 * np.linalg.norm(goal_xy - start_xy):
        return None
    return goal_xy, path


def _via_path(
    rng: np.random.Generator, static: StaticMap, start_xy: np.ndarray, goal_xy: np.ndarray, config: SimConfig
) -> np.ndarray | None:
    """A path ``[M, 2]`` from ``start_xy`` through ``config.scene.via_points`` random free points to ``goal_xy``
    (each ``via_distance`` from the previous; every A* leg at most 1.6x its straight line), or None."""
    sc = config.scene
    clearance = config.robot.radius + config.expert.inflation
    legs, here = [], start_xy
    for index in range(sc.via_points + 1):
        last = index == sc.via_points
        for _ in range(1 if last else 30):
            target = goal_xy if last else _free_point(rng, static, sc.start_clearance)
            if target is None:
                continue
            straight = float(np.linalg.norm(target - here))
            if not last and not sc.via_distance[0] <= straight <= sc.via_distance[1]:
                continue
            leg = plan_path(static, here, target, clearance=clearance, resolution=sc.grid_resolution)
            if leg is not None and path_arc_length(leg)[-1] <= 1.6 * max(straight, 0.5):
                legs.append(leg if not legs else leg[1:])
                here = target
                break
        else:
            return None
    return np.concatenate(legs)


def _goal_pose(static: StaticMap, path: np.ndarray) -> np.ndarray | None:
    """Goal pose facing the path's last heading, or None when less than 1.2 m is free in front of it."""
    goal = np.array([*path[-1], _heading(path[-2], path[-1])])
    view_end = path[-1] + 1.2 * np.array([math.cos(goal[2]), math.sin(goal[2])])
    if static.segment_clearance(path[-1], view_end) < 0.05:
        return None
    return goal


def _draw_pedestrians(
    rng: np.random.Generator, static: StaticMap, path: np.ndarray, start_xy: np.ndarray, config: SimConfig
) -> dict[str, np.ndarray | tuple[np.ndarray, ...]]:
    """Step 3 of the module docstring, as the :class:`Scene` fields ``routes``, ``speeds``, ``pedestrian_colors``
    and ``crossing``."""
    sc, ped_cfg = config.scene, config.pedestrians
    n_ped = int(rng.integers(sc.n_pedestrians[0], sc.n_pedestrians[1] + 1))
    routes, speeds, colors, crossing = [], [], [], []
    for _ in range(n_ped):
        speed = rng.uniform(*ped_cfg.speed_range)
        route = None
        is_crossing = rng.random() < sc.crossing_probability
        if is_crossing:
            route = _crossing_route(rng, static, path, ped_cfg.radius, speed, config.robot.max_v, start_xy)
        if route is None:
            is_crossing = False
            route = _wander_route(rng, static, ped_cfg.radius, start_xy)
        if route is None:
            continue
        routes.append(route)
        speeds.append(speed)
        colors.append(_color(rng, (0.3, 0.8), (0.3, 0.9)))
        crossing.append(is_crossing)
    return {
        "routes": tuple(routes),
        "speeds": np.array(speeds),
        "pedestrian_colors": np.array(colors).reshape(-1, 4),
        "crossing": np.array(crossing, dtype=bool),
    }


def generate_scene(seed: int, config: SimConfig | None = None) -> Scene:
    """A scene from ``seed`` (same seed and config -> identical scene). Raises ``RuntimeError`` if 200 draws fail."""
    config = config or SimConfig()
    sc = config.scene
    rng = np.random.default_rng(int(seed))
    size = sc.room_size
    for _attempt in range(200):
        count = int(rng.integers(sc.n_obstacles[0], sc.n_obstacles[1] + 1))
        boxes, box_h, box_c, cyls, cyl_h, cyl_c = _sample_obstacles(rng, size, count)
        static = StaticMap(size, boxes, cyls)
        near = None  # the draw happens only when the option is on, so scenes without it replay unchanged
        if sc.near_obstacle_starts > 0 and rng.random() < sc.near_obstacle_starts:
            near = _near_obstacle_start(rng, static, config)
            if near is None:
                continue
        start_xy = near[:2] if near is not None else _free_point(rng, static, sc.start_clearance)
        if start_xy is None:
            continue
        route = _draw_goal(rng, static, start_xy, config)
        if route is None:
            continue
        goal_xy, path = route
        if sc.via_points:
            path = _via_path(rng, static, start_xy, goal_xy, config)
            if path is None:
                continue
        spread = math.radians(sc.start_yaw_spread)
        if near is not None:
            start = near
        else:
            start = np.array([*start_xy, _heading(path[0], path[1]) + rng.uniform(-spread, spread)])
        goal = _goal_pose(static, path)
        if goal is None:
            continue  # the goal image would show nothing but a wall
        pedestrians = _draw_pedestrians(rng, static, path, start_xy, config)
        return Scene(
            seed=int(seed),
            config=config,
            static=static,
            box_heights=box_h,
            box_colors=box_c,
            cylinder_heights=cyl_h,
            cylinder_colors=cyl_c,
            wall_colors=np.stack([_color(rng, (0.2, 0.5), (0.6, 0.95)) for _ in range(4)]),
            start=start,
            goal=goal,
            path=path,
            **pedestrians,
        )
    raise RuntimeError(f"could not generate a feasible scene for seed {seed} with {sc}")


def start_heading(path: np.ndarray, ahead: float = 0.5) -> float:
    """Heading (rad) from the path's first point to its point ``ahead`` m along it: where the robot must turn first."""
    point = point_at_arc_length(path, np.array([min(ahead, path_arc_length(path)[-1])]))[0]
    return _heading(path[0], point)


def branch_scene(
    scene: Scene, seed: int, avoid_headings: tuple[float, ...] = (), min_heading_gap_deg: float = 60.0
) -> Scene | None:
    """The same room, obstacles, colours and start pose as ``scene`` with another goal (and new pedestrians).

    Several goals per start give the same first view different futures, so only the goal image tells them
    apart (:func:`navintent.sim.recorder.record_dataset`'s ``goals_per_start``). The new path's
    :func:`start_heading` must differ by at least ``min_heading_gap_deg`` from every heading in
    ``avoid_headings`` (rad). Draws from ``numpy.random.default_rng(seed)``: 50 tries, then ``None``.
    """
    config = scene.config
    rng = np.random.default_rng(int(seed))
    start_xy = scene.start[:2]
    gap = math.radians(min_heading_gap_deg)
    for _ in range(50):
        route = _draw_goal(rng, scene.static, start_xy, config)
        if route is None:
            continue
        goal_xy, path = route
        if config.scene.via_points:
            path = _via_path(rng, scene.static, start_xy, goal_xy, config)
            if path is None:
                continue
        heading = start_heading(path)
        if any(abs(math.remainder(heading - h, 2 * math.pi)) < gap for h in avoid_headings):
            continue
        goal = _goal_pose(scene.static, path)
        if goal is None:
            continue
        pedestrians = _draw_pedestrians(rng, scene.static, path, start_xy, config)
        return dataclasses.replace(scene, seed=int(seed), goal=goal, path=path, **pedestrians)
    return None


def _rgba(c: np.ndarray) -> str:
    return " ".join(f"{v:.4f}" for v in c)


def scene_to_mjcf(scene: Scene, camera: CameraConfig | None = None) -> str:
    """MJCF text: checker floor (1 m squares), coloured walls and obstacles, pedestrians as mocap capsules
    (bodies ``ped0..``), the robot as a mocap body ``robot`` carrying the forward camera ``robot_cam``
    (looking along the robot's +x), and a top-down camera ``overview``. No physics is simulated: the
    world moves bodies kinematically and MuJoCo only renders. Multisampling and shadows are off (speed)."""
    camera = camera or scene.config.camera
    size = scene.static.room_size
    half = size / 2
    wall_h = scene.config.scene.wall_height
    width, height = camera.image_size
    ped_r = scene.config.pedestrians.radius
    lines = [
        '<mujoco model="navintent_scene">',
        f'  <statistic center="{half} {half} 0.5" extent="{size}"/>',
        f'  <visual><quality offsamples="0" shadowsize="0"/><global offwidth="{max(width, 640)}" '
        f'offheight="{max(height, 640)}"/><map znear="0.005" zfar="4"/>'
        '<headlight ambient="0.45 0.45 0.45" diffuse="0.4 0.4 0.4" specular="0 0 0"/></visual>',
        "  <asset>",
        '    <texture name="floor" type="2d" builtin="checker" rgb1="0.62 0.60 0.55" rgb2="0.42 0.44 0.47" '
        'width="64" height="64"/>',
        '    <material name="floor" texture="floor" texrepeat="1 1" texuniform="true"/>',
        "  </asset>",
        "  <worldbody>",
        '    <light directional="true" pos="0 0 5" dir="0.3 0.2 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>',
        f'    <geom name="floor" type="plane" pos="{half} {half} 0" size="{half + 0.2} {half + 0.2} 0.1" material="floor"/>',
    ]
    t = 0.05
    walls = [
        ((-t, half), (t, half + 2 * t)),
        ((size + t, half), (t, half + 2 * t)),
        ((half, -t), (half + 2 * t, t)),
        ((half, size + t), (half + 2 * t, t)),
    ]
    for k, ((x, y), (hx, hy)) in enumerate(walls):
        lines.append(
            f'    <geom name="wall{k}" type="box" pos="{x} {y} {wall_h / 2}" size="{hx} {hy} {wall_h / 2}" '
            f'rgba="{_rgba(scene.wall_colors[k])}"/>'
        )
    for k, (box, h, c) in enumerate(
        zip(scene.static.boxes, scene.box_heights, scene.box_colors, strict=True)
    ):
        lines.append(
            f'    <geom name="box{k}" type="box" pos="{box[0]:.4f} {box[1]:.4f} {h / 2:.4f}" '
            f'size="{box[2]:.4f} {box[3]:.4f} {h / 2:.4f}" rgba="{_rgba(c)}"/>'
        )
    for k, (cyl, h, c) in enumerate(
        zip(scene.static.cylinders, scene.cylinder_heights, scene.cylinder_colors, strict=True)
    ):
        lines.append(
            f'    <geom name="cyl{k}" type="cylinder" pos="{cyl[0]:.4f} {cyl[1]:.4f} {h / 2:.4f}" '
            f'size="{cyl[2]:.4f} {h / 2:.4f}" rgba="{_rgba(c)}"/>'
        )
    for k, c in enumerate(scene.pedestrian_colors):
        lines += [
            f'    <body name="ped{k}" mocap="true" pos="0 0 -10">',
            f'      <geom type="capsule" pos="0 0 0.8" size="{ped_r} 0.5" rgba="{_rgba(c)}" contype="0" conaffinity="0"/>',
            '      <geom type="sphere" pos="0 0 1.45" size="0.13" rgba="0.85 0.68 0.55 1" contype="0" conaffinity="0"/>',
            "    </body>",
        ]
    lines += [
        '    <body name="robot" mocap="true" pos="0 0 0">',
        f'      <camera name="robot_cam" pos="0 0 {camera.height}" xyaxes="0 -1 0 0 0 1" fovy="{camera.fovy_deg:.6f}"/>',
        "    </body>",
        f'    <camera name="overview" pos="{half} {half} {size * 1.25:.3f}" xyaxes="1 0 0 0 1 0" fovy="45"/>',
        "  </worldbody>",
        "</mujoco>",
    ]
    return "\n".join(lines)
