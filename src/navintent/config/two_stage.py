"""Everything ``navintent train`` needs in one config: :class:`TwoStageTrainingConfig` (the four sections and the
datasets, the combinations that cannot run refused, sectioned or flat nomad.yaml input with notes) and the named
sizes (:func:`preset_training_config`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from navintent.config.base import ConfigBase, read_yaml_mapping
from navintent.config.datasets import DatasetSpec, parse_datasets
from navintent.config.model import ModelConfig, SchedulerConfig, preset_model_config
from navintent.config.nomad_yaml import is_sectioned, read_flat_keys
from navintent.config.train import IntentConfig, TrainConfig


@dataclass
class TwoStageTrainingConfig(ConfigBase):
    """Everything ``navintent train`` needs: the model, scheduler, intent and train sections, and datasets.

    On disk either sectioned (``model:``, ``scheduler:``, ``intent:``, ``train:`` mappings and an optional
    ``datasets:`` block; unknown keys rejected) or a flat nomad.yaml (see :meth:`from_mapping`). ``datasets``:
    NoMaD's ``datasets:`` block, one :class:`DatasetSpec` per entry in file order (empty: the data come from
    ``--data_dir``). :meth:`to_dict` writes it in NoMaD's mapping form ``{name: entry}`` and :meth:`from_dict`
    reads that form back exactly (checkpoints store ``to_dict()``; ``--resume`` rebuilds from it).

    Combinations that cannot run are refused with a ``ValueError`` naming both keys:

    - ``intent.ref_dim`` must be 4 when ``model.learn_angle`` is true and 2 when false: the training data's
      ``ref_traj`` is ``[T, 4]`` (x, y, cos, sin of the relative yaw) exactly when ``learn_angle``
      (``NavDataset``'s ``ref_yaw`` defaults to it) and Encoder1 requires ``[B, T, ref_dim]``. Decision:
      :meth:`from_mapping` derives ``ref_dim`` (with a note) when a mapping sets ``learn_angle`` but not
      ``ref_dim``; a contradicting pair is refused, never silently changed.
    - with ``datasets``, ``train.waypoint_spacing``/``negative_mining``/``end_slack``/``goals_per_obs`` must
    keep their defaults: every entry carries its own value, so a train-level one would be ignored.
    - a ``datasets`` entry name may appear once.
    - ``train.ref_mode: planner`` needs ``model.learn_angle`` false: a planner's route carries positions only,
      while ``learn_angle`` asks for a reference with yaw.
    - ``train.random_shift`` must stay below a quarter of the smaller ``model.image_size`` side: a larger shift
      replaces most of the image by its replicated border.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    intent: IntentConfig = dataclasses.field(default_factory=IntentConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    datasets: tuple[DatasetSpec, ...] = ()

    NESTED: ClassVar[dict[str, type[ConfigBase]]] = {
        "model": ModelConfig,
        "scheduler": SchedulerConfig,
        "intent": IntentConfig,
        "train": TrainConfig,
    }

    def __post_init__(self) -> None:
        for name, section in self.NESTED.items():
            if not isinstance(getattr(self, name), section):
                raise ValueError(
                    f"{name} must be a {section.__name__} (a mapping on disk), got "
                    f"{type(getattr(self, name)).__name__}"
                )
        if not isinstance(self.datasets, (list, tuple)):
            raise ValueError(
                f"datasets must be a tuple of DatasetSpec (a mapping name -> entry on disk), got "
                f"{type(self.datasets).__name__}"
            )
        self.datasets = tuple(self.datasets)
        bad = sorted({type(d).__name__ for d in self.datasets if not isinstance(d, DatasetSpec)})
        if bad:
            raise ValueError(f"datasets must hold DatasetSpec entries, got {bad}")
        names = [d.name for d in self.datasets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"datasets must name each dataset once, got {repeated} more than once")
        limit = min(self.model.image_size) / 4
        if self.train.random_shift >= limit:
            raise ValueError(
                f"train.random_shift must be below a quarter of model.image_size {list(self.model.image_size)} "
                f"(< {limit:g} px), got {self.train.random_shift}"
            )
        want = self.model.action_dim
        if self.intent.ref_dim != want:
            raise ValueError(
                f"intent.ref_dim must be {want} when model.learn_angle is "
                f"{str(self.model.learn_angle).lower()} (the dataset's ref_traj is [T, {want}]: "
                f"x, y{', cos, sin of the yaw' if want == 4 else ''}), got "
                f"intent.ref_dim={self.intent.ref_dim} with model.learn_angle={self.model.learn_angle}"
            )
        if self.train.ref_mode == "planner" and self.model.learn_angle:
            raise ValueError(
                "train.ref_mode 'planner' gives a reference without yaw (a route has positions only), but "
                "model.learn_angle asks for one with yaw; got train.ref_mode='planner' with model.learn_angle=True"
            )
        if self.datasets:
            defaults = TrainConfig()
            for key in TrainConfig.PER_DATASET_KEYS:
                value = getattr(self.train, key)
                if value != getattr(defaults, key):
                    raise ValueError(
                        f"train.{key}={value!r} conflicts with datasets: each datasets entry carries its own "
                        f"{key} (datasets.<name>.{key}, NoMaD's per-dataset key), so train.{key} would be "
                        f"ignored; set it per dataset, or leave train.{key} at {getattr(defaults, key)!r}"
                    )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, where: str = "") -> TwoStageTrainingConfig:
        """As :meth:`ConfigBase.from_dict`; ``datasets`` in NoMaD's mapping form (``to_dict``'s) or as a tuple
        of :class:`DatasetSpec`. Paths are taken as they are (no resolution)."""
        data = dict(data or {})
        if "datasets" in data:
            data["datasets"] = parse_datasets(
                data["datasets"], where=f"{where}:datasets" if where else "datasets"
            )
        return super().from_dict(data, where=where)

    def to_dict(self) -> dict[str, Any]:
        """Sections as dicts and ``datasets`` as NoMaD's ``{name: entry}`` mapping, in order."""
        out = super().to_dict()
        out["datasets"] = {spec.name: spec.entry() for spec in self.datasets}
        return out

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        base: TwoStageTrainingConfig | None = None,
        where: str = "",
        base_dir: str | Path | None = None,
        notes: list[str] | None = None,
    ) -> TwoStageTrainingConfig:
        """Overlay a config mapping on ``base`` (default: the ``nomad`` preset).

        Shape: sectioned when a section key (model, scheduler, intent, train) holds a mapping; then every
        top-level key must be a section or ``datasets`` and sections override ``base`` key by key. Otherwise
        flat, read as NoMaD's nomad.yaml: each key goes to the section with a field of that name (``scheduler:
        cosine`` is ``train.scheduler``, the LR schedule); ``num_diffusion_iters`` ->
        ``scheduler.num_train_timesteps``; ``distance:``/``action:`` ->
        ``train.min/max_dist_cat``/``min/max_action_distance``; ``train: True`` (NoMaD's whether-to-train
        flag) and the other keys of :data:`NOMAD_IGNORED_KEYS` each add the note ``"NoMaD key ignored: <key>:
        <why>"`` (a value other than NoMaD's in :data:`NOMAD_REQUIRED_VALUES` raises); keys in
        :data:`NOMAD_REFUSED_KEYS` and unknown keys raise ``ValueError`` naming them, as does a mapping mixing
        both shapes. Two keys setting one field to different values (``distance: {max_dist_cat}`` and
        ``max_dist_cat``) raise naming both.

        ``datasets`` (either shape): NoMaD's ``{name: entry}`` block, replacing ``base``'s datasets (a note
        says so when ``base`` had others); relative paths are joined to ``base_dir`` when given
        (:meth:`load_yaml` gives the file's folder), else kept as written. When the mapping sets
        ``learn_angle`` but not ``ref_dim``, ``intent.ref_dim`` follows it (4 or 2) with a note. Notes
        (human-readable strings) are appended to ``notes`` if given, only when the whole mapping was accepted.
        ``where`` names the source in errors.
        """
        base = base if base is not None else preset_training_config("nomad")
        loc = f" in {where}" if where else ""
        if not isinstance(data, Mapping):
            raise ValueError(f"config{loc} must be a mapping, got {type(data).__name__}")
        sections = {name: getattr(base, name).to_dict() for name in cls.NESTED}
        assigned: dict[tuple[str, str], str] = {}  # (section, field) -> key of ``data`` that set it
        new_notes: list[str] = []

        def assign(section: str, field: str, value: Any, source: str) -> None:
            previous = assigned.get((section, field))
            if previous is not None and previous != source and sections[section][field] != value:
                raise ValueError(
                    f"{previous!r} and {source!r}{loc} both set {section}.{field}, to "
                    f"{sections[section][field]!r} and {value!r}; keep one"
                )
            assigned[(section, field)] = source
            sections[section][field] = value

        if is_sectioned(data, loc):
            for name, values in data.items():
                if name == "datasets" or values is None:
                    continue
                for key, value in values.items():
                    assign(name, key, value, f"{name}.{key}")
        else:
            owners = {field: name for name, section in cls.NESTED.items() for field in section.field_names()}
            read_flat_keys(data, owners, assign, new_notes, loc)

        datasets = base.datasets
        if "datasets" in data:
            block = data["datasets"]
            if block is not None and not isinstance(block, Mapping):
                raise ValueError(
                    f"'datasets'{loc} must map dataset names to entries (NoMaD's form), got "
                    f"{type(block).__name__}"
                )
            where_ds = f"{where}:datasets" if where else "datasets"
            datasets = parse_datasets(block, where=where_ds, base_dir=base_dir)
            if base.datasets and datasets != base.datasets:
                new_notes.append(
                    f"datasets{loc} replace the base config's datasets {[d.name for d in base.datasets]} "
                    f"with {[d.name for d in datasets]}"
                )

        learn_angle = sections["model"].get("learn_angle")
        derive = ("model", "learn_angle") in assigned and ("intent", "ref_dim") not in assigned
        if derive and isinstance(learn_angle, bool):  # a non-bool is refused by ModelConfig
            want = 4 if learn_angle else 2
            if sections["intent"]["ref_dim"] != want:
                sections["intent"]["ref_dim"] = want
                new_notes.append(
                    f"intent.ref_dim set to {want}: model.learn_angle is {str(learn_angle).lower()}, so the "
                    f"dataset's ref_traj is [T, {want}]"
                )
        config = cls.from_dict({**sections, "datasets": datasets}, where=where)
        if notes is not None:
            notes.extend(new_notes)
        return config

    @classmethod
    def load_yaml(
        cls,
        path: str | Path,
        *,
        base: TwoStageTrainingConfig | None = None,
        notes: list[str] | None = None,
    ) -> TwoStageTrainingConfig:
        """:meth:`from_mapping` of a YAML file; relative dataset paths resolve against the file's folder.

        Errors name the file (see :func:`read_yaml_mapping` and :meth:`from_mapping`)."""
        return cls.from_mapping(
            read_yaml_mapping(path),
            base=base,
            where=str(path),
            base_dir=Path(path).absolute().parent,
            notes=notes,
        )


def preset_training_config(name: str) -> TwoStageTrainingConfig:
    """``tiny`` (tests: seconds per step on CPU; 5 diffusion steps), ``demo`` (minutes on CPU), ``nomad`` (the
    paper's sizes)."""
    model = preset_model_config(name)
    if name == "nomad":
        return TwoStageTrainingConfig(model=model)
    if name == "demo":
        return TwoStageTrainingConfig(
            model=model,
            intent=IntentConfig(z1_dim=8, enc1_layers=1, enc2_hidden=128, kl_warmup_steps=200),
            train=TrainConfig(lr=3e-4, batch_size=32, checkpoint_every=200, eval_max_batches=4),
        )
    return TwoStageTrainingConfig(
        model=model,
        scheduler=SchedulerConfig(num_train_timesteps=5),
        intent=IntentConfig(z1_dim=4, enc1_layers=1, enc2_hidden=32, kl_warmup_steps=10),
        train=TrainConfig(
            lr=1e-3,
            batch_size=4,
            epochs=1,
            checkpoint_every=0,
            print_log_freq=1,
            eval_max_batches=1,
            eval_num_samples=2,
            num_images_log=1,
            warmup_steps=2,
        ),
    )
