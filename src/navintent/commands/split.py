"""``navintent split``: the argparse definition and a thin call of :func:`navintent.data.split.split_dataset`."""

from __future__ import annotations

import argparse

from navintent.cli import float_in
from navintent.data.format import TRAJ_NAMES_FILE
from navintent.data.split import split_dataset


def run_split(args: argparse.Namespace) -> int:
    """``navintent split``: write the two split files and say how many trajectories each lists; returns 0."""
    train, test = split_dataset(args.dataset_dir, args.out, train_frac=args.train_frac, seed=args.seed)
    print(
        f"wrote {len(train)} train / {len(test)} test trajectories to {args.out}/{{train,test}}/{TRAJ_NAMES_FILE}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    s = subparsers.add_parser(
        "split",
        help="write train/test traj_names.txt like NoMaD's data_split.py",
        description="Shuffle (seeded) the trajectory folders of DATASET_DIR that contain traj_data.pkl and write "
        "OUT/train/traj_names.txt and OUT/test/traj_names.txt.",
    )
    s.add_argument("dataset_dir", metavar="DATASET_DIR")
    s.add_argument("--out", required=True, metavar="SPLIT_DIR")
    s.add_argument("--train-frac", type=float_in(0.0, 1.0), default=0.8)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=run_split)
