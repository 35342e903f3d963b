"""``navintent evaluate`` and ``navintent experiment``: the argparse definitions and thin calls of
:func:`navintent.evaluation.evaluate`, :func:`navintent.evaluation.run_diversity` and
:func:`navintent.evaluation.run_perturb`.

Owns the flags (names, defaults, help), their translation into :class:`navintent.evaluation.EvalConfig`, the
checkpoint and metric-scale loading for the commands and the lines printed at the end (the tables, then the files
written). Bad input is raised (``ValueError`` / ``FileNotFoundError`` naming the flag or file) before any episode
runs and reported by :func:`navintent.cli.main` with exit status 2 (:mod:`navintent.errors`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from navintent.checkpoint import LoadedModel, load_inference_model, resolve_device
from navintent.commands.common import add_metric_scale_arguments, metric_scale_for_command
from navintent.commands.optimize_z2 import add_noise_arguments
from navintent.data.sources import data_dir_scales
from navintent.evaluation.api import evaluate
from navintent.evaluation.closed_loop import resolve_methods, torch_threads
from navintent.evaluation.config import HOLDS, METHODS, PREDICTIONS, SCENARIOS, EvalConfig, inactive_settings
from navintent.evaluation.experiments import run_diversity, run_perturb
from navintent.evaluation.tasks import TASKS
from navintent.metric_scale import MetricScale
from navintent.objectives import Objective
from navintent.sim.config import RECORDING_FILE, SimConfig, load_sim_config, sim_config_changes
from navintent.steering.config import DEFAULT_OBJECTIVE

logger = logging.getLogger(__name__)


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
    loaded = load_inference_model(
        args.ckpt,
        config=args.config,
        trust_checkpoint=args.trust_checkpoint,
        device=resolve_device(args.device),
    )
    data = data_dir_scales(args.data_dir, loaded.waypoint_spacing, what="--data-dir") if args.data_dir else ()
    return loaded, metric_scale_for_command(args, checkpoint=loaded.training_scales, data=data)


def _world_for_cli(args: argparse.Namespace) -> SimConfig:
    """The world ``--world`` names (its settings that differ from the built-in defaults logged), else the built-in
    one. When ``--data-dir`` is a make-data output recorded with another robot or camera than that world, a warning
    names the differing values: the model would see other images or drive another robot than it was trained on."""
    world = SimConfig()
    if args.world is not None:
        world, source = load_sim_config(args.world)
        changes = sim_config_changes(world)
        logger.info(
            "navintent evaluate: world from %s: %s",
            source, "the built-in defaults except " + ", ".join(changes) if changes else "the built-in defaults",
        )  # fmt: skip
    if args.data_dir is not None and (Path(args.data_dir) / RECORDING_FILE).is_file():
        recorded, source = load_sim_config(args.data_dir)
        differ = [c for c in sim_config_changes(world, recorded) if c.startswith(("robot.", "camera."))]
        if differ:
            logger.warning(
                "navintent evaluate: warning: %s was recorded with another robot or camera than the world this "
                "evaluation runs in (recorded -> evaluated: %s); pass --world %s to evaluate in the recorded world",
                source, ", ".join(differ), args.data_dir,
            )  # fmt: skip
    return world


# EvalConfig fields whose flag is not the field name with dashes
_FLAG_OF_FIELD = {"budget_s": "--budget"}


def _as_flag_error(message: str) -> str:
    """An :class:`EvalConfig` error (``"engage_distance must be ..."``) in the flag's words (``"--engage-distance
    must be ..."``); a message that does not start with a field name is returned as it is."""
    field_name, _, rest = message.partition(" ")
    if field_name not in EvalConfig.__dataclass_fields__:
        return message
    return f"{_FLAG_OF_FIELD.get(field_name, '--' + field_name.replace('_', '-'))} {rest}"


def run_evaluate_cli(args: argparse.Namespace) -> int:
    """``navintent evaluate``: check the flags, load the checkpoint, run :func:`navintent.evaluation.evaluate`, print
    the table; returns 0. Raises ``ValueError`` / ``FileNotFoundError`` for bad input, before any episode runs."""
    methods, explicit = _parse_methods(args.methods)
    if args.scenes is not None and args.scenes < 1:
        raise ValueError(f"--scenes must be >= 1, got {args.scenes}")
    try:  # every value checked before the checkpoint loads; the scale and methods follow from it
        config = EvalConfig(
            scenes=args.scenes or EvalConfig.scenes, seed=args.seed, methods=methods,
            replan_every=args.replan_every, opt_steps=args.opt_steps, lr=args.lr, draws=args.draws,
            objective=args.objective, budget_s=args.budget, safety_radius=args.safety_radius,
            lambda_cfg=args.lambda_cfg, step_factor=args.step_factor,
            max_plots=args.max_plots, max_episode_steps=args.max_episode_steps, noise_lr=args.noise_lr,
            noise_nll_weight=args.noise_nll_weight, noise_space=args.noise_space, task=args.task,
            map_every=args.map_every, radius=args.radius, close_threshold=args.close_threshold,
            stop_when_closest=args.stop_when_closest, explore_steps=args.explore_steps,
            waypoint_index=args.waypoint_index, hold=args.hold, engage_distance=args.engage_distance,
            scenario=args.scenario, prediction=args.prediction,
        )  # fmt: skip
    except ValueError as error:
        raise ValueError(_as_flag_error(str(error))) from None
    try:  # parse errors before the checkpoint loads
        Objective(config.objective)
    except ValueError as error:
        raise ValueError(f"--objective: {error}") from None
    world = _world_for_cli(args)
    loaded, scale = _load_for_cli(args)
    config = config.replace(
        methods=resolve_methods(methods, loaded, explicit=explicit), metric_scale=scale.metres_per_unit
    )
    for note in inactive_settings(config):  # "hold = ..." -> "--hold = ..."
        logger.warning("navintent evaluate: warning: %s", _as_flag_error(note))
    with torch_threads(args.threads):
        result = evaluate(
            loaded, config, args.out_dir, plots=not args.no_plots, progress=not args.no_progress,
            meta={"ckpt": str(args.ckpt), "command": "navintent " + " ".join(sys.argv[1:])}, scale=scale,
            workers=args.workers, threads=args.threads, warn_inactive=False, world=world,
        )  # fmt: skip
    if not result.is_report:  # a torchrun rank other than 0: rank 0 writes the report
        return 0
    print(result.table)
    print(
        f"wrote {Path(args.out_dir) / 'metrics.json'}, results.md"
        + ("" if args.no_plots else " and PNG plots")
    )
    return 0


def run_experiment_cli(args: argparse.Namespace) -> int:
    """``navintent experiment``: check the flags, load the checkpoint, run the experiments, print their tables;
    returns 0. Raises ``ValueError`` / ``FileNotFoundError`` for bad input, before any experiment runs."""
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
        "plots; definitions in the navintent.evaluation package docstring.",
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
    p.add_argument(
        "--map-every",
        type=int,
        default=EvalConfig.map_every,
        help="frames between map nodes (default 0: 4 x the checkpoint's waypoint spacing, NoMaD's node gap)",
    )
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
        "--stop-when-closest",
        action="store_true",
        help="declare the goal once the goal node is the closest one (NoMaD navigate.py's rule); default: also "
        "require its predicted distance below --close-threshold",
    )
    p.add_argument(
        "--hold",
        choices=HOLDS,
        default=EvalConfig.hold,
        help="between re-optimisations (while engaged, see --engage-distance) adam / best_of_n / cem / z2+noise "
        "execute the optimised z2 (z2, the default) or Encoder2's z2 of each step plus the optimised offset "
        "(offset)",
    )
    p.add_argument(
        "--engage-distance",
        type=float,
        default=EvalConfig.engage_distance,
        help="metres: at each re-optimising step (every --replan-every) the steering methods re-optimise only when "
        "the target's predicted track (--prediction) passes this close to the nominal plan, else drive Encoder2's "
        "z2 (and fresh noise), the nominal, until the next one (default 0: always re-optimise)",
    )
    p.add_argument(
        "--world",
        metavar="PATH",
        help="the built-in world's settings to evaluate in (robot, camera, pedestrians, scene distribution): a "
        "SimConfig YAML, or a make-data output (its folder or sim_episodes.yaml) to evaluate in the world that data "
        "was recorded in, every setting of it included (default: the built-in defaults)",
    )
    p.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default=EvalConfig.scenario,
        help="held-out scenes: mixed (the world's default) or crossing (the same seeds drawn with every "
        "pedestrian a crosser of the expert's plan, timed to meet the robot, where a free crossing line exists; "
        "scenes with no crosser skipped)",
    )
    p.add_argument(
        "--prediction",
        choices=PREDICTIONS,
        default=EvalConfig.prediction,
        help="the target's future the steering methods aim at (and --engage-distance checks): the social-force "
        "model with the robot held still (still, the default), driving the nominal plan (nominal), or nominal plus "
        "the target's linearised reaction to the plan being searched (reactive)",
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
        "--replan-every",
        type=int,
        default=EvalConfig.replan_every,
        help="re-optimise (or, with --engage-distance, check whether to) every N steps (default %(default)s)",
    )
    p.add_argument(
        "--opt-steps",
        type=int,
        default=EvalConfig.opt_steps,
        help="Adam steps per re-optimisation (default %(default)s)",
    )
    p.add_argument(
        "--lr", type=float, default=EvalConfig.lr, help="Adam learning rate on z2 (default %(default)s)"
    )
    p.add_argument(
        "--draws",
        type=int,
        default=EvalConfig.draws,
        help="noise draws per re-optimisation (default %(default)s)",
    )
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
    p.add_argument(
        "--waypoint-index",
        type=int,
        default=EvalConfig.waypoint_index,
        help="the planned waypoint the controller drives to (NoMaD: 2)",
    )
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
        help="the latent experiments: z1 fixed -> diversity; z1 perturbed -> executable fraction",
        description="diversity: spread of trajectories with z1 fixed vs varied; perturb: fraction of trajectories "
        "still executable (collision-free, within dynamics limits) as z1 is perturbed by sigma * N(0, I).",
    )
    e.add_argument("which", choices=("diversity", "perturb", "all"))
    _common_arguments(e)
    e.add_argument("--out-dir", default="runs/experiment", help="output folder (default %(default)s)")
    e.add_argument("--samples", type=int, default=16, help="trajectories per scenario (and per sigma)")
    e.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0, 8.0])
    e.set_defaults(func=run_experiment_cli)
