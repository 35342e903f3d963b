"""Closed-loop evaluation in the built-in world (``navintent evaluate``) and the seed's latent experiments
(``navintent experiment diversity|perturb``).

What ``evaluate`` runs. ``K`` held-out scenes (:func:`evaluation_scenes`: scene seeds ``EVAL_SEED_BASE + 1000 *
seed + i``, small integers, while ``navintent make-data`` draws 32-bit ``SeedSequence`` hashes; scenes without a
pedestrian are skipped, so every scene has a target). In each scene every method drives the robot closed loop with
:func:`navintent.sim.rollout.rollout` (NoMaD's deployment: re-sample every control step, execute waypoint 2 through
the PD follower):

- ``expert``: the privileged A* expert (a reference row, not a policy);
- ``nomad``: plain NoMaD sampling, no latent (the unconditional branch);
- ``prior``: z1 = the prior mean 0 -> Encoder2(z1, current observation) -> z2, every step;
- ``reference``: z1 = Encoder1's mean given the expert's planned path as the reference (see
  :func:`reference_from_plan`) -> Encoder2 -> z2, every step. This is the NOMINAL of the steering methods;
- ``adam`` / ``best_of_n`` / ``cem`` / ``guided``: z1 as ``reference``; every ``replan_every`` control steps z2 is
  re-optimised (:mod:`navintent.optimize`, objective ``objective``, default: approach the TARGET pedestrian) against
  the target pedestrian's predicted future (the social-force model rolled forward with the robot held still,
  :meth:`navintent.sim.world.World.predict_agents`, from the exact pedestrian state of the episode). Adam runs
  ``opt_steps`` steps warm-started from the previous optimum; best-of-N and CEM (also warm-started) and the guidance
  scale sweep get the same wall-clock budget per re-optimisation as Adam's mean in that scene (``budget_s`` = 0; 1 s
  when Adam is not evaluated) or ``budget_s`` seconds. Between re-optimisations z2 is held; ``guided`` re-runs guided sampling every step with the
  scale it chose. Executed trajectories are fresh samples (new noise each step), NoMaD's DDPM with its hard clip;
- ``noise`` (Diffusion Noise Optimization, :func:`navintent.optimize.optimize_noise`): z2 = Encoder2's output as
  in ``reference`` every step (no latent for a plain NoMaD checkpoint: z = 0, which is NoMaD exactly), and every
  ``replan_every`` steps the noise of ``draws`` draws is optimised (warm-started from the previous optimum) at the
  same budget as the baselines; ``z2+noise`` optimises z2 and the noise together. A noise-optimised result exists
  only for its own noise, so between re-optimisations these two execute samples from the HELD noise of the best
  draw (lowest loss of the last re-optimisation) with the current observation, instead of fresh noise.

The target pedestrian of a scene is the one whose robot-free walk (see below) passes closest to the expert's plan.

Metrics per episode (aggregated per method in :func:`aggregate`):

- goal reached (within ``goal_radius``), success (reached, no collision), static collision (any blocked step),
  pedestrian collision (any contact onset), steps to goal (reached episodes only), seconds per scenario (wall clock
  of the whole episode, optimisation included);
- target minimum distance (centre to centre, m); attack success: the target came inside ``safety_radius`` while the
  nominal (``reference``) episode of the same scene did not — the rate's denominator is the scenes whose nominal
  stayed outside;
- interaction intensity (the seed's "make others yield"), against the SAME scene replayed with pedestrians that
  ignore the robot (``robot_strength = 0``, all else equal; :func:`free_walk`): ``deviation`` = the largest
  displacement (m) of a pedestrian from where it would have been at the same time without the robot (detours and
  delays both show), and ``speed deficit`` = the mean over pedestrians and steps (where the free walk moves) of
  ``max(0, 1 - |v| / |v_free|)`` — how much they slowed down (:func:`interaction_intensity`);
- z1 log-likelihood under the prior N(0, I) and z2 log-likelihood under the Gaussian fitted to training z2 (the
  checkpoint's ``z2_stats``), nats, averaged over the control steps (None where a method has no latent or the
  checkpoint has no statistics); noise log-likelihood: minus :func:`navintent.objectives.noise_nll` (the chi
  log-density of the norm of the noise the executed sample came from, over ``noise_space``), nats, averaged over
  the control steps (fresh N(0, I) noise for every method but the noise-optimising ones);
- dynamics-limit violations: fraction of control steps whose planned trajectory breaks the limits of
  :func:`navintent.objectives.dynamics` (speed 0.3 m/s, acceleration 0.5 m/s^2, turn rate 0.6 rad/s: a little above
  the robot's 0.2 m/s, 0.4 rad/s, as in the optimiser's realism term). The executed commands are always within the
  robot's limits (the follower clips them).

Outputs in ``--out-dir``: ``metrics.json`` (config, per-method summary, per-episode rows), ``results.md`` (the
table), ``closed_loop_<scene>.png`` (top-down per method) and ``summary.png``.

``navintent experiment diversity``: at the moment before an interaction in held-out scenes (the observation of
:func:`navintent.optimize.sim_scenarios`), the spread of sampled trajectories when z1 is held fixed (noise only), when
z1 varies with the noise fixed, when both vary, and with no latent. ``navintent experiment perturb``: z1 = Encoder1's
mean + sigma * N(0, I) for increasing sigma; the fraction of trajectories still executable = collision-free on the
scene's occupancy map (robot disc) and within the dynamics limits above. Each writes JSON, a Markdown table and plots.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from navintent.config import (
    ConfigBase,
    check_non_negative_int,
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
)
from navintent.data.sources import data_dir_scales
from navintent.evaluation.tasks import TASKS
from navintent.metric_scale import (
    MetricScale,
    add_metric_scale_arguments,
    metric_scale_for_command,
    resolve_metric_scale,
)
from navintent.steering.config import DEFAULT_OBJECTIVE
from navintent.transforms import prepare_frames

if TYPE_CHECKING:  # torch-free import for the CLI registry
    from navintent.checkpoint import LoadedModel
    from navintent.evaluation.tasks import RecordedMap

EVAL_SEED_BASE = 1_000_000
METHODS: tuple[str, ...] = (
    "expert", "nomad", "prior", "reference", "adam", "best_of_n", "cem", "guided", "noise", "z2+noise",
)  # fmt: skip
LATENT_METHODS: tuple[str, ...] = ("prior", "reference", "adam", "best_of_n", "cem", "guided", "z2+noise")
STEERING_METHODS: tuple[str, ...] = ("adam", "best_of_n", "cem", "guided", "noise", "z2+noise")
NOISE_STEERING: tuple[str, ...] = ("noise", "z2+noise")
NOMINAL = "reference"
DYNAMICS_LIMITS = {"max_speed": 0.3, "max_accel": 0.5, "max_turn_rate": 0.6}


# ------------------------------------------------------------------------------------------------ config
@dataclass
class EvalConfig(ConfigBase):
    """Settings of ``navintent evaluate`` (flags carry the same names with dashes).

    scenes / seed: held-out scenes. step_factor / min_steps / max_episode_steps: an episode may last
    ``min(max_episode_steps, max(min_steps, step_factor * expert steps))`` control steps. replan_every / opt_steps / lr / draws / objective: z2 re-optimisation (see the
    module docstring). budget_s: seconds per baseline re-optimisation (0 = Adam's mean in the scene). safety_radius:
    attack success distance (m, centre to centre). metric_scale: metres per normalised unit (0 = resolved by
    :func:`navintent.metric_scale.resolve_metric_scale` from the checkpoint: its training data's scale, else NoMaD's
    deployment rule ``max_v / frame_rate``). waypoint_index: the waypoint the
    follower tracks (NoMaD: 2). max_plots: scenes that get a trajectory plot. noise_lr / noise_nll_weight /
    noise_space: the noise methods' Adam learning rate, noise realism weight and optimised noise
    (:class:`navintent.optimize.Z2OptimConfig`). task: ``navigate`` (NoMaD's topological-map loop over a map the
    expert records without pedestrians, a node every ``map_every`` frames; localisation ``radius`` and
    ``close_threshold`` as NoMaD's navigate.py), ``explore`` (goal masked, ``explore_steps`` steps) or
    ``goal-image`` (one goal image of the final pose); see :mod:`navintent.evaluation.tasks`. Invalid values raise
    ``ValueError`` naming field and value.
    """

    scenes: int = 8
    seed: int = 0
    methods: tuple[str, ...] = METHODS
    step_factor: float = 2.0
    min_steps: int = 60
    max_episode_steps: int = 400
    replan_every: int = 8
    opt_steps: int = 10
    lr: float = 0.05
    draws: int = 4
    objective: str = DEFAULT_OBJECTIVE
    budget_s: float = 0.0
    safety_radius: float = 0.5
    lambda_cfg: float = 0.0
    metric_scale: float = 0.0
    waypoint_index: int = 2
    max_plots: int = 4
    noise_lr: float = 0.05
    noise_nll_weight: float = 0.03
    noise_space: str = "all"
    task: str = "navigate"
    map_every: int = 4
    radius: int = 4
    close_threshold: float = 3.0
    explore_steps: int = 200

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {self.task!r}")
        for name in (
            "scenes", "replan_every", "opt_steps", "draws", "min_steps", "max_episode_steps", "map_every",
            "explore_steps",
        ):  # fmt: skip
            check_positive_int(name, getattr(self, name))
        check_non_negative_int("radius", self.radius)
        check_positive_number("close_threshold", self.close_threshold)
        for name in ("seed", "waypoint_index", "max_plots"):
            check_non_negative_int(name, getattr(self, name))
        for name in ("step_factor", "lr", "safety_radius", "noise_lr"):
            check_positive_number(name, getattr(self, name))
        for name in ("budget_s", "lambda_cfg", "metric_scale", "noise_nll_weight"):
            check_non_negative_number(name, getattr(self, name))
        if self.noise_space not in ("all", "x_T"):
            raise ValueError(f"noise_space must be 'all' or 'x_T', got {self.noise_space!r}")
        self.methods = tuple(self.methods)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(
                f"methods must be a non-empty subset of {list(METHODS)}, got {list(self.methods)}"
            )


# ------------------------------------------------------------------------------------------------ pure metrics
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


def dynamics_violations(waypoints: np.ndarray, dt: float) -> np.ndarray:
    """``waypoints [S, T, 2]`` (m, robot frame, ``dt`` s apart) -> bool ``[S]``: the plan breaks ``DYNAMICS_LIMITS``
    (:func:`navintent.objectives.dynamics` > 0)."""
    import torch

    from navintent.objectives import ObjectiveContext, dynamics

    wp = torch.as_tensor(np.asarray(waypoints, dtype=np.float64))
    if wp.ndim != 3 or wp.shape[-1] != 2:
        raise ValueError(f"waypoints must be [S, T, 2], got {tuple(wp.shape)}")
    if wp.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return (dynamics(wp, ObjectiveContext(dt=dt), **DYNAMICS_LIMITS) > 0).numpy()


def _mean(values: list[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(kept)) if kept else None


def aggregate(
    episodes: list[dict[str, Any]], methods: tuple[str, ...] | None = None
) -> dict[str, dict[str, Any]]:
    """Per-method summary of episode rows (see :func:`run_episode` for their keys), methods in ``METHODS`` order."""
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
            "target_min_distance": _mean([e["target_min_distance"] for e in rows]),
            "attack_success_rate": float(np.mean(eligible)) if eligible else None,
            "attack_success_count": int(np.sum(eligible)) if eligible else 0,
            "attack_eligible": len(eligible),
            "interaction_deviation": _mean([e["interaction_deviation"] for e in rows]),
            "interaction_speed_deficit": _mean([e["interaction_speed_deficit"] for e in rows]),
            "z1_loglik": _mean([e["z1_loglik"] for e in rows]),
            "z2_loglik": _mean([e["z2_loglik"] for e in rows]),
            "noise_loglik": _mean([e.get("noise_loglik") for e in rows]),
            "dynamics_violation_rate": _mean([e["dynamics_violation_rate"] for e in rows]),
            "steps_to_goal": float(np.mean(reached)) if reached else None,
            "seconds_per_scenario": float(np.mean([e["seconds"] for e in rows])),
            **{key: _mean([e.get(key) for e in rows]) for key in TASK_MEANS},
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


# ------------------------------------------------------------------------------------------------ writers
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("episodes", "n", "d"),
    ("goal_rate", "goal", "pct"),
    ("success_rate", "success", "pct"),
    ("static_collision_rate", "static coll.", "pct"),
    ("pedestrian_collision_rate", "ped. coll.", "pct"),
    ("target_min_distance", "target min-dist (m)", ".2f"),
    ("attack_success_rate", "attack success", "pct"),
    ("interaction_deviation", "ped. deviation (m)", ".2f"),
    ("interaction_speed_deficit", "ped. slow-down", "pct"),
    ("z1_loglik", "z1 log-lik", ".1f"),
    ("z2_loglik", "z2 log-lik", ".1f"),
    ("noise_loglik", "noise log-lik", ".1f"),
    ("dynamics_violation_rate", "dyn. viol.", "pct"),
    ("steps_to_goal", "steps to goal", ".0f"),
    ("seconds_per_scenario", "s / scenario", ".1f"),
)


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "d":
        return str(int(value))
    if kind == "pct":
        return f"{100 * float(value):.0f}%"
    return format(float(value), kind)


TASK_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "navigate": (
        ("spl", "SPL", ".2f"),
        ("static_collisions_per_100m", "static / 100 m", ".1f"),
        ("time_within_0.5m", "< 0.5 m (s)", ".1f"),
        ("time_within_1.2m", "< 1.2 m (s)", ".1f"),
        ("localisation_consistency", "loc. consistent", "pct"),
        ("replan_ms_median", "re-plan ms (median)", ".0f"),
        ("replan_ms_p95", "re-plan ms (p95)", ".0f"),
    ),
    "explore": (
        ("static_collisions", "static coll. / episode", ".2f"),
        ("coverage_m2", "coverage (m2)", ".1f"),
        ("replan_ms_median", "re-plan ms (median)", ".0f"),
    ),
    "goal-image": (),
}


def markdown_table(summary: dict[str, dict[str, Any]], task: str = "goal-image") -> str:
    """The per-method summary as a GitHub Markdown table (rates in %, '–' where undefined); ``task`` adds its
    columns (:data:`TASK_COLUMNS`)."""
    columns = TABLE_COLUMNS + TASK_COLUMNS[task]
    header = "| method | " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|---|" + "|".join("---:" for _ in columns) + "|"
    lines = [header, rule]
    for method, row in summary.items():
        cells = [_fmt(row.get(key), kind) for key, _, kind in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    return value


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """``data`` as indented JSON; numpy values become plain numbers, non-finite floats ``null``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(data), indent=2) + "\n")
    return path


# ------------------------------------------------------------------------------------------------ scenes
def evaluation_scenes(num: int, seed: int = 0, config=None) -> list:
    """``num`` held-out scenes with at least one pedestrian: scene seeds ``EVAL_SEED_BASE + 1000 * seed + i`` for
    i = 0, 1, ... (scenes without pedestrians skipped). Raises ``RuntimeError`` after ``50 * num`` draws."""
    from navintent.sim import generate_scene

    scenes = []
    base = EVAL_SEED_BASE + 1000 * int(seed)
    for i in range(50 * num):
        scene = generate_scene(base + i, config)
        if scene.num_pedestrians:
            scenes.append(scene)
            if len(scenes) == num:
                return scenes
    raise RuntimeError(
        f"found only {len(scenes)} scenes with pedestrians among seeds {base}..{base + 50 * num - 1}"
    )


def free_walk(scene, steps: int) -> np.ndarray:
    """Pedestrians' world positions ``[steps + 1, N, 2]`` when they ignore the robot (``robot_strength = 0``)."""
    from navintent.sim import World

    cfg = scene.config
    quiet = dataclasses.replace(
        scene, config=cfg.replace(pedestrians=cfg.pedestrians.replace(robot_strength=0.0))
    )
    world = World(quiet)
    out = [world.ped_positions]
    for _ in range(steps):
        world.step(0.0, 0.0)
        out.append(world.ped_positions)
    return np.array(out).reshape(steps + 1, scene.num_pedestrians, 2)


def target_pedestrian(scene, free: np.ndarray) -> int:
    """Index of the pedestrian whose robot-free walk ``free [S+1, N, 2]`` comes closest to the expert's plan."""
    if scene.num_pedestrians == 0:
        raise ValueError(f"scene {scene.seed} has no pedestrian to target")
    d = np.linalg.norm(free[:, :, None, :] - scene.path[None, None], axis=-1)  # [S+1, N, P]
    return int(d.min(axis=(0, 2)).argmin())


def reference_from_plan(
    path: np.ndarray, pose: np.ndarray, horizon: int, spacing: float, ref_dim: int
) -> np.ndarray:
    """The expert's plan as Encoder1's reference at ``pose``: ``[horizon, ref_dim]`` in spacing units, robot frame.

    Rows are the plan's points ``spacing``, ``2 * spacing``, ... metres of arc length beyond the robot's projection
    on it (the goal once past the end) — what ``ref_mode="future"`` training data hold: the next positions one frame
    apart. ``ref_dim`` 4 appends cos/sin of the path heading relative to the robot's yaw.
    """
    from navintent.sim import to_robot_frame
    from navintent.sim.planner import point_at_arc_length, project_on_path

    if ref_dim not in (2, 4):
        raise ValueError(f"ref_dim must be 2 or 4, got {ref_dim}")
    s0 = project_on_path(path, np.asarray(pose[:2], dtype=np.float64))
    pts = point_at_arc_length(path, s0 + spacing * np.arange(1, horizon + 1))
    local = to_robot_frame(pts, pose) / spacing
    if ref_dim == 2:
        return local
    prev = np.vstack([np.asarray(pose[:2])[None], pts[:-1]])
    step = pts - prev
    heading = np.where(np.linalg.norm(step, axis=1) > 1e-9, np.arctan2(step[:, 1], step[:, 0]), pose[2])
    rel = heading - pose[2]
    return np.concatenate([local, np.cos(rel)[:, None], np.sin(rel)[:, None]], axis=1)


class _ObservedRenderer:
    """Wraps a :class:`navintent.sim.render.SceneRenderer` and records the state of every rendered frame (the
    rollout renders once per step, before asking the policy): ``poses`` and ``peds`` (world)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.poses: list[np.ndarray] = []
        self.peds: list[np.ndarray] = []

    def goal_image(self) -> np.ndarray:
        return self.inner.goal_image()

    def render(self, pose, ped_positions, camera: str = "robot_cam") -> np.ndarray:
        self.poses.append(np.array(pose, dtype=np.float64))
        self.peds.append(np.array(ped_positions, dtype=np.float64))
        return self.inner.render(pose, ped_positions, camera)

    def close(self) -> None:
        self.inner.close()


class _PedestrianTracker:
    """Replays the episode's pedestrians incrementally along the observed robot poses (as
    :func:`navintent.sim.world.predict_agents_at` does from scratch) so predictions cost O(1) per step."""

    def __init__(self, scene) -> None:
        from navintent.sim import World

        self.world = World(scene)
        self.k = 0

    def sync(self, poses: list[np.ndarray], peds: list[np.ndarray]) -> None:
        world, robot = self.world, self.world.config.robot
        if self.k == 0:
            world.pose = poses[0].copy()
        while self.k < len(poses) - 1:
            world.ped_state = world.pedestrians.step(world.ped_state, robot.dt, world.pose[:2], robot.radius)
            self.k += 1
            world.pose = poses[self.k].copy()
            world.t = self.k
        if not np.allclose(world.ped_positions, peds[-1], atol=1e-9):
            raise RuntimeError(f"pedestrian replay diverged from the rollout at step {self.k}")

    def predict(self, horizon: int) -> np.ndarray:
        """World positions ``[horizon, N, 2]`` after the current step (robot held still)."""
        return self.world.predict_agents(horizon)


# ------------------------------------------------------------------------------------------------ closed loop
class ClosedLoopPolicy:
    """``policy_fn`` for :func:`navintent.sim.rollout.rollout` implementing one method (module docstring).
    ``goal_masked``: the goal token is hidden (exploration; the goal image is then ignored).

    After the episode: ``z1_loglik`` / ``z2_loglik`` / ``noise_loglik`` / ``plans`` lists per control step,
    ``reoptimisations``, ``optimisation_seconds`` (per re-optimisation). Noise methods hold ``noise_star`` (the
    optimised noise of all draws, the next warm start) and ``noise_exec`` (the best draw's, executed).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        method: str,
        scene,
        observer: _ObservedRenderer,
        *,
        config: EvalConfig,
        metric_scale: float,
        target: int,
        seed: int,
        budget_s: float | None = None,
        progress: bool = False,
        goal_masked: bool = False,
    ) -> None:
        import torch

        from navintent.diffusion import build_sampler
        from navintent.steering import Z2OptimConfig

        if method not in METHODS or method == "expert":
            raise ValueError(f"ClosedLoopPolicy method must be one of {list(METHODS[1:])}, got {method!r}")
        if method in LATENT_METHODS and not loaded.is_intent:
            raise ValueError(f"method {method!r} needs a two-stage intent checkpoint (Encoder1/Encoder2)")
        self.loaded, self.model, self.method, self.scene = loaded, loaded.model, method, scene
        self.observer, self.config = observer, config
        self.metric_scale, self.target = float(metric_scale), int(target)
        self.device = next(self.model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.sampler = build_sampler(self.model.scheduler_config, kind="ddpm", clip="hard")
        self.opt_sampler = build_sampler(self.model.scheduler_config, kind="ddpm", clip="straight_through")
        self.dt_wp = scene.config.robot.dt * loaded.waypoint_spacing
        self.opt_config = Z2OptimConfig(
            steps=config.opt_steps, lr=config.lr, draws=config.draws, lambda_cfg=config.lambda_cfg,
            dt=self.dt_wp, success_radius=config.safety_radius, noise_lr=config.noise_lr,
            noise_nll_weight=config.noise_nll_weight, noise_space=config.noise_space,
        )  # fmt: skip
        self.budget_s = budget_s
        self.progress = progress
        self.goal_masked = bool(goal_masked)
        self.tracker = _PedestrianTracker(scene) if method in STEERING_METHODS else None
        self.calls = 0
        self.z2_star = None
        self.guide_scale = None
        self.z1_loglik: list[float] = []
        self.z2_loglik: list[float] = []
        self.noise_loglik: list[float] = []
        self.noise_star = None
        self.noise_exec = None
        self.plans: list[np.ndarray] = []
        self.reoptimisations = 0
        self.optimisation_seconds: list[float] = []

    # --- pieces ---------------------------------------------------------------------------------------
    def _target_future(self):
        """Target's positions ``[1, T, 1, 2]`` (m, current robot frame) at the waypoint times."""
        import torch

        from navintent.sim import to_robot_frame

        self.tracker.sync(self.observer.poses, self.observer.peds)
        t_pred, ws = self.model.config.len_traj_pred, self.loaded.waypoint_spacing
        future = self.tracker.predict(t_pred * ws)[ws - 1 :: ws, self.target]  # [T, 2]
        local = to_robot_frame(future, self.observer.poses[-1])
        return torch.as_tensor(local, dtype=torch.float32, device=self.device).view(1, t_pred, 1, 2)

    def _adapter(self, obs, goal, ref, z1):
        import torch

        from navintent.objectives import Objective
        from navintent.steering import DiffusionAdapter, Scenarios

        sc = Scenarios(
            obs_img=obs,
            goal_img=goal,
            metric_scale=torch.tensor([self.metric_scale], device=self.device),
            goal_mask=torch.full((1,), int(self.goal_masked), dtype=torch.long, device=self.device),
            ref_traj=ref,
            ref_mask=None if ref is None else torch.ones(1, device=self.device),
            agents=self._target_future(),
            agents_mask=torch.ones(1, 1, device=self.device),
            z1=z1,
        )
        return DiffusionAdapter(
            self.model, sc, Objective(self.config.objective), sampler=self.opt_sampler, draws=self.config.draws,
            lambda_cfg=self.config.lambda_cfg, dt=self.dt_wp, z2_stats=self.loaded.z2_stats,
            generator=self.generator, noise_space=self.config.noise_space,
        )  # fmt: skip

    def _reoptimise(self, adapter) -> None:
        from navintent.steering import methods as optimize

        start = time.perf_counter()
        budget = self.budget_s if self.budget_s is not None else 1.0
        if self.z2_star is not None and self.method not in ("guided", "noise"):
            adapter.z2_init = self.z2_star.clone()  # warm start (the realism anchor stays Encoder2's output)
        if self.noise_star is not None:
            adapter.noise = self.noise_star  # warm start from the previous optimised noise
        if self.method == "adam":
            result = optimize.optimize_adam(adapter, self.opt_config, progress=False)
        elif self.method in NOISE_STEERING:
            result = optimize.optimize_noise(
                adapter, budget, self.opt_config, with_z2=self.method == "z2+noise", progress=False
            )
            self.noise_star = result.noise
            self.noise_exec = self._best_draw(adapter, result)
        elif self.method == "best_of_n":
            result = optimize.best_of_n(adapter, budget, self.opt_config, self.generator)
        elif self.method == "cem":
            result = optimize.cem(adapter, budget, self.opt_config, self.generator)
        else:
            result = optimize.guided_baseline(adapter, budget, self.opt_config, self.generator)
            self.guide_scale = result.guide_scale.detach()
        self.z2_star = result.z2.detach()
        self.reoptimisations += 1
        self.optimisation_seconds.append(time.perf_counter() - start)

    def _best_draw(self, adapter, result):
        """The optimised draw with the lowest loss (objective + weighted noise realism) as a one-row noise."""
        import torch

        from navintent.diffusion import SamplerNoise

        with torch.no_grad():
            per_draw = adapter.loss_given_z2(result.z2, noise=result.noise).per_draw[0]
            nll = adapter.noise_nll(result.noise, self.opt_config.noise_space)[0]
            per_draw = per_draw + self.opt_config.noise_nll_weight * nll
        k = int(per_draw.argmin())
        return SamplerNoise(result.noise.x_T[k : k + 1].clone(), result.noise.steps[:, k : k + 1].clone())

    def _record_noise(self, noise) -> None:
        from navintent.objectives import noise_nll

        vec = self.sampler.noise_vector(noise, self.config.noise_space)
        self.noise_loglik.append(-float(noise_nll(vec)[0]))

    def _sample(self, cond, z2, noise=None):
        """One executed sample: waypoints ``[T, 2]`` (m) from ``noise`` (None: a fresh draw)."""
        import torch

        from navintent.diffusion import policy_eps_fn
        from navintent.objectives import deltas_to_metric

        cfg = self.model.config
        if noise is None:
            noise = self.sampler.draw_noise(
                (1, cfg.len_traj_pred, cfg.action_dim), generator=self.generator, device=self.device
            )
        self._record_noise(noise)
        lam = self.config.lambda_cfg if z2 is not None else 0.0
        with torch.no_grad():
            x = self.sampler.sample(policy_eps_fn(self.model, cond, z2, lambda_cfg=lam), noise)
        return deltas_to_metric(x, cfg.action_min, cfg.action_max, self.metric_scale)[0]

    # --- the policy ------------------------------------------------------------------------------------
    def __call__(self, context: np.ndarray, goal_image: np.ndarray) -> np.ndarray:
        import torch

        from navintent.objectives import gaussian_nll, standard_normal_nll

        mc = self.model.config
        step = self.calls
        self.calls += 1
        obs = torch.from_numpy(prepare_frames(context, mc.image_size))[None].to(self.device)
        goal = torch.from_numpy(prepare_frames(goal_image[None], mc.image_size))[None].to(self.device)
        goal_mask = torch.full((1,), int(self.goal_masked), dtype=torch.long, device=self.device)
        with torch.no_grad():
            cond, tokens = self.model.encode(obs, goal, goal_mask, return_tokens=True)
        z1 = z2 = ref = None
        if self.method == "prior":
            z1 = torch.zeros(1, self.model.z1_dim, device=self.device)
        elif self.method != "nomad" and self.loaded.is_intent:
            plan = reference_from_plan(
                self.scene.path, self.observer.poses[-1], self.loaded.ref_horizon, self.metric_scale,
                self.model.intent_config.ref_dim,
            )  # fmt: skip
            ref = torch.as_tensor(plan, dtype=torch.float32, device=self.device)[None]
            with torch.no_grad():
                z1, _ = self.model.posterior(tokens, goal_mask.bool(), ref, None)
        if z1 is not None:
            with torch.no_grad():
                z2 = self.model.z2_from_tokens(z1, tokens)
        waypoints = None
        if self.method in STEERING_METHODS:
            if step % self.config.replan_every == 0 or (self.method == "guided"):
                adapter = self._adapter(obs, goal, ref, z1)
                if step % self.config.replan_every == 0:
                    self._reoptimise(adapter)
                if self.method == "guided":
                    noise = adapter.draw_noise(1, self.generator)
                    self._record_noise(noise)
                    out = adapter.guided(self.guide_scale, noise=noise)
                    waypoints = out.waypoints[0, 0].detach()
            if self.method not in ("guided", "noise"):
                z2 = self.z2_star
            if self.method == "noise" and z2 is None:  # a plain policy: the adapter's z = 0
                z2 = torch.zeros(1, self.model.z_dim, device=self.device)
        if waypoints is None:
            waypoints = self._sample(cond, z2, self.noise_exec)
        if z1 is not None:
            self.z1_loglik.append(-float(standard_normal_nll(z1)[0]))
        if z2 is not None and self.loaded.z2_stats is not None:
            self.z2_loglik.append(-float(gaussian_nll(z2, *self.loaded.z2_stats)[0]))
        wp = waypoints.detach().cpu().double().numpy()
        self.plans.append(wp)
        return wp


def _episode_row(
    method: str, scene, result, free: np.ndarray, target: int, seconds: float, policy: ClosedLoopPolicy | None
) -> dict[str, Any]:
    m = result.metrics
    steps = len(result.poses) - 1
    intensity = interaction_intensity(result.agents, free[: steps + 1], scene.config.robot.dt)
    dist = np.linalg.norm(result.agents[:, target] - result.poses[:, :2], axis=-1)
    row: dict[str, Any] = {
        "method": method,
        "scene_seed": int(scene.seed),
        "target": int(target),
        "goal_reached": bool(m.goal_reached),
        "success": bool(m.success),
        "static_collision": m.static_collisions > 0,
        "static_collision_steps": int(m.static_collisions),
        "pedestrian_collision": m.pedestrian_collisions > 0,
        "pedestrian_collisions": int(m.pedestrian_collisions),
        "steps": int(m.steps),
        "path_length": float(m.path_length),
        "final_distance": float(m.final_distance),
        "target_min_distance": float(dist.min()),
        "target_closest_step": int(dist.argmin()),
        "min_distance_any": float(np.min(m.min_distance)) if len(m.min_distance) else None,
        "min_ttc": float(m.min_ttc),
        "interaction_deviation": float(intensity["deviation"].max()),
        "interaction_speed_deficit": float(intensity["speed_deficit"].mean()),
        "target_deviation": float(intensity["deviation"][target]),
        "seconds": float(seconds),
        "z1_loglik": None,
        "z2_loglik": None,
        "noise_loglik": None,
        "dynamics_violation_rate": None,
        "reoptimisations": 0,
        "optimisation_seconds": None,
        "attack_success": None,
    }
    if policy is not None:
        row["z1_loglik"] = _mean(policy.z1_loglik)
        row["z2_loglik"] = _mean(policy.z2_loglik)
        row["noise_loglik"] = _mean(policy.noise_loglik)
        if policy.plans:
            row["dynamics_violation_rate"] = float(
                dynamics_violations(np.stack(policy.plans), policy.dt_wp).mean()
            )
        row["reoptimisations"] = policy.reoptimisations
        row["optimisation_seconds"] = _mean(policy.optimisation_seconds)
    return row


@dataclass
class Episode:
    """One closed-loop run: the metrics ``row`` and the tracks for plots (``poses [S+1, 3]``, ``agents [S+1, N, 2]``)."""

    row: dict[str, Any]
    poses: np.ndarray
    agents: np.ndarray


def run_episode(
    loaded: LoadedModel | None,
    method: str,
    scene,
    *,
    config: EvalConfig,
    metric_scale: float,
    max_steps: int,
    free: np.ndarray,
    target: int,
    budget_s: float | None = None,
    recorded: RecordedMap | None = None,
) -> tuple[Episode, ClosedLoopPolicy | None]:
    """Drive ``scene`` with ``method`` for at most ``max_steps`` steps in ``config.task``; ``free`` =
    :func:`free_walk` over at least ``max_steps`` steps; ``recorded``: the expert's map (task ``navigate``).
    Returns the episode and the policy (None for the expert).

    ``navigate``: each tick a :class:`navintent.deploy.TopomapNavigator` localises the context on the map (one
    batched vision pass over its window) and the method plans towards the subgoal node's image; the episode ends
    when the navigator declares the goal (it then stands still) or after ``max_steps``. ``explore``: the method
    plans goal-masked for ``explore_steps`` steps. The task's metrics (:mod:`navintent.evaluation.tasks`) join the
    row; for ``navigate`` ``goal_reached`` / ``success`` are the navigator's (declared within 1 m of the goal)."""
    from navintent.deploy import DeployStep, TopomapNavigator
    from navintent.evaluation.tasks import TaskEpisode, exploration_metrics, navigation_metrics
    from navintent.sim.render import SceneRenderer
    from navintent.sim.rollout import rollout, run_expert

    task = config.task
    if task == "navigate" and method != "expert" and recorded is None:
        raise ValueError("task 'navigate' needs the recorded map (recorded=)")
    start = time.perf_counter()
    steps: list = []
    declared: list[int] = []
    if method == "expert":
        result = run_expert(scene, max_steps=config.explore_steps if task == "explore" else max_steps)
        policy = None
    else:
        observer = _ObservedRenderer(SceneRenderer(scene))
        try:
            policy = ClosedLoopPolicy(
                loaded, method, scene, observer, config=config, metric_scale=metric_scale, target=target,
                seed=config.seed * 100_003 + scene.seed, budget_s=budget_s, goal_masked=task == "explore",
            )  # fmt: skip
            policy_fn, should_stop, horizon = policy, None, max_steps
            if task == "navigate":
                navigator = TopomapNavigator(
                    loaded.model, recorded.topomap, radius=config.radius, close_threshold=config.close_threshold,
                    metric_scale=metric_scale, waypoint_index=config.waypoint_index,
                )  # fmt: skip
                t_pred = loaded.model.config.len_traj_pred

                def policy_fn(context: np.ndarray, goal_image: np.ndarray) -> np.ndarray:
                    t0 = time.perf_counter()
                    loc = navigator.localise(list(context))
                    if loc.reached_goal:
                        declared.append(len(steps))
                        waypoints = np.zeros((t_pred, 2))  # stand still: the navigator is at the goal
                    else:
                        waypoints = policy(context, recorded.topomap.images[loc.subgoal_node])
                    ms = (time.perf_counter() - t0) * 1000.0
                    steps.append(DeployStep(True, waypoints[config.waypoint_index], None, None, ms,
                                            loc.closest_node, loc.subgoal_node, loc.window, loc.distances,
                                            loc.reached_goal))  # fmt: skip
                    return waypoints

                def should_stop() -> bool:
                    return bool(declared)

            elif task == "explore":
                horizon = config.explore_steps
                plan = policy

                def policy_fn(context: np.ndarray, goal_image: np.ndarray) -> np.ndarray:
                    t0 = time.perf_counter()
                    waypoints = plan(context, goal_image)
                    steps.append(
                        DeployStep(
                            True,
                            waypoints[config.waypoint_index],
                            latency_ms=(time.perf_counter() - t0) * 1000.0,
                        )
                    )
                    return waypoints

            result = rollout(
                policy_fn, scene, horizon, context_size=loaded.model.config.context_size,
                waypoint_index=config.waypoint_index, renderer=observer, should_stop=should_stop,
            )  # fmt: skip
        finally:
            observer.close()
    seconds = time.perf_counter() - start
    row = _episode_row(method, scene, result, free, target, seconds, policy)
    if method != "expert" and task != "goal-image":
        episode = TaskEpisode(
            task,
            scene,
            result.poses,
            result.agents,
            result.static_hits,
            steps,
            declared[0] if declared else None,
        )
        if task == "navigate":
            extra = navigation_metrics(episode, recorded.path_length, target=target)
            row["goal_reached"], row["success"] = extra.pop("goal_reached"), extra.pop("success")
        else:
            extra = exploration_metrics(episode)
        row.update({k: v for k, v in extra.items() if k not in row or k in TASK_MEANS})
    return Episode(row, result.poses, result.agents), policy


def resolve_methods(requested: tuple[str, ...], loaded: LoadedModel, *, explicit: bool) -> tuple[str, ...]:
    """Methods this checkpoint can run, in ``METHODS`` order. Latent methods need an intent model: an explicit
    request for them raises ``ValueError``; the default set drops them with a note on stderr."""
    if not loaded.is_intent:
        missing = [m for m in requested if m in LATENT_METHODS]
        if missing and explicit:
            raise ValueError(
                f"methods {missing} need a two-stage intent checkpoint; {loaded.source} holds a plain NoMaD policy"
            )
        if missing:
            print(f"note: {loaded.source} has no intent encoders; skipping {missing}", file=sys.stderr)
        requested = tuple(m for m in requested if m not in LATENT_METHODS)
    return tuple(m for m in METHODS if m in requested)


@dataclass
class SceneResult:
    """One scene's episodes (methods in order), its ``target`` pedestrian, the robot-free walk ``free`` and the
    expert's step count (for the report and plots)."""

    index: int
    scene: Any
    target: int
    free: np.ndarray
    expert_steps: int
    episodes: dict[str, Episode]


def evaluate_scene(
    loaded: LoadedModel, config: EvalConfig, methods: tuple[str, ...], metric_scale: float, index: int
) -> SceneResult:
    """Every method in held-out scene ``index`` of ``evaluation_scenes(config.scenes, config.seed)`` (a pure
    function of its arguments, so scenes can run in any process): the expert's run sets the step budget, the
    map is recorded for ``navigate``, Adam's mean re-optimisation time budgets the baselines (``budget_s`` 0), and
    attack success is judged against the nominal episode of the same scene."""
    from navintent.sim.rollout import run_expert

    scene = evaluation_scenes(config.scenes, config.seed)[index]
    expert = run_expert(scene, max_steps=400)
    max_steps = min(
        config.max_episode_steps,
        max(config.min_steps, int(math.ceil(config.step_factor * expert.metrics.steps))),
    )
    free = free_walk(scene, max(max_steps, 400, config.explore_steps))
    target = target_pedestrian(scene, free)
    recorded = None
    if config.task == "navigate":
        from navintent.evaluation.tasks import record_topomap
        from navintent.sim.render import SceneRenderer

        with contextlib.closing(SceneRenderer(scene)) as renderer:
            recorded = record_topomap(scene, renderer, every_frames=config.map_every)
    scene_eps: dict[str, Episode] = {}
    adam_budget = None
    for method in methods:
        budget = config.budget_s if config.budget_s > 0 else adam_budget
        ep, policy = run_episode(
            loaded, method, scene, config=config, metric_scale=metric_scale, max_steps=max_steps,
            free=free, target=target, budget_s=budget, recorded=recorded,
        )  # fmt: skip
        if method == "adam" and policy is not None and policy.optimisation_seconds:
            adam_budget = float(np.mean(policy.optimisation_seconds))
        scene_eps[method] = ep
    nominal = scene_eps.get(NOMINAL)
    if nominal is not None:
        for ep in scene_eps.values():
            ep.row["attack_success"] = attack_success(
                ep.row["target_min_distance"], nominal.row["target_min_distance"], config.safety_radius
            )
    return SceneResult(index, scene, target, free, expert.metrics.steps, scene_eps)


def _scene_worker(job: tuple) -> SceneResult:
    loaded, config, methods, metric_scale, index, threads = job
    with torch_threads(threads):
        return evaluate_scene(loaded, config, methods, metric_scale, index)


# Metrics of the ``closed_loop`` JSON block (mean, 95% bootstrap interval, count per task and method), from the
# episode rows' keys.
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
    from navintent.evaluation.statistics import summarise

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
    from navintent.evaluation.statistics import paired_comparison

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


def evaluate(
    loaded: LoadedModel,
    config: EvalConfig,
    out_dir: str | Path,
    *,
    methods: tuple[str, ...] | None = None,
    plots: bool = True,
    progress: bool = True,
    meta: dict[str, Any] | None = None,
    scale: MetricScale | None = None,
    workers: int = 1,
    threads: int = 1,
) -> dict[str, Any]:
    """Run the closed-loop evaluation and write ``metrics.json``, ``results.md`` and plots into ``out_dir``.

    ``scale``: metres per unit already resolved by the caller (with its source); None = ``config.metric_scale``
    when > 0, else the checkpoint's (:func:`navintent.metric_scale.resolve_metric_scale`). ``workers``: scenes run
    in that many processes (spawned; ``threads`` torch threads each); every scene is a pure function of its index
    and seed (:func:`evaluate_scene`), so the rows are the same for any worker count, except the time-budgeted
    baselines (best-of-N, CEM, guided, noise at ``budget_s`` 0 or a wall-clock budget), whose work depends on the
    machine's speed. Under ``torchrun`` (``WORLD_SIZE`` > 1) rank ``r`` takes scenes ``r, r + W, ...`` and rank 0
    gathers them (gloo) and writes the report.
    Returns ``{"config", "metric_scale", "metric_scale_source", "scenes", "summary", "closed_loop", "paired",
    "episodes", "table", ...meta}``; ``closed_loop[task][method][metric] = {"mean", "ci95", "n"}``.
    """
    import multiprocessing

    from tqdm import tqdm

    check_positive_int("workers", workers)
    out = Path(out_dir)
    methods = methods or config.methods
    if scale is None:
        scale = resolve_metric_scale(explicit=config.metric_scale or None, checkpoint=loaded.training_scales)
    metric_scale = scale.metres_per_unit
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    mine = list(range(rank, config.scenes, world))
    jobs = [(loaded, config, tuple(methods), metric_scale, i, threads) for i in mine]
    bar = tqdm(total=len(jobs), desc="closed loop", unit="scene", disable=not progress or rank != 0)
    results: list[SceneResult] = []
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for res in pool.imap_unordered(_scene_worker, jobs):
                results.append(res)
                bar.update(1)
            pool.close()  # let the workers exit on their own (terminate() would leave their semaphores behind)
            pool.join()
    else:
        for job in jobs:
            results.append(_scene_worker(job))
            bar.update(1)
    bar.close()
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        gathered: list[Any] = [None] * world if rank == 0 else None
        dist.gather_object(results, gathered, dst=0)
        if rank != 0:
            return {"rank": rank, "scenes": [r.index for r in results]}
        results = [r for part in gathered for r in part]
    results.sort(key=lambda r: r.index)
    out.mkdir(parents=True, exist_ok=True)
    episodes = [ep for r in results for ep in r.episodes.values()]
    rows = [e.row for e in episodes]
    summary = aggregate(rows, tuple(methods))
    table = markdown_table(summary, config.task)
    report: dict[str, Any] = {
        **(meta or {}),
        "config": config.to_dict(),
        "methods": list(methods),
        "metric_scale": metric_scale,
        "metric_scale_source": scale.source,
        "nominal": NOMINAL if NOMINAL in methods else None,
        "workers": workers,
        "scenes": [
            {
                "seed": int(r.scene.seed),
                "pedestrians": r.scene.num_pedestrians,
                "target": int(r.target),
                "expert_steps": r.expert_steps,
            }
            for r in results
        ],  # fmt: skip
        "summary": summary,
        "closed_loop": {config.task: closed_loop_statistics(rows, tuple(methods))},
        "paired": paired_steering_comparisons(rows, tuple(methods)),
        "episodes": rows,
        "table": table,
    }
    write_json(out / "metrics.json", report)
    (out / "results.md").write_text(
        f"# Closed-loop evaluation, task `{config.task}`\n\n{len(results)} held-out scenes (seeds "
        f"{[r.scene.seed for r in results]}), metric scale {metric_scale:.4f} m per unit, safety radius "
        f"{config.safety_radius} m, nominal `{NOMINAL}`.\n\n{table}\n{ci_table(report['closed_loop'][config.task])}"
    )
    if plots:
        from navintent.viz import plot_closed_loop, plot_summary_bars

        report["plots"] = []
        for r in results[: config.max_plots]:
            path = out / f"closed_loop_{r.scene.seed}.png"
            tracks = {m: (e.poses, e.agents, e.row) for m, e in r.episodes.items()}
            plot_closed_loop(path, r.scene, tracks, r.free, r.target, config.safety_radius)
            report["plots"].append(path.name)
        plot_summary_bars(out / "summary.png", summary)
        report["plots"].append("summary.png")
        write_json(out / "metrics.json", report)
    return report


def ci_table(stats_by_method: dict[str, dict[str, Any]]) -> str:
    """Rates and means with their 95% bootstrap intervals, one row per method (Markdown)."""
    names = list(CLOSED_LOOP_METRICS)
    lines = ["| method | " + " | ".join(names) + " |", "|---|" + "|".join("---:" for _ in names) + "|"]
    for method, metrics in stats_by_method.items():
        cells = []
        for name in names:
            m = metrics[name]
            if m["mean"] is None:
                cells.append("–")
            else:
                lo, hi = m["ci95"]
                cells.append(f"{m['mean']:.2f} [{lo:.2f}, {hi:.2f}] (n={m['n']})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ experiments
def _experiment_setup(loaded: LoadedModel, scenes: int, seed: int, metric_scale: float | None):
    """Held-out open-loop scenarios (observation before an interaction), their condition/tokens and base z1.
    ``metric_scale`` None: the checkpoint's (:func:`navintent.metric_scale.resolve_metric_scale`)."""
    import torch

    from navintent.steering import sim_scenarios

    if not loaded.is_intent:
        raise ValueError(
            f"experiments need a two-stage intent checkpoint; {loaded.source} holds a plain NoMaD policy"
        )
    model = loaded.model
    device = next(model.parameters()).device
    sc, _ = sim_scenarios(
        model.config,
        scenes,
        EVAL_SEED_BASE + 1000 * seed + 500,
        waypoint_spacing=loaded.waypoint_spacing,
        metric_scale=metric_scale
        if metric_scale is not None
        else resolve_metric_scale(checkpoint=loaded.training_scales).metres_per_unit,
    )
    sc = sc.to(device)
    with torch.no_grad():
        cond, tokens = model.encode(sc.obs_img, sc.goal_img, None, return_tokens=True)
        z1, _ = model.posterior(tokens, None, None, None)  # reference-free Encoder1 mean
    return sc, cond, tokens, z1


def _sample_many(model, cond_rows, z2_rows, noise, metric_scale_rows):
    """Hard-clipped DDPM samples for prepared rows -> metres ``[R, T, 2]`` (numpy)."""
    import torch

    from navintent.diffusion import build_sampler, policy_eps_fn
    from navintent.objectives import deltas_to_metric

    sampler = build_sampler(model.scheduler_config, kind="ddpm", clip="hard")
    with torch.no_grad():
        x = sampler.sample(policy_eps_fn(model, cond_rows, z2_rows), noise)
    cfg = model.config
    return deltas_to_metric(x, cfg.action_min, cfg.action_max, metric_scale_rows).cpu().numpy()


def trajectory_spread(waypoints: np.ndarray) -> dict[str, float]:
    """Spread of ``[M, T, 2]`` samples (m): ``pairwise`` = mean over pairs of the mean pointwise distance,
    ``endpoint`` = mean distance of the final waypoints to their centroid. 0 for a single sample."""
    wp = np.asarray(waypoints, dtype=np.float64)
    m = wp.shape[0]
    if m < 2:
        return {"pairwise": 0.0, "endpoint": 0.0}
    d = np.linalg.norm(wp[:, None] - wp[None], axis=-1).mean(-1)  # [M, M]
    pairwise = d[np.triu_indices(m, 1)].mean()
    end = wp[:, -1]
    return {"pairwise": float(pairwise), "endpoint": float(np.linalg.norm(end - end.mean(0), axis=-1).mean())}


def run_diversity(
    loaded: LoadedModel, out_dir: str | Path, *, scenes: int = 4, samples: int = 16, seed: int = 0,
    metric_scale: float | None = None, plots: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """z1 fixed -> trajectory diversity. Conditions per scenario (``samples`` trajectories each): ``z1 fixed, noise
    varies`` (Encoder1's reference-free mean), ``z1 varies, noise fixed`` (z1 ~ N(0, I), one noise draw shared),
    ``z1 and noise vary``, ``no latent`` (NoMaD's own spread). Writes ``diversity.json``, ``diversity.md`` and
    ``diversity.png``."""
    import torch

    from navintent.diffusion import build_sampler

    model = loaded.model
    sc, cond, tokens, z1 = _experiment_setup(loaded, scenes, seed, metric_scale)
    device = cond.device
    gen = torch.Generator(device=device).manual_seed(seed)
    sampler = build_sampler(model.scheduler_config, kind="ddpm", clip="hard")
    cfg = model.config
    shape = (samples, cfg.len_traj_pred, cfg.action_dim)
    conditions = ("z1 fixed, noise varies", "z1 varies, noise fixed", "z1 and noise vary", "no latent")
    results: dict[str, Any] = {
        "samples": samples,
        "metric_scale": float(sc.metric_scale[0]),
        "scenarios": [],
        "summary": {},
    }
    trajectories: dict[str, list[np.ndarray]] = {c: [] for c in conditions}
    for b in range(sc.num):
        cond_b = cond[b : b + 1].repeat(samples, 1)
        tok_b = tokens[b : b + 1].repeat(samples, 1, 1)
        scale = sc.metric_scale[b].repeat(samples)
        noise = sampler.draw_noise(shape, generator=gen, device=device)
        one = sampler.draw_noise((1, *shape[1:]), generator=gen, device=device)
        shared = one.repeat_interleave(samples)
        z1_rand = torch.randn(samples, model.z1_dim, generator=gen, device=device)
        with torch.no_grad():
            z2_fixed = model.z2_from_tokens(z1[b : b + 1].repeat(samples, 1), tok_b)
            z2_rand = model.z2_from_tokens(z1_rand, tok_b)
        runs = {
            conditions[0]: _sample_many(model, cond_b, z2_fixed, noise, scale),
            conditions[1]: _sample_many(model, cond_b, z2_rand, shared, scale),
            conditions[2]: _sample_many(model, cond_b, z2_rand, noise, scale),
            conditions[3]: _sample_many(model, cond_b, None, noise, scale),
        }
        entry = {"name": sc.names[b], "spread": {c: trajectory_spread(w) for c, w in runs.items()}}
        results["scenarios"].append(entry)
        for c, w in runs.items():
            trajectories[c].append(w)
    for c in conditions:
        results["summary"][c] = {
            k: float(np.mean([s["spread"][c][k] for s in results["scenarios"]]))
            for k in ("pairwise", "endpoint")
        }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| condition | pairwise spread (m) | endpoint spread (m) |", "|---|---:|---:|"]
    lines += [f"| {c} | {v['pairwise']:.4f} | {v['endpoint']:.4f} |" for c, v in results["summary"].items()]
    results["table"] = "\n".join(lines) + "\n"
    (out / "diversity.md").write_text(f"# z1 fixed -> trajectory diversity\n\n{sc.num} scenarios, {samples} samples "
                                      f"each.\n\n{results['table']}")  # fmt: skip
    if plots:
        from navintent.viz import plot_diversity

        agents = sc.agents.cpu().numpy() if sc.agents is not None else None
        mask = sc.agents_mask.cpu().numpy() if sc.agents_mask is not None else None
        plot_diversity(out / "diversity.png", trajectories, results["summary"], sc.names, agents, mask)
        results["plot"] = "diversity.png"
    write_json(out / "diversity.json", results)
    return results


def executable(waypoints, obstacle_map, rows, dt: float, substeps: int = 4):
    """Which trajectories are executable: ``waypoints [R, T, 2]`` (torch, m, robot frame) -> bool tensors
    ``(collision_free [R], dynamics_ok [R])``. Collision-free: the occupancy map (1 where the robot disc touches a
    wall or obstacle), read bilinearly at ``substeps`` points per segment from the origin, stays below 0.5 everywhere.
    Dynamics: :data:`DYNAMICS_LIMITS` hold (:func:`navintent.objectives.dynamics` = 0)."""
    import torch

    from navintent.objectives import GridMap, ObjectiveContext, dynamics

    path = torch.cat([torch.zeros_like(waypoints[:, :1]), waypoints], dim=1)
    frac = torch.arange(1, substeps + 1, dtype=waypoints.dtype, device=waypoints.device) / substeps
    pts = path[:, :-1, None] + (path[:, 1:, None] - path[:, :-1, None]) * frac.view(1, 1, -1, 1)
    grid = obstacle_map
    if grid.values.shape[0] > 1:
        grid = GridMap(grid.values[rows], grid.origin, grid.resolution)
    occupancy = grid.sample(pts.flatten(1, 2)).amax(1)
    dyn = dynamics(waypoints, ObjectiveContext(dt=dt), **DYNAMICS_LIMITS)
    return occupancy < 0.5, dyn <= 0


def run_perturb(
    loaded: LoadedModel, out_dir: str | Path, *, scenes: int = 4, samples: int = 16, seed: int = 0,
    sigmas: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0), metric_scale: float | None = None,
    plots: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """z1 perturbed -> executable fraction. z1 = Encoder1's reference-free mean + sigma * N(0, I); the same noise
    draws and perturbation directions for every sigma (common random numbers). Writes ``perturb.json``,
    ``perturb.md`` and ``perturb.png``."""
    import torch

    from navintent.diffusion import build_sampler
    from navintent.objectives import GridMap

    model = loaded.model
    sc, cond, tokens, z1 = _experiment_setup(loaded, scenes, seed, metric_scale)
    device = cond.device
    gen = torch.Generator(device=device).manual_seed(seed)
    sampler = build_sampler(model.scheduler_config, kind="ddpm", clip="hard")
    cfg = model.config
    b, n = sc.num, samples
    rows = torch.arange(b, device=device).repeat_interleave(n)
    noise = sampler.draw_noise((b * n, cfg.len_traj_pred, cfg.action_dim), generator=gen, device=device)
    eps = torch.randn(b * n, model.z1_dim, generator=gen, device=device)
    dt = loaded.waypoint_dt
    results: dict[str, Any] = {
        "samples": samples,
        "metric_scale": float(sc.metric_scale[0]),
        "scenarios": sc.names,
        "sigmas": list(sigmas),
        "levels": [],
    }
    example: dict[float, np.ndarray] = {}
    grid_cpu = GridMap(sc.obstacle_map.values.cpu(), sc.obstacle_map.origin, sc.obstacle_map.resolution)
    for sigma in sigmas:
        z1_rows = z1[rows] + sigma * eps
        with torch.no_grad():
            z2 = model.z2_from_tokens(z1_rows, tokens[rows])
        wp = torch.from_numpy(_sample_many(model, cond[rows], z2, noise, sc.metric_scale[rows]))
        free, dyn_ok = executable(wp, grid_cpu, rows.cpu(), dt)
        ok = free & dyn_ok
        results["levels"].append(
            {
                "sigma": float(sigma),
                "executable": float(ok.float().mean()),
                "collision_free": float(free.float().mean()),
                "dynamics_ok": float(dyn_ok.float().mean()),
                "per_scenario_executable": ok.view(b, n).float().mean(1).tolist(),
                "spread": float(
                    np.mean([trajectory_spread(w)["pairwise"] for w in wp.view(b, n, -1, 2).numpy()])
                ),
            }
        )
        example[float(sigma)] = wp.view(b, n, -1, 2)[0].numpy()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "| sigma | executable | collision-free | within dynamics | spread (m) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {lv['sigma']:g} | {100 * lv['executable']:.0f}% | {100 * lv['collision_free']:.0f}% | "
        f"{100 * lv['dynamics_ok']:.0f}% | {lv['spread']:.3f} |"
        for lv in results["levels"]
    ]
    results["table"] = "\n".join(lines) + "\n"
    (out / "perturb.md").write_text(f"# z1 perturbed -> executable fraction\n\n{b} scenarios x {n} samples per "
                                    f"sigma.\n\n{results['table']}")  # fmt: skip
    if plots:
        from navintent.viz import plot_perturb

        occ = sc.obstacle_map.values[0].cpu().numpy()
        plot_perturb(out / "perturb.png", results["levels"], example, occ, sc.obstacle_map.origin,
                     sc.obstacle_map.resolution, sc.names[0])  # fmt: skip
        results["plot"] = "perturb.png"
    write_json(out / "perturb.json", results)
    return results


# ------------------------------------------------------------------------------------------------ CLI
@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block, the previous count restored after it."""
    import torch

    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _parse_methods(text: str) -> tuple[tuple[str, ...], bool]:
    if text == "all":
        return METHODS, False
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ValueError(f"--methods: unknown {unknown or text!r}; choose from {list(METHODS)} or 'all'")
    return names, True


def _common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, help="native navintent checkpoint (or nomad.pth + --config)")
    p.add_argument("--config", default=None, help="nomad.yaml / config sections for a bare nomad.pth")
    p.add_argument("--trust-checkpoint", action="store_true", help="allow unpickling a packaged checkpoint")
    p.add_argument("--scenes", type=int, default=None, help="held-out scenes (evaluate: 8, experiment: 4)")
    p.add_argument("--seed", type=int, default=0, help="held-out scene set and sampling seed")
    add_metric_scale_arguments(p)
    p.add_argument(
        "--data-dir",
        default=None,
        help="training data root (or a config YAML with a datasets: block): its metric_waypoint_spacing gives the scale",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: batch-1 closed-loop inference gains nothing from more, and on a "
        "shared machine extra threads measured 5-50x slower)",
    )


def _load_for_cli(args: argparse.Namespace) -> tuple[LoadedModel, MetricScale]:
    """The checkpoint and the metric scale (``--metric-scale``, ``--data-dir``'s data, the checkpoint's record or
    ``--robot``'s deployment rule; printed)."""
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    from navintent.checkpoint import load_inference_model, resolve_device

    loaded = load_inference_model(
        args.ckpt,
        config=args.config,
        trust_checkpoint=args.trust_checkpoint,
        device=resolve_device(args.device),
    )
    data = data_dir_scales(args.data_dir, loaded.waypoint_spacing, what="--data-dir") if args.data_dir else ()
    return loaded, metric_scale_for_command(args, checkpoint=loaded.training_scales, data=data)


def run_evaluate_cli(args: argparse.Namespace) -> int:
    try:
        methods, explicit = _parse_methods(args.methods)
        if args.scenes is not None and args.scenes < 1:
            raise ValueError(f"--scenes must be >= 1, got {args.scenes}")
        loaded, scale = _load_for_cli(args)
        methods = resolve_methods(methods, loaded, explicit=explicit)
        config = EvalConfig(
            scenes=args.scenes or EvalConfig.scenes, seed=args.seed, methods=methods,
            replan_every=args.replan_every, opt_steps=args.opt_steps, lr=args.lr, draws=args.draws,
            objective=args.objective, budget_s=args.budget, safety_radius=args.safety_radius,
            lambda_cfg=args.lambda_cfg, metric_scale=scale.metres_per_unit, step_factor=args.step_factor,
            max_plots=args.max_plots, max_episode_steps=args.max_episode_steps, noise_lr=args.noise_lr,
            noise_nll_weight=args.noise_nll_weight, noise_space=args.noise_space, task=args.task,
            map_every=args.map_every, radius=args.radius, close_threshold=args.close_threshold,
            explore_steps=args.explore_steps,
        )  # fmt: skip
        from navintent.objectives import Objective

        Objective(config.objective)  # parse errors before any episode runs
    except (FileNotFoundError, ValueError) as err:
        print(f"navintent evaluate: error: {err}", file=sys.stderr)
        return 2
    with torch_threads(args.threads):
        report = evaluate(
            loaded, config, args.out_dir, plots=not args.no_plots, progress=not args.no_progress,
            meta={"ckpt": str(args.ckpt), "command": "navintent " + " ".join(sys.argv[1:])}, scale=scale,
            workers=args.workers, threads=args.threads,
        )  # fmt: skip
    if "table" not in report:  # a torchrun rank other than 0: rank 0 writes the report
        return 0
    print(report["table"])
    print(
        f"wrote {Path(args.out_dir) / 'metrics.json'}, results.md"
        + ("" if args.no_plots else " and PNG plots")
    )
    return 0


def run_experiment_cli(args: argparse.Namespace) -> int:
    try:
        if args.scenes is not None and args.scenes < 1:
            raise ValueError(f"--scenes must be >= 1, got {args.scenes}")
        if args.samples < 2:
            raise ValueError(f"--samples must be >= 2, got {args.samples}")
        if any(s < 0 for s in args.sigmas):
            raise ValueError(f"--sigmas must be >= 0, got {args.sigmas}")
        loaded, scale = _load_for_cli(args)
        if not loaded.is_intent:
            raise ValueError(
                f"experiments need a two-stage intent checkpoint; {args.ckpt} holds a plain NoMaD policy"
            )
    except (FileNotFoundError, ValueError) as err:
        print(f"navintent experiment: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out_dir)
    kinds = ("diversity", "perturb") if args.which == "all" else (args.which,)
    common = dict(scenes=args.scenes or 4, samples=args.samples, seed=args.seed, metric_scale=scale.metres_per_unit,
                  plots=not args.no_plots)  # fmt: skip
    for kind in kinds:
        with torch_threads(args.threads):
            if kind == "diversity":
                res = run_diversity(loaded, out, **common)
            else:
                res = run_perturb(loaded, out, sigmas=tuple(args.sigmas), **common)
        print(f"{kind}:\n{res['table']}")
    print(f"wrote {out}/" + ", ".join(f"{k}.json/.md" + ("" if args.no_plots else "/.png") for k in kinds))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="closed-loop evaluation in the built-in world: NoMaD, prior/reference latents, z2 steering methods",
        description="Closed loop in K held-out scenes of the built-in world for every method (expert, plain NoMaD, "
        "z1 from the prior / from the expert's plan, and z2 steered towards a target pedestrian by Adam, best-of-N, "
        "CEM or guided diffusion, or the diffusion noise optimised (noise, z2+noise), re-optimised every "
        "--replan-every steps). Writes metrics.json, results.md and "
        "plots; definitions in the navintent.evaluate module docstring.",
    )
    _common_arguments(p)
    p.add_argument("--out-dir", default="runs/evaluate", help="output folder (default %(default)s)")
    p.add_argument(
        "--task",
        choices=TASKS,
        default=EvalConfig.task,
        help="navigate: NoMaD's topological-map loop over a map the expert records without pedestrians; explore: "
        "goal-masked for --explore-steps; goal-image: one goal image of the final pose (default %(default)s)",
    )
    p.add_argument("--map-every", type=int, default=EvalConfig.map_every, help="frames between map nodes")
    p.add_argument(
        "--radius", type=int, default=EvalConfig.radius, help="nodes each side compared (NoMaD's -r)"
    )
    p.add_argument(
        "--close-threshold",
        type=float,
        default=EvalConfig.close_threshold,
        help="predicted distance (waypoint steps) below which the next node is the subgoal (NoMaD's -t)",
    )
    p.add_argument(
        "--explore-steps", type=int, default=EvalConfig.explore_steps, help="steps per explore episode"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="scenes run in this many processes, --threads torch threads each (default: all cores, %(default)s); "
        "results do not depend on it, except the wall-clock-budgeted baselines",
    )
    p.add_argument("--methods", default="all", help=f"comma list of {list(METHODS)} or 'all'")
    p.add_argument(
        "--replan-every", type=int, default=EvalConfig.replan_every, help="re-optimise z2 every N steps"
    )
    p.add_argument(
        "--opt-steps", type=int, default=EvalConfig.opt_steps, help="Adam steps per re-optimisation"
    )
    p.add_argument("--lr", type=float, default=EvalConfig.lr, help="Adam learning rate on z2")
    p.add_argument("--draws", type=int, default=EvalConfig.draws, help="noise draws per re-optimisation")
    p.add_argument(
        "--objective", default=DEFAULT_OBJECTIVE, help="steering objective (navintent.objectives spec)"
    )
    p.add_argument(
        "--budget", type=float, default=0.0, help="seconds per baseline re-optimisation (0 = Adam's)"
    )
    p.add_argument(
        "--safety-radius", type=float, default=EvalConfig.safety_radius, help="attack success radius (m)"
    )
    p.add_argument("--lambda-cfg", type=float, default=0.0, help="classifier-free guidance weight")
    from navintent.commands.optimize_z2 import add_noise_arguments

    add_noise_arguments(p)
    p.add_argument(
        "--step-factor", type=float, default=EvalConfig.step_factor, help="episode limit / expert steps"
    )
    p.add_argument(
        "--max-plots", type=int, default=EvalConfig.max_plots, help="scenes with a trajectory plot"
    )
    p.add_argument(
        "--max-episode-steps",
        type=int,
        default=EvalConfig.max_episode_steps,
        help="hard cap on episode length",
    )
    p.set_defaults(func=run_evaluate_cli)

    e = subparsers.add_parser(
        "experiment",
        help="the seed's latent experiments: z1 fixed -> diversity; z1 perturbed -> executable fraction",
        description="diversity: spread of trajectories with z1 fixed vs varied; perturb: fraction of trajectories "
        "still executable (collision-free, within dynamics limits) as z1 is perturbed by sigma * N(0, I).",
    )
    e.add_argument("which", choices=("diversity", "perturb", "all"))
    _common_arguments(e)
    e.add_argument("--out-dir", default="runs/experiment", help="output folder (default %(default)s)")
    e.add_argument("--samples", type=int, default=16, help="trajectories per scenario (and per sigma)")
    e.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0, 8.0])
    e.set_defaults(func=run_experiment_cli)


__all__ = [
    "EVAL_SEED_BASE",
    "METHODS",
    "ClosedLoopPolicy",
    "Episode",
    "EvalConfig",
    "aggregate",
    "attack_success",
    "dynamics_violations",
    "evaluate",
    "evaluation_scenes",
    "executable",
    "free_walk",
    "interaction_intensity",
    "markdown_table",
    "reference_from_plan",
    "run_diversity",
    "run_episode",
    "run_perturb",
    "target_pedestrian",
    "trajectory_spread",
    "write_json",
]
