"""navintent.data.split: NoMaD's train/test split, seeded."""

import warnings

import pytest

from navintent.data.format import DataWarning
from navintent.data.split import split_dataset
from navintent.data.synthetic import write_synthetic_dataset


def test_split_is_seeded_and_covers_every_trajectory(tmp_path):
    ds = write_synthetic_dataset(tmp_path / "d", 5, 12)
    a = split_dataset(tmp_path / "d", tmp_path / "s1", train_frac=0.6, seed=3)
    b = split_dataset(tmp_path / "d", tmp_path / "s2", train_frac=0.6, seed=3)
    assert a == b and len(a[0]) == 3 and sorted(a[0] + a[1]) == sorted(ds.names)
    assert (tmp_path / "s1" / "train" / "traj_names.txt").read_text().split() == a[0]


def test_split_warns_when_the_fraction_leaves_a_split_empty(tmp_path):
    write_synthetic_dataset(tmp_path / "d", 1, 12)
    with pytest.warns(
        DataWarning, match=r"1 trajectory at train_frac 0.8 give 0 train / 1 test: the train split"
    ):
        train, test = split_dataset(tmp_path / "d", tmp_path / "s", train_frac=0.8)
    assert (train, len(test)) == ([], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all in train on purpose: no warning
        split_dataset(tmp_path / "d", tmp_path / "s", train_frac=1.0)
