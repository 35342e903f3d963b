"""Pictures of a steering run: per scenario a top-down view of every method's trajectories and the waypoints drawn
on the current observation.

Owns :func:`plot_scenario`, :func:`project_waypoints` (robot-frame ground points to observation pixels through a
pinhole camera) and :func:`unnormalize_image`. Figures are made with :class:`matplotlib.figure.Figure` directly,
never through pyplot, so drawing here neither needs nor changes the caller's matplotlib backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from navintent.steering.scenarios import SimCamera
from navintent.transforms import IMAGENET_MEAN, IMAGENET_STD
from navintent.viz import METHOD_COLORS


def unnormalize_image(img: Tensor) -> np.ndarray:
    """ImageNet-normalised ``[3, H, W]`` -> uint8 ``[H, W, 3]``."""
    x = img.detach().cpu().numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def project_waypoints(waypoints: np.ndarray, camera: SimCamera, image_size: tuple[int, int]) -> np.ndarray:
    """Robot-frame ground points ``[N, 2]`` (m) -> pixels ``[M, 2]`` on the (cropped, resized) observation,
    for the points at least 5 cm ahead. Pinhole camera at ``camera.height`` looking forward."""
    ahead = waypoints[waypoints[:, 0] > 0.05]
    sw, sh = camera.source_size
    f = (sw / 2) / math.tan(math.radians(camera.hfov_deg) / 2)
    u = sw / 2 - f * ahead[:, 1] / ahead[:, 0]
    v = sh / 2 + f * camera.height / ahead[:, 0]
    left, top, right, bottom = camera.crop
    w, h = image_size
    return np.stack([(u - left) * w / (right - left), (v - top) * h / (bottom - top)], axis=1)


_COLORS = {**METHOD_COLORS, "plain": METHOD_COLORS["nomad"]}  # one colour per method across every plot


def plot_scenario(
    path: Path,
    name: str,
    trajectories: dict[str, np.ndarray],
    agents: np.ndarray | None,
    agents_mask: np.ndarray | None,
    observation: np.ndarray,
    camera: SimCamera,
) -> None:
    """Top-down view (robot frame, x forward up, y left to the left) and the waypoints on the observation.

    ``trajectories``: method -> ``[M, T, 2]`` metres; ``agents [T, K, 2]``; ``observation [H, W, 3]`` uint8.
    """
    fig = Figure(figsize=(10, 5))
    ax, ax_img = fig.subplots(1, 2)
    if agents is not None:
        for k in range(agents.shape[1]):
            if agents_mask is not None and agents_mask[k] < 0.5:
                continue
            ax.plot(-agents[:, k, 1], agents[:, k, 0], "-", color="orange", lw=2)
            ax.plot(-agents[-1, k, 1], agents[-1, k, 0], "o", color="orange", ms=8)
    for method, traj in trajectories.items():
        color = _COLORS.get(method, "k")
        for m in range(traj.shape[0]):
            pts = np.vstack([np.zeros((1, 2)), traj[m]])
            ax.plot(
                -pts[:, 1], pts[:, 0], "-", color=color, lw=1, alpha=0.5, label=method if m == 0 else None
            )
    ax.plot(0, 0, "ks", ms=7)
    ax.set_aspect("equal")
    ax.set_xlabel("-y (m, right)")
    ax.set_ylabel("x (m, forward)")
    ax.set_title(f"{name}: top-down (orange: agents)")
    ax.legend(fontsize=7, loc="best")
    h, w = observation.shape[:2]
    ax_img.imshow(observation)
    for method, traj in trajectories.items():
        for m in range(traj.shape[0]):
            px = project_waypoints(traj[m], camera, (w, h))
            if len(px):
                ax_img.plot(px[:, 0], px[:, 1], ".-", color=_COLORS.get(method, "k"), lw=1, ms=3, alpha=0.7)
    ax_img.set_xlim(0, w)
    ax_img.set_ylim(h, 0)
    ax_img.set_title("waypoints on the current observation")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
