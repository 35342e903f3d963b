"""Checking NoMaD-format data: :func:`check_data` (``navintent check-data``, whose flags are in
:mod:`navintent.commands.check_data`), :func:`inspect_dataset` and :func:`check_dataset` for one dataset.

``check-data`` takes one of three targets and checks every dataset in it, listing errors (the data cannot be
used: exit status 1) apart from warnings (the data is used, but something looks wrong: exit status 0):

* ``check-data DATASET_DIR [--split SPLIT_DIR ...]``: one dataset folder (``DATASET_DIR/<traj>/...``).
* ``check-data DATA_ROOT``: the layout ``make-data`` writes and ``train --data_dir`` reads
  (``DATA_ROOT/<name>/<traj>/...``, ``DATA_ROOT/splits/<name>/{train,test}/traj_names.txt``, optional
  ``DATA_ROOT/data_config.yaml``; or one dataset with ``DATA_ROOT/splits/{train,test}``). Recognised by its
  ``splits`` folder.
* ``check-data --config nomad.yaml``: every dataset of a NoMaD training config's ``datasets:`` block (its
  ``data_folder`` and ``train``/``test`` split folders).

Per dataset it reports the measured metres per frame against the configured ``metric_waypoint_spacing`` and the
normalised training deltas (:mod:`navintent.data.spacing`). The configured spacing comes from, in order:
``--metric-waypoint-spacing``; the dataset's entry in the nomad config (``--config``: its
``metric_waypoint_spacing``, else a lookup by name in its ``data_config``); ``--data-config``; the data root's
``data_config.yaml``; the shipped NoMaD ``data_config.yaml`` (looked up by dataset name: the folder name, or
``--name``). A dataset found in none of them gets a warning with the measured value. ``len_traj_pred`` and
``context_size`` are 8 and 3 (NoMaD's) unless given, or read from ``--config``.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from navintent.config import read_nomad_datasets, read_yaml_mapping
from navintent.data.cache import decode_image
from navintent.data.format import (
    TRAJ_DATA_FILE,
    TRAJ_NAMES_FILE,
    DataError,
    Trajectory,
    check_trajectory,
    list_trajectory_folders,
    read_traj_names,
)
from navintent.data.spacing import SpacingReport, configured_spacing, spacing_report
from navintent.errors import EXIT_CHECK_FAILED, EXIT_OK

SPLITS_DIR = "splits"
DATA_CONFIG_FILE = "data_config.yaml"


def image_problem(path: Path) -> str | None:
    """Fully decode ``path`` as the dataset does (mode conversion, crop; see
    :func:`navintent.data.cache.decode_image`); a problem line naming it, or None if it decodes."""
    try:
        decode_image(path, (2, 2))
    except DataError as err:
        return str(err)
    return None


@dataclass(frozen=True)
class DatasetTarget:
    """One dataset to check: its trajectories folder, split folders and the settings its training uses.

    ``metric_waypoint_spacing``: the configured metres per frame, or None if unknown; ``spacing_source``: where
    it came from (or why it is unknown), for messages. ``ignore``: sub-folder names of ``data_folder`` that are
    not trajectories (the ``splits`` folder of a one-dataset data root).
    """

    name: str
    data_folder: Path
    split_folders: tuple[Path, ...] = ()
    metric_waypoint_spacing: float | None = None
    spacing_source: str | None = None
    waypoint_spacing: int = 1
    end_slack: int = 0
    ignore: tuple[str, ...] = ()


@dataclass
class DatasetCheck:
    """What :func:`inspect_dataset` found: ``errors`` (each line names the file; the data cannot be used as
    is), ``warnings`` (used anyway; each names the file or dataset and the number that shows it), the valid
    ``trajectories`` and the ``spacing`` report (None if no trajectory has two frames)."""

    target: DatasetTarget
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    trajectories: list[Trajectory] = field(default_factory=list)
    spacing: SpacingReport | None = None

    @property
    def num_poses(self) -> int:
        return sum(len(t) for t in self.trajectories)


def inspect_dataset(
    target: DatasetTarget,
    *,
    len_traj_pred: int = 8,
    context_size: int = 3,
    decode: bool = True,
    progress: bool = True,
) -> DatasetCheck:
    """Check every trajectory folder of ``target.data_folder`` (``traj_data.pkl`` per
    :func:`navintent.data.format.check_trajectory`; with ``decode``, every image ``0..N-1`` decoded), every
    split folder (``traj_names.txt`` readable, each listed trajectory present), and the spacing
    (:func:`navintent.data.spacing.spacing_report` with ``len_traj_pred``/``context_size`` and the target's
    ``waypoint_spacing``/``end_slack``; its warning, if any, is added to ``warnings``)."""
    check = DatasetCheck(target)
    data_folder = target.data_folder
    folder_exists = data_folder.is_dir()
    try:
        folders = [f for f in list_trajectory_folders(data_folder) if f.name not in target.ignore]
    except DataError as err:
        check.errors.append(str(err))
        folders = []
    if folder_exists and not folders:
        check.errors.append(f"{data_folder}: no trajectory folders")
    for folder in tqdm(folders, desc=f"checking {target.name}", disable=not progress, file=sys.stderr):
        if not (folder / TRAJ_DATA_FILE).exists():
            hint = ""
            if any((sub / TRAJ_DATA_FILE).exists() for sub in folder.iterdir() if sub.is_dir()):
                hint = f" (its sub-folders hold {TRAJ_DATA_FILE}: is {data_folder} a data root without {SPLITS_DIR}/?)"
            check.errors.append(f"{folder / TRAJ_DATA_FILE}: missing {TRAJ_DATA_FILE}{hint}")
            continue
        found = check_trajectory(folder)
        check.errors.extend(found.problems)
        check.warnings.extend(found.warnings)
        if found.trajectory is not None:
            check.trajectories.append(found.trajectory)
            if decode:
                traj = found.trajectory
                check.errors.extend(
                    p for t in range(len(traj)) if (p := image_problem(traj.image_path(t))) is not None
                )
    for split in target.split_folders:
        path = split / TRAJ_NAMES_FILE
        if path.is_file() and not path.read_text().strip():
            # `navintent split --train-frac 1` / `make-data --train-frac 1` write an empty test list: no split
            check.warnings.append(
                f"{path}: split lists no trajectories (an empty split; train and test skip it)"
            )
            continue
        try:
            names = read_traj_names(split)
        except DataError as err:
            check.errors.append(str(err))
            continue
        if folder_exists:
            check.errors.extend(
                f"{split / TRAJ_NAMES_FILE}: lists trajectory '{n}' but {data_folder / n} does not exist"
                for n in names
                if not (data_folder / n).is_dir()
            )
    if any(len(t) > 1 for t in check.trajectories):
        check.spacing = spacing_report(
            check.trajectories,
            target.metric_waypoint_spacing,
            dataset=target.name,
            source=target.spacing_source,
            waypoint_spacing=target.waypoint_spacing,
            len_traj_pred=len_traj_pred,
            context_size=context_size,
            end_slack=target.end_slack,
        )
        if (message := check.spacing.warning()) is not None:
            check.warnings.append(message)
    return check


def check_dataset(
    data_folder: Path, split_folders: list[Path], decode: bool = True, progress: bool = True
) -> list[str]:
    """Every error of a dataset folder (and of the given split folders), one line each, naming the file.
    Warnings are left out; :func:`inspect_dataset` gives both."""
    target = DatasetTarget(Path(data_folder).name, Path(data_folder), tuple(Path(s) for s in split_folders))
    return inspect_dataset(target, decode=decode, progress=progress).errors


def _spacing_for(name: str, explicit: float | None, data_config: Path | None) -> tuple[float | None, str]:
    if explicit is not None:
        return explicit, "--metric-waypoint-spacing"
    return configured_spacing(name, data_config)


def data_root_targets(
    root: Path, *, metric_waypoint_spacing: float | None = None, data_config: Path | None = None
) -> tuple[list[DatasetTarget], list[str], list[str]]:
    """``(targets, errors, warnings)`` of a data root (the layout ``train --data_dir`` reads, with the same
    rules): one target per ``root/splits/<name>`` (or one for ``root/splits/{train,test}``, the root itself
    being the dataset), with the ``train``/``test`` split folders present. The spacing comes from
    ``metric_waypoint_spacing``, else ``data_config``, else ``root/data_config.yaml``, else the shipped file.
    Errors: a split folder naming a dataset folder that does not exist; no dataset at all; an unreadable data
    config. Warnings: a dataset without a train or test split; a folder of ``root`` that no split names."""
    root = Path(root)
    splits = root / SPLITS_DIR
    errors: list[str] = []
    notes: list[str] = []
    if data_config is None and (root / DATA_CONFIG_FILE).is_file():
        data_config = root / DATA_CONFIG_FILE
    if (splits / "train").is_dir() or (splits / "test").is_dir():
        layouts = [(root.name, root, splits, (SPLITS_DIR,))]
    else:
        layouts = []
        for split_root in sorted(p for p in splits.iterdir() if p.is_dir()):
            folder = root / split_root.name
            if not folder.is_dir():
                errors.append(f"{split_root}: names dataset '{split_root.name}' but {folder} does not exist")
                continue
            layouts.append((split_root.name, folder, split_root, ()))
        named = {SPLITS_DIR} | {p.name for p in splits.iterdir() if p.is_dir()}
        notes.extend(
            f"{p}: no {splits / p.name} names it, so training does not read it (not checked)"
            for p in sorted(root.iterdir())
            if p.is_dir() and p.name not in named
        )
        if not layouts and not errors:
            errors.append(
                f"{splits}: holds no dataset folders (expected {splits}/<dataset>/train/{TRAJ_NAMES_FILE})"
            )
    targets = []
    for name, folder, split_root, ignore in layouts:
        present = []
        for split in ("train", "test"):
            if (split_root / split).is_dir():
                present.append(split_root / split)
            else:
                notes.append(f"{name}: no {split} split ({split_root / split} does not exist)")
        try:
            spacing, source = _spacing_for(name, metric_waypoint_spacing, data_config)
        except (ValueError, FileNotFoundError) as err:
            errors.append(str(err))
            spacing, source = None, f"unreadable data config {data_config}"
        targets.append(DatasetTarget(name, folder, tuple(present), spacing, source, ignore=ignore))
    return targets, errors, notes


def nomad_config_targets(
    config_path: Path, *, metric_waypoint_spacing: float | None = None, data_config: Path | None = None
) -> tuple[list[DatasetTarget], list[str]]:
    """``(targets, errors)`` for every dataset of a NoMaD training config's ``datasets:`` block (read by
    :func:`navintent.config.read_nomad_datasets`): its ``data_folder``, its ``train``/``test`` split folders,
    ``waypoint_spacing``, ``end_slack`` and ``metric_waypoint_spacing`` (given there, else looked up by name in
    the entry's ``data_config``, else ``data_config``, else the shipped file; ``metric_waypoint_spacing``
    overrides all). Raises what ``read_nomad_datasets`` raises for an unreadable config (naming the file)."""
    targets, errors = [], []
    for spec in read_nomad_datasets(config_path):
        if metric_waypoint_spacing is not None:
            spacing, source = metric_waypoint_spacing, "--metric-waypoint-spacing"
        elif spec.metric_waypoint_spacing is not None:
            spacing, source = float(spec.metric_waypoint_spacing), f"{config_path}: datasets.{spec.name}"
        else:
            lookup = spec.data_config if spec.data_config is not None else data_config
            try:
                spacing, source = configured_spacing(spec.name, lookup)
            except (ValueError, FileNotFoundError) as err:
                errors.append(str(err))
                spacing, source = None, f"unreadable data config {lookup}"
        splits = tuple(Path(s) for s in (spec.train, spec.test) if s is not None)
        targets.append(
            DatasetTarget(
                spec.name,
                Path(spec.data_folder),
                splits,
                spacing,
                source,
                waypoint_spacing=int(spec.waypoint_spacing),
                end_slack=int(spec.end_slack),
            )
        )
    return targets, errors


def _model_int(config_path: Path, key: str, default: int) -> int:
    """``key`` of a flat nomad.yaml (top level) or of a sectioned navintent config (``model:``), else
    ``default``; ``ValueError`` naming file and key if it is not a non-negative integer."""
    data = read_yaml_mapping(config_path, what="NoMaD config")
    section = data.get("model")
    where = "model." if isinstance(section, dict) else ""
    value: Any = (section if isinstance(section, dict) else data).get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{config_path}: '{where}{key}' must be a non-negative integer, got {value!r}")
    return value


@dataclass
class DataCheckReport:
    """What :func:`check_data` found: ``what`` (the path or config checked), the ``errors`` and ``warnings`` found
    before any dataset was inspected (layout, data config), and one :class:`DatasetCheck` per dataset, in order.
    ``decode``: whether images were decoded."""

    what: str
    errors: list[str]
    warnings: list[str]
    checks: list[DatasetCheck]
    decode: bool = True

    @property
    def num_errors(self) -> int:
        return len(self.errors) + sum(len(c.errors) for c in self.checks)

    @property
    def num_warnings(self) -> int:
        return len(self.warnings) + sum(len(c.warnings) for c in self.checks)

    @property
    def verdict(self) -> str:
        """``errors found``; ``usable once metric_waypoint_spacing is set`` when a dataset's spacing is unknown
        (``navintent train`` refuses such a dataset; the warning names the measured value); ``usable, with
        warnings``; or ``no problems found``."""
        if self.num_errors:
            return "errors found"
        unknown = [
            c.target.name for c in self.checks if c.spacing is not None and c.spacing.configured is None
        ]
        if unknown:
            return f"usable once metric_waypoint_spacing is set for {unknown} (train refuses it until then)"
        return "usable, with warnings" if self.num_warnings else "no problems found"

    @property
    def placeholders(self) -> list[str]:
        """Placeholders such as ``<DATA_ROOT>`` still in the datasets' folders (a template config)."""
        return sorted(
            {p for c in self.checks for p in re.findall(r"<[A-Za-z_]+>", str(c.target.data_folder))}
        )

    @property
    def exit_code(self) -> int:
        """:data:`navintent.errors.EXIT_CHECK_FAILED` if any error, else :data:`navintent.errors.EXIT_OK`."""
        return EXIT_CHECK_FAILED if self.num_errors else EXIT_OK


def check_data(
    path: str | Path | None = None,
    *,
    config: str | Path | None = None,
    splits: Sequence[str | Path] = (),
    name: str | None = None,
    metric_waypoint_spacing: float | None = None,
    data_config: str | Path | None = None,
    waypoint_spacing: int | None = None,
    len_traj_pred: int | None = None,
    context_size: int | None = None,
    decode: bool = True,
    progress: bool = True,
) -> DataCheckReport:
    """``navintent check-data`` as a call: check a dataset folder (``path``, with ``splits``), a data root
    (``path`` holding ``splits/``) or every dataset of a NoMaD config (``config``); see the module docstring.

    ``name``: the dataset name for the data-config lookup of a dataset folder (default: its folder name).
    ``metric_waypoint_spacing``, ``data_config``: where the configured spacing comes from (module docstring).
    ``waypoint_spacing``: for every dataset (None: 1, or each config dataset's own). ``len_traj_pred`` /
    ``context_size``: None = ``config``'s, else 8 / 3. ``decode``: decode every image; ``progress``: progress bars.
    Raises ``ValueError`` for targets that do not go together (``config`` with ``path``/``splits``, neither,
    ``splits`` for a data root) and what reading ``config`` raises; problems in the data are the report's."""
    data_config = Path(data_config) if data_config is not None else None
    errors: list[str] = []
    notes: list[str] = []
    if config is not None:
        if path is not None or splits:
            raise ValueError("check-data: give either --config NOMAD_YAML or a PATH (with --split), not both")
        config = Path(config)
        targets, errors = nomad_config_targets(
            config, metric_waypoint_spacing=metric_waypoint_spacing, data_config=data_config
        )
        len_traj_pred = len_traj_pred if len_traj_pred is not None else _model_int(config, "len_traj_pred", 8)
        context_size = context_size if context_size is not None else _model_int(config, "context_size", 3)
        what = str(config)
    elif path is None:
        raise ValueError("check-data: give a PATH (a dataset folder or a data root) or --config NOMAD_YAML")
    else:
        path = Path(path)
        what = str(path)
        if (path / SPLITS_DIR).is_dir():
            if splits:
                raise ValueError(
                    f"--split: {path} is a data root; its splits are read from {path / SPLITS_DIR}"
                )
            targets, errors, notes = data_root_targets(
                path, metric_waypoint_spacing=metric_waypoint_spacing, data_config=data_config
            )
        else:
            name = name or path.name
            try:
                spacing, source = _spacing_for(name, metric_waypoint_spacing, data_config)
            except (ValueError, FileNotFoundError) as err:
                errors.append(str(err))
                spacing, source = None, f"unreadable data config {data_config}"
            split_folders = tuple(Path(s) for s in splits)
            targets = [DatasetTarget(name, path, split_folders, spacing, source)]
    if waypoint_spacing is not None:
        targets = [dataclasses.replace(t, waypoint_spacing=waypoint_spacing) for t in targets]
    checks = [
        inspect_dataset(
            target,
            len_traj_pred=8 if len_traj_pred is None else len_traj_pred,
            context_size=3 if context_size is None else context_size,
            decode=decode,
            progress=progress,
        )
        for target in targets
    ]
    return DataCheckReport(what, errors, notes, checks, decode=decode)
