"""Where training and inference data come from: dataset sources and the splits built from them.

A :class:`DatasetSource` is one dataset: its trajectories folder, one split folder per split (each holding
``traj_names.txt``), its data config, and the per-dataset options of NoMaD's ``datasets:`` block. Two ways to get
sources:

- :func:`discover_datasets` reads a data root as ``navintent make-data`` writes it (``train --data_dir``)::

      DIR/<name>/<traj>/...                  (NoMaD format)
      DIR/splits/<name>/{train,test}/traj_names.txt
      DIR/data_config.yaml                   (optional; else the shipped NoMaD data_config.yaml)

  or a single dataset folder with ``DIR/splits/{train,test}`` (name = the folder's name). Per-dataset options are
  left to the training config.
- :func:`sources_from_specs` takes the ``datasets:`` block of a NoMaD config (:class:`navintent.config.DatasetSpec`):
  each dataset with its own folder, split folders, ``end_slack``, ``goals_per_obs``, ``negative_mining`` and
  ``waypoint_spacing``, as NoMaD's ``train.py`` builds them.

:func:`build_split` turns sources into one dataset per split (a ``ConcatDataset`` for several, which a shuffled
loader samples in proportion to each dataset's size, as NoMaD's ``train.py`` does), and
:func:`load_inference_split` is the split an inference command reads at a checkpoint's training options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import ConcatDataset, Dataset

from navintent.config import DatasetSpec, ModelConfig, TrainConfig, read_nomad_datasets
from navintent.data.dataset import NavDataset
from navintent.data.format import TRAJ_NAMES_FILE
from navintent.data.spacing import configured_spacing
from navintent.metric_scale import TrainingScale

SPLITS = ("train", "test")


@dataclass(frozen=True)
class DatasetSource:
    """One dataset: ``data_folder`` of trajectories, ``split_folders`` (split name -> folder with
    ``traj_names.txt``; a split may be absent), ``data_config`` (NoMaD data-config YAML; None = the shipped one)
    and per-dataset options (None = the training config's value)."""

    name: str
    data_folder: Path
    split_folders: dict[str, Path]
    data_config: Path | None = None
    end_slack: int | None = None
    goals_per_obs: int | None = None
    negative_mining: bool | None = None
    waypoint_spacing: int | None = None
    metric_waypoint_spacing: float | None = None

    def split_problem(self, split: str) -> str | None:
        """Why ``split`` gives no trajectory (naming the file), or None when it lists at least one. An empty
        ``traj_names.txt``, as ``navintent split --train-frac 1`` writes for test, counts as no split."""
        folder = self.split_folders.get(split)
        if folder is None:
            return f"dataset {self.name}: no {split} split given"
        path = folder / TRAJ_NAMES_FILE
        if not path.is_file():
            return f"{path}: split file not found"
        if not any(line.strip() for line in path.read_text().splitlines()):
            return f"{path}: split lists no trajectories"
        return None

    def has_split(self, split: str) -> bool:
        return self.split_problem(split) is None

    def resolved_metric_waypoint_spacing(self) -> float:
        """The source's own value, else its data config's entry by name (NoMaD's lookup); ``ValueError`` naming the
        config file when it has none."""
        if self.metric_waypoint_spacing is not None:
            return float(self.metric_waypoint_spacing)
        return lookup_metric_waypoint_spacing(self.name, self.data_config)


def lookup_metric_waypoint_spacing(name: str, data_config: str | Path | None = None) -> float:
    """``metric_waypoint_spacing`` of dataset ``name`` in a NoMaD data config (default: the shipped one), by
    :func:`navintent.data.dataset.configured_spacing`; ``ValueError`` naming the file when it has none."""
    value, source = configured_spacing(name, data_config)
    if value is None:
        raise ValueError(
            f"dataset {name!r} has no metric_waypoint_spacing: {source}; add it there, or give it in the config's "
            "datasets: block (metric_waypoint_spacing:)"
        )
    return value


def discover_datasets(data_dir: str | Path, *, what: str = "--data_dir") -> list[DatasetSource]:
    """Sources of a data root (see the module docstring). Raises ``FileNotFoundError``/``ValueError`` naming the
    folder (as ``what``, the flag that gave it) when the layout is not there."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} {root} does not exist or is not a folder")
    splits = root / "splits"
    if not splits.is_dir():
        raise ValueError(
            f"{what} {root} has no 'splits' folder (expected {splits}/<dataset>/train/traj_names.txt)"
        )
    config = root / "data_config.yaml"
    config_path = config if config.is_file() else None
    if any((splits / s).is_dir() for s in SPLITS):
        return [DatasetSource(root.name, root, {s: splits / s for s in SPLITS}, config_path)]
    sources = []
    for split_root in sorted(p for p in splits.iterdir() if p.is_dir()):
        folder = root / split_root.name
        if not folder.is_dir():
            raise ValueError(f"{split_root} names dataset {split_root.name!r} but {folder} does not exist")
        sources.append(
            DatasetSource(split_root.name, folder, {s: split_root / s for s in SPLITS}, config_path)
        )
    if not sources:
        raise ValueError(f"{what} {root}: {splits} holds no dataset folders")
    return sources


def sources_from_specs(specs: Sequence[DatasetSpec]) -> list[DatasetSource]:
    """Sources of a config's ``datasets:`` block; a missing data folder raises ``FileNotFoundError`` naming the
    dataset (a split folder is checked when it is read)."""
    sources = []
    for spec in specs:
        folder = Path(spec.data_folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"datasets: {spec.name}: data_folder {folder} does not exist")
        splits = {s: Path(getattr(spec, s)) for s in SPLITS if getattr(spec, s) is not None}
        sources.append(
            DatasetSource(
                spec.name,
                folder,
                splits,
                Path(spec.data_config) if spec.data_config is not None else None,
                end_slack=spec.end_slack,
                goals_per_obs=spec.goals_per_obs,
                negative_mining=spec.negative_mining,
                waypoint_spacing=spec.waypoint_spacing,
                metric_waypoint_spacing=spec.metric_waypoint_spacing,
            )
        )
    return sources


def sources_at(path: str | Path, *, what: str = "data folder") -> list[DatasetSource]:
    """Sources named by one path, as inference commands take it (``--dataset``, ``--data-dir``,
    ``--realism-data``): a data root folder (:func:`discover_datasets`) or a config YAML whose ``datasets:`` block
    names the data (NoMaD's form, paths relative to the file; :func:`navintent.config.read_nomad_datasets`)."""
    path = Path(path)
    if path.is_file():
        return sources_from_specs(read_nomad_datasets(path))
    return discover_datasets(path, what=what)


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def build_split(
    sources: Sequence[DatasetSource],
    split: str,
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    progress: bool = True,
) -> Dataset | None:
    """A :class:`NavDataset` per source that has ``split`` ("train" | "test"), concatenated; None if none has it.

    Per-dataset options of a source win over ``train_config``'s; everything else (goal and action distance
    bounds, ``normalize``, ``context_type``, reference mode and horizon) comes from ``train_config``."""
    mc, tc = model_config, train_config
    parts = []
    for src in sources:
        if not src.has_split(split):
            continue
        parts.append(
            NavDataset(
                data_folder=src.data_folder,
                data_split_folder=src.split_folders[split],
                dataset_name=src.name,
                image_size=mc.image_size,
                waypoint_spacing=_pick(src.waypoint_spacing, tc.waypoint_spacing),
                min_dist_cat=tc.min_dist_cat,
                max_dist_cat=tc.max_dist_cat,
                min_action_distance=tc.min_action_distance,
                max_action_distance=tc.max_action_distance,
                negative_mining=_pick(src.negative_mining, tc.negative_mining),
                len_traj_pred=mc.len_traj_pred,
                learn_angle=mc.learn_angle,
                context_size=mc.context_size,
                context_type=tc.context_type,
                end_slack=_pick(src.end_slack, tc.end_slack),
                goals_per_obs=_pick(src.goals_per_obs, tc.goals_per_obs),
                normalize=tc.normalize,
                metric_waypoint_spacing=src.metric_waypoint_spacing,
                data_config=src.data_config,
                ref_mode=tc.ref_mode,
                ref_horizon=tc.ref_horizon or None,
                progress=progress,
            )
        )
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def nav_datasets(dataset: Dataset) -> list[NavDataset]:
    """The :class:`NavDataset` parts of ``dataset`` (itself, or the parts of a ``ConcatDataset``, at any depth);
    other datasets (e.g. in-memory test sets) have no files, spacing or goal draw and contribute none."""
    if isinstance(dataset, ConcatDataset):
        return [d for part in dataset.datasets for d in nav_datasets(part)]
    return [dataset] if isinstance(dataset, NavDataset) else []


def training_scales(dataset: Dataset) -> tuple[TrainingScale, ...]:
    """What each part's unit means (:class:`navintent.metric_scale.TrainingScale`), one entry per dataset name."""
    seen: dict[str, TrainingScale] = {}
    for d in nav_datasets(dataset):
        seen.setdefault(
            d.dataset_name,
            TrainingScale(d.dataset_name, d.metric_waypoint_spacing, d.waypoint_spacing, d.normalize),
        )
    return tuple(seen.values())


def set_goal_seed(dataset: Dataset, goal_seed: int) -> None:
    """Give every ``NavDataset`` inside ``dataset`` a deterministic per-(seed, index) goal draw."""
    for d in nav_datasets(dataset):
        d.goal_seed = goal_seed


def load_inference_split(
    data_dir: str | Path,
    split: str,
    model_config: ModelConfig,
    *,
    waypoint_spacing: int = 1,
    ref_horizon: int = 0,
    goal_seed: int = 0,
    what: str = "data folder",
) -> Dataset:
    """``split`` of a data root or a config's ``datasets:`` block (:func:`sources_at`) as a checkpoint trained on it
    sees it: its ``model_config`` plus the training
    ``waypoint_spacing`` and ``ref_horizon`` (:class:`navintent.checkpoint.LoadedModel` carries both), goals drawn
    deterministically from ``goal_seed``. Raises ``ValueError`` naming the folder (as ``what``, e.g. the CLI flag
    that gave it) if it has no such split."""
    options = TrainConfig(waypoint_spacing=waypoint_spacing, ref_horizon=ref_horizon)
    dataset = build_split(sources_at(data_dir, what=what), split, model_config, options, progress=False)
    if dataset is None:
        raise ValueError(f"{what} {data_dir} has no '{split}' split")
    set_goal_seed(dataset, goal_seed)
    return dataset


def data_dir_scales(
    data_dir: str | Path, waypoint_spacing: int, *, what: str = "data folder"
) -> tuple[TrainingScale, ...]:
    """The scales of the datasets at ``data_dir`` (:func:`sources_at`) at ``waypoint_spacing`` (a dataset's own
    spacing wins) without reading any trajectory (for ``--data-dir`` / ``--dataset``:
    :func:`navintent.metric_scale.resolve_metric_scale`'s "data being read")."""
    return tuple(
        TrainingScale(
            src.name, src.resolved_metric_waypoint_spacing(), _pick(src.waypoint_spacing, waypoint_spacing)
        )
        for src in sources_at(data_dir, what=what)
    )
