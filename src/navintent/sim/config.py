"""Typed configs of the built-in world (units: metres, seconds, radians).

Defaults and why:

* Control runs at 4 Hz (``dt = 0.25`` s) with NoMaD's robot.yaml limits (0.2 m/s, 0.4 rad/s), so the robot
  moves at most 5 cm per frame. Rooms are 6 x 6 m and start/goal 3-4.5 m apart, which makes an expert
  episode 60-130 steps long.
* Pedestrians walk at 0.25-0.35 m/s (humans walk ~1.3 m/s). At human speed a pedestrian crosses the
  room in ~5 s while the robot needs ~20 s for its path, so interactions would be rare and brief; at
  robot-comparable speed they meet the robot and the interaction lasts several seconds.
* The camera sits 0.45 m above the floor at the robot's centre looking forward with a 100 degree
  horizontal field of view (NoMaD's fisheye-ish robots see wide); images are 96 x 96 by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from navintent.config import (
    ConfigBase,
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
    read_yaml_mapping,
)

# What `navintent make-data` writes beside a recording: its seed, the SimConfig it recorded in and every episode.
RECORDING_FILE = "sim_episodes.yaml"


def _range(name: str, value: tuple, *, integer: bool = False, minimum: float = 0.0) -> tuple:
    value = tuple(value)
    kind = int if integer else (int, float)
    if len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, kind) for v in value):
        raise ValueError(
            f"{name} must be a pair (low, high) of {'ints' if integer else 'numbers'}, got {value!r}"
        )
    if not minimum <= value[0] <= value[1]:
        raise ValueError(f"{name} must satisfy {minimum} <= low <= high, got {value!r}")
    return value


@dataclass
class RobotConfig(ConfigBase):
    """Differential-drive (unicycle) robot: limits, footprint and the control period."""

    max_v: float = 0.2
    max_w: float = 0.4
    dt: float = 0.25
    radius: float = 0.2

    def __post_init__(self) -> None:
        for name in ("max_v", "max_w", "dt", "radius"):
            check_positive_number(name, getattr(self, name))


@dataclass
class CameraConfig(ConfigBase):
    """Forward RGB camera. ``image_size`` is ``(width, height)`` as in nomad.yaml."""

    image_size: tuple[int, int] = (96, 96)
    hfov_deg: float = 100.0
    height: float = 0.45

    def __post_init__(self) -> None:
        self.image_size = tuple(self.image_size)
        if len(self.image_size) != 2 or any(
            isinstance(s, bool) or not isinstance(s, int) or not 8 <= s <= 2048 for s in self.image_size
        ):
            raise ValueError(f"image_size must be (width, height) ints in [8, 2048], got {self.image_size!r}")
        if not 90.0 <= float(self.hfov_deg) <= 120.0:
            raise ValueError(f"hfov_deg must be in [90, 120], got {self.hfov_deg!r}")
        check_positive_number("height", self.height)

    @property
    def fovy_deg(self) -> float:
        """MuJoCo's vertical field of view giving ``hfov_deg`` horizontally at this aspect ratio."""
        width, height = self.image_size
        half = math.radians(self.hfov_deg) / 2
        return math.degrees(2 * math.atan(math.tan(half) * height / width))


@dataclass
class PedestrianConfig(ConfigBase):
    """Social force model (Helbing & Molnar 1995) parameters; forces are accelerations (m/s^2).

    ``robot_strength`` scales the repulsion pedestrians feel from the robot (0 = they ignore it). A pedestrian
    slower than ``stall_speed`` (m/s) for ``stall_patience`` control steps (4 s by default) turns back.
    """

    radius: float = 0.25
    speed_range: tuple[float, float] = (0.25, 0.35)
    relaxation_time: float = 0.5
    agent_strength: float = 2.0
    agent_range: float = 0.3
    robot_strength: float = 2.0
    static_strength: float = 3.0
    static_range: float = 0.15
    anisotropy: float = 0.35
    evasion: float = 0.5
    max_speed_factor: float = 1.3
    waypoint_tolerance: float = 0.3
    substeps: int = 5
    stall_speed: float = 0.05
    stall_patience: int = 16

    def __post_init__(self) -> None:
        for name in (
            "radius",
            "relaxation_time",
            "agent_range",
            "static_range",
            "waypoint_tolerance",
            "stall_speed",
        ):
            check_positive_number(name, getattr(self, name))
        self.speed_range = _range("speed_range", self.speed_range)
        for name in ("agent_strength", "robot_strength", "static_strength", "evasion"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not 0.0 <= self.anisotropy <= 1.0:
            raise ValueError(f"anisotropy must be in [0, 1], got {self.anisotropy!r}")
        if not self.max_speed_factor >= 1.0:
            raise ValueError(f"max_speed_factor must be >= 1, got {self.max_speed_factor!r}")
        for name in ("substeps", "stall_patience"):
            check_positive_int(name, getattr(self, name))


@dataclass
class SceneConfig(ConfigBase):
    """What a generated scene contains (see :func:`navintent.sim.scene.generate_scene`).

    ``start_yaw_spread`` (degrees, 0..180): the robot starts facing the A* path's first heading plus a uniform
    offset in +-this (45: it mostly faces where it will go; 180: any heading, so only the goal tells where to turn).

    ``via_points`` (default 0): the expert's path passes through this many random free points on its way to the
    goal, each ``via_distance`` (m, low/high) from the previous one, so it turns where nothing in the current
    view says it will and only a goal image further along tells which way (what NoMaD's varied teleoperation
    data gives its goal encoder; measured in the README's "Goal conditioning"). 0 draws exactly the scenes drawn
    before the option existed.

    ``near_obstacle_starts`` (default 0, a probability): the share of scenes whose robot starts close to a wall or
    obstacle and facing it: centre ``near_obstacle_clearance`` m (low/high) from the nearest surface, heading
    towards that surface +- ``near_obstacle_spread`` degrees. The expert then turns away before it drives, so the
    recorded data shows what to do with a surface filling the view, the state a goal-masked explorer reaches in
    closed loop and the expert's own paths never visit (its A* keeps ``robot.radius + expert.inflation``). 0
    draws exactly the scenes drawn before the option existed.
    """

    room_size: float = 6.0
    n_obstacles: tuple[int, int] = (3, 6)
    n_pedestrians: tuple[int, int] = (0, 3)
    crossing_probability: float = 0.6
    start_goal_distance: tuple[float, float] = (3.0, 4.5)
    start_clearance: float = 0.5
    wall_height: float = 1.0
    grid_resolution: float = 0.1
    start_yaw_spread: float = 45.0
    via_points: int = 0
    via_distance: tuple[float, float] = (1.0, 2.5)
    near_obstacle_starts: float = 0.0
    near_obstacle_clearance: tuple[float, float] = (0.25, 0.45)
    near_obstacle_spread: float = 30.0

    def __post_init__(self) -> None:
        check_positive_number("room_size", self.room_size)
        p = self.near_obstacle_starts
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"near_obstacle_starts must be a probability in [0, 1], got {p!r}")
        self.near_obstacle_clearance = _range(
            "near_obstacle_clearance", self.near_obstacle_clearance, minimum=0.0
        )
        if not 0.0 <= float(self.near_obstacle_spread) <= 180.0:
            raise ValueError(
                f"near_obstacle_spread must be in [0, 180] degrees, got {self.near_obstacle_spread!r}"
            )
        if (
            isinstance(self.via_points, bool)
            or not isinstance(self.via_points, int)
            or not 0 <= self.via_points <= 8
        ):
            raise ValueError(f"via_points must be an int in [0, 8], got {self.via_points!r}")
        self.via_distance = _range("via_distance", self.via_distance, minimum=0.3)
        if not 0.0 <= float(self.start_yaw_spread) <= 180.0:
            raise ValueError(f"start_yaw_spread must be in [0, 180] degrees, got {self.start_yaw_spread!r}")
        if self.room_size < 3.0:
            raise ValueError(f"room_size must be >= 3 m, got {self.room_size!r}")
        self.n_obstacles = _range("n_obstacles", self.n_obstacles, integer=True)
        self.n_pedestrians = _range("n_pedestrians", self.n_pedestrians, integer=True)
        self.start_goal_distance = _range("start_goal_distance", self.start_goal_distance, minimum=0.5)
        if self.start_goal_distance[1] > self.room_size * 1.2:
            raise ValueError(
                f"start_goal_distance upper bound must fit in the room (<= 1.2 * room_size), got {self.start_goal_distance}"
            )
        if not 0.0 <= self.crossing_probability <= 1.0:
            raise ValueError(f"crossing_probability must be in [0, 1], got {self.crossing_probability!r}")
        for name in ("start_clearance", "wall_height", "grid_resolution"):
            check_positive_number(name, getattr(self, name))


@dataclass
class ExpertConfig(ConfigBase):
    """Privileged expert: A* path + pure pursuit, filtered by a pedestrian-aware velocity search.

    ``inflation``: clearance (m, beyond the robot radius) the A* path keeps from static obstacles.
    ``person_margin``: extra clearance (m) kept from predicted pedestrian positions over ``horizon`` steps;
    after ``patience`` steps stopped for people it accepts ``creep_margin`` instead (no deadlock).
    ``steer_noise`` (rad/s, 0 = off): the standard deviation of an Ornstein-Uhlenbeck process with correlation time
    ``steer_noise_time`` (s) added to the expert's turn rate while it drives (then clipped to the robot's
    ``max_w``). Injected noise during demonstrations (DART, Laskey et al., CoRL 2017) takes the robot off its path
    and records the expert bringing it back, so a policy learns to recover from the off-path poses its own errors
    reach in closed loop. The recorded trajectory is what was driven; the draw is seeded by the scene's seed.
    """

    inflation: float = 0.15
    lookahead: float = 0.5
    horizon: int = 8
    person_margin: float = 0.2
    static_margin: float = 0.03
    n_v: int = 5
    n_w: int = 9
    patience: int = 8
    creep_margin: float = 0.05
    steer_noise: float = 0.0
    steer_noise_time: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "inflation",
            "lookahead",
            "person_margin",
            "static_margin",
            "creep_margin",
            "steer_noise_time",
        ):
            check_positive_number(name, getattr(self, name))
        check_non_negative_number("steer_noise", self.steer_noise)
        for name in ("horizon", "n_v", "n_w", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be an int >= 2, got {value!r}")


@dataclass
class SimConfig(ConfigBase):
    """Everything the world needs. ``goal_radius``: the robot has reached the goal within this distance (m)."""

    NESTED: ClassVar[dict[str, type[ConfigBase]]] = {
        "robot": RobotConfig,
        "camera": CameraConfig,
        "pedestrians": PedestrianConfig,
        "scene": SceneConfig,
        "expert": ExpertConfig,
    }

    robot: RobotConfig = field(default_factory=RobotConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    pedestrians: PedestrianConfig = field(default_factory=PedestrianConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    goal_radius: float = 0.2

    def __post_init__(self) -> None:
        for name, cls in self.NESTED.items():
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        check_positive_number("goal_radius", self.goal_radius)
        low = self.scene.near_obstacle_clearance[0]
        if self.scene.near_obstacle_starts > 0 and low <= self.robot.radius:
            raise ValueError(
                f"scene.near_obstacle_clearance must start beyond robot.radius {self.robot.radius} m (a start "
                f"closer would be inside an obstacle), got {self.scene.near_obstacle_clearance}"
            )


def load_sim_config(path: str | Path) -> tuple[SimConfig, Path]:
    """A world's :class:`SimConfig` from ``path``: a SimConfig YAML (sections ``robot``, ``camera``,
    ``pedestrians``, ``scene``, ``expert``, key ``goal_radius``; absent ones keep their defaults), the record
    ``navintent make-data`` writes (:data:`RECORDING_FILE`: its ``config`` entry is the world it recorded in) or a
    make-data output folder holding that record. Returns the config and the file it came from.

    Raises ``FileNotFoundError`` for a missing path or a folder without the record, ``ValueError`` naming the file
    (and the key) for invalid YAML, unknown keys or a bad value."""
    path = Path(path)
    if path.is_dir():
        if not (path / RECORDING_FILE).is_file():
            raise FileNotFoundError(
                f"{path} is a folder without {RECORDING_FILE} (what `navintent make-data` writes); give a SimConfig "
                "YAML, a make-data output folder or its sim_episodes.yaml"
            )
        path = path / RECORDING_FILE
    raw = read_yaml_mapping(path, what="world config")
    if "config" in raw and "episodes" in raw:  # make-data's record
        return SimConfig.from_dict(raw["config"], where=f"{path}: config"), path
    return SimConfig.from_dict(raw, where=str(path)), path


def sim_config_changes(config: SimConfig, base: SimConfig | None = None) -> list[str]:
    """``"camera.hfov_deg 100.0 -> 120.0"`` for every setting of ``config`` that differs from ``base`` (default:
    the built-in world, ``SimConfig()``), in field order."""
    return _changes(config.to_dict(), (base or SimConfig()).to_dict(), "")


def _changes(new: dict[str, Any], old: dict[str, Any], prefix: str) -> list[str]:
    out = []
    for key, value in new.items():
        before = old[key]
        if isinstance(value, dict):
            out += _changes(value, before, f"{prefix}{key}.")
        elif value != before:
            out.append(f"{prefix}{key} {before!r} -> {value!r}")
    return out
