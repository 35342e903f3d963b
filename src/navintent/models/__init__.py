"""Models: NoMaD policy (+ latent intent, CFG), its building blocks, and the factory used by checkpoints.

``build_model(sections)`` decides which class a config describes: a dict of config sections as stored in a
native checkpoint (``{"model": ..., "scheduler": ..., ["intent": ...]}``; each a dict or a config object).
Without an ``intent`` section it builds :class:`NoMaDPolicy`; with one it delegates to the builder registered
in ``SECTION_BUILDERS`` (the intent model's module, imported only then). Other sections (e.g. ``train``) are
ignored here: they do not change the architecture.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from navintent.config import ModelConfig, SchedulerConfig
from navintent.models.nomad import NoMaDPolicy, build_noise_scheduler

# Config section -> "module:function" building the model when that section is present; the function
# receives the whole sections dict. The first section present wins, in this order.
SECTION_BUILDERS: dict[str, str] = {"intent": "navintent.models.intent:build_intent_model"}


def _as_config(value: Any, cls: type, name: str) -> Any:
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return cls.from_dict(value, where=f"config section {name!r}")
    raise ValueError(f"config section {name!r} must be a dict or {cls.__name__}, got {type(value).__name__}")


def model_config_from_sections(sections: dict[str, Any]) -> ModelConfig:
    if "model" not in sections:
        raise ValueError(f"config sections must include 'model', got sections {sorted(sections)}")
    return _as_config(sections["model"], ModelConfig, "model")


def scheduler_config_from_sections(sections: dict[str, Any]) -> SchedulerConfig:
    """The ``scheduler`` section, or NoMaD's defaults when absent."""
    if sections.get("scheduler") is None:
        return SchedulerConfig()
    return _as_config(sections["scheduler"], SchedulerConfig, "scheduler")


def build_model(config_sections: dict[str, Any]) -> nn.Module:
    """Build the (randomly initialised) model the config sections describe; see the module docstring."""
    for section, target in SECTION_BUILDERS.items():
        if config_sections.get(section) is not None:
            module_name, func_name = target.split(":")
            return getattr(importlib.import_module(module_name), func_name)(config_sections)
    return NoMaDPolicy(
        model_config_from_sections(config_sections),
        scheduler_config=scheduler_config_from_sections(config_sections),
    )


__all__ = [
    "NoMaDPolicy",
    "SECTION_BUILDERS",
    "build_model",
    "build_noise_scheduler",
    "model_config_from_sections",
    "scheduler_config_from_sections",
]
