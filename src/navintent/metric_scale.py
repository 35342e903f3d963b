"""Metres per normalised unit: one source of truth for every inference command.

NoMaD's policy predicts waypoints in *spacing units*: with ``normalize: True`` (NoMaD's default) a dataset's
positions are divided by ``metric_waypoint_spacing * waypoint_spacing`` (metres between frames times frames
between waypoints), so turning a sample back into metres needs that product. Three definitions exist in the wild:

- **training data**: ``metric_waypoint_spacing * waypoint_spacing`` of the dataset a checkpoint was trained on.
  ``navintent train`` records it per dataset in every checkpoint (``training_scales``, see
  :class:`TrainingScale`); with ``normalize: False`` the unit is the metre.
- **the data being read**: a ``--dataset`` / ``--data-dir`` folder's own ``metric_waypoint_spacing`` (its
  ``data_config.yaml``, else the shipped NoMaD data config by dataset name) times the checkpoint's waypoint spacing.
- **NoMaD's deployment rule**: ``navigate.py`` / ``explore.py`` multiply the chosen waypoint by
  ``max_v / frame_rate`` from the robot's ``robot.yaml`` (0.2 m/s / 4 Hz = 0.05 m by default): the distance the
  robot covers in one frame at full speed. :class:`RobotConfig` reads those keys.

:func:`resolve_metric_scale` applies them in one order (explicit value; the data being read; the checkpoint's
record; the robot rule) and says which one it used; every command prints that one line.

The built-in MuJoCo world (``navintent evaluate``, ``optimize-z2``'s sim scenarios, ``experiment``) uses the same
order. A checkpoint trained on the world's own recordings carries their spacing (the recorder's definition: mean
metres per frame over all recorded steps, :func:`navintent.data.spacing.metres_per_frame`), which is what its unit
means; for a checkpoint with no record (an imported nomad.pth) the world applies NoMaD's deployment rule with its
robot's limits, exactly as NoMaD does on a real robot (the world's robot drives at NoMaD's 0.2 m/s and 4 Hz, so
that is 0.05 m).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from navintent.config import read_yaml_mapping

log = logging.getLogger(__name__)

# NoMaD's deployment/config/robot.yaml defaults: max_v 0.2 m/s, frame_rate 4 Hz, max_w 0.4 rad/s.
NOMAD_MAX_V = 0.2
NOMAD_FRAME_RATE = 4.0
NOMAD_MAX_W = 0.4


def _positive(name: str, value: Any, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{where}: {name} must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class TrainingScale:
    """What one training dataset's unit means, as a checkpoint records it.

    ``metric_waypoint_spacing`` metres between frames, ``waypoint_spacing`` frames between waypoints,
    ``normalize`` whether positions were divided by their product (NoMaD's ``normalize``)."""

    dataset: str
    metric_waypoint_spacing: float
    waypoint_spacing: int
    normalize: bool = True

    @property
    def metres_per_unit(self) -> float:
        """``metric_waypoint_spacing * waypoint_spacing``, or 1 when the dataset was not normalised."""
        return self.metric_waypoint_spacing * self.waypoint_spacing if self.normalize else 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data (a checkpoint stores it with ``weights_only``-loadable types)."""
        return {
            "dataset": self.dataset,
            "metric_waypoint_spacing": float(self.metric_waypoint_spacing),
            "waypoint_spacing": int(self.waypoint_spacing),
            "normalize": bool(self.normalize),
            "metres_per_unit": float(self.metres_per_unit),
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> TrainingScale:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming ``where`` on a malformed entry."""
        if not isinstance(data, Mapping) or not {"dataset", "metric_waypoint_spacing"} <= set(data):
            raise ValueError(
                f"{where}: a training_scales entry must hold 'dataset' and 'metric_waypoint_spacing', got {data!r}"
            )
        spacing = data.get("waypoint_spacing", 1)
        if isinstance(spacing, bool) or not isinstance(spacing, int) or spacing < 1:
            raise ValueError(f"{where}: waypoint_spacing must be a positive int, got {spacing!r}")
        return cls(
            dataset=str(data["dataset"]),
            metric_waypoint_spacing=_positive(
                "metric_waypoint_spacing", data["metric_waypoint_spacing"], where
            ),
            waypoint_spacing=spacing,
            normalize=bool(data.get("normalize", True)),
        )


@dataclass(frozen=True)
class RobotConfig:
    """The keys of NoMaD's ``robot.yaml`` that deployment uses: ``max_v`` (m/s) and ``frame_rate`` (Hz), which
    define the unit (``metres_per_unit = max_v / frame_rate``), and ``max_w`` (rad/s), the controller's turn limit
    (:func:`navintent.control.pd_follower`)."""

    max_v: float = NOMAD_MAX_V
    frame_rate: float = NOMAD_FRAME_RATE
    max_w: float = NOMAD_MAX_W
    source: str = "NoMaD's robot.yaml defaults"

    def __post_init__(self) -> None:
        _positive("max_v", self.max_v, self.source)
        _positive("frame_rate", self.frame_rate, self.source)
        _positive("max_w", self.max_w, self.source)

    @property
    def metres_per_unit(self) -> float:
        return self.max_v / self.frame_rate

    @classmethod
    def from_yaml(cls, path: str | Path) -> RobotConfig:
        """Read ``max_v``, ``frame_rate`` and ``max_w`` from a NoMaD ``robot.yaml`` (its other keys are ROS topic
        names). A missing key takes NoMaD's default, and the source says so."""
        data = read_yaml_mapping(path, what="robot config")
        defaults = {"max_v": NOMAD_MAX_V, "frame_rate": NOMAD_FRAME_RATE, "max_w": NOMAD_MAX_W}
        absent = [k for k in defaults if k not in data]
        source = f"{path}" + (f" ({', '.join(absent)} not set: NoMaD's default)" if absent else "")
        return cls(**{k: data.get(k, v) for k, v in defaults.items()}, source=source)


@dataclass(frozen=True)
class MetricScale:
    """A resolved scale: ``metres_per_unit`` and ``source``, the sentence that says where it came from."""

    metres_per_unit: float
    source: str

    def describe(self) -> str:
        return f"metric scale {self.metres_per_unit:.4g} m per unit ({self.source})"


def read_training_scales(entry: Any, *, where: str) -> tuple[TrainingScale, ...]:
    """A checkpoint's ``training_scales`` list -> :class:`TrainingScale` tuple (empty when absent)."""
    if entry is None:
        return ()
    if not isinstance(entry, (list, tuple)):
        raise ValueError(f"{where}: training_scales must be a list, got {type(entry).__name__}")
    return tuple(
        TrainingScale.from_dict(e, where=f"{where}: training_scales[{i}]") for i, e in enumerate(entry)
    )


def _from_scales(scales: Sequence[TrainingScale], what: str, pick: str | None) -> MetricScale:
    if pick is not None:
        match = [s for s in scales if s.dataset == pick]
        if not match:
            raise ValueError(f"dataset {pick!r} is not among the {what}: {[s.dataset for s in scales]}")
        scales = match
    values = {round(s.metres_per_unit, 12) for s in scales}
    if len(values) > 1:
        listed = ", ".join(f"{s.dataset}: {s.metres_per_unit:.4g} m" for s in scales)
        raise ValueError(
            f"the {what} mix datasets with different metres per unit ({listed}); pick one with --metric-scale "
            "VALUE (or the dataset's name where the command offers it)"
        )
    s = scales[0]
    names = ", ".join(sorted({x.dataset for x in scales}))
    how = (
        "not normalised: metres"
        if not s.normalize
        else f"metric_waypoint_spacing {s.metric_waypoint_spacing:.4g} m x waypoint_spacing {s.waypoint_spacing}"
    )
    return MetricScale(s.metres_per_unit, f"{what} {names}: {how}")


def resolve_metric_scale(
    *,
    explicit: float | None = None,
    data: Sequence[TrainingScale] = (),
    checkpoint: Sequence[TrainingScale] = (),
    robot: RobotConfig | None = None,
    pick: str | None = None,
) -> MetricScale:
    """Metres per normalised unit for inference, in this order:

    1. ``explicit`` (``--metric-scale``);
    2. ``data``: the dataset(s) being read (``--dataset`` / ``--data-dir``), at the checkpoint's waypoint spacing;
    3. ``checkpoint``: the training scales the checkpoint records (one value: that one; several datasets with one
       value: that value; different values: ``pick`` names the dataset, else ``ValueError`` listing them);
    4. NoMaD's deployment rule ``max_v / frame_rate`` of ``robot`` (default :class:`RobotConfig`: 0.05 m).

    Raises ``ValueError`` for a non-positive explicit value or an ambiguous mixture."""
    if explicit is not None:
        return MetricScale(_positive("--metric-scale", explicit, "metric scale"), "--metric-scale")
    if data:
        return _from_scales(data, "data being read", pick)
    if checkpoint:
        return _from_scales(checkpoint, "checkpoint's training data", pick)
    robot = robot or RobotConfig()
    return MetricScale(
        robot.metres_per_unit,
        f"NoMaD's deployment rule max_v / frame_rate = {robot.max_v:g} / {robot.frame_rate:g} from {robot.source}; "
        "the checkpoint records no training scale",
    )


def resolve_and_log_metric_scale(
    *,
    explicit: float | None = None,
    robot_yaml: str | Path | None = None,
    pick: str | None = None,
    checkpoint: Sequence[TrainingScale] = (),
    data: Sequence[TrainingScale] = (),
) -> MetricScale:
    """:func:`resolve_metric_scale` with the robot read from a NoMaD ``robot.yaml`` (``robot_yaml``; None: NoMaD's
    defaults), logging ``describe()`` at INFO: the one line every inference command prints (on stderr, through
    :func:`navintent.cli.configure_logging`) saying which scale is used and where it came from. The commands' flags
    for it are :func:`navintent.commands.common.add_metric_scale_arguments`."""
    robot = RobotConfig.from_yaml(robot_yaml) if robot_yaml is not None else None
    scale = resolve_metric_scale(explicit=explicit, data=data, checkpoint=checkpoint, robot=robot, pick=pick)
    log.info(scale.describe())
    return scale
