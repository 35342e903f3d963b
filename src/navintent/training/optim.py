"""Which parameters train and how fast: freezing, the optimiser's parameter groups and the LR schedule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from navintent.config import TrainConfig

# freeze group (``train.freeze``) -> parameter name prefixes of :class:`navintent.models.intent.TwoStageIntentModel`
FREEZE_PREFIXES = {"vision": ("vision_encoder.",), "denoiser": ("noise_pred_net.", "dist_pred_net.")}


def apply_freeze(model: nn.Module, groups: Sequence[str]) -> list[str]:
    """Set ``requires_grad=False`` on the named groups' parameters; returns the frozen parameter names."""
    prefixes = tuple(p for g in groups for p in FREEZE_PREFIXES[g])
    frozen = []
    for name, param in model.named_parameters():
        if prefixes and name.startswith(prefixes):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def set_train_mode(model: nn.Module, groups: Sequence[str]) -> None:
    """``model.train()``, with frozen groups in eval mode (deterministic features from a fixed backbone)."""
    model.train()
    for g in groups:
        for prefix in FREEZE_PREFIXES[g]:
            getattr(model, prefix.rstrip(".")).eval()


def parameter_groups(model: nn.Module, train: TrainConfig) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trainable parameters, empty groups left out: NoMaD's modules at ``lr``; the
    vision encoder at ``lr * vision_lr_scale`` in a group of its own only when that scale is not 1 (so old
    checkpoints' optimiser state resumes unchanged); the modules NoMaD lacks (``model.NEW_MODULE_PREFIXES``) at
    ``lr * intent_lr_scale``."""
    new = tuple(model.NEW_MODULE_PREFIXES)
    vision = FREEZE_PREFIXES["vision"] if train.vision_lr_scale != 1.0 else ()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {
            "params": [
                p for n, p in trainable if not n.startswith(new) and not (vision and n.startswith(vision))
            ]
        },
        {
            "params": [p for n, p in trainable if vision and n.startswith(vision)],
            "lr": train.lr * train.vision_lr_scale,
        },
        {"params": [p for n, p in trainable if n.startswith(new)], "lr": train.lr * train.intent_lr_scale},
    ]
    return [g for g in groups if g["params"]]


def warmup_steps(train: TrainConfig, steps_per_epoch: int) -> int:
    """Warm-up length in updates: 0 without ``warmup``, else ``warmup_steps`` or, when that is 0,
    ``warmup_epochs`` epochs."""
    if not train.warmup:
        return 0
    return train.warmup_steps or int(train.warmup_epochs * steps_per_epoch)


def lr_factor(step: int, warmup_steps: int, total_steps: int, kind: str) -> float:
    """LR multiplier for the ``step``-th update (0-based): linear warm-up, then cosine to 0 (or constant)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
