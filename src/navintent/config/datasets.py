"""NoMaD's ``datasets:`` block: one :class:`DatasetSpec` per entry, parsed in file order with relative paths
resolved against the YAML file's folder (:func:`parse_datasets`, :func:`read_nomad_datasets`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from navintent.config.base import ConfigBase, check_non_negative_int, check_positive_int, read_yaml_mapping


@dataclass
class DatasetSpec(ConfigBase):
    """One entry of NoMaD's ``datasets:`` block (``datasets: {<name>: {data_folder: ..., ...}}``), as NoMaD's
    train.py reads it.

    ``name``: the entry's key (NoMaD looks it up in data_config.yaml for ``metric_waypoint_spacing`` and sorts
    the data-config names for ``dataset_idx``). ``data_folder``: the trajectories' folder. ``train``/``test``:
    split folders holding ``traj_names.txt`` (None: no such split; NoMaD skips a missing one too).
    ``end_slack`` (frames cut from each trajectory's end), ``goals_per_obs``, ``negative_mining`` and
    ``waypoint_spacing`` (frames between waypoints) take NoMaD train.py's defaults when the entry lacks them:
    0, 1, True, 1. navintent extensions: ``metric_waypoint_spacing`` (metres per frame; None: looked up by
    ``name`` in ``data_config``, as NoMaD does) and ``data_config`` (a data_config.yaml of NoMaD's form; None:
    the one shipped with navintent).

    Paths are strings kept as given; :meth:`TwoStageTrainingConfig.load_yaml` and :func:`read_nomad_datasets`
    resolve relative ones against the YAML file's folder (no ``~`` expansion, as NoMaD). Treat instances as
    immutable (use ``replace``). Bad values raise ``ValueError`` naming ``datasets.<name>.<key>``.
    """

    name: str
    data_folder: str
    train: str | None = None
    test: str | None = None
    end_slack: int = 0
    goals_per_obs: int = 1
    negative_mining: bool = True
    waypoint_spacing: int = 1
    metric_waypoint_spacing: float | None = None
    data_config: str | None = None

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("data_folder", "train", "test", "data_config")

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a dataset name must be a non-empty string, got {self.name!r}")
        prefix = f"datasets.{self.name}."
        for key in self.PATH_FIELDS:
            value = getattr(self, key)
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
                setattr(self, key, value)
            if value is None and key != "data_folder":
                continue
            if not isinstance(value, str) or not value:
                raise ValueError(f"{prefix}{key} must be a non-empty path, got {value!r}")
        check_non_negative_int(prefix + "end_slack", self.end_slack)
        check_positive_int(prefix + "goals_per_obs", self.goals_per_obs)
        check_positive_int(prefix + "waypoint_spacing", self.waypoint_spacing)
        if not isinstance(self.negative_mining, bool):
            raise ValueError(f"{prefix}negative_mining must be true or false, got {self.negative_mining!r}")
        mws = self.metric_waypoint_spacing
        if mws is not None:
            if (
                isinstance(mws, bool)
                or not isinstance(mws, (int, float))
                or not (math.isfinite(mws) and mws > 0)
            ):
                raise ValueError(
                    f"{prefix}metric_waypoint_spacing must be a positive number (m), got {mws!r}"
                )
            self.metric_waypoint_spacing = float(mws)

    def entry(self) -> dict[str, Any]:
        """The nomad.yaml entry: every field but ``name`` (which is the entry's key)."""
        out = self.to_dict()
        del out["name"]
        return out

    def resolved(self, folder: str | Path) -> DatasetSpec:
        """A copy whose relative paths are joined to ``folder`` (absolute ones and None unchanged)."""
        changes = {}
        for key in self.PATH_FIELDS:
            value = getattr(self, key)
            if value is not None and not Path(value).is_absolute():
                changes[key] = str(Path(folder) / value)
        return self.replace(**changes)

    @classmethod
    def from_entry(cls, name: Any, entry: Any, *, where: str = "") -> DatasetSpec:
        """Build from nomad.yaml's ``<name>: {...}``; unknown keys (``name`` included) or a missing
        ``data_folder`` raise ``ValueError`` naming the dataset, the key and ``where``."""
        loc = f" in {where}" if where else ""
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"dataset {name!r}{loc} must be a mapping (data_folder, train, test, ...), got "
                f"{type(entry).__name__} {entry!r}"
            )
        known = [k for k in cls.field_names() if k != "name"]
        unknown = sorted(set(entry) - set(known), key=str)
        if unknown:
            raise ValueError(f"dataset {name!r}{loc}: unknown keys {unknown}; known keys are {sorted(known)}")
        if "data_folder" not in entry:
            raise ValueError(f"dataset {name!r}{loc} has no data_folder (NoMaD needs one per dataset)")
        return cls.from_dict({"name": name, **entry}, where=where)


def parse_datasets(block: Any, *, where: str = "", base_dir: str | Path | None = None) -> Any:
    """NoMaD's ``datasets: {<name>: {...}}`` -> ``tuple[DatasetSpec, ...]`` in file order (None -> ``()``);
    relative paths joined to ``base_dir`` when given. Anything but a mapping or None is returned unchanged for
    :class:`TwoStageTrainingConfig` to judge (it also takes a tuple of :class:`DatasetSpec`)."""
    if block is None:
        return ()
    if not isinstance(block, Mapping):
        return block
    specs = []
    for name, entry in block.items():
        spec = DatasetSpec.from_entry(name, entry, where=where)
        specs.append(spec.resolved(base_dir) if base_dir is not None else spec)
    return tuple(specs)


def read_nomad_datasets(path: str | Path) -> tuple[DatasetSpec, ...]:
    """The ``datasets:`` block of a YAML file (a nomad.yaml, or a sectioned navintent config), in file order,
    relative paths resolved against the file's folder.

    Raises ``FileNotFoundError``/``ValueError`` as :func:`read_yaml_mapping`, and ``ValueError`` naming the
    file if it has no ``datasets:`` block or an empty one, or naming the dataset and key for a bad entry."""
    data = read_yaml_mapping(path)
    block = data.get("datasets")
    if not block:
        raise ValueError(
            f"{path} holds no datasets (no 'datasets:' block, or an empty one, got {block!r}); NoMaD's "
            "form is datasets: {<name>: {data_folder: ..., train: ..., test: ...}}"
        )
    if not isinstance(block, Mapping):
        raise ValueError(
            f"'datasets' in {path} must map dataset names to entries (NoMaD's form), got "
            f"{type(block).__name__}"
        )
    return parse_datasets(block, where=f"{path}:datasets", base_dir=Path(path).absolute().parent)
