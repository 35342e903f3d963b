"""What a closed-loop evaluation writes: the Markdown tables (per-method summary, 95% intervals), ``metrics.json``
(numpy values as plain numbers, non-finite floats ``null``), ``results.md`` and the plots
(``closed_loop_<scene seed>.png`` per scene up to ``max_plots``, ``summary.png``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from navintent.evaluation.config import NOMINAL, EvalConfig
from navintent.evaluation.metrics import CLOSED_LOOP_METRICS
from navintent.sim.config import SimConfig, sim_config_changes
from navintent.viz import plot_closed_loop, plot_summary_bars

if TYPE_CHECKING:  # annotations only (closed_loop imports this module's writers)
    from navintent.evaluation.closed_loop import SceneResult

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


def write_results_markdown(
    path: str | Path,
    config: EvalConfig,
    results: list[SceneResult],
    metric_scale: float,
    table: str,
    closed_loop: dict[str, dict[str, Any]],
    world: SimConfig | None = None,
) -> Path:
    """``results.md``: the scenes, the world's settings that differ from the built-in defaults (``world``; None:
    the defaults), metric scale (m per unit) and safety radius (m), the summary ``table`` and the interval table of
    ``closed_loop`` (``{method: {metric: {"mean", "ci95", "n"}}}`` of ``config.task``)."""
    path = Path(path)
    changes = sim_config_changes(world) if world is not None else []
    world_line = f" World: the built-in defaults except {', '.join(changes)}." if changes else ""
    loop = ""
    if config.task == "navigate":
        rule = (
            "the goal node is the closest (NoMaD's rule, `--stop-when-closest`)"
            if config.stop_when_closest
            else f"the goal node is the closest and its predicted distance is below {config.close_threshold:g}"
        )
        loop = (
            f" Topological map: a node every {config.map_every} frames, radius {config.radius}; the navigator "
            f"declares the goal when {rule}; it counts as reached within 1 m of the goal. Episodes of at most "
            f"{config.max_episode_steps} steps."
        )
    steering = (
        f" Held-out scene set `{config.scenario}`; steering: objective `{config.objective}`, re-optimised every "
        f"{config.replan_every} steps ({config.opt_steps} Adam steps, lr {config.lr:g}, {config.draws} draws), "
        f"hold `{config.hold}`, engage distance {config.engage_distance:g} m (0: always), target prediction "
        f"`{config.prediction}`."
    )
    path.write_text(
        f"# Closed-loop evaluation, task `{config.task}`\n\n{len(results)} held-out scenes (seeds "
        f"{[r.scene.seed for r in results]}), metric scale {metric_scale:.4f} m per unit, safety radius "
        f"{config.safety_radius} m, nominal `{NOMINAL}` (attack success counts only scenes where the nominal run "
        f"stayed outside the safety radius; – when there were none).{world_line}{loop}{steering}\n\n{table}\n"
        f"{ci_table(closed_loop)}"
    )
    return path


def write_plots(
    out: Path, config: EvalConfig, results: list[SceneResult], summary: dict[str, dict[str, Any]]
) -> list[str]:
    """A top-down plot per scene (the first ``config.max_plots``) and ``summary.png`` into ``out``; returns the
    file names written, in order."""
    names = []
    for r in results[: config.max_plots]:
        path = out / f"closed_loop_{r.scene.seed}.png"
        tracks = {m: (e.poses, e.agents, e.row) for m, e in r.episodes.items()}
        plot_closed_loop(path, r.scene, tracks, r.free, r.target, config.safety_radius)
        names.append(path.name)
    plot_summary_bars(out / "summary.png", summary)
    names.append("summary.png")
    return names
