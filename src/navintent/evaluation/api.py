"""``evaluate(...) -> EvaluateResult``: one closed-loop evaluation as a typed Python call.

Owns the order of a run: resolve the metric scale, run every scene (:func:`navintent.evaluation.closed_loop.
run_scenes`), aggregate the episode rows (:mod:`navintent.evaluation.metrics`) and write ``metrics.json``,
``results.md`` and the plots (:mod:`navintent.evaluation.report`). ``navintent evaluate``
(:mod:`navintent.commands.evaluate`) and ``navintent demo`` call :func:`evaluate` and read the returned
:class:`EvaluateResult`; :meth:`EvaluateResult.to_json` is exactly what ``metrics.json`` holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from navintent.checkpoint import LoadedModel
from navintent.config import check_positive_int
from navintent.evaluation.closed_loop import SceneResult, run_scenes
from navintent.evaluation.config import NOMINAL, EvalConfig, inactive_settings, map_every_frames
from navintent.evaluation.metrics import aggregate, closed_loop_statistics, paired_steering_comparisons
from navintent.evaluation.report import markdown_table, write_json, write_plots, write_results_markdown
from navintent.metric_scale import MetricScale, resolve_metric_scale
from navintent.sim.config import SimConfig

logger = logging.getLogger(__name__)


@dataclass
class EvaluateResult:
    """What one evaluation produced; :meth:`to_json` is ``metrics.json`` (before the JSON sanitising of
    :func:`navintent.evaluation.report.write_json`).

    ``rank``: the ``torchrun`` rank (0 without it); on another rank only ``scene_results`` (its own scenes) is
    filled and :attr:`is_report` is False — rank 0 writes the report. ``scene_results``: per scene, its episodes
    with their tracks (:class:`navintent.evaluation.closed_loop.SceneResult`, sorted by index). ``episodes``: the
    episode rows (one dict per method and scene, keys of :func:`navintent.evaluation.closed_loop.run_episode`).
    ``summary``: method -> aggregate (:func:`navintent.evaluation.metrics.aggregate`). ``closed_loop``:
    ``{task: {method: {metric: {"mean", "ci95", "n"}}}}``. ``paired``: ``"a vs b"`` -> paired comparison of the
    target's minimum distance (m). ``table``: the Markdown summary table. ``plots``: file names written into
    ``out_dir`` (None without plots). ``metric_scale``: metres per normalised unit and its source. ``world``: the
    world the scenes ran in. ``meta``: the caller's keys, first in the JSON.
    """

    config: EvalConfig
    methods: tuple[str, ...]
    metric_scale: MetricScale
    out_dir: Path
    world: SimConfig = field(default_factory=SimConfig)
    workers: int = 1
    rank: int = 0
    scene_results: list[SceneResult] = field(default_factory=list)
    episodes: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    closed_loop: dict[str, dict[str, Any]] = field(default_factory=dict)
    paired: dict[str, Any] = field(default_factory=dict)
    table: str = ""
    plots: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_report(self) -> bool:
        """True where the report was written (rank 0)."""
        return self.rank == 0

    @property
    def scenes(self) -> list[dict[str, int]]:
        """Per scene: its ``seed``, number of ``pedestrians``, ``target`` pedestrian and ``expert_steps``."""
        return [
            {
                "seed": int(r.scene.seed),
                "pedestrians": r.scene.num_pedestrians,
                "target": int(r.target),
                "expert_steps": r.expert_steps,
            }
            for r in self.scene_results
        ]

    def to_json(self) -> dict[str, Any]:
        """The ``metrics.json`` dict (key order included); on a rank other than 0 ``{"rank", "scenes"}`` (the
        scene indices it ran)."""
        if not self.is_report:
            return {"rank": self.rank, "scenes": [r.index for r in self.scene_results]}
        report: dict[str, Any] = {
            **self.meta,
            "config": self.config.to_dict(),
            "world": self.world.to_dict(),
            "methods": list(self.methods),
            "metric_scale": self.metric_scale.metres_per_unit,
            "metric_scale_source": self.metric_scale.source,
            "nominal": NOMINAL if NOMINAL in self.methods else None,
            "workers": self.workers,
            "scenes": self.scenes,
            "summary": self.summary,
            "closed_loop": self.closed_loop,
            "paired": self.paired,
            "episodes": self.episodes,
            "table": self.table,
        }
        if self.plots is not None:
            report["plots"] = self.plots
        return report


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
    warn_inactive: bool = True,
    world: SimConfig | None = None,
) -> EvaluateResult:
    """Run the closed-loop evaluation and write ``metrics.json``, ``results.md`` and plots into ``out_dir``.

    ``methods``: None = ``config.methods``. ``scale``: metres per unit already resolved by the caller (with its
    source); None = ``config.metric_scale`` when > 0, else the checkpoint's
    (:func:`navintent.metric_scale.resolve_metric_scale`). ``workers``: scenes run in that many processes (spawned;
    ``threads`` torch threads each); every scene is a pure function of its index and seed
    (:func:`navintent.evaluation.closed_loop.evaluate_scene`), so the rows are the same for any worker count,
    except the time-budgeted baselines (best-of-N, CEM, guided, noise at ``budget_s`` 0 or a wall-clock budget),
    whose work depends on the machine's speed. Under ``torchrun`` (``WORLD_SIZE`` > 1) rank ``r`` takes scenes
    ``r, r + W, ...`` and rank 0 gathers them (gloo) and writes the report; the other ranks return a result with
    ``is_report`` False. ``meta``: keys put first in ``metrics.json``. ``config.map_every`` 0 is resolved here
    (:func:`navintent.evaluation.config.map_every_frames`) and the report's config states the frames used.
    ``warn_inactive``: log a warning for every setting that no method of the run or not its task reads
    (:func:`navintent.evaluation.config.inactive_settings`; ``navintent evaluate`` names them in its flags' words
    itself). ``world``: the built-in world's settings the held-out scenes are drawn in and run with (robot,
    camera, pedestrians, scene distribution; None: ``SimConfig()``, the default every documented run used); a model
    should be evaluated with the robot and camera its data was recorded with
    (:func:`navintent.sim.config.load_sim_config` reads them from a make-data output). ``metrics.json`` records it
    as ``world``. Raises ``ValueError`` for ``workers`` < 1.
    """
    check_positive_int("workers", workers)
    out = Path(out_dir)
    methods = tuple(methods or config.methods)
    if warn_inactive:
        for note in inactive_settings(config, methods):
            logger.warning("evaluate: warning: %s", note)
    if scale is None:
        scale = resolve_metric_scale(explicit=config.metric_scale or None, checkpoint=loaded.training_scales)
    metric_scale = scale.metres_per_unit
    if config.task == "navigate" and config.map_every == 0:
        config = config.replace(map_every=map_every_frames(config, loaded.waypoint_spacing))
    world = world or SimConfig()
    run = run_scenes(
        loaded,
        config,
        methods,
        metric_scale,
        workers=workers,
        threads=threads,
        progress=progress,
        world=world,
    )
    result = EvaluateResult(
        config,
        methods,
        scale,
        out,
        world=world,
        workers=workers,
        rank=run.rank,
        scene_results=run.results,
        meta=dict(meta or {}),
    )
    if not result.is_report:
        return result
    out.mkdir(parents=True, exist_ok=True)
    result.episodes = [ep.row for r in run.results for ep in r.episodes.values()]
    result.summary = aggregate(result.episodes, methods)
    result.table = markdown_table(result.summary, config.task)
    result.closed_loop = {config.task: closed_loop_statistics(result.episodes, methods)}
    result.paired = paired_steering_comparisons(result.episodes, methods)
    write_json(out / "metrics.json", result.to_json())
    write_results_markdown(
        out / "results.md",
        config,
        run.results,
        metric_scale,
        result.table,
        result.closed_loop[config.task],
        world=world,
    )
    if plots:
        result.plots = write_plots(out, config, run.results, result.summary)
        write_json(out / "metrics.json", result.to_json())
    return result
