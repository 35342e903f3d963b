"""Tiny NoMaD-format datasets with known poses, for tests of any area (and the loader benchmark).

Every frame is a solid colour that encodes ``(traj_index, frame)`` (:func:`frame_color`), so a test can tell
which frame a served image came from with :func:`decode_frame_ids`, even after crop, resize and ImageNet
normalisation (JPEG keeps a solid colour within +-2 levels; codes are 8 levels apart).

Example::

    ds = write_synthetic_dataset(tmp_path / "data", num_trajectories=3, length=30)
    NavDataset(ds.data_folder, ds.split_folder, "synthetic", [32, 24], 1, 0, 20, 3, 20, True, 8, False, 3,
               metric_waypoint_spacing=ds.metric_waypoint_spacing, cache_dir=tmp_path / "cache")
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from navintent.data.split import write_traj_names
from navintent.transforms import IMAGENET_MEAN, IMAGENET_STD

_LEVELS = 31


def frame_color(traj_index: int, t: int) -> tuple[int, int, int]:
    """RGB code of frame ``t`` of trajectory ``traj_index`` (t < 961, traj_index < 31)."""
    return (4 + 8 * (t % _LEVELS), 4 + 8 * ((t // _LEVELS) % _LEVELS), 4 + 8 * (traj_index % _LEVELS))


def decode_frame_ids(images: torch.Tensor | np.ndarray) -> list[tuple[int, int]]:
    """ImageNet-normalised ``[3F, H, W]`` float frames -> ``[(traj_index, t)] * F`` from their colour codes."""
    x = torch.as_tensor(images, dtype=torch.float32)
    f = x.shape[0] // 3
    rgb = x.reshape(f, 3, -1).mean(-1) * torch.from_numpy(IMAGENET_STD) + torch.from_numpy(IMAGENET_MEAN)
    codes = torch.round((rgb * 255 - 4) / 8).long().tolist()
    return [(b, r + _LEVELS * g) for r, g, b in codes]


def straight_poses(length: int, step: float = 0.25, heading: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Constant-heading line from the origin: position ``[length, 2]`` (m), yaw ``[length]`` (rad)."""
    k = np.arange(length, dtype=np.float64)[:, None]
    position = k * step * np.array([[np.cos(heading), np.sin(heading)]])
    return position, np.full(length, heading, dtype=np.float64)


def arc_poses(
    length: int, step: float = 0.25, turn: float = 0.1, heading: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Unicycle with constant turn (rad per frame): yaw_k = heading + k*turn, p_{k+1} = p_k + step*(cos, sin)(yaw_k)."""
    yaw = heading + turn * np.arange(length, dtype=np.float64)
    steps = step * np.stack([np.cos(yaw[:-1]), np.sin(yaw[:-1])], axis=-1)
    position = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)], axis=0)
    return position, yaw


def write_trajectory(
    data_folder: str | Path,
    name: str,
    position: np.ndarray,
    yaw: np.ndarray,
    *,
    traj_index: int = 0,
    image_size: Sequence[int] = (32, 24),
    ref_traj: np.ndarray | None = None,
    agents: np.ndarray | None = None,
    quality: int = 95,
) -> Path:
    """Write ``data_folder/name/{0..N-1}.jpg`` (solid :func:`frame_color` frames, [width, height]) and
    ``traj_data.pkl`` with ``position``, ``yaw`` and, when given, ``ref_traj`` / ``agents``. Returns the folder."""
    folder = Path(data_folder) / name
    folder.mkdir(parents=True, exist_ok=True)
    w, h = int(image_size[0]), int(image_size[1])
    for t in range(len(position)):
        Image.new("RGB", (w, h), frame_color(traj_index, t)).save(folder / f"{t}.jpg", quality=quality)
    data: dict[str, np.ndarray] = {"position": np.asarray(position), "yaw": np.asarray(yaw)}
    if ref_traj is not None:
        data["ref_traj"] = np.asarray(ref_traj)
    if agents is not None:
        data["agents"] = np.asarray(agents)
    with open(folder / "traj_data.pkl", "wb") as f:
        pickle.dump(data, f)
    return folder


@dataclass
class SyntheticDataset:
    """What :func:`write_synthetic_dataset` wrote. ``poses[name] = (position [N, 2], yaw [N])``."""

    data_folder: Path
    split_folder: Path
    names: list[str]
    metric_waypoint_spacing: float
    poses: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def write_synthetic_dataset(
    data_folder: str | Path,
    num_trajectories: int = 3,
    length: int = 24,
    *,
    image_size: Sequence[int] = (32, 24),
    step: float = 0.25,
    with_ref_traj: bool = False,
    num_agents: int = 0,
    split_folder: str | Path | None = None,
    seed: int = 0,
) -> SyntheticDataset:
    """Write ``num_trajectories`` trajectories ``traj_000 ...`` of ``length`` frames and a split listing all.

    Trajectory ``i`` cycles through: straight along +x, left arc (0.1 rad/frame), straight along +y (yaw 90 deg),
    right arc. Frames are ``step`` metres apart (returned as ``metric_waypoint_spacing``). ``with_ref_traj``
    adds ``ref_traj [N, 3]`` = the path shifted 0.1 m to the robot's left, with its yaw; ``num_agents`` adds
    ``agents [N, num_agents, 2]`` walking straight lines (seeded). The split (``traj_names.txt``) goes to
    ``split_folder``, default the sibling folder ``<data_folder>_split``.
    """
    data_folder = Path(data_folder)
    split = (
        Path(split_folder) if split_folder is not None else data_folder.with_name(data_folder.name + "_split")
    )
    rng = np.random.default_rng(seed)
    out = SyntheticDataset(data_folder, split, [], step)
    for i in range(num_trajectories):
        kind = i % 4
        if kind == 0:
            position, yaw = straight_poses(length, step, 0.0)
        elif kind == 1:
            position, yaw = arc_poses(length, step, 0.1)
        elif kind == 2:
            position, yaw = straight_poses(length, step, np.pi / 2)
        else:
            position, yaw = arc_poses(length, step, -0.1)
        position = position + np.array([10.0 * i, -5.0 * i])
        ref = None
        if with_ref_traj:
            left = np.stack([-np.sin(yaw), np.cos(yaw)], axis=-1)
            ref = np.concatenate([position + 0.1 * left, yaw[:, None]], axis=-1)
        agents = None
        if num_agents:
            start = position[0] + rng.uniform(-3, 3, size=(num_agents, 2))
            velocity = rng.uniform(-0.2, 0.2, size=(num_agents, 2))
            agents = start[None] + np.arange(length)[:, None, None] * velocity[None]
        name = f"traj_{i:03d}"
        write_trajectory(
            data_folder, name, position, yaw, traj_index=i, image_size=image_size, ref_traj=ref, agents=agents
        )
        out.names.append(name)
        out.poses[name] = (position, yaw)
    write_traj_names(split, out.names)
    return out
