"""``navintent split`` and ``navintent check-data``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from navintent.cli import float_in
from navintent.data.cache import decode_image
from navintent.data.format import (
    TRAJ_DATA_FILE,
    TRAJ_NAMES_FILE,
    DataError,
    find_problems,
    list_trajectory_folders,
    read_traj_names,
)
from navintent.data.split import split_dataset


def image_problem(path: Path) -> str | None:
    """Fully decode ``path`` as the dataset does (mode conversion, crop; see
    :func:`navintent.data.cache.decode_image`); a problem line naming it, or None if it decodes."""
    try:
        decode_image(path, (2, 2))
    except DataError as err:
        return str(err)
    return None


def check_dataset(
    data_folder: Path, split_folders: list[Path], decode: bool = True, progress: bool = True
) -> list[str]:
    """Every problem of a dataset folder (and of the given split folders), one line each, naming the file."""
    try:
        folders = list_trajectory_folders(data_folder)
    except DataError as err:
        return [str(err)]
    problems: list[str] = []
    if not folders:
        problems.append(f"{data_folder}: no trajectory folders")
    for folder in tqdm(folders, desc="checking trajectories", disable=not progress, file=sys.stderr):
        if not (folder / TRAJ_DATA_FILE).exists():
            problems.append(f"{folder / TRAJ_DATA_FILE}: missing {TRAJ_DATA_FILE}")
            continue
        traj, found = find_problems(folder)
        problems.extend(found)
        if traj is not None and decode:
            problems.extend(
                p for t in range(len(traj)) if (p := image_problem(traj.image_path(t))) is not None
            )
    for split in split_folders:
        try:
            names = read_traj_names(split)
        except DataError as err:
            problems.append(str(err))
            continue
        problems.extend(
            f"{split / TRAJ_NAMES_FILE}: lists trajectory '{n}' but {data_folder / n} does not exist"
            for n in names
            if not (data_folder / n).is_dir()
        )
    return problems


def _check_data(args: argparse.Namespace) -> int:
    data_folder = Path(args.dataset_dir)
    problems = check_dataset(data_folder, [Path(s) for s in args.split], decode=not args.no_decode)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in {data_folder}", file=sys.stderr)
        return 1
    print(f"{data_folder}: no problems found")
    return 0


def _split(args: argparse.Namespace) -> int:
    train, test = split_dataset(args.dataset_dir, args.out, train_frac=args.train_frac, seed=args.seed)
    print(
        f"wrote {len(train)} train / {len(test)} test trajectories to {args.out}/{{train,test}}/{TRAJ_NAMES_FILE}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check-data",
        help="validate a NoMaD-format dataset; list every problem; exit 1 if any",
        description="Validate every trajectory of DATASET_DIR (traj_data.pkl keys, shapes, finiteness, "
        "images vs poses, optional ref_traj/agents) and decode every image. Exit 0 if clean, 1 otherwise.",
    )
    p.add_argument("dataset_dir", metavar="DATASET_DIR")
    p.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="SPLIT_DIR",
        help="also check SPLIT_DIR/traj_names.txt",
    )
    p.add_argument("--no-decode", action="store_true", help="skip decoding images (only check they exist)")
    p.set_defaults(func=_check_data)

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
    s.set_defaults(func=_split)
