"""What a steering run measured: each method's metrics on a set of draws, and the report rows built from them.

Owns :func:`evaluate_method` (objective, terms, realism terms, minimum distance, attack success and time to
collision of one method's result on the optimisation draws or on fresh draws), :func:`scenario_rows` (per scenario
and method: before = ``plain``, after = ``adam``, and every measured value) and :func:`summarize` (per method the
means over scenarios), the ``scenarios`` and ``summary`` parts of ``report.json``.

Key conventions. ``attack_success_rate``: fraction of the fresh evaluation draws whose trajectory comes within
``success_radius`` of an agent; ``attack_success``: that rate is at least 0.5. The same metrics on the optimisation
draws carry ``_opt_draws`` (``min_distance_opt_draws``, ``attack_success_rate_opt_draws``, ``realism_opt_draws``):
the only draws a noise method's result exists for (``optimises_noise``: True for
:data:`navintent.steering.config.NOISE_METHODS`; on fresh draws ``noise`` is plain sampling by construction).
Realism includes ``noise_nll`` / ``noise_norm_z`` of the noise sampled from. With a data range
(:func:`navintent.realism.data_realism_range`): per row ``realism_in_data_range`` (gated term -> bool;
``realism_in_data_range_opt_draws`` likewise) and per method ``in_data_range_rate`` (fraction of scenarios with every
gated term inside; ``in_data_range_rate_opt_draws``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from navintent.diffusion import SamplerNoise
from navintent.objectives import min_agent_distance, min_time_to_collision
from navintent.realism import in_data_range
from navintent.steering.adapter import DiffusionAdapter
from navintent.steering.config import NOISE_METHODS
from navintent.steering.methods import MethodResult


@torch.no_grad()
def evaluate_method(
    adapter: DiffusionAdapter, result: MethodResult, noise: SamplerNoise | None, success_radius: float
) -> dict[str, Any]:
    """Objective, its terms, realism terms and agent metrics of one method on ``noise`` (None: the fixed draws).

    ``noise`` None: the optimisation draws as the method left them (a noise method's optimised noise, else the
    adapter's fixed draws). Given ``noise`` (fresh draws): every method samples from it, so a noise method's own
    optimised noise plays no part (``noise`` is then plain sampling; ``z2+noise`` keeps its z2).
    Returns tensors per scenario: ``objective [B]``, ``terms``, ``realism`` (name -> ``[B]``), ``min_distance``
    ``[B]`` (mean over draws of each draw's minimum robot-agent distance; inf without agents),
    ``attack_success_rate [B]`` (fraction of draws within ``success_radius``), ``min_ttc [B]`` (smallest
    constant-velocity time to collision over draws, waypoints and agents, s), ``waypoints [B, M, T, 2]``.
    """
    if noise is None:
        noise = adapter.noise if result.noise is None else result.noise
    if result.name == "guided":
        out = adapter.guided(result.guide_scale, noise=noise, z2=result.z2)
    else:
        out = adapter.loss_given_z2(result.z2, noise=noise)
    b, m = out.waypoints.shape[:2]
    metrics: dict[str, Any] = {
        "objective": out.loss,
        "terms": out.terms,
        "realism": adapter.realism(out, result.z2, noise),
        "waypoints": out.waypoints,
    }
    if adapter.context.agents is not None:
        rows = adapter._all.repeat_interleave(m)
        dmin = min_agent_distance(out.waypoints.flatten(0, 1), adapter.context.select(rows)).view(b, m)
        finite = torch.isfinite(dmin)
        metrics["min_distance"] = torch.where(finite, dmin, torch.zeros_like(dmin)).sum(1) / finite.sum(
            1
        ).clamp_min(1)
        metrics["min_distance"] = torch.where(
            finite.any(1), metrics["min_distance"], torch.full_like(dmin[:, 0], math.inf)
        )
        metrics["attack_success_rate"] = (dmin < success_radius).float().mean(1)
        ttc = min_time_to_collision(out.waypoints.flatten(0, 1), adapter.context.select(rows)).view(b, m)
        metrics["min_ttc"] = ttc.min(1).values
    return metrics


def _scalar_dict(values: dict[str, Tensor], b: int) -> dict[str, float]:
    return {k: float(v[b]) for k, v in values.items()}


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def scenario_rows(
    adapter: DiffusionAdapter,
    results: dict[str, MethodResult],
    on_opt: dict[str, dict[str, Any]],
    on_eval: dict[str, dict[str, Any]],
    data_range: dict[str, dict[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """``report.json``'s ``scenarios``: per scenario its name, metric scale (m per unit) and per method the values
    of :func:`evaluate_method` on the optimisation draws (``on_opt``) and on fresh draws (``on_eval``) as floats,
    seconds, evaluations and the z2 norm; ``before`` is ``plain`` (no steering), ``after`` is ``adam`` (module
    docstring for the keys). ``data_range``: adds the in-range flags."""
    scenarios = []
    for b, name in enumerate(adapter.scenarios.names):
        entry: dict[str, Any] = {
            "name": name,
            "metric_scale": float(adapter.scenarios.metric_scale[b]),
            "methods": {},
        }
        for method, res in results.items():
            e, o = on_eval[method], on_opt[method]
            row = {
                "optimises_noise": method in NOISE_METHODS,
                "objective_opt_draws": float(o["objective"][b]),
                "objective_eval_draws": float(e["objective"][b]),
                "terms_eval_draws": _scalar_dict(e["terms"], b),
                "realism_eval_draws": _scalar_dict(e["realism"], b),
                "realism_opt_draws": _scalar_dict(o["realism"], b),
                "seconds": res.seconds,
                "evaluations": res.evaluations,
                "z2_norm": float(res.z2[b].norm()),
            }
            if "min_distance" in e:
                row["min_distance_eval_draws"] = _finite_or_none(float(e["min_distance"][b]))
                row["attack_success_rate"] = float(e["attack_success_rate"][b])
                row["min_ttc_eval_draws"] = _finite_or_none(float(e["min_ttc"][b]))
                row["min_distance_opt_draws"] = _finite_or_none(float(o["min_distance"][b]))
                row["attack_success_rate_opt_draws"] = float(o["attack_success_rate"][b])
            if res.guide_scale is not None:
                row["guide_scale"] = float(res.guide_scale[b])
            if data_range is not None:
                row["realism_in_data_range"] = in_data_range(row["realism_eval_draws"], data_range)
                row["realism_in_data_range_opt_draws"] = in_data_range(row["realism_opt_draws"], data_range)
            entry["methods"][method] = row
        before = entry["methods"]["plain"]
        for row in entry["methods"].values():
            row["objective_change_eval_draws"] = row["objective_eval_draws"] - before["objective_eval_draws"]
            if "attack_success_rate" in row:
                row["attack_success"] = row["attack_success_rate"] >= 0.5
        entry["before"] = before
        entry["after"] = entry["methods"].get("adam", before)
        scenarios.append(entry)
    return scenarios


def summarize(
    results: dict[str, MethodResult],
    scenarios: list[dict[str, Any]],
    data_range: dict[str, dict[str, float]] | None = None,
) -> dict[str, dict[str, Any]]:
    """``report.json``'s ``summary``: per method (in ``results`` order) the means over :func:`scenario_rows`'
    ``scenarios`` of the objective, the realism terms, the minimum distance (m) and the attack success rate, on
    fresh draws and (``*_opt_draws_mean``) on the optimisation draws, the seconds spent and, with ``data_range``,
    ``in_data_range_rate``."""
    summary = {}
    for method in results:
        rows = [s["methods"][method] for s in scenarios]
        summary[method] = {
            "optimises_noise": method in NOISE_METHODS,
            "objective_eval_draws_mean": float(np.mean([r["objective_eval_draws"] for r in rows])),
            "objective_opt_draws_mean": float(np.mean([r["objective_opt_draws"] for r in rows])),
            "realism_eval_draws_mean": {
                name: float(np.mean([r["realism_eval_draws"][name] for r in rows]))
                for name in rows[0]["realism_eval_draws"]
            },
            "realism_opt_draws_mean": {
                name: float(np.mean([r["realism_opt_draws"][name] for r in rows]))
                for name in rows[0]["realism_opt_draws"]
            },
            "seconds": results[method].seconds,
        }
        if data_range is not None:
            for suffix in ("", "_opt_draws"):
                summary[method][f"in_data_range_rate{suffix}"] = float(
                    np.mean([all(r[f"realism_in_data_range{suffix}"].values()) for r in rows])
                )
        for draws, dist_key, rate_key in (
            ("eval", "min_distance_eval_draws", "attack_success_rate"),
            ("opt", "min_distance_opt_draws", "attack_success_rate_opt_draws"),
        ):
            dists = [r.get(dist_key) for r in rows]
            dists = [d for d in dists if d is not None]
            if dists:
                summary[method][f"{dist_key}_mean"] = float(np.mean(dists))
                key = "attack_success_rate_mean" if draws == "eval" else "attack_success_rate_opt_draws_mean"
                summary[method][key] = float(np.mean([r[rate_key] for r in rows]))
    return summary


def summary_lines(summary: dict[str, dict[str, Any]]) -> list[str]:
    """One line per method of a :func:`summarize` result: objective on fresh draws, minimum distance (m) and attack
    success on the optimisation and on fresh draws, the in-range rate, seconds (what ``optimize-z2`` prints)."""
    lines = []
    for method, row in summary.items():
        extra = ""
        if "min_distance_eval_draws_mean" in row:
            extra = (
                f"  min-dist {row['min_distance_opt_draws_mean']:.3f} m / success "
                f"{row['attack_success_rate_opt_draws_mean']:.2f} on the optimisation draws, "
                f"{row['min_distance_eval_draws_mean']:.3f} m / {row['attack_success_rate_mean']:.2f} on fresh ones"
                + (" (plain sampling there by construction)" if method == "noise" else "")
            )
        if "in_data_range_rate" in row:
            extra += f"  realism in data range {100 * row['in_data_range_rate']:.0f}%"
        lines.append(
            f"{method:>10}: objective on fresh draws {row['objective_eval_draws_mean']:.4f}{extra}  "
            f"({row['seconds']:.1f} s)"
        )
    return lines
