"""Waypoint conventions shared by data, models, objectives and the simulator.

Frames: the robot's local frame has x forward and y left (NoMaD's ``to_local_coords``). Waypoints the
dataset serves are in units of ``metric_waypoint_spacing * waypoint_spacing`` ("spacing units"); the
denoiser works on per-step deltas normalised to [-1, 1] with the config's ``action_min``/``action_max``
(NoMaD's ``action_stats``). Only the two position channels are normalised; any further channels
(cos/sin yaw when ``learn_angle``) pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _bounds(action_min: Sequence[float], action_max: Sequence[float], like: Tensor) -> tuple[Tensor, Tensor]:
    lo = torch.as_tensor(action_min, dtype=like.dtype, device=like.device)
    hi = torch.as_tensor(action_max, dtype=like.dtype, device=like.device)
    if lo.shape != (2,) or hi.shape != (2,):
        raise ValueError(
            f"action_min/action_max must have shape [2], got {tuple(lo.shape)} / {tuple(hi.shape)}"
        )
    return lo, hi


def waypoints_to_normalized_deltas(
    waypoints: Tensor, action_min: Sequence[float], action_max: Sequence[float]
) -> Tensor:
    """``[..., T, D]`` waypoints (spacing units, first delta from the origin) -> normalised deltas ``[..., T, D]``."""
    if waypoints.shape[-1] < 2:
        raise ValueError(
            f"waypoints must have >= 2 channels in the last dim, got shape {tuple(waypoints.shape)}"
        )
    lo, hi = _bounds(action_min, action_max, waypoints)
    pos = waypoints[..., :2]
    deltas = torch.diff(pos, dim=-2, prepend=torch.zeros_like(pos[..., :1, :]))
    ndeltas = (deltas - lo) / (hi - lo) * 2 - 1
    return torch.cat([ndeltas, waypoints[..., 2:]], dim=-1)


def normalized_deltas_to_waypoints(
    ndeltas: Tensor, action_min: Sequence[float], action_max: Sequence[float]
) -> Tensor:
    """Inverse of :func:`waypoints_to_normalized_deltas`: ``[..., T, D]`` -> waypoints (spacing units)."""
    if ndeltas.shape[-1] < 2:
        raise ValueError(f"ndeltas must have >= 2 channels in the last dim, got shape {tuple(ndeltas.shape)}")
    lo, hi = _bounds(action_min, action_max, ndeltas)
    deltas = (ndeltas[..., :2] + 1) / 2 * (hi - lo) + lo
    return torch.cat([torch.cumsum(deltas, dim=-2), ndeltas[..., 2:]], dim=-1)


def rotation(yaw: Tensor) -> Tensor:
    """``[...]`` yaw (rad) -> ``[..., 2, 2]`` matrices ``[[cos, -sin], [sin, cos]]``."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def to_local(points: Tensor, origin: Tensor, yaw: Tensor) -> Tensor:
    """World ``[..., N, 2]`` -> robot frame at pose (``origin [..., 2]``, ``yaw [...]``): ``(p - o) @ R(yaw)``."""
    return (points - origin.unsqueeze(-2)) @ rotation(yaw)


def to_world(points: Tensor, origin: Tensor, yaw: Tensor) -> Tensor:
    """Inverse of :func:`to_local`: robot-frame ``[..., N, 2]`` -> world."""
    return points @ rotation(yaw).transpose(-1, -2) + origin.unsqueeze(-2)
