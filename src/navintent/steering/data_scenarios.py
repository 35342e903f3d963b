"""Scenarios from recorded data: a ``--data_sample`` file (a training batch as a dict) or samples of a dataset split.

Owns the batch format's field table (:data:`SAMPLE_FIELDS`), its validation (every error a ``ValueError`` naming the
file and the field), the conversion of a validated batch to :class:`navintent.steering.scenarios.Scenarios`
(agents from spacing units to metres) and the two loaders :func:`load_data_sample` and :func:`dataset_scenarios`.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import default_collate

from navintent.data.sources import load_inference_split
from navintent.metric_scale import MetricScale
from navintent.steering.scenarios import Scenarios

log = logging.getLogger(__name__)

SAMPLE_FIELDS: dict[str, tuple[bool, str, int]] = {
    # name: (required, dtype kind, rank)
    "obs_img": (True, "float", 4),
    "goal_img": (True, "float", 4),
    "goal_mask": (False, "intbool", 1),
    "ref_traj": (False, "float", 3),
    "ref_mask": (False, "number", 1),
    "agents": (False, "float", 4),
    "agents_mask": (False, "number", 2),
    "metric_scale": (False, "float", 1),
    "z1": (False, "float", 2),
    # the other fields of a training batch: checked for shape/finiteness, not used
    "actions": (False, "float", 3),
    "distance": (False, "number", 1),
    "goal_pos": (False, "float", 2),
    "dataset_idx": (False, "intbool", 1),
    "action_mask": (False, "number", 1),
    "goal_is_negative": (False, "number", 1),
}


def _dtype_ok(t: Tensor, kind: str) -> bool:
    if kind == "float":
        return t.dtype.is_floating_point
    if kind == "intbool":
        return t.dtype == torch.bool or (not t.dtype.is_floating_point and not t.dtype.is_complex)
    return not t.dtype.is_complex


def validate_data_sample(
    sample: Any, model_config, *, z1_dim: int | None = None, where: str = "data sample"
) -> dict[str, Tensor]:
    """Check a ``--data_sample`` dict against the model: keys, dtypes, ranks, batch size, shapes, finiteness.

    Every error is a ``ValueError`` naming ``where`` and the field. Returns the dict (tensors, unchanged).
    """
    if not isinstance(sample, dict):
        raise ValueError(f"{where}: must be a dict of tensors, got {type(sample).__name__}")
    unknown = sorted(set(sample) - set(SAMPLE_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; known: {sorted(SAMPLE_FIELDS)}")
    for name, (required, kind, rank) in SAMPLE_FIELDS.items():
        if name not in sample:
            if required:
                raise ValueError(f"{where}: missing required field '{name}'")
            continue
        t = sample[name]
        if not isinstance(t, Tensor):
            raise ValueError(f"{where}: field '{name}' must be a tensor, got {type(t).__name__}")
        if not _dtype_ok(t, kind):
            raise ValueError(f"{where}: field '{name}' must have a {kind} dtype, got {t.dtype}")
        if t.dim() != rank:
            raise ValueError(f"{where}: field '{name}' must have {rank} dims, got shape {tuple(t.shape)}")
        if t.dtype.is_floating_point and not torch.isfinite(t).all():
            raise ValueError(f"{where}: field '{name}' holds non-finite values")
    b = sample["obs_img"].shape[0]
    if b < 1:
        raise ValueError(f"{where}: field 'obs_img' has an empty batch")
    for name, t in sample.items():
        if t.shape[0] != b:
            raise ValueError(f"{where}: field '{name}' has batch {t.shape[0]}, obs_img has {b}")
    w, h = model_config.image_size
    expected = {
        "obs_img": (b, 3 * (model_config.context_size + 1), h, w),
        "goal_img": (b, 3, h, w),
    }
    for name, shape in expected.items():
        if tuple(sample[name].shape) != shape:
            raise ValueError(
                f"{where}: field '{name}' must have shape {list(shape)} for this model, got {list(sample[name].shape)}"
            )
    if "agents" in sample:
        a = sample["agents"]
        if a.shape[1] != model_config.len_traj_pred or a.shape[3] != 2:
            raise ValueError(
                f"{where}: field 'agents' must be [B, T={model_config.len_traj_pred}, K, 2], got {list(a.shape)}"
            )
        if "agents_mask" in sample and sample["agents_mask"].shape != (b, a.shape[2]):
            raise ValueError(
                f"{where}: field 'agents_mask' must be [B, K] = {[b, a.shape[2]]}, got {list(sample['agents_mask'].shape)}"
            )
    elif "agents_mask" in sample:
        raise ValueError(f"{where}: field 'agents_mask' is given without 'agents'")
    if "metric_scale" in sample and not bool((sample["metric_scale"] > 0).all()):
        raise ValueError(f"{where}: field 'metric_scale' must be > 0")
    if "ref_mask" in sample and "ref_traj" not in sample:
        raise ValueError(f"{where}: field 'ref_mask' is given without 'ref_traj'")
    if "z1" in sample and z1_dim is not None and sample["z1"].shape[1] != z1_dim:
        raise ValueError(f"{where}: field 'z1' must be [B, {z1_dim}], got {list(sample['z1'].shape)}")
    return sample


def scenarios_from_sample(
    sample: dict[str, Tensor], metric_scale: float | None, *, fallback: float | None = None
) -> Scenarios:
    """Validated sample -> :class:`Scenarios`. Agents come in spacing units (as the dataset serves them) and are
    converted to metres with ``metric_scale`` (the argument if given, else the sample's field, else ``fallback``;
    ``ValueError`` when none is there)."""
    b = sample["obs_img"].shape[0]
    if metric_scale is not None:
        scale = torch.full((b,), float(metric_scale))
    elif "metric_scale" in sample:
        scale = sample["metric_scale"].float()
    elif fallback is not None:
        scale = torch.full((b,), float(fallback))
    else:
        raise ValueError(
            "data sample has no field 'metric_scale' (metres per spacing unit); pass --metric-scale"
        )
    agents = sample.get("agents")
    if agents is not None:
        agents = agents.float() * scale.view(-1, 1, 1, 1)
    mask = sample.get("agents_mask")
    return Scenarios(
        obs_img=sample["obs_img"].float(),
        goal_img=sample["goal_img"].float(),
        metric_scale=scale,
        goal_mask=sample.get("goal_mask"),
        ref_traj=None if sample.get("ref_traj") is None else sample["ref_traj"].float(),
        ref_mask=None if sample.get("ref_mask") is None else sample["ref_mask"].float(),
        agents=agents,
        agents_mask=None if mask is None else mask.float(),
        z1=None if sample.get("z1") is None else sample["z1"].float(),
    )


def load_data_sample(
    path: str | Path,
    model_config,
    *,
    z1_dim: int | None,
    metric_scale: float | None,
    fallback_scale: Callable[[], MetricScale] | None = None,
) -> Scenarios:
    """Read a ``.pt`` batch with ``torch.load(weights_only=True)``, validate it, and build :class:`Scenarios`.

    Metres per unit: ``metric_scale`` if given, else the sample's ``metric_scale`` field (the data being read),
    else ``fallback_scale()`` (e.g. the checkpoint's training scale), else ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--data_sample file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            raise ValueError(
                f"--data_sample {path} holds pickled Python objects, not only tensors and plain data; loading "
                "it could run code from the file, so it was refused (nothing in it was executed)"
            ) from None
        raise ValueError(f"--data_sample {path} is not a readable torch file (pickle/zip): {err}") from err
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"--data_sample {path} is truncated or corrupt (pickle/zip): {err}") from err
    sample = validate_data_sample(obj, model_config, z1_dim=z1_dim, where=str(path))
    fallback = None
    if metric_scale is None and "metric_scale" not in sample and fallback_scale is not None:
        fallback = fallback_scale().metres_per_unit
    elif metric_scale is None and "metric_scale" in sample:
        log.info(f"metric scale from {path}'s metric_scale field (the data being read)")
    return scenarios_from_sample(sample, metric_scale, fallback=fallback)


def dataset_scenarios(
    data_dir: str | Path,
    indices: list[int],
    model_config,
    *,
    split: str = "test",
    seed: int = 0,
    metric_scale: float | None = None,
    waypoint_spacing: int = 1,
    ref_horizon: int = 0,
) -> Scenarios:
    """Samples ``indices`` of ``split`` of a ``--dataset`` folder (layout of ``navintent train --data_dir``),
    goals drawn deterministically from ``seed``. ``waypoint_spacing`` and ``ref_horizon`` must be the
    checkpoint's training values (:class:`navintent.checkpoint.LoadedModel` carries them)."""
    dataset = load_inference_split(
        data_dir,
        split,
        model_config,
        waypoint_spacing=waypoint_spacing,
        ref_horizon=ref_horizon,
        goal_seed=seed,
        what="--dataset",
    )
    bad = [i for i in indices if not 0 <= i < len(dataset)]
    if bad:
        raise ValueError(
            f"--index {bad} out of range: the '{split}' split of {data_dir} has {len(dataset)} samples"
        )
    batch = default_collate([dataset[i] for i in indices])
    sample = validate_data_sample(dict(batch), model_config, where=f"{data_dir} [{split}]")
    sc = scenarios_from_sample(sample, metric_scale)
    sc.names = [f"{split}_{i}" for i in indices]
    return sc
