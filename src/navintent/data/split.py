"""Train/test splits in NoMaD's layout: ``OUT/train/traj_names.txt`` and ``OUT/test/traj_names.txt``.

As NoMaD's ``data_split.py``: the candidates are the dataset's sub-folders that contain ``traj_data.pkl``,
shuffled, the first ``int(train_frac * n)`` go to train, the rest to test. Unlike it, the shuffle is seeded
(``seed``) and starts from the sorted names, so a split is reproducible; files are written atomically and
other files in the split folders are left alone (NoMaD deletes them).
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

from navintent.data.format import (
    TRAJ_DATA_FILE,
    TRAJ_NAMES_FILE,
    DataError,
    DataWarning,
    list_trajectory_folders,
)


def write_traj_names(split_folder: str | Path, names: list[str]) -> Path:
    """Write ``split_folder/traj_names.txt`` (one name per line) atomically; returns its path."""
    folder = Path(split_folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TRAJ_NAMES_FILE
    tmp = folder / f".{TRAJ_NAMES_FILE}.{os.getpid()}.tmp"
    tmp.write_text("".join(f"{n}\n" for n in names))
    os.replace(tmp, path)
    return path


def split_dataset(
    data_folder: str | Path, out_dir: str | Path, train_frac: float = 0.8, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split the trajectories of ``data_folder`` into ``out_dir/{train,test}``; returns (train, test) names.

    Warns (:class:`navintent.data.format.DataWarning`, with the counts) when ``0 < train_frac < 1`` still leaves a
    split empty (too few trajectories for that fraction): the split is written as asked, but training on an empty
    train split or evaluating on an empty test split will fail later."""
    if not 0.0 <= train_frac <= 1.0:
        raise ValueError(f"train_frac must be in [0, 1], got {train_frac}")
    names = [p.name for p in list_trajectory_folders(Path(data_folder)) if (p / TRAJ_DATA_FILE).is_file()]
    if not names:
        raise DataError(f"{data_folder}: no trajectory folder with {TRAJ_DATA_FILE}")
    random.Random(seed).shuffle(names)
    cut = int(train_frac * len(names))
    train, test = names[:cut], names[cut:]
    if 0.0 < train_frac < 1.0 and not (train and test):
        empty = "train" if not train else "test"
        count = f"{len(names)} trajector{'y' if len(names) == 1 else 'ies'}"
        warnings.warn(
            f"{data_folder}: {count} at train_frac {train_frac} give {len(train)} train / {len(test)} test: "
            f"the {empty} split is empty",
            DataWarning,
            stacklevel=2,
        )
    write_traj_names(Path(out_dir) / "train", train)
    write_traj_names(Path(out_dir) / "test", test)
    return train, test
