"""A run's checkpoint files: initial weights, the resume checks, ``latest.pt`` and rotation.

Files in the run folder: ``latest.pt`` (always the newest checkpoint; a hard link to the newest ``step_*.pt``) and
the newest ``keep_checkpoints`` ``step_XXXXXXXX.pt``. Every write is atomic, so a run killed while writing leaves
only hidden temporary files, which :func:`remove_stale` deletes when the run starts again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from navintent.checkpoint import import_nomad_state_dict, read_checkpoint, strip_data_parallel_prefix
from navintent.config import TwoStageTrainingConfig
from navintent.metric_scale import TrainingScale, read_training_scales

LATEST = "latest.pt"
INFERENCE_NOT_RESUMABLE = (
    "{path} is an inference checkpoint (weights and config only, `navintent export --format inference`): it holds "
    "no optimiser state and cannot be resumed; resume from the training run's checkpoint"
)
# Train keys that may differ between a checkpoint and a resumed run (they do not change the computation).
RESUMABLE_TRAIN_KEYS = frozenset(
    {
        "max_steps",
        "num_workers",
        "checkpoint_every",
        "keep_checkpoints",
        "print_log_freq",
        "eval_freq",
        "eval_every",
        "eval_fraction",
        "eval_max_batches",
        "eval_num_samples",
        "num_images_log",
    }
)


def resume_checkpoint(out_dir: str | Path, resume: str | Path | bool | None) -> Path | None:
    """The checkpoint a run resumes from: None for ``None``/``False``, ``out_dir/latest.pt`` for ``True``, else
    ``resume`` itself. ``FileNotFoundError`` when that file does not exist."""
    if resume is None or resume is False:
        return None
    path = Path(out_dir) / LATEST if resume is True else Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    return path


def checkpoint_config(path: str | Path) -> TwoStageTrainingConfig:
    """The full training config a training checkpoint was written with (its ``train_state.config``).
    ``ValueError`` for a checkpoint without ``train_state`` or without optimiser state (an inference file)."""
    ts = read_checkpoint(path).get("train_state", {})
    saved = ts.get("config")
    if saved is None:
        raise ValueError(f"--resume {path} has no train_state: not a training checkpoint")
    if "optimizer" not in ts:  # refused here, before the data is looked for
        raise ValueError(INFERENCE_NOT_RESUMABLE.format(path=path))
    return TwoStageTrainingConfig.from_dict(saved, where=str(path))


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """``"section.key: checkpoint A, now B"`` for every nested key whose values differ (keys sorted)."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: checkpoint {va!r}, now {vb!r}")
    return out


def check_resumable(
    ckpt: dict[str, Any], path: Path, config: TwoStageTrainingConfig, world_size: int
) -> None:
    """``ValueError`` unless ``ckpt`` (read from ``path``) is a training checkpoint saved with the same config
    (up to :data:`RESUMABLE_TRAIN_KEYS`, every difference named) and the same number of processes."""
    ts = ckpt.get("train_state")
    if not isinstance(ts, dict):
        raise ValueError(
            f"{path} has no 'train_state': it is not a training checkpoint and cannot be resumed"
        )
    if "optimizer" not in ts:
        raise ValueError(INFERENCE_NOT_RESUMABLE.format(path=path))
    saved = dict(ts["config"])
    now = config.to_dict()
    for key in RESUMABLE_TRAIN_KEYS:
        saved["train"].pop(key, None)
        now["train"].pop(key, None)
    diffs = config_diff(saved, now)
    if diffs:
        raise ValueError(
            f"--resume {path}: the config differs from the checkpoint's in settings that change the run: "
            + "; ".join(diffs)
        )
    if int(ts["world_size"]) != world_size:
        raise ValueError(
            f"--resume {path}: saved with {ts['world_size']} process(es), now {world_size}; an exact "
            "resume needs the same world size"
        )


@dataclass(frozen=True)
class InitialWeights:
    """What :func:`load_initial_weights` found beside the weights.

    ``config_diffs``: the native checkpoint's model settings that differ from the run's and that the weights load
    across anyway (``"model.image_size: checkpoint [32, 32], now [64, 64]"``; the run trains with its own values).
    ``training_scales``: what the checkpoint's training datasets' unit meant in metres (empty for a bare state dict
    such as nomad.pth, which records none)."""

    config_diffs: list[str] = field(default_factory=list)
    training_scales: tuple[TrainingScale, ...] = ()


def load_initial_weights(model: nn.Module, path: Path) -> InitialWeights:
    """nomad.pth (bare state dict) or native checkpoint (its EMA weights if stored) -> strict import into
    ``model`` that keeps modules the file lacks (``NEW_MODULE_PREFIXES``) at their initialisation. ``ValueError``
    for a file that is neither, or whose tensors do not fit (missing/unexpected keys, shapes named), or whose
    ``training_scales`` entry is malformed.

    Returns the native checkpoint's model-config differences and training scales (:class:`InitialWeights`), so the
    caller can say what the run changes; both empty for a bare state dict (it carries no config)."""
    try:
        ckpt = read_checkpoint(path)
    except ValueError as err:
        if "not a native navintent checkpoint" not in str(err):
            raise
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise ValueError(
                f"--ckpt {path} is neither a native checkpoint nor a state dict of tensors"
            ) from err
        import_nomad_state_dict(model, strip_data_parallel_prefix(state), source=str(path))
        return InitialWeights()
    state = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    diffs = config_diff(ckpt["config"]["model"], model.config.to_dict(), "model.")
    try:
        import_nomad_state_dict(model, state, source=f"{path} (native)")
    except ValueError as err:
        if not diffs:
            raise
        raise ValueError(
            f"{err}\n{path} is a native navintent checkpoint and carries its model config, which differs from "
            f"this run's in {'; '.join(diffs)}: give the run the same model section (e.g. --config with the "
            "training run's config.yaml)"
        ) from err
    scales = read_training_scales(ckpt.get("training_scales"), where=str(path))
    return InitialWeights(config_diffs=diffs, training_scales=scales)


def scale_changes(
    checkpoint: Sequence[TrainingScale], run: Sequence[TrainingScale], rel_tol: float = 0.01
) -> list[str]:
    """The run's datasets whose metres per normalised unit differ by more than ``rel_tol`` (relative) from every
    unit the initial checkpoint was trained with, as ``"go2: 0.3 m per unit (the checkpoint's: 0.1494 m,
    navintent_sim)"``; empty when either side records no scales or every run dataset matches one of them.

    Why it matters: NoMaD's actions are positions divided by ``metric_waypoint_spacing * waypoint_spacing``
    (``normalize``), so the same output means another distance in metres once that product changes; fine-tuning
    relearns it, but a user who expected a metric continuation should hear of it."""
    if not checkpoint or not run:
        return []
    theirs = ", ".join(f"{s.metres_per_unit:.4g} m ({s.dataset})" for s in checkpoint)
    return [
        f"{s.dataset}: {s.metres_per_unit:.4g} m per unit (the checkpoint's: {theirs})"
        for s in run
        if all(abs(s.metres_per_unit - c.metres_per_unit) > rel_tol * c.metres_per_unit for c in checkpoint)
    ]


def publish_checkpoint(out_dir: Path, path: Path, keep: int) -> None:
    """Make ``path`` (a ``step_*.pt`` in ``out_dir``) ``latest.pt`` atomically (a hard link replaced in one
    rename), then delete all but the newest ``keep`` ``step_*.pt``."""
    link = out_dir / f".{LATEST}.{os.getpid()}.link"
    link.unlink(missing_ok=True)
    os.link(path, link)
    os.replace(link, out_dir / LATEST)
    old = sorted(out_dir.glob("step_*.pt"))[:-keep]
    for p in old:
        p.unlink()


def remove_stale(out_dir: Path) -> None:
    """Delete leftovers of a run killed while writing (the finished files are intact: writes are atomic)."""
    for stale in [*out_dir.glob(".step_*.pt.*.tmp"), *out_dir.glob(f".{LATEST}.*.link")]:
        stale.unlink(missing_ok=True)
