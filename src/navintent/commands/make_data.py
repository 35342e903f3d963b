"""``navintent make-data``: the argparse definition and a thin call of :func:`navintent.sim.recorder.record_dataset`
(record expert episodes in the built-in world as a NoMaD-format dataset)."""

from __future__ import annotations

import argparse

from navintent.cli import float_in, int_at_least
from navintent.sim.config import SimConfig, load_sim_config
from navintent.sim.recorder import record_dataset


def run_make_data(args: argparse.Namespace) -> int:
    """``navintent make-data``: :func:`record_dataset` with the parsed arguments; prints what was written."""
    config = load_sim_config(args.config)[0] if args.config else SimConfig()
    if args.image_size is not None:
        config = config.replace(camera=config.camera.replace(image_size=tuple(args.image_size)))
    summary = record_dataset(
        args.out,
        args.episodes,
        args.seed,
        config=config,
        dataset_name=args.dataset_name,
        train_frac=args.train_frac,
        max_steps=args.max_steps,
        workers=args.workers,
        goals_per_start=args.goals_per_start,
    )
    print(
        f"wrote {summary['episodes']} episodes ({summary['frames']} frames, {summary['with_crossing']} with a "
        f"pedestrian crossing the path) to {summary['dataset']}; metric_waypoint_spacing "
        f"{summary['metric_waypoint_spacing']:.4f} m; split {summary['train']} train / {summary['test']} test"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "make-data",
        help="record expert episodes in the built-in MuJoCo world (NoMaD layout)",
        description="Record expert episodes (A* + pedestrian-aware follower) in seeded MuJoCo scenes with "
        "pedestrians. Writes OUT/<dataset-name>/<episode>/{i.jpg, traj_data.pkl}, OUT/data_config.yaml, "
        "OUT/splits/<dataset-name>/{train,test}/traj_names.txt and OUT/sim_episodes.yaml. Deterministic for a seed.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--episodes", type=int_at_least(1), required=True, help="number of episodes")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument(
        "--image-size",
        type=int_at_least(1),
        nargs=2,
        metavar=("W", "H"),
        help="camera image size (default 96 96)",
    )
    p.add_argument(
        "--dataset-name", default="navintent_sim", help="dataset folder name (default navintent_sim)"
    )
    p.add_argument(
        "--train-frac",
        type=float_in(0.0, 1.0),
        default=0.8,
        help="fraction of episodes in train (default 0.8)",
    )
    p.add_argument(
        "--max-steps", type=int_at_least(1), default=400, help="step limit of an expert episode (default 400)"
    )
    p.add_argument("--workers", type=int_at_least(1), default=1, help="worker processes (default 1)")
    p.add_argument(
        "--goals-per-start",
        type=int_at_least(1),
        default=1,
        help="record episodes in groups of this many from one start pose to different goals, so only the goal "
        "image tells the futures apart (must divide --episodes; default 1)",
    )
    p.add_argument(
        "--config",
        help="the world: a SimConfig YAML (see navintent.sim.config), or an earlier make-data output (its folder or "
        "sim_episodes.yaml) to record in the same world; --image-size overrides its camera",
    )
    p.set_defaults(func=run_make_data)
