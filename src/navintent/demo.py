"""``navintent demo [--quick] [--out-dir DIR]``: the whole system end to end on this machine, no downloads.

Stages (each reuses the module that owns it; progress bars throughout):

1. record a small dataset in the built-in MuJoCo world (:func:`navintent.sim.recorder.record_dataset`);
2. train the two-stage intent model on it (``navintent train``, preset ``demo``; ``tiny`` with ``--quick``);
3. optimise z2 open loop on held-out scenarios against an adversarial objective, with the baselines at equal
   wall-clock (``navintent optimize-z2 --method all``);
4. evaluate closed loop in held-out scenes (:func:`navintent.evaluation.evaluate`: NoMaD, prior and reference
   latents, every steering method re-optimised in the loop);
5. the shipped navigator (:mod:`navintent.shipped`, trained beforehand by navintent's own training) in NoMaD's
   deployment loop (task ``navigate``) on held-out scenes, NoMaD without latent beside the reference latent;
6. the latent experiments (:func:`navintent.evaluation.run_diversity`, :func:`navintent.evaluation.run_perturb`);
7. ``DIR/report.md`` (tables, plots, timings) and ``DIR/metrics.json`` (``closed_loop`` and
   ``shipped_navigator.closed_loop`` as ``{task: {method: {metric: {"mean", "ci95", "n"}}}}``).

Decisions, for the 2-core CPU this must finish on (full run <= 15 minutes, ``--quick`` <= 3):

- torch runs on ONE thread (``--threads``): measured here under other load, a demo-preset training step at batch 16
  took 0.5-1 s on one thread and 3-12 s on two; batch-1 closed-loop inference likewise.
- The full demo records 240 episodes with any start heading (``start_yaw_spread`` 180: only the goal tells
  which way to turn first) and trains the ``demo`` preset with 32x32 model images, one past frame
  (``context_size`` 1), waypoint spacing 4, the small ``convnet`` image trunks (not NoMaD's EfficientNet-B0) trained
  with everything else at lr 2e-3 (100 warm-up steps, then a cosine to 0 at the last step), distance-loss weight
  ``alpha`` 1e-3, goals masked in 30% of samples (NoMaD: 50%), NoMaD's no-latent branch trained on every sample
  (``intent.latent_free_weight`` 1), batch 32, for :data:`TRAIN_STEPS` steps, and measures the goal metrics on 512
  test observations. Why (README "Goal conditioning", each change measured): the EfficientNet trunks collapse at
  lr >= 1e-3 and learn too slowly at 1e-4 for a CPU demo, so a navigator trained that way ignored its goal (goal
  sensitivity 0.07); the convnet trains at the full LR with steps about four times cheaper; the no-latent branch
  (the policy NoMaD deploys, where the goal image is the only guide) learnt from 5% of the samples until
  ``latent_free_weight``; the goal's effect grows with the steps. A few CPU minutes still give a modest navigator:
  the demo shows the machinery with honest numbers.
- The closed loop of the model trained here runs 2 scenes (every steering method; the scenes run in parallel, one
  per core), the shipped navigator 8 scenes: a few CPU minutes do not train a navigator that drives well in
  closed loop, so the competent one is the shipped checkpoint (README "Closed loop"), evaluated beside it.
- z2 optimisation, open loop and in the closed loop, uses Adam at lr 0.2 in whitened z2 coordinates against
  ``softmin_dist:1.0,dynamics:10,z2_nll:0.03`` with z1 from Encoder1 on the scene (the README's proof settings).
- Held-out: evaluation scene seeds (``navintent.evaluation.EVAL_SEED_BASE`` + ...) are checked against the recorded
  dataset's scene seeds (``sim_episodes.yaml``) and must be disjoint.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # annotation only: the stages import what they run
    from navintent.evaluation import EvaluateResult

QUICK = "quick"
FULL = "full"
TRAIN_STEPS = 2800  # the full plan's training steps (module docstring)


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run (``PLANS[quick|full]``)."""

    episodes: int
    image_size: tuple[int, int]
    record_workers: int
    preset: str
    batch_size: int
    train_steps: int
    train_lr: float | None
    freeze_vision: bool
    opt_scenarios: int
    opt_steps: int
    opt_draws: int
    opt_eval_draws: int
    eval_scenes: int
    eval_min_steps: int
    eval_max_steps: int
    eval_step_factor: float
    replan_every: int
    eval_opt_steps: int
    eval_draws: int
    exp_scenarios: int
    exp_samples: int
    sigmas: tuple[float, ...]
    model_image_size: tuple[int, int] | None = None  # None: the preset's
    waypoint_spacing: int = 1
    obs_encoder: str | None = None  # None: the preset's (EfficientNet-B0)
    context_size: int | None = None  # None: the preset's
    alpha: float | None = None  # distance-loss weight; None: the preset's
    start_yaw_spread: float = 45.0  # degrees, SceneConfig of the recorded data
    goal_mask_prob: float | None = None  # None: the preset's (NoMaD's 0.5)
    latent_free_weight: float = 0.0  # IntentConfig.latent_free_weight
    anneal: bool = False  # cosine LR to 0 at the last step (train.schedule_steps = train_steps)
    warmup_steps: int = 0  # 0: the preset's warm-up (one epoch)
    eval_goal_observations: int = 64  # test observations of the goal metrics
    steer_noise: float = 0.0  # rad/s, ExpertConfig.steer_noise of the recorded data (0: the expert as is)
    steer_noise_time: float = 1.0  # s, ExpertConfig.steer_noise_time
    nav_scenes: int = 0  # held-out scenes for the shipped navigator in NoMaD's loop (0: skip that stage)
    nav_max_steps: int = 400  # its episode cap (EvalConfig.max_episode_steps)
    opt_lr: float = 0.2  # Adam in whitened z2 coordinates, open loop and closed loop
    objective: str = "softmin_dist:1.0,dynamics:10,z2_nll:0.03"


PLANS: dict[str, DemoPlan] = {
    QUICK: DemoPlan(
        episodes=6, image_size=(64, 64), record_workers=1, preset="tiny", batch_size=4, train_steps=12, train_lr=None,
        freeze_vision=False, opt_scenarios=1, opt_steps=5, opt_draws=2, opt_eval_draws=2, eval_scenes=1,
        eval_min_steps=20, eval_max_steps=24, eval_step_factor=1.0, replan_every=8, eval_opt_steps=3, eval_draws=2,
        exp_scenarios=1, exp_samples=4, sigmas=(0.0, 1.0, 4.0), obs_encoder="convnet", nav_scenes=1,
        nav_max_steps=16,
    ),
    FULL: DemoPlan(
        episodes=240, image_size=(96, 96), record_workers=2, preset="demo", batch_size=32, train_steps=TRAIN_STEPS,
        train_lr=2e-3, freeze_vision=False, opt_scenarios=6, opt_steps=60, opt_draws=8, opt_eval_draws=16,
        eval_scenes=2, eval_min_steps=60, eval_max_steps=120, eval_step_factor=1.5, replan_every=10, eval_opt_steps=5,
        eval_draws=4, exp_scenarios=3, exp_samples=16, sigmas=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
        model_image_size=(32, 32), waypoint_spacing=4, obs_encoder="convnet", context_size=1, alpha=1e-3,
        start_yaw_spread=180.0, goal_mask_prob=0.3, latent_free_weight=1.0, anneal=True, warmup_steps=100,
        eval_goal_observations=512, nav_scenes=8,
    ),
}  # fmt: skip
DATA_SEED = 0
OPT_SEED_OFFSET = 2000  # optimize-z2's sim scenes: EVAL_SEED_BASE + 2000 + i (disjoint from evaluate's)
METRICS_KEYS = (
    "mode",
    "seconds",
    "stages",
    "data",
    "train",
    "optimize",
    "closed_loop",
    "shipped_navigator",
    "experiments",
    "files",
)


def recipe_sections(plan: DemoPlan, steps: int) -> dict[str, dict[str, Any]]:
    """The ``model``, ``intent`` and ``train`` config sections ``plan`` changes from its preset, for a run of
    ``steps`` updates (the LR anneals to 0 at ``steps`` when ``plan.anneal``); what ``navintent train --config``
    reads. ``benchmarks/goal_conditioning.py`` trains the same recipe."""
    model: dict[str, Any] = {}
    if plan.model_image_size is not None:
        model["image_size"] = list(plan.model_image_size)
    if plan.obs_encoder is not None:
        model["obs_encoder"] = plan.obs_encoder
    if plan.context_size is not None:
        model["context_size"] = plan.context_size
    train: dict[str, Any] = {"waypoint_spacing": plan.waypoint_spacing}
    if plan.alpha is not None:
        train["alpha"] = plan.alpha
    if plan.goal_mask_prob is not None:
        train["goal_mask_prob"] = plan.goal_mask_prob
    if plan.anneal:
        train["schedule_steps"] = steps
    if plan.warmup_steps:
        train["warmup_steps"] = plan.warmup_steps
    train["eval_goal_observations"] = plan.eval_goal_observations
    sections: dict[str, dict[str, Any]] = {"model": model}
    if plan.latent_free_weight:
        sections["intent"] = {"latent_free_weight": plan.latent_free_weight}
    sections["train"] = train
    return sections


def _stage(k: int, total: int, text: str) -> None:
    print(f"\n[{k}/{total}] {text}", file=sys.stderr, flush=True)


def _check_held_out(data_dir: Path, seeds: list[int]) -> None:
    recorded = yaml.safe_load((data_dir / "sim_episodes.yaml").read_text())["episodes"]
    used = {int(e["scene_seed"]) for e in recorded.values()}
    clash = sorted(used & set(seeds))
    if clash:
        raise RuntimeError(f"evaluation scene seeds {clash} are in the training data ({data_dir})")


def run_demo(
    out_dir: str | Path, *, quick: bool = False, train_vision: bool = False, threads: int = 1
) -> dict:
    """Run every stage into ``out_dir`` (must be empty or absent); returns the metrics dict also written to
    ``out_dir/metrics.json``. torch runs on ``threads`` threads meanwhile (restored after)."""
    from navintent import evaluation as ev

    plan = PLANS[QUICK if quick else FULL]
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out-dir {out} exists and is not empty; choose another or remove it")
    out.mkdir(parents=True, exist_ok=True)
    with ev.torch_threads(threads):
        return _run_stages(out, plan, quick=quick, train_vision=train_vision, threads=threads)


def _run_stages(out: Path, plan: DemoPlan, *, quick: bool, train_vision: bool, threads: int) -> dict:
    from navintent import evaluation as ev
    from navintent.checkpoint import load_inference_model
    from navintent.metric_scale import resolve_metric_scale
    from navintent.sim.config import CameraConfig, ExpertConfig, SceneConfig, SimConfig
    from navintent.sim.recorder import record_dataset
    from navintent.training import train, training_config

    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    total = 7

    _stage(1, total, f"recording {plan.episodes} expert episodes in the built-in world")
    t0 = time.perf_counter()
    data_dir = out / "data"
    sim_config = SimConfig(
        camera=CameraConfig(image_size=plan.image_size),
        scene=SceneConfig(start_yaw_spread=plan.start_yaw_spread),
        expert=ExpertConfig(steer_noise=plan.steer_noise, steer_noise_time=plan.steer_noise_time),
    )
    data = record_dataset(data_dir, plan.episodes, DATA_SEED, config=sim_config, workers=plan.record_workers)
    stages["record"] = time.perf_counter() - t0

    _stage(2, total, f"training the '{plan.preset}' preset for {plan.train_steps} steps")
    t0 = time.perf_counter()
    run_dir = out / "train"
    freeze = plan.freeze_vision and not train_vision
    train_config = out / "train_config.yaml"
    train_config.write_text(yaml.safe_dump(recipe_sections(plan, plan.train_steps), sort_keys=False))
    overrides: dict[str, Any] = {
        "batch_size": plan.batch_size, "max_steps": plan.train_steps, "epochs": 1000,
        "eval_every": plan.train_steps, "checkpoint_every": plan.train_steps, "num_workers": 0, "seed": 0,
    }  # fmt: skip
    if freeze:
        overrides["freeze"] = ("vision",)
    if plan.train_lr is not None:
        overrides["lr"] = plan.train_lr
    notes: list[str] = []
    config = training_config(plan.preset, train_config, train=overrides, notes=notes, where="the demo's plan")
    trained = train(config, run_dir, data_dir=data_dir, device="cpu", notes=notes)
    print(trained.describe())
    ckpt = trained.checkpoint
    train_metrics = trained.metrics
    stages["train"] = time.perf_counter() - t0

    loaded = load_inference_model(ckpt)
    scale = resolve_metric_scale(checkpoint=loaded.training_scales)  # the recorded sim data spacing
    print(scale.describe(), file=sys.stderr)
    metric_scale = scale.metres_per_unit

    _stage(3, total, f"optimising z2 open loop on {plan.opt_scenarios} held-out scenario(s), all methods")
    t0 = time.perf_counter()
    opt_dir = out / "optimize"
    opt_seed = ev.EVAL_SEED_BASE + OPT_SEED_OFFSET
    # scenes without pedestrians are skipped, up to 20 seeds per scenario
    _check_held_out(data_dir, list(range(opt_seed, opt_seed + 20 * plan.opt_scenarios)))
    # imported here, as this function imports everything it runs
    from navintent.steering import SimScenes, Z2OptimConfig, optimize
    from navintent.steering.report import summary_lines

    opt_config = Z2OptimConfig(
        steps=plan.opt_steps, lr=plan.opt_lr, draws=plan.opt_draws, eval_draws=plan.opt_eval_draws
    )
    optimized = optimize(
        ckpt, SimScenes(plan.opt_scenarios), objective=plan.objective, methods="all", config=opt_config,
        seed=opt_seed, z1="data", realism_data=data_dir, device="cpu", out_dir=opt_dir,
    )  # fmt: skip
    print("\n".join(summary_lines(optimized.summary)))
    opt_report = optimized.to_report()
    stages["optimize"] = time.perf_counter() - t0

    _stage(4, total, f"closed-loop evaluation in {plan.eval_scenes} held-out scene(s)")
    t0 = time.perf_counter()
    eval_config = ev.EvalConfig(
        task="goal-image",  # the demo's budget: the navigate task adds a map and a localisation pass per tick
        scenes=plan.eval_scenes, seed=0, min_steps=plan.eval_min_steps, max_episode_steps=plan.eval_max_steps,
        step_factor=plan.eval_step_factor, replan_every=plan.replan_every, opt_steps=plan.eval_opt_steps,
        draws=plan.eval_draws, metric_scale=metric_scale, lr=plan.opt_lr, objective=plan.objective,
    )  # fmt: skip
    _check_held_out(
        data_dir,
        [
            s.seed
            for s in ev.evaluation_scenes(eval_config.scenes, eval_config.seed, scenario=eval_config.scenario)
        ],
    )
    workers = min(os.cpu_count() or 1, eval_config.scenes)  # scenes in parallel, one thread each
    closed = ev.evaluate(
        loaded,
        eval_config,
        out / "evaluate",
        meta={"ckpt": str(ckpt)},
        scale=scale,
        workers=workers,
        threads=threads,
    )
    stages["evaluate"] = time.perf_counter() - t0

    shipped = None
    if plan.nav_scenes:
        _stage(
            5, total, f"the shipped navigator in NoMaD's deployment loop, {plan.nav_scenes} held-out scene(s)"
        )
        t0 = time.perf_counter()
        shipped = _evaluate_shipped_navigator(out / "navigator", plan, data_dir, threads)
        stages["navigator"] = time.perf_counter() - t0

    _stage(6, total, "latent experiments: z1 fixed -> diversity, z1 perturbed -> executable fraction")
    t0 = time.perf_counter()
    exp_dir = out / "experiments"
    common = dict(scenes=plan.exp_scenarios, samples=plan.exp_samples, seed=0, metric_scale=metric_scale)
    diversity = ev.run_diversity(loaded, exp_dir, **common)
    perturb = ev.run_perturb(loaded, exp_dir, sigmas=plan.sigmas, **common)
    stages["experiments"] = time.perf_counter() - t0

    _stage(7, total, "writing the report")
    seconds = time.perf_counter() - t_start
    metrics: dict[str, Any] = {
        "mode": QUICK if quick else FULL,
        "seconds": seconds,
        "stages": stages,
        "data": data,
        "train": {
            "preset": plan.preset,
            "steps": plan.train_steps,
            "batch_size": plan.batch_size,
            "lr": plan.train_lr,
            "frozen": ["vision"] if freeze else [],
            "obs_encoder": config.model.obs_encoder,
            "checkpoint": str(ckpt),
            "final": train_metrics,
        },
        "optimize": {
            "summary": opt_report.get("summary", {}),
            "scenarios": len(opt_report.get("scenarios", [])),
        },
        "closed_loop": closed.closed_loop,  # {task: {method: {metric: {"mean", "ci95", "n"}}}}
        "closed_loop_details": {
            "summary": closed.summary,
            "metric_scale": closed.metric_scale.metres_per_unit,
            "scenes": closed.scenes,
            "config": closed.config.to_dict(),
        },
        "shipped_navigator": None if shipped is None else _shipped_metrics(shipped),
        "experiments": {"diversity": diversity["summary"], "perturb": perturb["levels"]},
        "files": {},
    }
    report = out / "report.md"
    metrics["files"] = {
        "report": str(report),
        "metrics": str(out / "metrics.json"),
        "closed_loop_plots": [str(out / "evaluate" / p) for p in closed.plots or [] if p != "summary.png"],
        "navigator_plots": []
        if shipped is None
        else [str(out / "navigator" / p) for p in shipped.plots or []],
        "experiment_plots": [str(exp_dir / "diversity.png"), str(exp_dir / "perturb.png")],
        "optimize_dir": str(opt_dir),
    }
    report.write_text(
        _report_markdown(metrics, plan, closed, opt_report, diversity, perturb, out, threads, shipped)
    )
    ev.write_json(out / "metrics.json", metrics)
    return metrics


def _evaluate_shipped_navigator(out: Path, plan: DemoPlan, data_dir: Path, threads: int) -> EvaluateResult:
    """The shipped navigator (:mod:`navintent.shipped`) in NoMaD's deployment loop (task ``navigate``, the loop
    settings of its record) on ``plan.nav_scenes`` held-out scenes, no-latent NoMaD beside the reference latent;
    the scenes are checked against both the navigator's training scenes and the demo's data."""
    from navintent import evaluation as ev
    from navintent.checkpoint import load_inference_model
    from navintent.metric_scale import resolve_metric_scale
    from navintent.shipped import check_shipped_navigator, shipped_navigator_path

    record = check_shipped_navigator()
    path = shipped_navigator_path()
    loaded = load_inference_model(path)
    scale = resolve_metric_scale(checkpoint=loaded.training_scales)
    deployment = record["deployment"]
    config = ev.EvalConfig(
        task="navigate", scenes=plan.nav_scenes, seed=0, methods=tuple(deployment["methods"]),
        stop_when_closest=deployment["stop_when_closest"], waypoint_index=deployment["waypoint_index"],
        max_episode_steps=plan.nav_max_steps, metric_scale=scale.metres_per_unit,
    )  # fmt: skip
    seeds = [s.seed for s in ev.evaluation_scenes(config.scenes, config.seed, scenario=config.scenario)]
    _check_held_out(data_dir, seeds)
    clash = sorted(set(seeds) & {int(s) for s in record["data"]["scene_seeds"]})
    if clash:
        raise RuntimeError(
            f"evaluation scene seeds {clash} are among the shipped navigator's training scenes"
        )
    provenance = {"ckpt": str(path), **{k: record[k] for k in ("command", "train_seconds", "machine")}}
    return ev.evaluate(
        loaded, config, out, meta=provenance, scale=scale, workers=min(os.cpu_count() or 1, config.scenes),
        threads=threads,
    )  # fmt: skip


def _shipped_metrics(result: EvaluateResult) -> dict[str, Any]:
    """metrics.json's ``shipped_navigator`` block: the checkpoint, its record's provenance (the evaluation's
    ``meta``) and the closed loop in the same ``{task: {method: {metric: {"mean", "ci95", "n"}}}}`` form as
    ``closed_loop``."""
    return {
        "checkpoint": result.meta["ckpt"],
        **{k: result.meta[k] for k in ("command", "train_seconds", "machine")},
        "closed_loop": result.closed_loop,
        "summary": result.summary,
        "scenes": result.scenes,
        "config": result.config.to_dict(),
    }


def _range_note(opt_report: dict[str, Any]) -> str:
    rng = opt_report.get("realism_range")
    if rng is None:
        return ""
    return f": z2_nll up to {rng['z2_nll']['max']:.1f}, dynamics up to {rng['dynamics']['max']:.3f}"


def _opt_table(summary: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| method | objective (fresh draws) | min distance (m) | attack success | z2_nll | dynamics "
        "| realism in data range | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def fmt(value: float | None, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    for method, row in summary.items():
        rate = row.get("attack_success_rate_mean")
        realism = row.get("realism_eval_draws_mean", {})
        in_range = None if "in_data_range_rate" not in row else 100 * row["in_data_range_rate"]
        lines.append(
            f"| {method} | {row['objective_eval_draws_mean']:.3f} | "
            f"{fmt(row.get('min_distance_eval_draws_mean'), '.2f')} | {fmt(None if rate is None else 100 * rate, '.0f')}"
            f"{'' if rate is None else '%'} | {fmt(realism.get('z2_nll'), '.1f')} | "
            f"{fmt(realism.get('dynamics'), '.3f')} | {fmt(in_range, '.0f')}{'' if in_range is None else '%'} | "
            f"{row['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def spearman_text(value: float | None) -> str:
    """A Spearman correlation as the report writes it: two decimals, or why there is none (NaN, or None once
    metrics.json stored the NaN, when the distance head predicts one value for every goal)."""
    if value is None or not math.isfinite(value):
        return "undefined (the distance head predicts one value for every goal)"
    return f"{value:.2f}"


def _ci_text(final: dict[str, float], name: str) -> str:
    """`` (95% CI [lo, hi])`` for ``name`` when the evaluation computed its interval, else empty."""
    lo, hi = final.get(name + "_ci95_lo"), final.get(name + "_ci95_hi")
    return "" if lo is None or hi is None else f" (95% CI [{lo:.2f}, {hi:.2f}])"


def _goal_lines(final: dict[str, float]) -> str:
    """The training evaluation's goal-conditioning metrics (:mod:`navintent.evaluation.goal_metrics`) as a
    sentence; empty when the run did not compute them."""
    if "eval/dist_spearman" not in final:
        return ""
    return (
        f"Does it see its goal ({final['eval/observations']:.0f} test observations, "
        "`navintent.evaluation.goal_metrics`): distance head Spearman "
        f"{spearman_text(final['eval/dist_spearman'])}{_ci_text(final, 'eval/dist_spearman')} with the true "
        f"temporal distance (MAE {final['eval/dist_mae']:.2f} steps), "
        f"goal sensitivity {final['eval/goal_sensitivity']:.2f}{_ci_text(final, 'eval/goal_sensitivity')} (swapping the goal image moves the plan "
        f"{final['eval/goal_displacement_m']:.3f} m against {final['eval/noise_displacement_m']:.3f} m for new "
        f"noise), goal-mask sensitivity {final['eval/goal_mask_sensitivity']:.2f}"
        f"{_ci_text(final, 'eval/goal_mask_sensitivity')}. NoMaD's goal-conditioned "
        "navigation needs Spearman near 1 and a sensitivity of at least 1."
    )


def _rate_text(stats: dict[str, Any]) -> str:
    """``{"mean", "ci95", "n"}`` of a rate -> ``"88% [78, 97]"`` (no interval when there is none)."""
    if stats["mean"] is None:
        return "–"
    ci = stats.get("ci95")
    return f"{100 * stats['mean']:.0f}%" + ("" if not ci else f" [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]")


def _cap_note(shipped: EvaluateResult) -> str:
    """A warning when this mode caps the navigator's episodes below what reaching a goal takes (``--quick``)."""
    cap = shipped.config.max_episode_steps
    need = min((s["expert_steps"] for s in shipped.scenes), default=0)
    if cap >= need:
        return ""
    return (
        f" In this mode episodes stop after {cap} steps while the expert needs {need} or more, so no run can reach "
        "its goal: the section shows the machinery, not the navigator (the full demo runs up to 400 steps)."
    )


def _navigator_section(metrics: dict[str, Any], shipped: EvaluateResult | None) -> str:
    """Report section 5: the shipped navigator's closed loop (empty heading note when the plan skips it)."""
    if shipped is None:
        return "Not run in this mode.\n"
    block = metrics["shipped_navigator"]
    rows = shipped.closed_loop["navigate"]
    lines = "\n".join(
        f"- `{method}`: goal {_rate_text(m['goal_rate'])}, static collisions {_rate_text(m['static_collision_rate'])}, "
        f"pedestrian collisions {_rate_text(m['pedestrian_collision_rate'])} (95% bootstrap intervals, "
        f"{m['goal_rate']['n']} scenes)"
        for method, m in rows.items()
    )
    plots = "\n".join(f"![navigator](navigator/{Path(p).name})" for p in metrics["files"]["navigator_plots"])
    cfg = shipped.config
    sensitivity = metrics["train"]["final"].get("eval/goal_sensitivity")
    sees = (
        "sees its goal by the open-loop measure (goal sensitivity at least 1, section 2)"
        if sensitivity is not None and sensitivity >= 1.0
        else "does not yet follow its goal image (goal sensitivity below 1, section 2)"
    )
    return f"""The model this demo trains in a few minutes {sees}; its own closed loop is section 4, and README
"Closed loop" measures why a few CPU minutes do not train a navigator.
The package ships one navigator trained beforehand by navintent's own training on data whose expert drives with
steering noise (`navintent.shipped`). Training took {block["train_seconds"] / 60:.0f} minutes on {block["machine"]}.
Reproduce it with `{block["command"]}`. Here it runs NoMaD's deployment loop: a topological map the expert records without
pedestrians, localisation and subgoals by the distance head (radius {cfg.radius}, close threshold
{cfg.close_threshold:g}{", the goal declared once its node is the closest, NoMaD's rule" if cfg.stop_when_closest else ""}),
waypoint {cfg.waypoint_index}, in {len(shipped.scenes)} held-out scene(s) with pedestrians; a run counts as reaching the goal when the
navigator declares it within 1 m of it.{_cap_note(shipped)}

{lines}

{shipped.table}
{plots}

Folder: `navigator/` (`metrics.json` holds every episode).
"""


def _report_markdown(
    metrics,
    plan,
    closed: EvaluateResult,
    opt_report,
    diversity,
    perturb,
    out: Path,
    threads: int,
    shipped: EvaluateResult | None = None,
) -> str:
    st = metrics["stages"]
    tr = metrics["train"]
    final = tr["final"]
    mode = metrics["mode"]
    command = "navintent demo" + (" --quick" if mode == QUICK else "") + f" --out-dir {out}"
    ade = {k: v for k, v in final.items() if k.startswith("eval/ade_") or k.startswith("eval/spread_")}
    ade_lines = "\n".join(f"| `{k}` | {v:.3f} |" for k, v in ade.items())
    plots = "\n".join(
        f"![closed loop](evaluate/{Path(p).name})" for p in metrics["files"]["closed_loop_plots"]
    )
    cl = closed.config
    return f"""# navintent demo ({mode})

Command: `{command}` — {metrics["seconds"] / 60:.1f} minutes on this machine (torch threads: {threads}).
Stage times (s): record {st["record"]:.0f}, train {st["train"]:.0f}, optimise {st["optimize"]:.0f}, closed loop
{st["evaluate"]:.0f}, shipped navigator {st.get("navigator", 0):.0f}, experiments {st["experiments"]:.0f}.

## 1. Data
{metrics["data"]["episodes"]} expert episodes ({metrics["data"]["frames"]} frames, {metrics["data"]["with_crossing"]} with a
pedestrian crossing the path) recorded in the built-in MuJoCo world at {plan.image_size[0]}x{plan.image_size[1]};
metric waypoint spacing {metrics["data"]["metric_waypoint_spacing"]:.4f} m; split {metrics["data"]["train"]} train /
{metrics["data"]["test"]} test. Folder: `data/`.

## 2. Training
Preset `{tr["preset"]}`, {tr["steps"]} steps at batch {tr["batch_size"]}{"" if tr["lr"] is None else f", lr {tr['lr']:g}"}, `{tr["obs_encoder"]}` image trunks{", vision encoder frozen" if tr["frozen"] else ""}.
Final training loss {final.get("train/loss", float("nan")):.4f} (diffusion {final.get("train/diffusion", float("nan")):.4f}, KL
{final.get("train/kl", float("nan")):.3f}). Evaluation on the test split at the last step (ADE/FDE in metres; `ref` = z1 from
Encoder1 with the reference, `prior` = prior-mean z1, `none` = no latent):

| metric | value |
|---|---:|
{ade_lines}

{_goal_lines(final)}

Checkpoint: `train/latest.pt`.

## 3. z2 optimisation, open loop ({metrics["optimize"]["scenarios"]} held-out scenario(s))
Objective `{opt_report.get("objective", "?")}`; baselines at Adam's wall-clock budget; numbers on fresh noise draws.
"Realism in data range": share of scenes whose z2_nll and dynamics stay within the range measured on the test split
(`navintent.realism`{_range_note(opt_report)}).

{_opt_table(opt_report.get("summary", {}))}
Details and plots: `optimize/`.

## 4. Closed loop ({len(closed.scenes)} held-out scene(s))
Re-sampling every control step (NoMaD's deployment, waypoint {cl.waypoint_index}); steering methods re-optimise z2
every {cl.replan_every} steps ({cl.opt_steps} Adam steps, {cl.draws} draws; baselines at Adam's budget) to
approach the target pedestrian; nominal = `reference`; safety radius {cl.safety_radius} m; metric scale
{closed.metric_scale.metres_per_unit:.4f} m per unit. Definitions: `navintent.evaluation` docstring.

{closed.table}
{plots}

![summary](evaluate/summary.png)

## 5. The shipped navigator, closed loop in NoMaD's deployment loop
{_navigator_section(metrics, shipped)}
## 6. Latent experiments
z1 fixed -> diversity ({plan.exp_scenarios} scenario(s), {plan.exp_samples} samples):

{diversity["table"]}
![diversity](experiments/diversity.png)

z1 perturbed -> executable fraction (collision-free on the occupancy map and within the dynamics limits):

{perturb["table"]}
![perturb](experiments/perturb.png)

## Limitations
A few CPU minutes of training on {metrics["data"]["episodes"]} episodes give a weak policy: goal rates and the size of the
steering effects here say little about a model trained on real data for hours. The closed-loop table averages
{len(closed.scenes)} scene(s); rates move in steps of {100 / max(len(closed.scenes), 1):.0f} points. The shipped
navigator's rates come from {len(shipped.scenes) if shipped is not None else 0} scene(s) here; its 40-scene figures
with intervals are in its record (`navintent/assets/sim_navigator.yaml`) and the README.
"""
