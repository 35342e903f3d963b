"""Shared fixtures for the data tests: a NavDataset factory with NoMaD's nomad.yaml defaults."""

from __future__ import annotations

import pytest

from navintent.data import NavDataset


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def make_dataset(cache_dir):
    """``make_dataset(data_folder, split_folder, **overrides)`` -> NavDataset with nomad.yaml's values
    (context 3, len_traj_pred 8, distance 0..20, action 3..20, negatives on, 0.25 m spacing, 32x24 images)."""

    def factory(data_folder, split_folder, **overrides) -> NavDataset:
        kwargs = dict(
            data_folder=data_folder,
            data_split_folder=split_folder,
            dataset_name="synthetic",
            image_size=[32, 24],
            waypoint_spacing=1,
            min_dist_cat=0,
            max_dist_cat=20,
            min_action_distance=3,
            max_action_distance=20,
            negative_mining=True,
            len_traj_pred=8,
            learn_angle=False,
            context_size=3,
            metric_waypoint_spacing=0.25,
            cache_dir=cache_dir,
            progress=False,
        )
        kwargs.update(overrides)
        return NavDataset(**kwargs)

    return factory
