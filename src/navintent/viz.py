"""Plots of the evaluation harness (matplotlib, Agg backend; PNG files).

World-frame plots are top-down with x to the right and y up (metres); robot-frame plots put x (forward) up and
y (left) to the left, as :mod:`navintent.sample` and :mod:`navintent.optimize` draw them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

METHOD_COLORS = {
    "expert": "k",
    "nomad": "0.45",
    "prior": "tab:cyan",
    "reference": "tab:olive",
    "adam": "tab:red",
    "best_of_n": "tab:blue",
    "cem": "tab:green",
    "guided": "tab:purple",
    "noise": "tab:brown",
    "z2+noise": "tab:pink",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_scene(ax, scene) -> None:
    """Room, obstacles (boxes and cylinders), start (square), goal (star) and the expert's plan (dotted)."""
    from matplotlib.patches import Circle, Rectangle

    size = scene.static.room_size
    ax.add_patch(Rectangle((0, 0), size, size, fill=False, lw=2, ec="0.2"))
    for cx, cy, hx, hy in scene.static.boxes:
        ax.add_patch(Rectangle((cx - hx, cy - hy), 2 * hx, 2 * hy, color="0.55"))
    for cx, cy, r in scene.static.cylinders:
        ax.add_patch(Circle((cx, cy), r, color="0.55"))
    ax.plot(scene.path[:, 0], scene.path[:, 1], ":", color="0.3", lw=1)
    ax.plot(*scene.start[:2], "ks", ms=6)
    ax.plot(*scene.goal[:2], "*", color="gold", mec="k", ms=13)
    ax.set_xlim(-0.1, size + 0.1)
    ax.set_ylim(-0.1, size + 0.1)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_closed_loop(
    path: str | Path,
    scene,
    tracks: dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]],
    free: np.ndarray,
    target: int,
    safety_radius: float,
) -> Path:
    """One panel per method: the robot's track (method colour), pedestrians' tracks (orange; the target red),
    the target's robot-free walk (dashed), and the closest approach to the target (circle of ``safety_radius``).

    ``tracks``: method -> ``(poses [S+1, 3], agents [S+1, N, 2], row)`` with ``row`` the episode metrics.
    """
    from matplotlib.patches import Circle

    plt = _pyplot()
    n = len(tracks)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (method, (poses, agents, row)) in zip(axes.flat, tracks.items(), strict=False):
        draw_scene(ax, scene)
        steps = len(poses)
        ax.plot(free[:steps, target, 0], free[:steps, target, 1], "--", color="tab:red", lw=1, alpha=0.5)
        for k in range(agents.shape[1]):
            color = "tab:red" if k == target else "tab:orange"
            ax.plot(agents[:, k, 0], agents[:, k, 1], "-", color=color, lw=1.2, alpha=0.8)
            ax.plot(*agents[-1, k], "o", color=color, ms=4)
        ax.plot(poses[:, 0], poses[:, 1], "-", color=METHOD_COLORS.get(method, "k"), lw=2)
        t = int(row["target_closest_step"])
        ax.add_patch(Circle(tuple(poses[t, :2]), safety_radius, fill=False, ec="tab:red", lw=0.8, ls=":"))
        flags = "goal" if row["goal_reached"] else "no goal"
        if row["pedestrian_collision"]:
            flags += ", ped. hit"
        if row["static_collision"]:
            flags += ", wall hit"
        ax.set_title(f"{method}: d_min {row['target_min_distance']:.2f} m\n{flags}", fontsize=8)
    fig.suptitle(
        f"scene {scene.seed}: robot tracks (target pedestrian red, its robot-free walk dashed)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_summary_bars(path: str | Path, summary: dict[str, dict[str, Any]]) -> Path:
    """Bars per method: goal rate, pedestrian collision rate, attack success rate, target min distance (m)."""
    plt = _pyplot()
    keys = (
        ("goal_rate", "goal rate"),
        ("pedestrian_collision_rate", "pedestrian collision rate"),
        ("attack_success_rate", "attack success rate"),
        ("target_min_distance", "target min distance (m)"),
    )
    methods = list(summary)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.4 * len(keys), 3.2))
    for ax, (key, title) in zip(axes, keys, strict=True):
        values = [summary[m].get(key) for m in methods]
        heights = [np.nan if v is None else v for v in values]
        ax.bar(range(len(methods)), heights, color=[METHOD_COLORS.get(m, "k") for m in methods])
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=45, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def _robot_frame_axes(ax) -> None:
    ax.plot(0, 0, "k^", ms=7)
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("lateral (m, right +)", fontsize=7)
    ax.set_ylabel("forward (m)", fontsize=7)


def plot_diversity(
    path: str | Path,
    trajectories: dict[str, list[np.ndarray]],
    summary: dict[str, dict[str, float]],
    names: list[str],
    agents: np.ndarray | None,
    agents_mask: np.ndarray | None,
    max_scenarios: int = 3,
) -> Path:
    """Rows: scenarios; columns: conditions (samples in the robot frame, agents' futures orange); last row: bars
    of the mean pairwise spread per condition. ``trajectories``: condition -> per scenario ``[M, T, 2]``."""
    plt = _pyplot()
    conditions = list(trajectories)
    n_sc = min(max_scenarios, len(names))
    fig, axes = plt.subplots(
        n_sc + 1, len(conditions), figsize=(3 * len(conditions), 3 * (n_sc + 1)), squeeze=False
    )
    for i in range(n_sc):
        for j, cond in enumerate(conditions):
            ax = axes[i, j]
            if agents is not None:
                for k in range(agents.shape[2]):
                    if agents_mask is None or agents_mask[i, k] > 0.5:
                        ax.plot(-agents[i, :, k, 1], agents[i, :, k, 0], "-", color="tab:orange", lw=2)
            for wp in trajectories[cond][i]:
                pts = np.vstack([[0.0, 0.0], wp])
                ax.plot(-pts[:, 1], pts[:, 0], "-", color="tab:blue", lw=0.8, alpha=0.5)
            _robot_frame_axes(ax)
            ax.set_title(f"{names[i]}\n{cond}", fontsize=7)
    for j, cond in enumerate(conditions):
        ax = axes[n_sc, j]
        ax.bar(
            [0, 1], [summary[cond]["pairwise"], summary[cond]["endpoint"]], color=["tab:blue", "tab:green"]
        )
        ax.set_xticks([0, 1])
        ax.set_xticklabels(["pairwise", "endpoint"], fontsize=7)
        ax.set_title(f"mean spread (m): {cond}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_perturb(
    path: str | Path,
    levels: list[dict[str, Any]],
    example: dict[float, np.ndarray],
    occupancy: np.ndarray,
    origin: tuple[float, float],
    resolution: float,
    name: str,
) -> Path:
    """Left: executable / collision-free / within-dynamics fractions against sigma. Right: the first scenario's
    samples per sigma over its occupancy map (robot frame)."""
    plt = _pyplot()
    fig, (ax, ax_map) = plt.subplots(1, 2, figsize=(10, 4.2))
    sig = [lv["sigma"] for lv in levels]
    for key, style in (("executable", "o-k"), ("collision_free", "s--"), ("dynamics_ok", "^--")):
        ax.plot(sig, [lv[key] for lv in levels], style, label=key.replace("_", " "))
    ax.set_xlabel("sigma (z1 = mean + sigma * N(0, I))")
    ax.set_ylabel("fraction of trajectories")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    h, w = occupancy.shape
    x0, y0 = origin
    extent = (-(y0 + (h - 1) * resolution), -y0, x0, x0 + (w - 1) * resolution)
    # occupancy[i, j]: y = y0 + i * res, x = x0 + j * res; display lateral (-y) horizontally, x up.
    ax_map.imshow(np.flip(occupancy.T, axis=(0, 1)), extent=extent, cmap="Greys", alpha=0.5, vmin=0, vmax=1)
    colors = plt.cm.viridis(np.linspace(0, 1, len(example)))
    for (sigma, wps), color in zip(example.items(), colors, strict=True):
        for m, wp in enumerate(wps):
            pts = np.vstack([[0.0, 0.0], wp])
            ax_map.plot(
                -pts[:, 1],
                pts[:, 0],
                "-",
                color=color,
                lw=0.8,
                alpha=0.6,
                label=f"sigma {sigma:g}" if m == 0 else None,
            )
    _robot_frame_axes(ax_map)
    ax_map.legend(fontsize=6)
    ax_map.set_title(f"{name}: samples per sigma over the occupancy map", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
