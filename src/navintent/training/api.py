"""``train(...) -> TrainResult``: one training run as a typed Python call, and :func:`training_config`, the config
it trains with built the way ``navintent train`` builds it (preset, config file, overrides, resume).

Owns the order of a run: resolve the resume checkpoint, find the data (``data_dir`` or the config's ``datasets:``
block), join the ``torchrun`` world (a world of one without it), build the train and test splits, say what it
knows about the data, train (:class:`~navintent.training.trainer.Trainer`), optionally export the EMA weights
in the packaged format, and leave the process group. ``navintent train`` (:mod:`navintent.commands.train`),
``navintent demo`` and the benchmarks call :func:`train` and read the returned :class:`TrainResult`.

Files in ``out_dir`` (rank 0): ``latest.pt`` (always the newest checkpoint; a hard link to the newest
``step_*.pt``), the newest ``keep_checkpoints`` ``step_XXXXXXXX.pt``, ``config.yaml`` (the full resolved config),
``metrics.csv`` (step, epoch, name, value), ``tb/`` (TensorBoard) and ``viz/eval_stepN.png``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from navintent.checkpoint import export_packaged as write_packaged
from navintent.config import TrainConfig, TwoStageTrainingConfig, preset_training_config
from navintent.data.sources import build_split, training_scales
from navintent.training.checkpoints import LATEST, checkpoint_config, resume_checkpoint
from navintent.training.distributed import init_distributed
from navintent.training.sources import spacing_warnings, training_sources
from navintent.training.trainer import Trainer

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What one :func:`train` call produced.

    ``out_dir``: the run folder. ``step``: optimiser updates done in total (a resumed run counts the checkpoint's
    too); ``epoch``: ``step // steps_per_epoch``. ``checkpoint``: ``out_dir/latest.pt``, the newest checkpoint.
    ``metrics``: the newest value of every scalar in the run's ``metrics.csv`` (``train/*`` losses, LR, gradient
    norm; ``eval/*`` from the last evaluation: losses, ADE/FDE/spread in metres, goal conditioning), sorted by name,
    exactly as :func:`navintent.training.final_metrics` reads the file; empty on ranks other than 0. ``seconds``:
    wall-clock of the call. ``packaged``: the packaged file written with ``export_packaged``, else None.
    ``rank``: this process's rank under ``torchrun`` (0 without it); only rank 0 writes files.
    """

    out_dir: Path
    step: int
    epoch: int
    checkpoint: Path
    metrics: dict[str, float]
    seconds: float
    packaged: Path | None = None
    rank: int = 0

    def describe(self) -> str:
        """The line ``navintent train`` prints at the end: steps done and the newest checkpoint."""
        return f"done: {self.step} steps; newest checkpoint {self.checkpoint}"


def training_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    *,
    train: Mapping[str, Any] | None = None,
    resume: str | Path | None = None,
    notes: list[str] | None = None,
    where: str = "train overrides",
) -> TwoStageTrainingConfig:
    """The config ``navintent train`` trains with: base (the ``resume`` checkpoint's config when neither ``preset``
    nor ``config_file`` is given, else ``preset``, default ``nomad``) <- ``config_file`` (sectioned YAML or a flat
    nomad.yaml) <- ``train`` (:class:`~navintent.config.TrainConfig` fields, e.g. ``{"batch_size": 16}``).

    ``notes`` collects, as lines ready to print (``note: <config_file>: ...``), what the config file's reader says
    (NoMaD keys ignored and why, values derived) and which model sizes the file changes from ``preset``.
    ``where`` names the ``train`` overrides in validation errors. ``ValueError`` for an invalid value or unknown key
    (named), or a ``resume`` file that is not a training checkpoint.
    """
    if resume is not None and preset is None and config_file is None:
        config = checkpoint_config(resume)
    else:
        config = preset_training_config(preset or "nomad")
    if config_file is not None:
        file_notes: list[str] = []
        before = config
        config = TwoStageTrainingConfig.load_yaml(config_file, base=config, notes=file_notes)
        if preset is not None:
            changed = [
                f"{name}.{key} {old!r} -> {new!r}"
                for name in ("model", "scheduler")
                for key, old in getattr(before, name).to_dict().items()
                if (new := getattr(config, name).to_dict()[key]) != old
            ]
            if changed:
                file_notes.append(
                    f"the config's model sizes override --preset {preset}: " + ", ".join(changed)
                )
        if notes is not None:
            notes.extend(f"note: {config_file}: {line}" for line in file_notes)
    if train:
        config = config.replace(train=TrainConfig.from_dict({**config.train.to_dict(), **train}, where=where))
    return config


def train(
    config: TwoStageTrainingConfig,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    init_checkpoint: str | Path | None = None,
    resume: str | Path | bool | None = None,
    device: str = "auto",
    export_packaged: str | Path | None = None,
    progress: bool = True,
    notes: Sequence[str] = (),
) -> TrainResult:
    """Train the two-stage intent model with ``config`` into ``out_dir``; returns a :class:`TrainResult`.

    ``data_dir``: a data root with splits (``DIR/<name>/``, ``DIR/splits/<name>/{train,test}``); without it the
    config's ``datasets:`` block names the data (given both, ``data_dir`` wins and the block is dropped, with a
    note). ``init_checkpoint``: a nomad.pth state dict or a native checkpoint to start from (ignored on resume).
    ``resume``: continue exactly from a checkpoint (``True``: ``out_dir/latest.pt``); ``config`` must match the
    checkpoint's up to the settings that do not change the run (``training_config(resume=...)`` gives the
    checkpoint's own). ``device``: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``. ``export_packaged``: also write the
    EMA weights in the packaged (pickled) format there. ``progress``: progress bars (rank 0).

    Under ``torchrun`` every process calls it: it joins the process group, trains its shard, and leaves the group
    before returning; rank 0 alone writes. Logs (logger ``navintent.training.api``, rank 0; ``navintent train``
    prints them on stderr): at INFO ``notes`` (e.g. from :func:`training_config`), a note when the data has no test
    split (evaluation is then skipped) and each dataset's metres per normalised unit; at WARNING one line per
    dataset whose ``metric_waypoint_spacing`` does not fit its poses.

    Errors: ``FileNotFoundError`` for a missing ``resume`` checkpoint; ``ValueError`` for no or unusable data (a
    missing folder, no non-empty train split, fewer samples than a batch per process), a resume checkpoint that
    does not fit (config differences named) or a bad ``init_checkpoint``;
    :class:`~navintent.training.trainer.NonFiniteLossError` when a loss or gradient becomes NaN/inf (nothing of
    that step reaches the weights, the EMA or a checkpoint).
    """
    start = time.perf_counter()
    out = Path(out_dir)
    resume_path = resume_checkpoint(out, resume)
    config, sources, where, source_notes = training_sources(data_dir, config)
    notes = [*notes, *source_notes]
    info, torch_device = init_distributed(device)
    try:
        show = info.is_main and progress
        train_set = build_split(sources, "train", config.model, config.train, progress=show)
        if train_set is None:
            why = "; ".join(str(src.split_problem("train")) for src in sources)
            raise ValueError(f"{where}: no dataset has a non-empty train split ({why})")
        test_set = build_split(sources, "test", config.model, config.train, progress=show)
        if test_set is None:
            notes.append(f"note: {where} has no test split; evaluation is skipped")
        scales = training_scales(train_set)
        if info.is_main:
            for line in notes:
                log.info(line)
            for line in spacing_warnings(train_set, config.model):
                log.warning(line)
            for scale in scales:
                log.info(
                    f"dataset {scale.dataset}: {scale.metres_per_unit:.4g} m per normalised unit "
                    f"(metric_waypoint_spacing {scale.metric_waypoint_spacing:.4g} m x waypoint_spacing "
                    f"{scale.waypoint_spacing}{'' if scale.normalize else '; normalize: false, so metres'})"
                )
        trainer = Trainer(
            config,
            train_set,
            test_set,
            out,
            device=torch_device,
            dist_info=info,
            init_ckpt=init_checkpoint,
            resume=resume_path,
            progress=show,
            scales=scales,
        )
        fit = trainer.fit()
        packaged = None
        if info.is_main and export_packaged:
            packaged = write_packaged(export_packaged, trainer.ema_model().cpu(), config.scheduler)
    finally:
        if info.active and dist.is_initialized():
            dist.destroy_process_group()
    return TrainResult(
        out_dir=out,
        step=fit.step,
        epoch=fit.epoch,
        checkpoint=out / LATEST,
        metrics=trainer.metrics_log.latest(),
        seconds=time.perf_counter() - start,
        packaged=packaged,
        rank=info.rank,
    )
