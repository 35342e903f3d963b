"""Reading NoMaD's flat nomad.yaml: which keys navintent ignores (with why), accepts only at NoMaD's value, or
refuses; its nested ``distance:``/``action:`` bounds; telling a sectioned navintent config from a flat one; and
routing a flat file's keys to the sections (:func:`read_flat_keys`, used by
:meth:`navintent.config.TwoStageTrainingConfig.from_mapping`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from navintent.config.base import check_positive_int


def nomad_nested_bounds(distance: Any, action: Any) -> dict[str, Any]:
    """nomad.yaml's ``distance: {min_dist_cat, max_dist_cat}`` and ``action: {min_dist_cat, max_dist_cat}``
    -> TrainConfig's ``min_dist_cat``/``max_dist_cat`` and ``min_action_distance``/``max_action_distance``."""
    out: dict[str, Any] = {}
    for name, block, (lo, hi) in (
        ("distance", distance, ("min_dist_cat", "max_dist_cat")),
        ("action", action, ("min_action_distance", "max_action_distance")),
    ):
        if block is None:
            continue
        if not isinstance(block, dict) or set(block) - {"min_dist_cat", "max_dist_cat"}:
            raise ValueError(
                f"nomad.yaml '{name}' must be a mapping with min_dist_cat/max_dist_cat, got {block!r}"
            )
        if "min_dist_cat" in block:
            out[lo] = block["min_dist_cat"]
        if "max_dist_cat" in block:
            out[hi] = block["max_dist_cat"]
    return out


# nomad.yaml keys that ``navintent train`` does not apply, each with why. A flat config holding one gets the
# note "NoMaD key ignored: <key>: <why>" (:meth:`TwoStageTrainingConfig.from_mapping`).
NOMAD_IGNORED_KEYS: dict[str, str] = {
    "project_name": "wandb project and log-folder name; navintent writes to --out",
    "run_name": "wandb run and log-folder name; navintent writes to --out",
    "use_wandb": "navintent does not log to wandb",
    "wandb_log_freq": "wandb logging period; navintent does not log to wandb",
    "image_log_freq": "NoMaD's image-logging period in steps; navintent draws num_images_log samples into a "
    "figure at each evaluation instead",
    "pairwise_test_freq": "period of NoMaD's pairwise-distance test; navintent has no such test",
    "gpu_ids": "devices come from --device (one process) or torchrun (DDP), and batch_size is per process "
    "(NoMaD's DataParallel batch_size is global)",
    "cyclic_period": "setting of NoMaD's 'cyclic' LR schedule; navintent has 'cosine'/'constant' only",
    "plateau_patience": "setting of NoMaD's 'plateau' LR schedule; navintent has 'cosine'/'constant' only",
    "plateau_factor": "setting of NoMaD's 'plateau' LR schedule; navintent has 'cosine'/'constant' only",
    "train": "NoMaD's whether-to-train flag; navintent train always trains",
    "model_type": "navintent always builds NoMaD's model",
    "vision_encoder": "navintent always builds NoMaD's nomad_vint encoder",
    "attn_unet": "navintent's denoiser is NoMaD's ConditionalUnet1D, without attention",
    "training_scales": "`navintent export`'s record of the exported model's metres per unit (inference reads it); "
    "training records the scale of the data it trains on",
}
# Ignored keys accepted only with this value (NoMaD's released one); others ask what navintent cannot do.
NOMAD_REQUIRED_VALUES: dict[str, Any] = {
    "train": True,
    "model_type": "nomad",
    "vision_encoder": "nomad_vint",
    "attn_unet": False,
}
# nomad.yaml keys refused outright: ignoring them would change what the run does.
NOMAD_REFUSED_KEYS: dict[str, str] = {
    "load_run": "NoMaD starts from logs/<load_run>/latest.pth; navintent takes initial weights from --ckpt "
    "PATH (a NoMaD state dict such as that latest.pth, or a navintent checkpoint) and resumes its own runs "
    "with --resume; remove the key and pass one of those",
}


SECTIONS = ("model", "scheduler", "intent", "train")


def is_sectioned(data: Mapping[str, Any], loc: str) -> bool:
    """True if a section key (model, scheduler, intent, train) holds a mapping; then every other top-level key
    must be a section (a mapping or empty) or ``datasets``, else ``ValueError`` naming the key. False: a flat
    nomad.yaml, where ``train`` (a bool) and ``scheduler`` (a string) are plain keys."""
    holders = [k for k in SECTIONS if isinstance(data.get(k), Mapping)]
    if not holders:
        return False
    for key, value in data.items():
        if key == "datasets":
            continue
        if key not in SECTIONS:
            raise ValueError(
                f"config{loc} mixes sections and flat keys: {holders} hold mappings (a sectioned config), "
                f"but top-level key {key!r} is not a section; put it under its section, or write the file "
                "flat (nomad.yaml style, no section mappings)"
            )
        if value is not None and not isinstance(value, Mapping):
            raise ValueError(
                f"config{loc} mixes sections and flat keys: {holders} hold mappings (a sectioned config), "
                f"but {key!r} holds {type(value).__name__} {value!r}, not a section mapping; in a sectioned "
                "config put nomad.yaml's flat value under its section (e.g. train: {scheduler: cosine})"
            )
    return True


def read_flat_keys(
    data: Mapping[str, Any],
    owners: Mapping[str, str],
    assign: Callable[[str, str, Any, str], None],
    new_notes: list[str],
    loc: str,
) -> None:
    """Route a flat nomad.yaml's keys (see :meth:`navintent.config.TwoStageTrainingConfig.from_mapping`) through
    ``assign(section, field, value, source)``; ``owners`` maps each section field's name to its section; notes go
    to ``new_notes``; ``loc`` (``" in <file>"`` or empty) goes into the errors."""
    unknown = []
    for key, value in data.items():
        if key == "datasets":
            continue
        if key in ("distance", "action"):
            bounds = (
                nomad_nested_bounds(value, None) if key == "distance" else nomad_nested_bounds(None, value)
            )
            for field, bound in bounds.items():
                assign("train", field, bound, key)
        elif key == "num_diffusion_iters":
            check_positive_int("num_diffusion_iters", value)
            assign("scheduler", "num_train_timesteps", value, key)
        elif key in ("model", "intent"):
            raise ValueError(
                f"{key!r}{loc} must be a mapping (the {key} section), got {type(value).__name__} {value!r}"
            )
        elif key in owners:
            assign(owners[key], key, value, key)
        elif key in NOMAD_REFUSED_KEYS:
            raise ValueError(f"nomad.yaml key {key}{loc} cannot be honoured: {NOMAD_REFUSED_KEYS[key]}")
        elif key in NOMAD_IGNORED_KEYS:
            required = NOMAD_REQUIRED_VALUES.get(key, value)
            if type(value) is not type(required) or value != required:
                raise ValueError(
                    f"nomad.yaml key {key}{loc} is {value!r}, but navintent supports only {required!r} "
                    f"({NOMAD_IGNORED_KEYS[key]})"
                )
            new_notes.append(f"NoMaD key ignored: {key}: {NOMAD_IGNORED_KEYS[key]}")
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"unknown config keys{loc}: {sorted(unknown)}; they belong to no section "
            f"(model, scheduler, intent, train) and are not nomad.yaml keys navintent knows"
        )
