"""``navintent export --format nomad``: a navintent policy back to NoMaD's deployment stack.

NoMaD's deployment (visualnav-transformer ``deployment/src/utils.py`` ``load_model``) builds the model from a
nomad.yaml dict and calls ``model.load_state_dict(torch.load(path), strict=False)``, so a file with other key
names silently gives a randomly initialised model (a native navintent checkpoint: no weight taken). This module
writes what that loader takes:

- ``OUT.pth``: a plain ``dict[str, Tensor]`` saved with ``torch.save`` holding exactly the NoMaD part of the policy,
  ``vision_encoder.*``, ``noise_pred_net.*`` and ``dist_pred_net.*`` (645 tensors at NoMaD's sizes), under
  NoMaD's names and shapes (key names follow nomad.pth; tests/models/test_nomad_compat.py proves the layout) and
  without DataParallel's ``module.`` prefix. The modules NoMaD lacks (the model's ``NEW_MODULE_PREFIXES``:
  ``z_proj``, ``encoder1``, ``encoder2``) are dropped.
- ``OUT.yaml``: the matching nomad.yaml values under NoMaD's key names (``model_type: nomad``,
  ``vision_encoder: nomad_vint``, the sizes, ``num_diffusion_iters``, ``image_size``, ``normalize: true``, and the
  ``distance:``/``action:`` bounds when the checkpoint's training config is known), then the values NoMaD's code
  hard-codes, under navintent's names, so that navintent's ``load_policy(OUT.pth, config=OUT.yaml)`` rebuilds
  the same model: ``kernel_size``, ``n_groups``, ``diffusion_step_embed_dim`` (NoMaD's train.py and deployment
  pass only ``input_dim=2, global_cond_dim, down_dims, cond_predict_scale`` to diffusion_policy's
  ``ConditionalUnet1D``, whose defaults are 3, 8 and 256), ``mha_dropout``, ``action_min``/``action_max`` (NoMaD
  reads these from data_config.yaml ``action_stats``) and ``beta_schedule``/``clip_sample`` (NoMaD's navigate.py
  hard-codes ``squaredcos_cap_v2`` and ``True``). Where the model differs from what NoMaD's code builds or assumes,
  the export still happens and :attr:`ExportResult.warnings` names the values.

Latent (decision). NoMaD's architecture has no latent input: its condition is the pooled vision output
``global_cond``. The export is exact when the latent cannot change the policy (``z_proj`` all zero, e.g. a NoMaD
import that was never trained with intents) or when the user fixes the latent to ``"none"``: the unconditional
branch ``latent_z=None`` (condition = ``global_cond``, no ``z_proj``) that training taught through latent dropout
and classifier-free guidance uses as ``eps(c, none)``. A checkpoint whose ``z_proj`` has any non-zero weight or
bias is refused without ``latent="none"``. No other latent is offered: the ``ref`` and ``prior`` latents are
``z2 = Encoder2(z1, current-frame token)``, which depends on each observation, and the U-Net's FiLM condition
encoders apply Mish before their Linear, so an observation-dependent offset to the condition is not a weight of
NoMaD's U-Net. (One fixed z2 vector for every observation gives a constant offset ``z_proj(z2)``; it could be
folded into the last self-attention layer's feed-forward output bias, because the pooled condition weights its
tokens with weights summing to 1 for both goal-mask rows, with the distance head's first bias compensating. That
is equal up to float rounding, not bit for bit, and no navintent sampling mode uses one z2 for all observations,
so it is not offered.) Guidance (``lambda_cfg > 0``) needs two U-Net passes and cannot be exported either.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from navintent.checkpoint import (
    UntrustedCheckpointError,
    inference_weights_kind,
    load_policy,
    read_checkpoint,
    write_atomic,
)
from navintent.config import (
    NOMAD_ACTION_MAX,
    NOMAD_ACTION_MIN,
    ModelConfig,
    SchedulerConfig,
    read_yaml_mapping,
)
from navintent.metric_scale import NOMAD_FRAME_RATE, NOMAD_MAX_V, TrainingScale, read_training_scales

FORMATS: tuple[str, ...] = ("nomad", "inference")
LATENTS: tuple[str, ...] = ("none",)
WEIGHTS: tuple[str, ...] = ("ema", "model")
# State-dict prefixes of NoMaD's three networks (key names follow nomad.pth).
NOMAD_PREFIXES: tuple[str, ...] = ("vision_encoder.", "noise_pred_net.", "dist_pred_net.")
LATENT_PREFIX = "z_proj."
# ConditionalUnet1D arguments NoMaD's train.py and deployment/src/utils.py leave at diffusion_policy's defaults.
NOMAD_UNET_DEFAULTS: dict[str, int] = {"kernel_size": 3, "n_groups": 8, "diffusion_step_embed_dim": 256}
# Scheduler settings NoMaD's deployment/src/navigate.py hard-codes (it reads only num_diffusion_iters).
NOMAD_SCHEDULER_FIXED: dict[str, Any] = {"beta_schedule": "squaredcos_cap_v2", "clip_sample": True}
WHY_NO_OTHER_LATENT = (
    "the ref and prior latents are z2 = Encoder2(z1, current-frame token), which depends on each observation, "
    "and the U-Net's FiLM condition encoders apply Mish before their Linear, so an observation-dependent offset "
    "to the condition cannot be folded into NoMaD's weights"
)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_nomad` wrote.

    ``weights_path``/``yaml_path``: the files. ``source``: the checkpoint; ``source_kind``: ``"native"``,
    ``"nomad.pth"`` or ``"packaged"``; ``weights_used``: ``"ema"`` or ``"model"`` (native) or ``"file"`` (the
    only set a nomad.pth or packaged file holds). ``num_tensors``/``num_values``: size of the written state dict;
    ``dropped_keys``: state-dict keys left out (the intent modules). ``latent``: the ``latent`` argument.
    ``nomad_config``: the values written to the YAML. ``note``: what the exported model does. ``warnings``: where
    NoMaD's own code cannot build or would run the model differently (empty when it matches NoMaD).
    """

    weights_path: Path
    yaml_path: Path
    source: str
    source_kind: str
    weights_used: str
    num_tensors: int
    num_values: int
    dropped_keys: tuple[str, ...]
    latent: str | None
    nomad_config: dict[str, Any]
    note: str
    warnings: tuple[str, ...]


# --------------------------------------------------------------------------------------------------
# the pieces: state dict, YAML values, warnings
# --------------------------------------------------------------------------------------------------
def nomad_state_dict(model: nn.Module) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """Split ``model``'s state dict into NoMaD's part and the dropped keys: ``(state, dropped)``.

    ``state`` holds detached, contiguous CPU copies of every ``vision_encoder.* / noise_pred_net.* /
    dist_pred_net.*`` tensor; ``dropped`` lists the keys under the model's ``NEW_MODULE_PREFIXES`` (``z_proj``,
    ``encoder1``, ``encoder2``). The kept keys and shapes must equal those of a ``NoMaDPolicy`` built from
    ``model.config`` (the layout NoMaD's loader takes), else ``ValueError`` lists the differences; a key under
    neither NoMaD's prefixes nor ``NEW_MODULE_PREFIXES`` also raises ``ValueError``, naming it.
    """
    from navintent.models.nomad import NoMaDPolicy

    config = _model_config(model)
    new_prefixes = tuple(getattr(model, "NEW_MODULE_PREFIXES", NoMaDPolicy.NEW_MODULE_PREFIXES))
    own = model.state_dict()
    strays = sorted(k for k in own if not k.startswith(NOMAD_PREFIXES + new_prefixes))
    if strays:
        raise ValueError(
            f"{type(model).__name__} has state-dict keys that are neither NoMaD's {list(NOMAD_PREFIXES)} nor "
            f"its intent modules {list(new_prefixes)}: {_fmt(strays)}; NoMaD's loader cannot take them"
        )
    state = {
        k: v.detach().to("cpu").contiguous().clone() for k, v in own.items() if k.startswith(NOMAD_PREFIXES)
    }
    dropped = tuple(sorted(k for k in own if k not in state))
    with torch.device("meta"):
        reference = NoMaDPolicy(config).state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items() if k.startswith(NOMAD_PREFIXES)}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: {list(state[k].shape)} vs {list(expected[k])}"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != expected[k]
    )
    if missing or extra or shapes:
        raise ValueError(
            f"{type(model).__name__}'s NoMaD part does not have the layout its config builds: missing "
            f"{_fmt(missing)}, unexpected {_fmt(extra)}, shape mismatches {_fmt(shapes)}"
        )
    return state, dropped


def nomad_yaml_values(
    config: ModelConfig, scheduler: SchedulerConfig, train: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The YAML's two blocks: ``(nomad_keys, navintent_keys)``, plain YAML-safe values.

    ``nomad_keys`` uses nomad.yaml's names (visualnav-transformer train/config/nomad.yaml, what its deployment
    reads); ``distance``/``action`` (``{min_dist_cat, max_dist_cat}``) come from ``train`` (a ``TrainConfig``
    dict: ``min_dist_cat``, ``max_dist_cat``, ``min_action_distance``, ``max_action_distance``) and are left out
    when ``train`` is None. ``navintent_keys`` are navintent's ``ModelConfig``/``SchedulerConfig`` names for the
    values NoMaD's code hard-codes (see the module docstring). ``z_dim`` is not written: the export has no latent.
    """
    nomad: dict[str, Any] = {
        "model_type": "nomad",
        "vision_encoder": "nomad_vint",
        "encoding_size": config.encoding_size,
        "context_size": config.context_size,
        "obs_encoder": config.obs_encoder,
        "mha_num_attention_heads": config.mha_num_attention_heads,
        "mha_num_attention_layers": config.mha_num_attention_layers,
        "mha_ff_dim_factor": config.mha_ff_dim_factor,
        "down_dims": list(config.down_dims),
        "cond_predict_scale": config.cond_predict_scale,
        "len_traj_pred": config.len_traj_pred,
        "learn_angle": config.learn_angle,
        "num_diffusion_iters": scheduler.num_train_timesteps,
        "image_size": list(config.image_size),
        # Actions are in units of metric_waypoint_spacing * waypoint_spacing, as NoMaD trains with normalize: True.
        "normalize": True,
    }
    if train is not None:
        bounds = {
            "distance": ("min_dist_cat", "max_dist_cat"),
            "action": ("min_action_distance", "max_action_distance"),
        }
        for block, (lo, hi) in bounds.items():
            if lo in train and hi in train:
                nomad[block] = {"min_dist_cat": int(train[lo]), "max_dist_cat": int(train[hi])}
    navintent = {
        "kernel_size": config.kernel_size,
        "n_groups": config.n_groups,
        "diffusion_step_embed_dim": config.diffusion_step_embed_dim,
        "mha_dropout": float(config.mha_dropout),
        "action_min": [float(v) for v in config.action_min],
        "action_max": [float(v) for v in config.action_max],
        "beta_schedule": scheduler.beta_schedule,
        "clip_sample": bool(scheduler.clip_sample),
    }
    return nomad, navintent


def nomad_deployment_warnings(config: ModelConfig, scheduler: SchedulerConfig) -> list[str]:
    """Where NoMaD's deployment code cannot build this model or would run it unlike navintent (one line each).

    Not refusals: navintent's ``load_policy(OUT.pth, config=OUT.yaml)`` still rebuilds the model.
    """
    out = []
    if config.obs_encoder != "efficientnet-b0":
        out.append(
            f"NoMaD's deployment code cannot build this model's image trunks: it builds EfficientNet-B0, this model "
            f"has obs_encoder={config.obs_encoder!r}; navintent's load_policy(OUT.pth, config=OUT.yaml) loads it"
        )
    unet = {
        k: getattr(config, k) for k in NOMAD_UNET_DEFAULTS if getattr(config, k) != NOMAD_UNET_DEFAULTS[k]
    }
    if unet:
        have = ", ".join(f"{k}={v}" for k, v in unet.items())
        fixed = ", ".join(f"{k}={NOMAD_UNET_DEFAULTS[k]}" for k in unet)
        out.append(
            f"NoMaD's deployment code cannot build this model size: it builds ConditionalUnet1D with {fixed} "
            f"(diffusion_policy's defaults), this model has {have}, so NoMaD's load_state_dict raises size "
            "mismatches; navintent's load_policy(OUT.pth, config=OUT.yaml) loads it"
        )
    if config.learn_angle:
        out.append(
            "NoMaD's deployment code cannot build this model: learn_angle is true (4 action channels) but NoMaD "
            "builds ConditionalUnet1D with input_dim=2 and samples 2-D actions; navintent's load_policy loads it"
        )
    if config.action_min != NOMAD_ACTION_MIN or config.action_max != NOMAD_ACTION_MAX:
        out.append(
            f"this model normalises actions with action_min {list(config.action_min)} / action_max "
            f"{list(config.action_max)}, NoMaD's get_action uses data_config.yaml action_stats (released: min "
            f"{list(NOMAD_ACTION_MIN)}, max {list(NOMAD_ACTION_MAX)}): set action_stats to these values there"
        )
    sched = {
        k: getattr(scheduler, k)
        for k in NOMAD_SCHEDULER_FIXED
        if getattr(scheduler, k) != NOMAD_SCHEDULER_FIXED[k]
    }
    if sched:
        have = ", ".join(f"{k}={v!r}" for k, v in sched.items())
        fixed = ", ".join(f"{k}={NOMAD_SCHEDULER_FIXED[k]!r}" for k in sched)
        out.append(
            f"NoMaD's navigate.py hard-codes the DDPM scheduler's {fixed}; this model was trained with {have}, "
            "so NoMaD would sample it with the wrong noise schedule"
        )
    return out


def dump_nomad_yaml(nomad: Mapping[str, Any], navintent: Mapping[str, Any], *, header: str = "") -> str:
    """The YAML text: ``header`` as comment lines, NoMaD's keys, then navintent's keys under a comment."""
    lines = [
        f"# {line}".rstrip() for para in header.splitlines() for line in textwrap.wrap(para, 106) or [""]
    ]
    text = "\n".join(lines) + ("\n" if lines else "")
    text += yaml.safe_dump(dict(nomad), sort_keys=False, default_flow_style=None)
    text += (
        "# navintent-only: values NoMaD's code hard-codes (ConditionalUnet1D kernel_size 3, n_groups 8,\n"
        "# diffusion_step_embed_dim 256; scheduler squaredcos_cap_v2 with clip_sample) or reads from\n"
        "# data_config.yaml (action_stats -> action_min / action_max), and the metres per unit of the training\n"
        "# data (training_scales; navintent.metric_scale). NoMaD ignores them; navintent reads them.\n"
    )
    text += yaml.safe_dump(dict(navintent), sort_keys=False, default_flow_style=None)
    return text


# --------------------------------------------------------------------------------------------------
# the typed call
# --------------------------------------------------------------------------------------------------
def export_nomad(
    ckpt: str | Path,
    out_path: str | Path,
    *,
    latent: str | None = None,
    weights: str = "ema",
    config: str | Path | Mapping[str, Any] | ModelConfig | None = None,
    trust_checkpoint: bool = False,
    yaml_path: str | Path | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write ``out_path`` (NoMaD's plain state dict) and its nomad.yaml values (see the module docstring).

    ``ckpt``: a native navintent checkpoint (``weights``: ``"ema"`` (default, as :func:`load_policy`; the raw
    weights when the file stores no EMA, with a warning) or ``"model"``), a bare nomad.pth with ``config`` (a
    nomad.yaml path or dict, or navintent config sections: a round trip), or a packaged file with
    ``trust_checkpoint=True`` (unpickling can run code from the file). ``latent``: None, or ``"none"`` to export
    the unconditional branch; required when ``z_proj`` is non-zero. ``yaml_path`` defaults to ``out_path`` with
    the suffix ``.yaml``. Nothing is written unless every check passes; both files are written atomically.

    Errors: ``ValueError`` for an unsupported ``latent``/``weights``, a non-zero ``z_proj`` without
    ``latent="none"`` (naming ``--latent none``), ``weights="model"`` on a file with one set of weights, output
    paths that clash with each other or with ``ckpt``, and a model NoMaD's layout cannot hold;
    ``FileExistsError`` when an output exists and ``overwrite`` is false; ``UntrustedCheckpointError`` (a
    ``ValueError``) for a packaged file without ``trust_checkpoint``; ``load_policy``'s errors for bad files.
    """
    if latent is not None and latent not in LATENTS:
        raise ValueError(
            f"latent must be None or 'none' (CLI: --latent none), got {latent!r}: only the unconditional branch "
            f"(latent_z=None) can be exported exactly, because {WHY_NO_OTHER_LATENT}"
        )
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {list(WEIGHTS)}, got {weights!r}")
    ckpt = Path(ckpt)
    out_path = Path(out_path)
    yaml_out = Path(yaml_path) if yaml_path is not None else out_path.with_suffix(".yaml")
    _check_outputs(ckpt, out_path, yaml_out, overwrite)
    if config is not None and weights == "model":
        raise ValueError(
            f"--weights model applies to native checkpoints (raw training weights beside the EMA); {ckpt} is a "
            "bare nomad.pth (given with --config) and holds one set of weights"
        )

    model = load_policy(ckpt, config=config, trust_checkpoint=trust_checkpoint, weights=weights)
    warnings: list[str] = []
    train: Mapping[str, Any] | None = None
    scales: tuple[TrainingScale, ...] = ()
    if config is not None:
        kind, used = "nomad.pth", "file"
        if isinstance(config, (str, Path)):
            scales = read_training_scales(read_yaml_mapping(config).get("training_scales"), where=str(config))
    else:
        try:
            raw = read_checkpoint(ckpt)
        except UntrustedCheckpointError:  # load_policy accepted it with trust: a packaged (pickled) file
            raw = None
        if raw is None:
            kind, used = "packaged", "file"
            if weights == "model":
                raise ValueError(
                    f"--weights model applies to native checkpoints (raw training weights beside the EMA); {ckpt} "
                    "is a packaged file and holds one set of weights"
                )
        else:
            kind = "native"
            used = "ema" if weights == "ema" and raw.get("ema") is not None else "model"
            stored = inference_weights_kind(raw)  # an inference file holds one set, named by the file
            if stored is not None:
                if weights != stored:
                    raise ValueError(
                        f"--weights {weights}: {ckpt} is an inference checkpoint holding only the {stored} weights"
                    )
                used = stored
            elif used != weights:
                warnings.append(f"{ckpt} stores no EMA weights; exported its raw training weights")
            scales = read_training_scales(raw.get("training_scales"), where=str(ckpt))
            train_state = raw.get("train_state")
            if isinstance(train_state, Mapping) and isinstance(train_state.get("config"), Mapping):
                section = train_state["config"].get("train")
                train = section if isinstance(section, Mapping) else None

    model_config = _model_config(model)
    scheduler = getattr(model, "scheduler_config", None)
    if not isinstance(scheduler, SchedulerConfig):
        raise ValueError(
            f"{ckpt}: the loaded {type(model).__name__} carries no SchedulerConfig (.scheduler_config), so "
            "num_diffusion_iters is unknown; a packaged file needs its 'noise_scheduler' entry"
        )
    state, dropped = nomad_state_dict(model)
    note = _latent_note(ckpt, model, latent)
    warnings += _training_warnings(model, latent)
    warnings += nomad_deployment_warnings(model_config, scheduler)

    nomad_block, navintent_block = nomad_yaml_values(model_config, scheduler, train)
    if scales:
        navintent_block["training_scales"] = [sc.to_dict() for sc in scales]
        warnings += _deployment_scale_warnings(scales)
    header = (
        f"nomad.yaml values for {out_path.name}, written by `navintent export --format nomad` from {ckpt} "
        f"({kind}, {used} weights).\nModel: {note}."
    )
    text = dump_nomad_yaml(nomad_block, navintent_block, header=header)
    write_atomic(out_path, lambda fh: torch.save(state, fh), binary=True)
    write_atomic(yaml_out, lambda fh: fh.write(text), binary=False)
    return ExportResult(
        weights_path=out_path,
        yaml_path=yaml_out,
        source=str(ckpt),
        source_kind=kind,
        weights_used=used,
        num_tensors=len(state),
        num_values=sum(v.numel() for v in state.values()),
        dropped_keys=dropped,
        latent=latent,
        nomad_config={**nomad_block, **navintent_block},
        note=note,
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _fmt(items: list[str], limit: int = 10) -> str:
    return "[" + ", ".join(items[:limit]) + (", ..." if len(items) > limit else "") + "]"


def _model_config(model: nn.Module) -> ModelConfig:
    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise ValueError(
            f"cannot export {type(model).__name__}: it has no navintent ModelConfig (.config), so its nomad.yaml "
            "values are unknown"
        )
    return config


def _check_outputs(ckpt: Path, out_path: Path, yaml_out: Path, overwrite: bool) -> None:
    if out_path.suffix.lower() in (".yaml", ".yml"):
        raise ValueError(f"OUT {out_path} must be the weights file (e.g. nomad.pth), not a YAML file")
    if out_path.resolve() == yaml_out.resolve():
        raise ValueError(f"--yaml {yaml_out} is the weights file OUT {out_path}; give a different path")
    for what, path in (("OUT", out_path), ("--yaml", yaml_out)):
        if path.resolve() == ckpt.resolve():
            raise ValueError(f"{what} {path} is the checkpoint being exported; choose another path")
        if path.is_dir():
            raise IsADirectoryError(f"{what} {path} is a directory; give a file path")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{what} {path} exists; choose another path or pass --overwrite")


def _latent_note(ckpt: Path, model: nn.Module, latent: str | None) -> str:
    """What the exported model does; raises the refusal when the latent matters and is not fixed."""
    z_proj = [v for k, v in model.state_dict().items() if k.startswith(LATENT_PREFIX)]
    nonzero = sum(int(torch.count_nonzero(v)) for v in z_proj)
    if nonzero == 0:
        what = "has no z_proj" if not z_proj else "has an all-zero z_proj"
        return (
            f"NoMaD as the source samples it: the source {what}, so the latent does not change its policy "
            "(exact with or without a latent)"
        )
    if latent is None:
        largest = max(float(v.abs().max()) for v in z_proj if v.numel())
        raise ValueError(
            f"{ckpt}: z_proj holds {nonzero} non-zero values (max |value| {largest:.3g}), so the latent changes "
            "this policy and NoMaD's architecture has no latent input. Pass --latent none (latent='none') to "
            "export the unconditional branch (latent_z=None), which NoMaD's architecture reproduces exactly. No "
            f"other latent can be exported: {WHY_NO_OTHER_LATENT}"
        )
    intent = getattr(model, "intent_config", None)
    dropout = getattr(intent, "latent_dropout", None)
    trained = f" (p = {dropout:g})" if dropout is not None else ""
    return (
        "NoMaD without the latent: the unconditional branch (latent_z=None: the condition is global_cond "
        f"without z_proj) that classifier-free guidance uses and training taught through latent dropout{trained}; "
        "no guidance, no intent"
    )


def _deployment_scale_warnings(scales: tuple[TrainingScale, ...]) -> list[str]:
    """NoMaD's deployment multiplies the model's waypoints by robot.yaml's ``max_v / frame_rate``; the model's unit
    is its training data's (:mod:`navintent.metric_scale`). Say what robot.yaml must hold for the two to agree."""
    out = []
    for sc in scales:
        unit = sc.metres_per_unit
        if abs(unit - NOMAD_MAX_V / NOMAD_FRAME_RATE) > 1e-3 * unit:
            out.append(
                f"trained on {sc.dataset} at {unit:.4g} m per unit; NoMaD's deployment scales waypoints by robot.yaml's "
                f"max_v / frame_rate ({NOMAD_MAX_V:g} / {NOMAD_FRAME_RATE:g} = "
                f"{NOMAD_MAX_V / NOMAD_FRAME_RATE:g} m by default): set max_v = {unit * NOMAD_FRAME_RATE:.4g} m/s at "
                f"{NOMAD_FRAME_RATE:g} Hz (or frame_rate = {NOMAD_MAX_V / unit:.4g} Hz), or the robot moves "
                f"{unit / (NOMAD_MAX_V / NOMAD_FRAME_RATE):.3g}x less than trained; navintent reads the scale from "
                "OUT.yaml's training_scales"
            )
    return out


def _training_warnings(model: nn.Module, latent: str | None) -> list[str]:
    intent = getattr(model, "intent_config", None)
    if latent == "none" and intent is not None and getattr(intent, "latent_dropout", None) == 0:
        return [
            "the intent config's latent_dropout is 0: training never ran the unconditional branch, so the "
            "exported model (latent_z=None) was not trained as such"
        ]
    return []
