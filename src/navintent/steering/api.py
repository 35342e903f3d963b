"""``optimize(...) -> OptimizeResult``: one z2 optimisation run as a typed Python call.

Owns the order of a run: load the checkpoint, resolve the metric scale, measure the realism range seen on data
(optional), build the scenarios from their source, choose z1, bind the adapter, warn when z2 cannot move the samples,
run the methods (:mod:`navintent.steering.methods`), measure every result on the optimisation draws and on fresh
draws (:mod:`navintent.steering.report`) and, given ``out_dir``, write ``z2_optimized.pt``, ``report.json``,
``trajectories.pt`` and one PNG per scenario. ``navintent optimize-z2`` (:mod:`navintent.commands.optimize_z2`),
``navintent demo`` and the benchmarks call :func:`optimize` and read the returned :class:`OptimizeResult`.

What it says (the commands print it on stderr): the metric scale line
(:func:`navintent.metric_scale.resolve_and_log_metric_scale`, INFO, logger ``navintent.metric_scale``) and the warning
when z2 barely changes the policy (WARNING, logger ``navintent.steering.api``); progress bars with ``progress``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from navintent.checkpoint import LoadedModel, load_inference_model, resolve_device
from navintent.data.sources import data_dir_scales
from navintent.diffusion import build_sampler
from navintent.metric_scale import MetricScale, TrainingScale, resolve_and_log_metric_scale
from navintent.objectives import Objective
from navintent.realism import data_realism_range
from navintent.steering.adapter import LATENT_EFFECT_WARNING, DiffusionAdapter, latent_effect
from navintent.steering.config import DEFAULT_OBJECTIVE, METHODS, Z2_METHODS, Z2OptimConfig, parse_methods
from navintent.steering.data_scenarios import dataset_scenarios, load_data_sample
from navintent.steering.methods import MethodResult, run_methods
from navintent.steering.plots import plot_scenario, unnormalize_image
from navintent.steering.report import evaluate_method, scenario_rows, summarize
from navintent.steering.scenarios import (
    DatasetSamples,
    SampleFile,
    Scenarios,
    ScenarioSource,
    SimCamera,
    SimScenes,
    add_agents,
    crossing_pedestrian,
)
from navintent.steering.sim_scenarios import sim_scenarios

Z1_SOURCES: tuple[str, ...] = ("data", "prior")

log = logging.getLogger(__name__)


@dataclass
class OptimizeResult:
    """What one run produced; :meth:`to_report` is exactly ``report.json``.

    ``z2``: ``[B, z2_dim]``, Adam's z2 when ``adam`` ran, else z2_0 (``z2_optimized.pt``). ``methods``: method ->
    :class:`navintent.steering.methods.MethodResult` (z2 ``[B, z]``, losses ``[B]``, seconds, optimised noise), in
    :data:`navintent.steering.config.METHODS` order, ``plain`` always there. ``summary``: method -> the means over
    scenarios (:func:`navintent.steering.report.summarize`). ``scenarios``: per scenario and method the measured
    values (:func:`navintent.steering.report.scenario_rows`). ``realism_range``: the range seen on data
    (:func:`navintent.realism.data_realism_range`) or None. ``trajectories``: what ``trajectories.pt`` holds
    (waypoints ``[B, M, T, 2]`` metres per method on the optimisation draws, ``eval`` on the fresh draws, ``z2``,
    ``optimized_noise``, ``agents`` ``[B, T, K, 2]``, ``agents_mask``, ``names``). ``arguments``: the call's
    settings as given (the CLI's flags). ``ckpt``, ``objective`` (normalised spec), ``config`` (``dt`` resolved),
    ``z1`` (``data`` | ``prior``), ``z2_stats`` (the checkpoint has them), ``space`` (resolved), ``waypoint_spacing``,
    ``device``. ``out_dir``: where the files were written, or None.
    """

    z2: Tensor
    methods: dict[str, MethodResult]
    summary: dict[str, dict[str, Any]]
    scenarios: list[dict[str, Any]]
    realism_range: dict[str, dict[str, float]] | None
    trajectories: dict[str, Any]
    arguments: dict[str, Any]
    ckpt: str
    objective: str
    config: Z2OptimConfig
    z1: str
    z2_stats: bool
    space: str
    waypoint_spacing: int
    device: str
    out_dir: Path | None = None

    def to_report(self) -> dict[str, Any]:
        """The ``report.json`` dict: the run's settings, ``realism_range`` (when measured), ``summary``,
        ``scenarios``."""
        meta = {
            "arguments": self.arguments,
            "ckpt": self.ckpt,
            "objective": self.objective,
            "methods": list(self.methods),
            "config": self.config.to_dict(),
            "z1": self.z1,
            "z2_stats": self.z2_stats,
            "space": self.space,
            "waypoint_spacing": self.waypoint_spacing,
            "device": self.device,
        }
        extra = {} if self.realism_range is None else {"realism_range": self.realism_range}
        return {**meta, **extra, "summary": self.summary, "scenarios": self.scenarios}


def _plain_value(value: Any) -> Any:
    """``value`` as JSON writes it: paths as strings, tuples as lists, source dataclasses as dicts."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain_value(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"kind": type(value).__name__, **{k: _plain_value(v) for k, v in vars(value).items()}}
    return value


def optimize(
    checkpoint: str | Path,
    source: ScenarioSource | None = None,
    *,
    objective: str = DEFAULT_OBJECTIVE,
    methods: str | Sequence[str] = ("adam",),
    config: Z2OptimConfig | None = None,
    dt: float | None = None,
    budget_s: float | None = None,
    seed: int = 0,
    z1: str | None = None,
    crossing: tuple[float, float] | None = None,
    metric_scale: float | None = None,
    robot: str | Path | None = None,
    scale_dataset: str | None = None,
    realism_data: str | Path | None = None,
    camera_hfov: float = 100.0,
    camera_height: float = 0.45,
    device: str = "auto",
    trust_checkpoint: bool = False,
    out_dir: str | Path | None = None,
    plots: bool = True,
    progress: bool = True,
    arguments: Mapping[str, Any] | None = None,
) -> OptimizeResult:
    """Optimise z2 (and run the baselines) on the scenarios of ``source`` against ``objective``.

    ``checkpoint``: a native navintent checkpoint (or a packaged one with ``trust_checkpoint``). ``source``:
    :class:`SimScenes` (default: one built-in scene with pedestrians, scene seeds from ``seed``),
    :class:`DatasetSamples` or :class:`SampleFile`. ``objective``: a :mod:`navintent.objectives` spec. ``methods``:
    names of :data:`navintent.steering.config.METHODS` (or a comma list / ``"all"``); ``plain`` always runs.
    ``config``: the optimisation settings; its ``dt`` is replaced by ``dt`` (seconds between waypoints), by default
    the checkpoint's (0.25 s x its waypoint spacing). ``budget_s``: seconds per baseline (default: Adam's time;
    10 s without Adam). ``seed``: noise draws, the prior z1 and the sim scene seeds. ``z1``: ``data`` (Encoder1's mean
    on the scenario) or ``prior`` (a N(0, I) sample); default ``data`` for data sources, ``prior`` for sim scenes.
    ``crossing``: ``(ahead_m, speed_mps)``, a synthetic pedestrian added to data scenarios
    (:func:`navintent.steering.scenarios.crossing_pedestrian`). ``metric_scale`` (m per unit), ``robot`` (a NoMaD
    ``robot.yaml``), ``scale_dataset``: the metric scale as :func:`navintent.metric_scale.resolve_metric_scale`
    resolves it. ``realism_data``: the checkpoint's training data; its test split's realism range gates each method.
    ``camera_hfov`` (degrees) / ``camera_height`` (m): the camera for drawing on data images. ``device``: ``auto`` |
    ``cpu`` | ``cuda[:i]``. ``out_dir``: write the files there (PNGs only with ``plots``); None writes nothing.
    ``arguments``: recorded as the report's ``arguments`` (default: this call's settings).

    Raises ``ValueError`` / ``FileNotFoundError`` for bad input (naming the setting or file) and
    :class:`navintent.steering.adapter.NonFiniteObjectiveError` when the objective or a gradient becomes NaN/inf;
    nothing is written then.
    """
    source = SimScenes() if source is None else source
    if arguments is None:
        arguments = {
            "ckpt": checkpoint, "source": source, "objective": objective, "methods": methods, "dt": dt,
            "budget": budget_s, "seed": seed, "z1": z1, "crossing_pedestrian": crossing,
            "metric_scale": metric_scale, "robot": robot, "scale_dataset": scale_dataset,
            "realism_data": realism_data, "camera_hfov": camera_hfov, "camera_height": camera_height,
            "device": device, "trust_checkpoint": trust_checkpoint, "out_dir": out_dir, "plots": plots,
        }  # fmt: skip
    arguments = {k: _plain_value(v) for k, v in arguments.items()}
    wanted = parse_methods(methods) if isinstance(methods, str) else parse_methods(",".join(methods))
    config = Z2OptimConfig() if config is None else config
    if z1 is not None and z1 not in Z1_SOURCES:
        raise ValueError(f"z1 must be one of {Z1_SOURCES}, got {z1!r}")
    if not isinstance(source, (SimScenes, DatasetSamples, SampleFile)):
        raise ValueError(
            f"source must be SimScenes, DatasetSamples or SampleFile, got {type(source).__name__}"
        )
    if crossing is not None and isinstance(source, SimScenes):
        raise ValueError(
            "--crossing-pedestrian adds a pedestrian to --dataset or --data_sample scenarios; the built-in "
            "sim scenarios have their own"
        )
    spec = Objective(objective)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    loaded = load_inference_model(checkpoint, trust_checkpoint=trust_checkpoint, device=dev)
    model, stats = loaded.model, loaded.z2_stats
    if config.space == "whitened" and stats is None:
        raise ValueError(
            f"--space whitened needs the checkpoint's z2_stats (written by navintent train); {checkpoint} has "
            "none: use --space z2 or auto"
        )
    config = config.replace(dt=loaded.waypoint_dt if dt is None else dt)
    data_range = None
    if realism_data is not None:
        if not Path(realism_data).exists():
            raise FileNotFoundError(f"--realism-data {realism_data} does not exist")
        data_range = data_realism_range(loaded, realism_data, seed=seed, what="--realism-data")

    def scale_from(
        checkpoint_scales: Sequence[TrainingScale] = (), data: Sequence[TrainingScale] = ()
    ) -> MetricScale:
        return resolve_and_log_metric_scale(
            explicit=metric_scale,
            robot_yaml=robot,
            pick=scale_dataset,
            checkpoint=checkpoint_scales,
            data=data,
        )

    scenarios, camera, default_z1 = _build_scenarios(
        source, loaded, seed, metric_scale, scale_from, (camera_hfov, camera_height)
    )
    if crossing is not None:
        ahead, speed = crossing
        tracks = crossing_pedestrian(scenarios.num, model.config.len_traj_pred, config.dt, ahead, speed)
        scenarios = add_agents(scenarios, tracks)
    z1_mode = z1 or default_z1
    z1_dim = getattr(model, "z1_dim", None)
    if z1_dim is not None and scenarios.z1 is None and z1_mode == "prior":
        scenarios.z1 = torch.randn(scenarios.num, z1_dim, generator=torch.Generator().manual_seed(seed))
    sampler = build_sampler(
        model.scheduler_config,
        kind=config.sampler,
        num_inference_steps=config.inference_steps or None,
        clip=config.clip,
        eta=config.eta,
    )
    adapter = DiffusionAdapter(
        model,
        scenarios,
        spec,
        sampler=sampler,
        draws=config.draws,
        lambda_cfg=config.lambda_cfg,
        dt=config.dt,
        z2_stats=stats,
        generator=torch.Generator(device=dev).manual_seed(seed),
        noise_space=config.noise_space,
    )
    effect = latent_effect(model, adapter.cond, adapter.z2_init)
    if effect < LATENT_EFFECT_WARNING and any(m in Z2_METHODS for m in wanted):
        log.warning(
            f"optimize: warning: z2 barely changes this policy: z_proj(z2) moves the denoiser's condition by {100 * effect:.2g}% "
            f"of its norm (max |z_proj weight| {float(model.z_proj.weight.detach().abs().max()):.3g}); steering z2 cannot move "
            "its samples, so the z2 methods will return their start. Train longer (the latent path learns from zero)."
        )
    results = run_methods(adapter, config, wanted, budget_s=budget_s, seed=seed, progress=progress)
    eval_noise = adapter.draw_noise(config.eval_draws, torch.Generator(device=dev).manual_seed(seed + 1))
    on_opt = {k: evaluate_method(adapter, r, None, config.success_radius) for k, r in results.items()}
    on_eval = {k: evaluate_method(adapter, r, eval_noise, config.success_radius) for k, r in results.items()}

    rows = scenario_rows(adapter, results, on_opt, on_eval, data_range)
    result = OptimizeResult(
        z2=(results["adam"].z2 if "adam" in results else adapter.z2_init).detach().cpu(),
        methods=results,
        summary=summarize(results, rows, data_range),
        scenarios=rows,
        realism_range=data_range,
        trajectories=_trajectories(results, on_opt, on_eval, scenarios),
        arguments=arguments,
        ckpt=str(checkpoint),
        objective=str(spec),
        config=config,
        z1=z1_mode,
        z2_stats=stats is not None,
        space=adapter.resolve_space(config.space),
        waypoint_spacing=loaded.waypoint_spacing,
        device=str(dev),
    )
    if out_dir is not None:
        result.out_dir = Path(out_dir)
        _write(result, on_opt, scenarios, camera if plots else None)
    return result


def _build_scenarios(
    source: ScenarioSource,
    loaded: LoadedModel,
    seed: int,
    explicit_scale: float | None,
    scale_from: Callable[..., MetricScale],
    camera: tuple[float, float],
) -> tuple[Scenarios, SimCamera, str]:
    """Scenarios of ``source``, the camera their observations came from and the default z1 source.

    ``scale_from(checkpoint_scales, data_scales)`` resolves (and prints) the metric scale; ``camera``: horizontal
    fov (degrees) and height (m) of the camera that took data images."""
    mc = loaded.model.config
    data_camera = SimCamera(*camera, tuple(mc.image_size), (0, 0, *mc.image_size))
    if isinstance(source, SampleFile):
        scenarios = load_data_sample(
            source.path,
            mc,
            z1_dim=getattr(loaded.model, "z1_dim", None),
            metric_scale=scale_from().metres_per_unit if explicit_scale is not None else None,
            fallback_scale=lambda: scale_from(loaded.training_scales),
        )
        return scenarios, data_camera, "data"
    if isinstance(source, DatasetSamples):
        data_scales = data_dir_scales(source.data, loaded.waypoint_spacing, what="--dataset")
        scale = scale_from(loaded.training_scales, data_scales)
        scenarios = dataset_scenarios(
            source.data,
            list(source.indices),
            mc,
            split=source.split,
            seed=seed,
            metric_scale=scale.metres_per_unit,
            waypoint_spacing=loaded.waypoint_spacing,
            ref_horizon=loaded.ref_horizon,
        )
        return scenarios, data_camera, "data"
    scale = scale_from(loaded.training_scales)
    scenarios, camera = sim_scenarios(
        mc,
        source.num,
        seed,
        waypoint_spacing=loaded.waypoint_spacing,
        metric_scale=scale.metres_per_unit,
        require_pedestrians=True,
    )
    return scenarios, camera, "prior"


def _trajectories(
    results: dict[str, MethodResult],
    on_opt: dict[str, dict[str, Any]],
    on_eval: dict[str, dict[str, Any]],
    scenarios: Scenarios,
) -> dict[str, Any]:
    """``trajectories.pt``'s content, on the CPU (``plain`` is stored as ``nominal``, ``adam`` as ``optimized``)."""
    out: dict[str, Any] = {
        ("nominal" if k == "plain" else "optimized" if k == "adam" else k): v["waypoints"].cpu()
        for k, v in on_opt.items()
    }
    out["eval"] = {k: v["waypoints"].cpu() for k, v in on_eval.items()}
    out["z2"] = {k: r.z2.detach().cpu() for k, r in results.items()}
    out["optimized_noise"] = {
        k: {"x_T": r.noise.x_T.cpu(), "steps": r.noise.steps.cpu()}
        for k, r in results.items()
        if r.noise is not None
    }
    out["agents"] = None if scenarios.agents is None else scenarios.agents.cpu()
    out["agents_mask"] = None if scenarios.agents_mask is None else scenarios.agents_mask.cpu()
    out["names"] = list(scenarios.names)
    return out


def _write(
    result: OptimizeResult,
    on_opt: dict[str, dict[str, Any]],
    scenarios: Scenarios,
    camera: SimCamera | None,
) -> None:
    """``z2_optimized.pt``, ``trajectories.pt``, ``report.json`` and (with ``camera``) one PNG per scenario."""
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    torch.save(result.z2, out / "z2_optimized.pt")
    torch.save(result.trajectories, out / "trajectories.pt")
    (out / "report.json").write_text(json.dumps(result.to_report(), indent=2))
    if camera is None:
        return
    for b, name in enumerate(scenarios.names):
        plot_scenario(
            out / f"{name}.png",
            name,
            {k: v["waypoints"][b].cpu().numpy() for k, v in on_opt.items()},
            None if scenarios.agents is None else scenarios.agents[b].cpu().numpy(),
            None if scenarios.agents_mask is None else scenarios.agents_mask[b].cpu().numpy(),
            unnormalize_image(scenarios.obs_img[b, -3:]),
            camera,
        )


__all__ = ["METHODS", "OptimizeResult", "Z1_SOURCES", "optimize"]
