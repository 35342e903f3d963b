"""The latent experiments of ``navintent experiment``, open loop at the moment before an interaction in held-out
scenes (the observation of :func:`navintent.steering.sim_scenarios`, scene seeds ``EVAL_SEED_BASE + 1000 * seed +
500 + i``).

Owns: ``diversity`` (:func:`run_diversity`: the spread of sampled trajectories, m, when z1 is held fixed, when it
varies with the noise fixed, when both vary, and with no latent) and ``perturb`` (:func:`run_perturb`: z1 =
Encoder1's mean + sigma * N(0, I) for increasing sigma; the fraction of trajectories still executable =
collision-free on the scene's occupancy map and within :data:`navintent.evaluation.config.DYNAMICS_LIMITS`). Each
writes JSON, a Markdown table and a plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from navintent.checkpoint import LoadedModel
from navintent.diffusion import build_sampler, policy_eps_fn
from navintent.evaluation.config import DYNAMICS_LIMITS, EVAL_SEED_BASE
from navintent.evaluation.report import write_json
from navintent.metric_scale import resolve_metric_scale
from navintent.objectives import GridMap, ObjectiveContext, deltas_to_metric, dynamics
from navintent.steering import sim_scenarios
from navintent.viz import plot_diversity, plot_perturb


class _Setup(NamedTuple):
    """What both experiments start from: scenarios, their condition ``cond [B, E]`` and ``tokens``, the base ``z1
    [B, z1_dim]``, the generator seeded with the experiment's seed and the hard-clipped DDPM sampler."""

    sc: Any
    cond: torch.Tensor
    tokens: torch.Tensor
    z1: torch.Tensor
    gen: torch.Generator
    sampler: Any


def _experiment_setup(loaded: LoadedModel, scenes: int, seed: int, metric_scale: float | None) -> _Setup:
    """Held-out open-loop scenarios (observation before an interaction), their condition/tokens and base z1.
    ``metric_scale`` None: the checkpoint's (:func:`navintent.metric_scale.resolve_metric_scale`)."""
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
    gen = torch.Generator(device=device).manual_seed(seed)
    sampler = build_sampler(model.scheduler_config, kind="ddpm", clip="hard")
    return _Setup(sc, cond, tokens, z1, gen, sampler)


def _sample_many(model, sampler, cond_rows, z2_rows, noise, metric_scale_rows):
    """Samples of ``sampler`` for prepared rows -> metres ``[R, T, 2]`` (numpy)."""
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
    model = loaded.model
    sc, cond, tokens, z1, gen, sampler = _experiment_setup(loaded, scenes, seed, metric_scale)
    device = cond.device
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
            conditions[0]: _sample_many(model, sampler, cond_b, z2_fixed, noise, scale),
            conditions[1]: _sample_many(model, sampler, cond_b, z2_rand, shared, scale),
            conditions[2]: _sample_many(model, sampler, cond_b, z2_rand, noise, scale),
            conditions[3]: _sample_many(model, sampler, cond_b, None, noise, scale),
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
    model = loaded.model
    sc, cond, tokens, z1, gen, sampler = _experiment_setup(loaded, scenes, seed, metric_scale)
    device = cond.device
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
        wp = torch.from_numpy(_sample_many(model, sampler, cond[rows], z2, noise, sc.metric_scale[rows]))
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
        occ = sc.obstacle_map.values[0].cpu().numpy()
        plot_perturb(out / "perturb.png", results["levels"], example, occ, sc.obstacle_map.origin,
                     sc.obstacle_map.resolution, sc.names[0])  # fmt: skip
        results["plot"] = "perturb.png"
    write_json(out / "perturb.json", results)
    return results
