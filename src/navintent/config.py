"""Typed configuration dataclasses, with YAML only as their on-disk form.

Every config validates itself in ``__post_init__`` and raises ``ValueError("... got X")`` on a bad
value. ``from_dict`` rejects unknown keys, naming them; ``from_nomad_yaml`` reads the subset of a
visualnav-transformer ``nomad.yaml`` that a section understands and ignores the rest on purpose
(that file also holds training, logging and dataset paths).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

C = TypeVar("C", bound="ConfigBase")


def _to_plain(value: Any) -> Any:
    """Tuples -> lists and nested configs -> dicts, so YAML and torch's weights_only loader accept them."""
    if isinstance(value, ConfigBase):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


@dataclass
class ConfigBase:
    """Shared behaviour: strict construction from dicts, plain-dict export, YAML round trip."""

    # Fields holding nested configs: {field name: config class}; subclasses that nest override it.
    NESTED: ClassVar[dict[str, type[ConfigBase]]] = {}

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.init]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any] | None, *, where: str = "") -> C:
        """Build from a dict; unknown keys raise ``ValueError`` naming them (and ``where``, e.g. a file)."""
        data = dict(data or {})
        known = set(cls.field_names())
        unknown = sorted(set(data) - known)
        if unknown:
            loc = f" in {where}" if where else ""
            raise ValueError(f"unknown {cls.__name__} keys{loc}: {unknown}; known keys are {sorted(known)}")
        kwargs = {}
        for f in fields(cls):
            if not f.init or f.name not in data:
                continue
            value = data[f.name]
            nested = cls.NESTED.get(f.name)
            if nested is not None and isinstance(value, dict):
                value = nested.from_dict(value, where=f"{where}:{f.name}" if where else f.name)
            kwargs[f.name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _to_plain(getattr(self, f.name)) for f in fields(self) if f.init}

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)

    def save_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load_yaml(cls: type[C], path: str | Path) -> C:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError as err:
            raise FileNotFoundError(f"config file not found: {path}") from err
        except yaml.YAMLError as err:
            raise ValueError(f"{path} is not valid YAML: {err}") from err
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"{path} must hold a mapping at top level, got {type(data).__name__}")
        return cls.from_dict(data, where=str(path))


def _check_positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_non_negative(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def _check_probability(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


# NoMaD's global action statistics (data_config.yaml ``action_stats``): normalised deltas per waypoint.
NOMAD_ACTION_MIN = (-2.5, -4.0)
NOMAD_ACTION_MAX = (5.0, 4.0)


@dataclass
class ModelConfig(ConfigBase):
    """NoMaD policy sizes (nomad.yaml names) plus the latent-intent width.

    ``image_size`` is ``(width, height)`` as in nomad.yaml. ``context_size`` counts PAST frames, so the
    vision encoder sees ``context_size + 1`` observation frames plus one goal token.
    ``action_min``/``action_max`` are the per-axis bounds that map waypoint deltas (in units of
    ``metric_waypoint_spacing * waypoint_spacing``) to [-1, 1]; they travel with every checkpoint.
    ``z_dim`` is the width of ``latent_z`` fed through the zero-initialised ``z_proj``.
    """

    encoding_size: int = 256
    context_size: int = 3
    obs_encoder: str = "efficientnet-b0"
    mha_num_attention_heads: int = 4
    mha_num_attention_layers: int = 4
    mha_ff_dim_factor: int = 4
    mha_dropout: float = 0.1
    down_dims: tuple[int, ...] = (64, 128, 256)
    kernel_size: int = 5
    n_groups: int = 8
    diffusion_step_embed_dim: int = 256
    cond_predict_scale: bool = False
    len_traj_pred: int = 8
    learn_angle: bool = False
    image_size: tuple[int, int] = (96, 96)
    action_min: tuple[float, ...] = NOMAD_ACTION_MIN
    action_max: tuple[float, ...] = NOMAD_ACTION_MAX
    z_dim: int = 32

    # nomad.yaml keys this section reads; everything else in that file belongs to other sections.
    NOMAD_KEYS: ClassVar[tuple[str, ...]] = (
        "encoding_size",
        "context_size",
        "obs_encoder",
        "mha_num_attention_heads",
        "mha_num_attention_layers",
        "mha_ff_dim_factor",
        "down_dims",
        "cond_predict_scale",
        "len_traj_pred",
        "learn_angle",
        "image_size",
    )

    def __post_init__(self) -> None:
        for name in (
            "encoding_size",
            "mha_num_attention_heads",
            "mha_num_attention_layers",
            "mha_ff_dim_factor",
            "kernel_size",
            "n_groups",
            "diffusion_step_embed_dim",
            "len_traj_pred",
            "z_dim",
        ):
            _check_positive(name, getattr(self, name))
        _check_non_negative("context_size", self.context_size)
        if self.obs_encoder != "efficientnet-b0":
            raise ValueError(f"obs_encoder must be 'efficientnet-b0' (NoMaD's), got {self.obs_encoder!r}")
        if self.encoding_size % self.mha_num_attention_heads:
            raise ValueError(
                "encoding_size must be divisible by mha_num_attention_heads, got "
                f"{self.encoding_size} and {self.mha_num_attention_heads}"
            )
        _check_probability("mha_dropout", self.mha_dropout)
        self.down_dims = tuple(self.down_dims)
        if not self.down_dims or any(not isinstance(d, int) or d <= 0 for d in self.down_dims):
            raise ValueError(f"down_dims must be a non-empty list of positive ints, got {self.down_dims!r}")
        if any(d % self.n_groups for d in self.down_dims):
            raise ValueError(
                f"every down_dims entry must be divisible by n_groups={self.n_groups}, got {self.down_dims}"
            )
        self.image_size = tuple(self.image_size)
        if len(self.image_size) != 2 or any(not isinstance(s, int) or s < 32 for s in self.image_size):
            raise ValueError(f"image_size must be [width, height] with each >= 32, got {self.image_size!r}")
        self.action_min = tuple(float(v) for v in self.action_min)
        self.action_max = tuple(float(v) for v in self.action_max)
        if len(self.action_min) != 2 or len(self.action_max) != 2:
            raise ValueError(
                f"action_min/action_max must each have 2 entries (dx, dy), got {self.action_min} / {self.action_max}"
            )
        if any(lo >= hi for lo, hi in zip(self.action_min, self.action_max, strict=True)):
            raise ValueError(
                f"action_min must be below action_max, got {self.action_min} / {self.action_max}"
            )

    @property
    def action_dim(self) -> int:
        """Channels of one waypoint the denoiser predicts: 2 (dx, dy), or 4 with cos/sin yaw."""
        return 4 if self.learn_angle else 2

    @property
    def num_obs_frames(self) -> int:
        return self.context_size + 1

    @classmethod
    def from_nomad_yaml(cls, data: dict[str, Any], **overrides: Any) -> ModelConfig:
        """Read NoMaD's nomad.yaml dict: keys in ``NOMAD_KEYS`` are used, the rest ignored by design."""
        picked = {k: data[k] for k in cls.NOMAD_KEYS if k in data}
        picked.update(overrides)
        return cls.from_dict(picked)


@dataclass
class SchedulerConfig(ConfigBase):
    """diffusers DDPMScheduler settings; defaults are NoMaD's (train.py)."""

    num_train_timesteps: int = 10
    beta_schedule: str = "squaredcos_cap_v2"
    clip_sample: bool = True
    prediction_type: str = "epsilon"

    def __post_init__(self) -> None:
        _check_positive("num_train_timesteps", self.num_train_timesteps)
        allowed = ("linear", "scaled_linear", "squaredcos_cap_v2")
        if self.beta_schedule not in allowed:
            raise ValueError(f"beta_schedule must be one of {allowed}, got {self.beta_schedule!r}")
        if self.prediction_type != "epsilon":
            raise ValueError(f"prediction_type must be 'epsilon' (NoMaD's), got {self.prediction_type!r}")

    @classmethod
    def from_nomad_yaml(cls, data: dict[str, Any]) -> SchedulerConfig:
        if "num_diffusion_iters" in data:
            return cls(num_train_timesteps=int(data["num_diffusion_iters"]))
        return cls()


def preset_model_config(name: str) -> ModelConfig:
    """Named model sizes: ``tiny`` (tests, seconds on CPU), ``demo`` (minutes on CPU), ``nomad`` (the paper)."""
    if name == "nomad":
        return ModelConfig()
    if name == "demo":
        return ModelConfig(
            encoding_size=128,
            mha_num_attention_layers=2,
            mha_ff_dim_factor=2,
            down_dims=(32, 64, 128),
            diffusion_step_embed_dim=64,
            z_dim=16,
        )
    if name == "tiny":
        return ModelConfig(
            encoding_size=32,
            mha_num_attention_heads=2,
            mha_num_attention_layers=1,
            mha_ff_dim_factor=2,
            down_dims=(16, 32),
            diffusion_step_embed_dim=16,
            image_size=(64, 64),
            z_dim=8,
        )
    raise ValueError(f"unknown preset: expected one of ['tiny', 'demo', 'nomad'], got {name!r}")
