"""``navintent optimize-z2``: the argparse definition and a thin call of :func:`navintent.steering.optimize`.

Owns the flags (names, defaults, help), their translation into the typed call and the lines printed at the end
(one per method, then the files written). Errors are raised and reported by :func:`navintent.cli.main`
(:mod:`navintent.errors`): 2 for bad input, 3 when the objective or a gradient becomes NaN/inf (nothing written).
"""

from __future__ import annotations

import argparse

from navintent.cli import float_at_least, float_in, int_at_least
from navintent.commands.common import add_metric_scale_arguments
from navintent.diffusion import CLIP_MODES, NOISE_SPACES
from navintent.steering import (
    DEFAULT_OBJECTIVE,
    METHODS,
    SPACES,
    DatasetSamples,
    SampleFile,
    SimScenes,
    Z2OptimConfig,
    optimize,
    parse_methods,
)
from navintent.steering.report import summary_lines

DESCRIPTION = "z2 optimisation through the full differentiable sampler, sampling-based baselines, and ``navintent optimize-z2``."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ckpt", required=True, help="checkpoint: native navintent .pt, or packaged with --trust-checkpoint"
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--data_sample",
        "--data-sample",
        dest="data_sample",
        default=None,
        help=".pt dict with a training batch's fields (obs_img, goal_img, ... [agents, agents_mask, metric_scale, z1])",
    )
    src.add_argument(
        "--dataset",
        default=None,
        help="data root (layout of `navintent train --data_dir`) or a config YAML whose datasets: block names the data",
    )
    p.add_argument(
        "--index", type=int_at_least(0), nargs="+", default=[0], help="sample indices of --dataset's split"
    )
    p.add_argument("--split", default="test", help="split of --dataset (default test)")
    p.add_argument(
        "--crossing-pedestrian",
        nargs=2,
        type=float_at_least(0.0),
        metavar=("AHEAD_M", "SPEED_MPS"),
        default=None,
        help="add a synthetic pedestrian to --dataset / --data_sample scenarios: it crosses the robot's path "
        "AHEAD_M metres ahead, right to left at SPEED_MPS, on the axis at mid-horizon (for data without agents)",
    )
    p.add_argument(
        "--num-scenarios",
        type=int_at_least(1),
        default=1,
        help="built-in sim scenarios (scenes with pedestrians, from sim seed --seed on) when no data is given",
    )
    p.add_argument("--steps", type=int, default=100, help="Adam steps on z2")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    p.add_argument(
        "--objective", default=DEFAULT_OBJECTIVE, help="'name:weight[@k=v;...],...' (navintent.objectives)"
    )
    p.add_argument(
        "--method",
        nargs="+",
        default=["adam"],
        help=f"methods, comma- or space-separated, of {list(METHODS)} or 'all'; baselines get the Adam run's wall-clock budget "
        "(noise / z2+noise optimise the diffusion noise: their result exists on the optimisation draws only)",
    )
    p.add_argument(
        "--budget",
        type=float_at_least(0.0),
        default=None,
        help="seconds per baseline (default: Adam's time; 10 s without adam)",
    )
    p.add_argument(
        "--out-dir", default=".", help="output folder (z2_optimized.pt, report.json, trajectories.pt, PNGs)"
    )
    p.add_argument("--draws", type=int, default=8, help="noise draws per scenario during optimisation")
    p.add_argument("--eval-draws", type=int, default=16, help="fresh noise draws for the final evaluation")
    p.add_argument("--seed", type=int, default=0, help="noise, prior z1 and sim scene seed")
    p.add_argument(
        "--trust-checkpoint", action="store_true", help="allow unpickling a packaged checkpoint (runs code)"
    )
    p.add_argument("--lambda-cfg", type=float, default=0.0, help="classifier-free guidance weight")
    p.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm")
    p.add_argument("--inference-steps", type=int, default=0, help="denoising steps (0 = the scheduler's)")
    p.add_argument("--clip", choices=CLIP_MODES, default="straight_through")
    p.add_argument(
        "--space",
        choices=SPACES,
        default="auto",
        help="search coordinates of adam/cem: whitened by the training z2 covariance, or raw z2 "
        "(auto: whitened when the checkpoint has z2_stats)",
    )
    p.add_argument(
        "--dt",
        type=float_at_least(0.0, strict=True),
        default=None,
        help="seconds between waypoints for the dynamics terms (default 0.25 x the checkpoint's waypoint_spacing)",
    )
    p.add_argument(
        "--normalize-grad", action="store_true", help="per-scenario unit-norm gradient before Adam"
    )
    p.add_argument(
        "--patience", type=int, default=0, help="early stopping after N steps without improvement (0 = off)"
    )
    p.add_argument("--cem-population", type=int, default=16, help="CEM candidates per iteration")
    add_noise_arguments(p)
    p.add_argument(
        "--guide-scales",
        type=float,
        nargs="+",
        default=list(Z2OptimConfig.guide_scales),
        help="guidance scales the guided baseline tries first",
    )
    p.add_argument("--success-radius", type=float, default=0.5, help="attack success distance (m)")
    add_metric_scale_arguments(p)
    p.add_argument(
        "--z1",
        choices=("data", "prior"),
        default=None,
        help="z1 source: Encoder1 mean on the data (default with data) or a prior sample (default without)",
    )
    p.add_argument(
        "--camera-hfov",
        type=float_in(0.0, 179.0, low_open=True),
        default=100.0,
        help="horizontal fov (deg) for drawing on data images",
    )
    p.add_argument(
        "--camera-height",
        type=float_at_least(0.0, strict=True),
        default=0.45,
        help="camera height (m) for drawing on data images",
    )
    p.add_argument(
        "--realism-data",
        default=None,
        metavar="DATA",
        help="the checkpoint's training data (data root or config with datasets:): measure the realism range on its test split (navintent.realism) "
        "and flag each method's z2_nll and dynamics against it in report.json",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--no-plots", action="store_true")


def add_noise_arguments(p: argparse.ArgumentParser) -> None:
    """``--noise-lr``, ``--noise-nll-weight``, ``--noise-space`` (the noise methods' settings, defaults of
    :class:`Z2OptimConfig`), shared by ``optimize-z2`` and ``evaluate``."""
    p.add_argument(
        "--noise-lr",
        type=float_at_least(0.0, strict=True),
        default=Z2OptimConfig.noise_lr,
        help="Adam learning rate on the diffusion noise (methods noise, z2+noise; N(0, 1) units)",
    )
    p.add_argument(
        "--noise-nll-weight",
        type=float_at_least(0.0),
        default=Z2OptimConfig.noise_nll_weight,
        help="weight of the noise realism term noise_nll (chi NLL of the noise norm, nats) in the noise methods' loss",
    )
    p.add_argument(
        "--noise-space",
        choices=NOISE_SPACES,
        default=Z2OptimConfig.noise_space,
        help="noise the noise methods optimise and the noise realism measures: all (x_T and every step noise) or x_T",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "optimize-z2",
        help="optimise z2 through the full diffusion sampler against a task objective (+ baselines)",
        description=DESCRIPTION,
    )
    add_arguments(p)
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """Run ``optimize-z2`` with parsed ``args``; returns the exit status 0. Raises what
    :func:`navintent.steering.optimize` raises (input errors, :class:`navintent.steering.NonFiniteObjectiveError`)."""
    args.method = ",".join(
        args.method
    )  # "adam plain" and "adam,plain" alike; the report keeps the comma form
    methods = parse_methods(args.method)
    config = Z2OptimConfig(
        steps=args.steps,
        lr=args.lr,
        normalize_grad=args.normalize_grad,
        patience=args.patience,
        draws=args.draws,
        eval_draws=args.eval_draws,
        sampler=args.sampler,
        inference_steps=args.inference_steps,
        clip=args.clip,
        space=args.space,
        lambda_cfg=args.lambda_cfg,
        success_radius=args.success_radius,
        cem_population=args.cem_population,
        guide_scales=tuple(args.guide_scales),
        noise_lr=args.noise_lr,
        noise_nll_weight=args.noise_nll_weight,
        noise_space=args.noise_space,
    )
    if args.data_sample is not None:
        source = SampleFile(args.data_sample)
    elif args.dataset is not None:
        source = DatasetSamples(args.dataset, tuple(args.index), args.split)
    else:
        source = SimScenes(args.num_scenarios)
    result = optimize(
        args.ckpt,
        source,
        objective=args.objective,
        methods=methods,
        config=config,
        dt=args.dt,
        budget_s=args.budget,
        seed=args.seed,
        z1=args.z1,
        crossing=None if args.crossing_pedestrian is None else tuple(args.crossing_pedestrian),
        metric_scale=args.metric_scale,
        robot=args.robot,
        scale_dataset=args.scale_dataset,
        realism_data=args.realism_data,
        camera_hfov=args.camera_hfov,
        camera_height=args.camera_height,
        device=args.device,
        trust_checkpoint=args.trust_checkpoint,
        out_dir=args.out_dir,
        plots=not args.no_plots,
        arguments={k: v for k, v in vars(args).items() if k != "func"},
    )
    for line in summary_lines(result.summary):
        print(line)
    print(
        f"wrote {result.out_dir / 'z2_optimized.pt'}, report.json, trajectories.pt"
        + ("" if args.no_plots else ", PNG plots")
    )
    return 0
