"""The scenarios one optimisation attacks, and where they come from.

Owns :class:`Scenarios` (the batch of observations, goals, agents and scales, with its tensor shapes), the three
descriptions of a scenario source that :func:`navintent.steering.optimize` accepts (:class:`SimScenes`,
:class:`DatasetSamples`, :class:`SampleFile`), the synthetic crossing pedestrian added to data without agents
(:func:`crossing_pedestrian`, :func:`add_agents`) and :class:`SimCamera`, what a plot needs to draw waypoints on an
observation. Building scenarios from a source lives in :mod:`navintent.steering.data_scenarios` (data-sample files,
dataset samples) and :mod:`navintent.steering.sim_scenarios` (the built-in MuJoCo world).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from navintent.config import check_non_negative_number, check_positive_int, check_positive_number
from navintent.objectives import GridMap


@dataclass
class Scenarios:
    """B scenarios to attack. Images as the dataset serves them (ImageNet-normalised float32).

    obs_img ``[B, 3(C+1), H, W]``, goal_img ``[B, 3, H, W]``, goal_mask ``[B]`` (1 = goal hidden) or None,
    ref_traj ``[B, T_ref, D]`` + ref_mask ``[B]`` or None (z1 then from Encoder1 with/without the reference),
    agents ``[B, T, K, 2]`` metres in the robot frame at the waypoint times + agents_mask ``[B, K]``,
    metric_scale ``[B]`` metres per spacing unit, z1 ``[B, z1_dim]`` (None: Encoder1's mean),
    obstacle_map: optional :class:`GridMap` (1 = occupied) for the static-collision realism term.
    """

    obs_img: Tensor
    goal_img: Tensor
    metric_scale: Tensor
    goal_mask: Tensor | None = None
    ref_traj: Tensor | None = None
    ref_mask: Tensor | None = None
    agents: Tensor | None = None
    agents_mask: Tensor | None = None
    z1: Tensor | None = None
    obstacle_map: GridMap | None = None
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        b = self.obs_img.shape[0]
        if not self.names:
            self.names = [f"scenario_{i}" for i in range(b)]
        if self.metric_scale.shape != (b,):
            raise ValueError(f"Scenarios.metric_scale must be [B={b}], got {tuple(self.metric_scale.shape)}")

    @property
    def num(self) -> int:
        return self.obs_img.shape[0]

    def to(self, device: torch.device | str) -> Scenarios:
        def move(v):
            return v.to(device) if isinstance(v, Tensor) else v

        grid = self.obstacle_map
        if grid is not None:
            grid = GridMap(grid.values.to(device), grid.origin, grid.resolution)
        return Scenarios(
            **{
                k: move(getattr(self, k))
                for k in self.__dataclass_fields__
                if k not in ("obstacle_map", "names")
            },
            obstacle_map=grid,
            names=list(self.names),
        )


@dataclass(frozen=True)
class SimScenes:
    """Built-in MuJoCo scenes with pedestrians (scene seeds from the run's ``seed`` on), ``num`` of them; z1 from
    the prior by default (:func:`navintent.steering.sim_scenarios.sim_scenarios`)."""

    num: int = 1

    def __post_init__(self) -> None:
        check_positive_int("num", self.num)


@dataclass(frozen=True)
class DatasetSamples:
    """Samples ``indices`` of ``split`` of a data root (layout of ``navintent train --data_dir``) or of a config
    YAML whose ``datasets:`` block names the data; z1 from Encoder1 on the data by default."""

    data: str | Path
    indices: tuple[int, ...] = (0,)
    split: str = "test"


@dataclass(frozen=True)
class SampleFile:
    """A ``.pt`` dict with the batch fields of :data:`navintent.steering.data_scenarios.SAMPLE_FIELDS`, loaded
    with ``weights_only=True`` and validated; z1 from Encoder1 on the data by default."""

    path: str | Path


ScenarioSource = SimScenes | DatasetSamples | SampleFile
"""Where :func:`navintent.steering.optimize` takes its scenarios from."""


@dataclass
class SimCamera:
    """What :func:`navintent.steering.plots.project_waypoints` needs to draw on an observation: the source camera
    (horizontal fov in degrees, height in metres, image size ``(W, H)`` pixels) and the crop box
    ``(left, top, right, bottom)`` applied before resizing to the model's image size."""

    hfov_deg: float
    height: float
    source_size: tuple[int, int]
    crop: tuple[int, int, int, int]


def crossing_pedestrian(num: int, len_traj_pred: int, dt: float, ahead_m: float, speed_mps: float) -> Tensor:
    """Tracks ``[num, len_traj_pred, 1, 2]`` (metres, robot frame at the current pose, x forward, y left) of one
    synthetic pedestrian crossing the robot's path: it walks along ``x = ahead_m`` from the right to the left at
    ``speed_mps`` and is on the robot's axis (y = 0) at the middle waypoint time, i.e. waypoint ``k`` (1-based,
    ``k * dt`` seconds ahead) is at ``y = speed_mps * dt * (k - (len_traj_pred + 1) / 2)``. For steering on data
    that has no other agents (``optimize-z2 --dataset ... --crossing-pedestrian AHEAD SPEED``)."""
    check_positive_int("len_traj_pred", len_traj_pred)
    check_positive_number("dt", dt)
    check_positive_number("ahead_m", ahead_m)
    check_non_negative_number("speed_mps", speed_mps)
    k = torch.arange(1, len_traj_pred + 1, dtype=torch.float32)
    y = speed_mps * dt * (k - (len_traj_pred + 1) / 2)
    track = torch.stack([torch.full_like(y, float(ahead_m)), y], dim=-1)  # [T, 2]
    return track.view(1, len_traj_pred, 1, 2).expand(num, -1, -1, -1).clone()


def add_agents(scenarios: Scenarios, tracks: Tensor) -> Scenarios:
    """``scenarios`` with ``tracks [B, T, K, 2]`` (metres, robot frame) appended to its agents (mask 1)."""
    b, t = scenarios.num, tracks.shape[1]
    if tracks.dim() != 4 or tracks.shape[0] != b or tracks.shape[-1] != 2:
        raise ValueError(f"agent tracks must be [B={b}, T, K, 2], got {tuple(tracks.shape)}")
    mask = torch.ones(b, tracks.shape[2])
    if scenarios.agents is not None:
        if scenarios.agents.shape[1] != t:
            raise ValueError(
                f"agent tracks have T={t} waypoints, the scenarios' agents {scenarios.agents.shape[1]}"
            )
        old_mask = (
            scenarios.agents_mask
            if scenarios.agents_mask is not None
            else torch.ones(b, scenarios.agents.shape[2])
        )
        tracks = torch.cat([scenarios.agents, tracks.to(scenarios.agents)], dim=2)
        mask = torch.cat([old_mask, mask.to(old_mask)], dim=1)
    return dataclasses.replace(scenarios, agents=tracks, agents_mask=mask)
