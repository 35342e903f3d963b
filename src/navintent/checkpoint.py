"""Checkpoints: the native safe format, nomad.pth import, and the original prototype's packaged (pickled) format.

Why one module of ~500 lines: the three kinds are told apart only after the first (always ``weights_only``)
``torch.load``, and reading, the trust check, the strict nomad.pth import and :func:`load_inference_model` share
that read and its errors; split apart, each half would import the other's private helpers. The sections below
(reading, writing, nomad.pth import, the entry point, a policy ready for inference) are the map.

Three kinds of file, one entry point (:func:`load_policy`):

- **native** — a plain dict loadable with ``torch.load(weights_only=True)``::

      {"format": "navintent", "version": 1,
       "config": {"model": {...}, "scheduler": {...}, ["intent": {...}]},
       "model": state_dict, "ema": state_dict | None, ...extra (e.g. "train_state", "z2_stats")}

  written atomically (temp file in the same folder, fsync, ``os.replace``).
- **nomad.pth** — a bare state dict as visualnav-transformer saves it (keys may carry DataParallel's
  ``module.`` prefix) plus a config (a nomad.yaml path or dict, or navintent config sections). Import is
  strict: every key in the file must be consumed and every NoMaD tensor filled, else a ``ValueError``
  lists missing keys, unexpected keys and shape mismatches, and says which config values the file's
  shapes imply where they contradict the config. Modules nomad.pth does not have
  (``model.NEW_MODULE_PREFIXES``, e.g. ``z_proj.``) keep their initialisation.
- **packaged** — the original prototype's ``{"ema_model": <module>, "noise_scheduler": <scheduler>}`` (or a
  pickled model object). Loading it unpickles arbitrary objects, i.e. can execute code from the file, so it requires
  ``trust_checkpoint=True``. Without it nothing is unpickled: files are always first opened with
  ``weights_only=True``, and the refusal explains why.

Decision: :func:`load_policy` returns the EMA weights of a native checkpoint when it has them (that is what
NoMaD deploys); pass ``weights="model"`` for the raw training weights. Models come back in eval mode.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor, nn

from navintent.config import ModelConfig, SchedulerConfig, read_yaml_mapping
from navintent.metric_scale import TrainingScale, read_training_scales

NATIVE_FORMAT = "navintent"
NATIVE_VERSION = 1
_RESERVED_KEYS = ("format", "version", "config", "model", "ema")
_PICKLE_PROTOCOL_2PLUS = b"\x80"
DATA_PARALLEL_PREFIX = "module."
# Seconds between consecutive dataset frames: NoMaD's data processing resamples every robot log at 4 Hz, and the
# built-in sim controls at 4 Hz, so one waypoint lasts ``FRAME_DT_S * waypoint_spacing`` seconds.
FRAME_DT_S = 0.25


class UntrustedCheckpointError(ValueError):
    """A checkpoint needs unpickling of Python objects and ``trust_checkpoint`` was not given."""


# --------------------------------------------------------------------------------------------------
# reading files
# --------------------------------------------------------------------------------------------------
def _check_readable(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with path.open("rb") as fh:
        head = fh.read(2)
    if not head:
        raise ValueError(f"checkpoint {path} is empty")
    if head == b"PK" and not zipfile.is_zipfile(path):
        raise ValueError(
            f"checkpoint {path} is corrupt or truncated: it starts like a torch.save zip archive but has no "
            "readable end (a copy or write cut short?)"
        )
    if not zipfile.is_zipfile(path) and not head.startswith(_PICKLE_PROTOCOL_2PLUS):
        raise ValueError(
            f"checkpoint {path} is not a PyTorch file (neither a torch.save zip archive nor a pickle)"
        )


def _torch_load(path: str | Path, trust_checkpoint: bool) -> Any:
    """``torch.load`` on CPU: ``weights_only=True`` first; objects only with ``trust_checkpoint``."""
    path = Path(path)
    _check_readable(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise ValueError(f"checkpoint {path} is corrupt or truncated: {err}") from err
        if not trust_checkpoint:
            needed = next((ln.strip() for ln in str(err).splitlines() if "Unsupported global" in ln), "")
            raise UntrustedCheckpointError(
                f"checkpoint {path} contains pickled Python objects, not just tensors and plain data "
                f"({needed or 'objects outside the weights-only allow-list'}). Unpickling them can run arbitrary "
                "code from the file, so it was refused and nothing in it was executed. If you trust the file's "
                "source, pass trust_checkpoint=True (CLI: --trust-checkpoint)."
            ) from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"checkpoint {path} is corrupt or truncated: {err}") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"checkpoint {path} is corrupt or truncated: {err}") from err


def _is_native(obj: Any) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == NATIVE_FORMAT


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def _validate_native(obj: Mapping[str, Any], path: Path) -> dict[str, Any]:
    version = obj.get("version")
    if version != NATIVE_VERSION:
        raise ValueError(
            f"{path}: unsupported navintent checkpoint version {version!r}; expected {NATIVE_VERSION}"
        )
    missing = [k for k in ("config", "model") if k not in obj]
    if missing:
        raise ValueError(f"{path}: native checkpoint lacks entries {missing}")
    return dict(obj)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw native checkpoint dict (for training resume); loaded with ``weights_only=True`` only."""
    path = Path(path)
    obj = _torch_load(path, trust_checkpoint=False)
    if not _is_native(obj):
        raise ValueError(
            f"{path} is not a native navintent checkpoint (no 'format': {NATIVE_FORMAT!r} entry); "
            "use load_policy for nomad.pth or packaged files"
        )
    return _validate_native(obj, path)


# --------------------------------------------------------------------------------------------------
# writing files
# --------------------------------------------------------------------------------------------------
def write_atomic(path: str | Path, write: Callable[[IO[Any]], Any], *, binary: bool = True) -> Path:
    """Write ``path`` through ``write(file)`` on a temp file in the same folder, fsync, then ``os.replace``: a
    crash leaves the previous file (or none), never a partial one. The file gets the permissions a plain ``open``
    would give it (0666 less the process umask; ``mkstemp`` alone makes it owner-only). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process umask (read by setting it and setting it back: POSIX offers no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_torch_save(obj: Any, path: str | Path) -> Path:
    return write_atomic(path, lambda fh: torch.save(obj, fh))


def _cpu_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}


def model_config_sections(model: nn.Module) -> dict[str, Any]:
    """Config sections describing ``model``'s architecture: its ``config_sections()`` if it has one, else
    ``{"model": model.config}`` (plain dicts)."""
    if hasattr(model, "config_sections"):
        sections = dict(model.config_sections())
    elif isinstance(getattr(model, "config", None), ModelConfig):
        sections = {"model": model.config}
    else:
        raise ValueError(
            f"cannot describe {type(model).__name__} as config sections: it has no ModelConfig .config"
        )
    return {k: v.to_dict() if hasattr(v, "to_dict") else v for k, v in sections.items()}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    ema_state: Mapping[str, Tensor] | None = None,
    scheduler_config: SchedulerConfig,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a native checkpoint atomically; returns its path.

    ``ema_state`` is a state dict with the same keys as ``model.state_dict()`` (e.g. an EMA copy's state dict),
    so that :func:`load_policy` can load it into the model the config builds.

    ``extra`` entries (e.g. ``train_state``, ``z2_stats``) are stored at top level and must be plain data /
    tensors (weights-only loadable) and must not reuse the reserved keys ``format, version, config, model, ema``.
    """
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(_RESERVED_KEYS))
    if clash:
        raise ValueError(f"extra entries may not use reserved checkpoint keys, got {clash}")
    config = model_config_sections(model)
    config["scheduler"] = scheduler_config.to_dict()
    payload = {
        "format": NATIVE_FORMAT,
        "version": NATIVE_VERSION,
        "config": config,
        "model": _cpu_state(model.state_dict()),
        "ema": _cpu_state(ema_state) if ema_state is not None else None,
        **extra,
    }
    return _atomic_torch_save(payload, path)


INFERENCE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16}


def write_inference_checkpoint(
    src: str | Path, dst: str | Path, *, dtype: str = "float16", overwrite: bool = False
) -> dict[str, Any]:
    """Write ``dst``: the deployable part of the native training checkpoint ``src`` (a file to ship or share).

    Kept: ``config``, the EMA weights (the raw ones when ``src`` has no EMA) as ``model`` with ``ema`` None and
    ``inference: {"weights": "ema" | "model", "dtype"}`` saying which they are,
    stored in ``dtype`` ("float16" halves the file; the model is built in float32 and
    ``load_state_dict`` casts them back), ``z2_stats``, ``training_scales`` and the full training config as
    ``train_state: {"config": ...}`` (what :func:`load_inference_model` reads for the waypoint spacing and the
    reference horizon). Dropped: the raw training weights, the optimiser, LR-scheduler and RNG states, so the
    file cannot resume training (``--resume`` refuses it by name). Floating-point tensors are cast; integer
    buffers are kept. Returns ``{"path", "tensors", "values", "bytes", "weights"}`` (``weights``: "ema" or
    "model"). Raises ``ValueError`` for an unknown ``dtype`` or a ``src`` that is not a native checkpoint,
    ``FileExistsError`` when ``dst`` exists and ``overwrite`` is false.
    """
    if dtype not in INFERENCE_DTYPES:
        raise ValueError(f"dtype must be one of {list(INFERENCE_DTYPES)}, got {dtype!r}")
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} exists; pass overwrite=True (--overwrite) to replace it")
    raw = read_checkpoint(src)
    which = "ema" if raw.get("ema") is not None else "model"
    origin = inference_weights_kind(raw) or which  # an inference file's "model" may hold EMA weights
    target = INFERENCE_DTYPES[dtype]
    state = {
        k: (v.detach().to("cpu", target) if v.is_floating_point() else v.detach().to("cpu")).clone()
        for k, v in raw[which].items()
    }
    payload: dict[str, Any] = {
        "format": NATIVE_FORMAT,
        "version": NATIVE_VERSION,
        "config": raw["config"],
        "model": state,
        "ema": None,
        "inference": {"weights": origin, "dtype": dtype},
    }
    for key in ("z2_stats", "training_scales"):
        if raw.get(key) is not None:
            payload[key] = raw[key]
    config = raw.get("train_state", {}).get("config")
    if config is not None:
        payload["train_state"] = {"config": config}
    _atomic_torch_save(payload, dst)
    return {
        "path": dst,
        "tensors": len(state),
        "values": sum(v.numel() for v in state.values()),
        "bytes": dst.stat().st_size,
        "weights": origin,
    }


def inference_weights_kind(raw: Mapping[str, Any]) -> str | None:
    """For an inference checkpoint (:func:`write_inference_checkpoint`; its ``model`` entry holds the only
    weights) which weights of the training run those are, "ema" or "model"; None for any other checkpoint.
    ``ValueError`` for an ``inference`` entry naming anything else."""
    info = raw.get("inference")
    if raw.get("ema") is not None or not isinstance(info, Mapping):
        return None
    kind = info.get("weights")
    if kind not in ("ema", "model"):
        raise ValueError(f"a checkpoint's inference.weights must be 'ema' or 'model', got {kind!r}")
    return kind


def export_packaged(
    path: str | Path, model: nn.Module, scheduler_config: SchedulerConfig | None = None
) -> Path:
    """Write the original prototype's packaged format ``{"ema_model": model, "noise_scheduler": DDPMScheduler}``
    (pickled objects).

    Loading it back needs ``trust_checkpoint=True``. The scheduler defaults to ``model.scheduler_config``.
    """
    from navintent.models import build_noise_scheduler

    sched_cfg = scheduler_config or getattr(model, "scheduler_config", None) or SchedulerConfig()
    return _atomic_torch_save({"ema_model": model, "noise_scheduler": build_noise_scheduler(sched_cfg)}, path)


# --------------------------------------------------------------------------------------------------
# nomad.pth import
# --------------------------------------------------------------------------------------------------
def _read_config_arg(config: Any) -> dict[str, Any]:
    if isinstance(config, ModelConfig):
        return {"model": config}
    if isinstance(config, (str, Path)):
        return _sections_from_mapping(read_yaml_mapping(config))
    if isinstance(config, Mapping):
        return _sections_from_mapping(dict(config))
    raise ValueError(f"config must be a YAML path, a dict or a ModelConfig, got {type(config).__name__}")


def _sections_from_mapping(data: dict[str, Any]) -> dict[str, Any]:
    """navintent sections (``{"model": {...}, ...}``) pass through; otherwise the dict is read as nomad.yaml."""
    if isinstance(data.get("model"), Mapping):
        return data
    return {
        "model": ModelConfig.from_nomad_yaml(data),
        "scheduler": SchedulerConfig.from_nomad_yaml(data),
    }


def strip_data_parallel_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop DataParallel's leading ``module.`` from every key that has it."""
    n = len(DATA_PARALLEL_PREFIX)
    return {(k[n:] if k.startswith(DATA_PARALLEL_PREFIX) else k): v for k, v in state.items()}


def _implied_config(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Config values a NoMaD state dict's shapes imply (only those that can be read off it)."""
    implied: dict[str, Any] = {}
    pos = state.get("vision_encoder.positional_encoding.pos_enc")
    if pos is not None and pos.ndim == 3:
        implied["context_size"] = pos.shape[1] - 2
        implied["encoding_size"] = pos.shape[2]
    layer_ids = {
        int(k.split(".")[3])
        for k in state
        if k.startswith("vision_encoder.sa_encoder.layers.") and k.split(".")[3].isdigit()
    }
    if layer_ids:
        implied["mha_num_attention_layers"] = max(layer_ids) + 1
    lin1 = state.get("vision_encoder.sa_layer.linear1.weight")
    if lin1 is not None and "encoding_size" in implied:
        implied["mha_ff_dim_factor"] = lin1.shape[0] // implied["encoding_size"]
    down = []
    while (w := state.get(f"noise_pred_net.down_modules.{len(down)}.0.blocks.0.block.0.weight")) is not None:
        down.append(int(w.shape[0]))
        implied["kernel_size"] = int(w.shape[2])
    if down:
        implied["down_dims"] = tuple(down)
        film = state.get("noise_pred_net.mid_modules.0.cond_encoder.1.weight")
        if film is not None:
            implied["cond_predict_scale"] = film.shape[0] == 2 * down[-1]
    step = state.get("noise_pred_net.diffusion_step_encoder.3.weight")
    if step is not None:
        implied["diffusion_step_embed_dim"] = step.shape[0]
    final = state.get("noise_pred_net.final_conv.1.weight")
    if final is not None:
        implied["learn_angle"] = final.shape[0] == 4
    return implied


def _fmt_keys(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}]"


def import_nomad_state_dict(
    model: nn.Module, state: Mapping[str, Tensor], *, source: str = "state dict"
) -> None:
    """Load a nomad.pth-style state dict into ``model`` strictly (see the module docstring); in place."""
    state = strip_data_parallel_prefix(state)
    own = model.state_dict()
    new_prefixes = tuple(getattr(model, "NEW_MODULE_PREFIXES", ()))
    required = {k for k in own if not k.startswith(new_prefixes)}
    missing = sorted(required - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(state) & set(own) if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or mismatched:
        parts = [f"{source} does not match the model (strict NoMaD import)"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_fmt_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_fmt_keys(unexpected)}")
        if mismatched:
            shapes = [f"{k}: file {list(state[k].shape)} vs model {list(own[k].shape)}" for k in mismatched]
            parts.append(f"shape mismatches ({len(mismatched)}): {_fmt_keys(shapes, limit=10)}")
        config = getattr(model, "config", None)
        if isinstance(config, ModelConfig):
            contradictions = [
                f"{name}: file implies {value!r}, config says {getattr(config, name)!r}"
                for name, value in _implied_config(state).items()
                if getattr(config, name) != value
            ]
            if contradictions:
                parts.append("the file's shapes contradict the config: " + "; ".join(contradictions))
        raise ValueError("\n  ".join(parts))
    merged = {k: (state[k] if k in state else own[k]) for k in own}
    model.load_state_dict(merged, strict=True)


# --------------------------------------------------------------------------------------------------
# the public entry point
# --------------------------------------------------------------------------------------------------
def load_policy(
    path: str | Path,
    config: str | Path | Mapping[str, Any] | ModelConfig | None = None,
    trust_checkpoint: bool = False,
    *,
    weights: str = "ema",
) -> nn.Module:
    """Load a policy from any supported file (native, nomad.pth + ``config``, or packaged with trust); eval mode.

    ``config``: for nomad.pth only — a nomad.yaml path/dict, navintent config sections, or a ModelConfig;
    native checkpoints carry their own and reject a second one. ``weights``: ``"ema"`` (default; falls back to
    the raw weights only when the file stores no EMA) or ``"model"``.
    """
    from navintent.models import build_model, scheduler_config_from_sections

    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    path = Path(path)
    obj = _torch_load(path, trust_checkpoint=trust_checkpoint)
    if _is_native(obj):
        if config is not None:
            raise ValueError(f"{path} is a native checkpoint and carries its own config; do not pass config=")
        ckpt = _validate_native(obj, path)
        model = build_model(ckpt["config"])
        which = "ema" if weights == "ema" and ckpt.get("ema") is not None else "model"
        _load_exact(model, ckpt[which], source=f"{path} ({which} weights)")
    elif _is_state_dict(obj):
        if config is None:
            raise ValueError(
                f"{path} is a bare state dict (nomad.pth style) and holds no config; give its nomad.yaml "
                "(command line: --config FILE, e.g. the .yaml `navintent export` wrote beside it; Python: config= a "
                "path or dict; visualnav-transformer's train/config/nomad.yaml for the released nomad.pth)"
            )
        sections = _read_config_arg(config)
        model = build_model(sections)
        model.scheduler_config = scheduler_config_from_sections(sections)
        import_nomad_state_dict(model, obj, source=str(path))
    else:
        model = _model_from_packaged(obj, path)
    return model.eval()


def _load_exact(model: nn.Module, state: Mapping[str, Tensor], *, source: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{source} does not match the model its config builds: missing {_fmt_keys(missing)}, "
            f"unexpected {_fmt_keys(unexpected)}, shape mismatches {_fmt_keys(mismatched)}"
        )
    model.load_state_dict(state, strict=True)


def _model_from_packaged(obj: Any, path: Path) -> nn.Module:
    """The original prototype's ``{"ema_model": module, "noise_scheduler": scheduler}`` or a bare pickled module
    (trusted)."""
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping) and isinstance(obj.get("ema_model"), nn.Module):
        model = obj["ema_model"]
        sched = obj.get("noise_scheduler")
        sched_cfg = getattr(sched, "config", None)
        if sched_cfg is not None:
            model.scheduler_config = SchedulerConfig(
                num_train_timesteps=int(sched_cfg.num_train_timesteps),
                beta_schedule=str(sched_cfg.beta_schedule),
                clip_sample=bool(sched_cfg.clip_sample),
                prediction_type=str(sched_cfg.prediction_type),
            )
        return model
    kind = type(obj).__name__
    keys = sorted(map(str, obj))[:10] if isinstance(obj, Mapping) else []
    raise ValueError(
        f"{path} is not a checkpoint navintent understands: a {kind} {keys if keys else ''} — expected a native "
        "checkpoint, a bare state dict, {'ema_model': module, 'noise_scheduler': ...} or a pickled model"
    )


# --------------------------------------------------------------------------------------------------
# a policy ready for inference, with what training knew about it
# --------------------------------------------------------------------------------------------------
@dataclass
class LoadedModel:
    """A policy for inference: ``model`` (eval mode), ``z2_stats`` ``(mean [z], cov [z, z])`` of training z2 or
    None, ``waypoint_spacing`` (frames between waypoints), ``ref_horizon`` (Encoder1's reference rows),
    ``source`` (the file), ``training_scales`` (what each training dataset's unit meant in metres; empty for
    nomad.pth, packaged files and checkpoints written before training recorded it)."""

    model: Any
    z2_stats: tuple[Tensor, Tensor] | None
    waypoint_spacing: int
    ref_horizon: int
    source: str
    training_scales: tuple[TrainingScale, ...] = ()

    @property
    def is_intent(self) -> bool:
        return hasattr(self.model, "z2_from_tokens") and hasattr(self.model, "posterior")

    @property
    def waypoint_dt(self) -> float:
        """Seconds between waypoints: ``FRAME_DT_S * waypoint_spacing``."""
        return FRAME_DT_S * self.waypoint_spacing


def read_z2_stats(entry: Any, z_dim: int, *, source: str) -> tuple[Tensor, Tensor] | None:
    """A checkpoint's ``z2_stats`` entry ``{"mean": [z], "cov": [z, z], ...}`` validated -> ``(mean, cov + 1e-6 I)``
    in float32 (the jitter keeps the Cholesky factor of a rank-deficient fit finite); None if absent."""
    if entry is None:
        return None
    if not isinstance(entry, Mapping) or "mean" not in entry or "cov" not in entry:
        keys = sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
        raise ValueError(f"{source}: z2_stats must be a dict with 'mean' and 'cov', got {keys}")
    mean, cov = torch.as_tensor(entry["mean"]).float(), torch.as_tensor(entry["cov"]).float()
    if mean.shape != (z_dim,) or cov.shape != (z_dim, z_dim):
        raise ValueError(
            f"{source}: z2_stats must be mean [{z_dim}] and cov [{z_dim}, {z_dim}], "
            f"got {tuple(mean.shape)} and {tuple(cov.shape)}"
        )
    if not (torch.isfinite(mean).all() and torch.isfinite(cov).all()):
        raise ValueError(f"{source}: z2_stats holds non-finite values")
    return mean, cov + 1e-6 * torch.eye(z_dim)


def resolve_device(name: str) -> torch.device:
    """A ``--device`` value -> :class:`torch.device`: ``auto`` is CUDA when available, else CPU; any other name
    (``cpu``, ``cuda``, ``cuda:i``) as torch reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_inference_model(
    ckpt: str | Path, *, config: Any = None, trust_checkpoint: bool = False, device: Any = "cpu"
) -> LoadedModel:
    """:func:`load_policy` (EMA weights) on ``device`` plus, for a native checkpoint, its ``z2_stats`` and the
    training data options ``waypoint_spacing`` and ``ref_horizon`` (defaults 1 and ``2 * len_traj_pred``, which
    also apply to nomad.pth and packaged files, whose training options are unknown) and its ``training_scales``
    (for a nomad.pth, those of its YAML ``config`` when ``navintent export`` wrote them).
    When every training dataset used one waypoint spacing (a ``datasets:`` block may set it per dataset), that is
    ``waypoint_spacing``; with mixed spacings it stays the training config's value, and the metric scale's
    resolution (:func:`navintent.metric_scale.resolve_metric_scale`) asks the user to pick a dataset."""
    path = Path(ckpt)
    if not path.is_file():
        raise FileNotFoundError(f"--ckpt {path}: no such file")
    model = load_policy(path, config=config, trust_checkpoint=trust_checkpoint).to(device).eval()
    stats, spacing, horizon, scales = None, 1, 2 * model.config.len_traj_pred, ()
    raw = None
    if isinstance(
        config, (str, Path)
    ):  # a nomad.pth: `navintent export` writes its training scale in the YAML
        scales = read_training_scales(read_yaml_mapping(config).get("training_scales"), where=str(config))
    if config is None:  # native or packaged; a nomad.pth needed ``config`` above
        try:
            raw = read_checkpoint(path)
        except UntrustedCheckpointError:  # packaged (pickled objects): nothing stored beside the model
            pass
    if raw is not None:
        stats = read_z2_stats(raw.get("z2_stats"), model.z_dim, source=str(path))
        if stats is not None:
            stats = (stats[0].to(device), stats[1].to(device))
        train = raw.get("train_state", {}).get("config", {}).get("train", {})
        spacing = int(train.get("waypoint_spacing", 1))
        horizon = int(train.get("ref_horizon", 0)) or horizon
        scales = read_training_scales(raw.get("training_scales"), where=str(path))
        spacings = {s.waypoint_spacing for s in scales}
        if len(spacings) == 1:
            spacing = spacings.pop()
    return LoadedModel(model, stats, spacing, horizon, str(path), scales)
