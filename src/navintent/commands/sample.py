"""``navintent sample``: the argparse definition and a thin call of :func:`navintent.sample.sample_trajectories`.

Owns the flags and the lines printed at the end (the policy and scene, the sampling time and the metric scale's
value, whose source the library's metric-scale line on stderr already states, the final-waypoint distances and the
files written). What is sampled and drawn is :mod:`navintent.sample`'s docstring.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from navintent.cli import float_at_least, int_at_least
from navintent.commands.common import add_metric_scale_arguments
from navintent.sample import sample_trajectories


def run_sample(args: argparse.Namespace) -> int:
    """``navintent sample``: :func:`sample_trajectories` with the parsed arguments; prints what it drew and wrote;
    returns 0."""
    result = sample_trajectories(
        args.out_dir,
        ckpt=args.ckpt,
        config=args.config,
        trust_checkpoint=args.trust_checkpoint,
        preset=args.preset,
        obs=args.obs or (),
        goal=args.goal,
        num_samples=args.num_samples,
        seed=args.seed,
        lambda_cfg=args.lambda_cfg,
        latent_seed=args.latent_seed,
        metric_scale=args.metric_scale,
        robot=args.robot,
        scale_dataset=args.scale_dataset,
        device=args.device,
    )
    final = result.waypoints_m[:, -1].norm(dim=-1)
    mode = "goal masked (exploration)" if result.goal_masked else "goal visible"
    print(
        f"navintent sample: {result.source}; {result.scene}; {mode}.\n"
        f"  encoded {result.frames} frames + goal once, ran {result.steps} DDPM denoising steps for "
        f"{result.num_samples} samples in {result.seconds:.2f} s on {args.device}; waypoints in metres at "
        f"{result.metric_scale.metres_per_unit:.4g} m per unit (its source: the metric-scale line above).\n"
        f"  final-waypoint distance: mean {final.mean():.2f} m (min {final.min():.2f}, max {final.max():.2f}).\n"
        f"  wrote {result.png_path} and {result.pt_path}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample",
        help="sample NoMaD trajectories for an observation (built-in corridor by default) and plot them",
        description="Load a policy (a checkpoint, or a preset with random weights), encode the observation context and "
        "goal once, draw --num-samples trajectories with NoMaD's DDPM loop and write OUT-DIR/sample.png (the "
        "waypoints on the current frame and top-down) and OUT-DIR/trajectories.pt (metres, robot frame). Without "
        "--obs a built-in corridor is drawn; with fewer --obs frames than the context needs, the oldest is repeated "
        "(a robot that stood still); without --goal the goal is masked (exploration). The metric scale is printed "
        "with its source (navintent.metric_scale).",
    )
    src = p.add_argument_group("policy")
    src.add_argument(
        "--preset", choices=("tiny", "demo", "nomad"), default="nomad", help="random-weight model size"
    )
    src.add_argument("--ckpt", type=Path, help="native checkpoint, nomad.pth (+ --config) or packaged file")
    src.add_argument("--config", type=Path, help="nomad.yaml (or navintent config YAML) for a bare nomad.pth")
    src.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow unpickling Python objects (packaged files); this can run code from the file",
    )
    inp = p.add_argument_group("input")
    inp.add_argument("--obs", nargs="+", type=Path, help="observation images, oldest first, current last")
    inp.add_argument("--goal", type=Path, help="goal image (omit: goal masked, exploration mode)")
    smp = p.add_argument_group("sampling")
    smp.add_argument("--num-samples", type=int_at_least(1), default=8)
    smp.add_argument(
        "--seed", type=int, default=0, help="seeds x_T, the DDPM step noise and the built-in scene"
    )
    smp.add_argument(
        "--lambda-cfg", type=float_at_least(0.0), default=0.0, help="guidance weight w (needs --latent-seed)"
    )
    smp.add_argument(
        "--latent-seed", type=int, help="draw latent_z ~ N(0, I) with this seed (default: no latent)"
    )
    add_metric_scale_arguments(smp)
    smp.add_argument("--device", default="cpu")
    p.add_argument("--out-dir", type=Path, default=Path("runs/sample"))
    p.set_defaults(func=run_sample)
