"""Per-episode and per-method numbers of a closed-loop evaluation, all pure functions of arrays and rows.

Owns: interaction intensity against the robot-free replay (m and a 0..1 slow-down), attack success against the
nominal, dynamics-limit violations of planned trajectories, the per-method :func:`aggregate` of episode rows, and
the statistics of the ``closed_loop`` / ``paired`` JSON blocks (95% bootstrap intervals, paired comparisons;
:mod:`navintent.evaluation.statistics`). Definitions in the :mod:`navintent.evaluation` docstring.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from navintent.evaluation.config import DYNAMICS_LIMITS, METHODS, NOMINAL, STEERING_METHODS
from navintent.evaluation.statistics import paired_comparison, summarise
from navintent.objectives import ObjectiveContext, dynamics


def interaction_intensity(actual: np.ndarray, free: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """How much the robot disturbed the pedestrians: ``actual``/``free`` world positions ``[S+1, N, 2]`` of the
    episode and of the robot-free replay (same steps). Returns per pedestrian ``deviation [N]`` (m, the largest
    ``|actual_t - free_t|``) and ``speed_deficit [N]`` (mean over steps where the free walk moves faster than
    1 cm/s of ``max(0, 1 - |v_t| / |v_free_t|)``, velocities by forward differences over ``dt``; 0 if it never moves).
    """
    actual, free = np.asarray(actual, dtype=np.float64), np.asarray(free, dtype=np.float64)
    if actual.shape != free.shape or actual.ndim != 3 or actual.shape[-1] != 2:
        raise ValueError(f"actual and free must both be [S+1, N, 2], got {actual.shape} and {free.shape}")
    n = actual.shape[1]
    if n == 0:
        return {"deviation": np.zeros(0), "speed_deficit": np.zeros(0)}
    deviation = np.linalg.norm(actual - free, axis=-1).max(axis=0)
    if len(actual) < 2:
        return {"deviation": deviation, "speed_deficit": np.zeros(n)}
    speed = np.linalg.norm(np.diff(actual, axis=0), axis=-1) / dt  # [S, N]
    speed_free = np.linalg.norm(np.diff(free, axis=0), axis=-1) / dt
    moving = speed_free > 0.01
    deficit = np.where(moving, np.clip(1.0 - speed / np.maximum(speed_free, 1e-12), 0.0, None), 0.0)
    counts = moving.sum(axis=0)
    return {
        "deviation": deviation,
        "speed_deficit": np.where(counts > 0, deficit.sum(0) / np.maximum(counts, 1), 0.0),
    }


def attack_success(min_distance: float, nominal_min_distance: float, radius: float) -> bool | None:
    """True if the target came inside ``radius`` where the nominal did not; None when the nominal was already
    inside (the scene cannot count either way)."""
    if nominal_min_distance < radius:
        return None
    return bool(min_distance < radius)


def dynamics_violations(
    waypoints: np.ndarray, dt: float, limits: dict[str, float] | None = None
) -> np.ndarray:
    """``waypoints [S, T, 2]`` (m, robot frame, ``dt`` s apart) -> bool ``[S]``: the plan breaks ``limits``
    (default ``DYNAMICS_LIMITS``, the built-in robot's; :func:`navintent.evaluation.config.dynamics_limits`), i.e.
    :func:`navintent.objectives.dynamics` > 0."""
    wp = torch.as_tensor(np.asarray(waypoints, dtype=np.float64))
    if wp.ndim != 3 or wp.shape[-1] != 2:
        raise ValueError(f"waypoints must be [S, T, 2], got {tuple(wp.shape)}")
    if wp.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return (dynamics(wp, ObjectiveContext(dt=dt), **(limits or DYNAMICS_LIMITS)) > 0).numpy()


def mean_finite(values: list[float | None]) -> float | None:
    """Mean of the finite, non-None ``values``; None when there are none."""
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(kept)) if kept else None


def aggregate(
    episodes: list[dict[str, Any]], methods: tuple[str, ...] | None = None
) -> dict[str, dict[str, Any]]:
    """Per-method summary of episode rows (see :func:`navintent.evaluation.closed_loop.run_episode` for their keys), methods in ``METHODS`` order."""
    names = methods or tuple(m for m in METHODS if any(e["method"] == m for e in episodes))
    out: dict[str, dict[str, Any]] = {}
    for method in names:
        rows = [e for e in episodes if e["method"] == method]
        if not rows:
            continue
        eligible = [e["attack_success"] for e in rows if e.get("attack_success") is not None]
        reached = [e["steps"] for e in rows if e["goal_reached"]]
        out[method] = {
            "episodes": len(rows),
            "goal_rate": float(np.mean([e["goal_reached"] for e in rows])),
            "success_rate": float(np.mean([e["success"] for e in rows])),
            "static_collision_rate": float(np.mean([e["static_collision"] for e in rows])),
            "pedestrian_collision_rate": float(np.mean([e["pedestrian_collision"] for e in rows])),
            "target_min_distance": mean_finite([e["target_min_distance"] for e in rows]),
            "attack_success_rate": float(np.mean(eligible)) if eligible else None,
            "attack_success_count": int(np.sum(eligible)) if eligible else 0,
            "attack_eligible": len(eligible),
            "interaction_deviation": mean_finite([e["interaction_deviation"] for e in rows]),
            "interaction_speed_deficit": mean_finite([e["interaction_speed_deficit"] for e in rows]),
            "z1_loglik": mean_finite([e["z1_loglik"] for e in rows]),
            "z2_loglik": mean_finite([e["z2_loglik"] for e in rows]),
            "noise_loglik": mean_finite([e.get("noise_loglik") for e in rows]),
            "dynamics_violation_rate": mean_finite([e["dynamics_violation_rate"] for e in rows]),
            "steps_to_goal": float(np.mean(reached)) if reached else None,
            "seconds_per_scenario": float(np.mean([e["seconds"] for e in rows])),
            **{key: mean_finite([e.get(key) for e in rows]) for key in TASK_MEANS},
        }
    return out


# Task metrics (navintent.evaluation.tasks) averaged over a method's episodes where they exist.
TASK_MEANS: tuple[str, ...] = (
    "spl",
    "static_collisions_per_100m",
    "pedestrian_collisions_per_100m",
    "time_to_goal",
    "time_within_0.5m",
    "time_within_1.2m",
    "localisation_consistency",
    "replan_ms_median",
    "replan_ms_p95",
    "static_collisions",
    "static_blocked_steps",
    "coverage_m2",
)


CLOSED_LOOP_METRICS: dict[str, str] = {
    "success": "success",
    "goal_rate": "goal_reached",
    "static_collision_rate": "static_collision",
    "pedestrian_collision_rate": "pedestrian_collision",
    "attack_success": "attack_success",
    "target_min_distance": "target_min_distance",
    "interaction_deviation": "interaction_deviation",
}


def closed_loop_statistics(rows: list[dict[str, Any]], methods: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``{method: {metric: {"mean", "ci95", "n"}}}`` over the scenes (:data:`CLOSED_LOOP_METRICS`, rates as means
    of 0/1; attack success over the scenes where it is defined), with 95% bootstrap intervals
    (:func:`navintent.evaluation.statistics.summarise`)."""
    out: dict[str, dict[str, Any]] = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        out[method] = {
            name: summarise([None if r.get(key) is None else float(r[key]) for r in mine])
            for name, key in CLOSED_LOOP_METRICS.items()
        }
    return out


def paired_steering_comparisons(rows: list[dict[str, Any]], methods: tuple[str, ...]) -> dict[str, Any]:
    """Per pair of steering methods (and each against the nominal), the same scenes compared on the target's
    minimum distance (lower = a closer approach): ``"a vs b"`` -> :func:`navintent.evaluation.statistics.
    paired_comparison` of ``a - b``."""
    by_scene: dict[str, dict[int, float]] = {}
    for r in rows:
        by_scene.setdefault(r["method"], {})[r["scene_seed"]] = r["target_min_distance"]
    steering = [m for m in methods if m in STEERING_METHODS]
    others = steering + ([NOMINAL] if NOMINAL in methods else [])
    out = {}
    for i, a in enumerate(steering):
        for b in others[i + 1 :]:
            seeds = sorted(set(by_scene[a]) & set(by_scene[b]))
            out[f"{a} vs {b}"] = paired_comparison(
                [by_scene[a][s] for s in seeds], [by_scene[b][s] for s in seeds]
            )
    return out
