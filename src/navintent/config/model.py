"""The ``model:`` and ``scheduler:`` sections: :class:`ModelConfig` (NoMaD's policy sizes and the latent width),
:class:`SchedulerConfig` (the DDPM scheduler), NoMaD's action bounds and the named model sizes
(:func:`preset_model_config`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from navintent.config.base import (
    ConfigBase,
    as_tuple,
    check_non_negative_int,
    check_positive_int,
    check_probability,
)

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
    ``z_dim`` is the width of ``latent_z`` fed through the zero-initialised ``z_proj``. ``obs_encoder``: the image
    trunk, NoMaD's ``efficientnet-b0`` or navintent's small ``convnet`` (trains in CPU minutes; NoMaD's deployment
    code cannot build it, ``navintent export`` says so).
    """

    encoding_size: int = 256
    context_size: int = 3
    obs_encoder: str = "efficientnet-b0"
    mha_num_attention_heads: int = 4
    mha_num_attention_layers: int = 4
    mha_ff_dim_factor: int = 4
    mha_dropout: float = 0.1
    down_dims: tuple[int, ...] = (64, 128, 256)
    kernel_size: int = 3  # diffusion_policy's ConditionalUnet1D default, which NoMaD's train.py uses
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
    # navintent-only keys a flat nomad.yaml-style mapping may also carry: sizes NoMaD's code hard-codes (absent
    # from NoMaD's own nomad.yaml, so the defaults apply there) that ``navintent export`` writes beside its keys.
    FLAT_EXTRA_KEYS: ClassVar[tuple[str, ...]] = (
        "kernel_size",
        "n_groups",
        "diffusion_step_embed_dim",
        "mha_dropout",
        "action_min",
        "action_max",
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
            check_positive_int(name, getattr(self, name))
        check_non_negative_int("context_size", self.context_size)
        for name in ("learn_angle", "cond_predict_scale"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.obs_encoder not in ("efficientnet-b0", "convnet"):
            raise ValueError(
                f"obs_encoder must be 'efficientnet-b0' (NoMaD's) or 'convnet' (navintent's small trunk, "
                f"navintent.models.vision.ConvNetTrunk), got {self.obs_encoder!r}"
            )
        if self.encoding_size % self.mha_num_attention_heads:
            raise ValueError(
                "encoding_size must be divisible by mha_num_attention_heads, got "
                f"{self.encoding_size} and {self.mha_num_attention_heads}"
            )
        check_probability("mha_dropout", self.mha_dropout)
        self.down_dims = as_tuple("down_dims", self.down_dims)
        if not self.down_dims or any(not isinstance(d, int) or d <= 0 for d in self.down_dims):
            raise ValueError(f"down_dims must be a non-empty list of positive ints, got {self.down_dims!r}")
        if any(d % self.n_groups for d in self.down_dims):
            raise ValueError(
                f"every down_dims entry must be divisible by n_groups={self.n_groups}, got {self.down_dims}"
            )
        if self.len_traj_pred % 2 ** (len(self.down_dims) - 1):
            raise ValueError(
                f"len_traj_pred must be divisible by 2 ** (len(down_dims) - 1) = {2 ** (len(self.down_dims) - 1)} "
                f"(the U-Net halves it per down stage), got {self.len_traj_pred}"
            )
        if self.encoding_size < 16:
            raise ValueError(
                f"encoding_size must be >= 16 (distance head divides it by 16), got {self.encoding_size}"
            )
        if self.diffusion_step_embed_dim % 2 or self.diffusion_step_embed_dim < 4:
            raise ValueError(
                f"diffusion_step_embed_dim must be even and >= 4, got {self.diffusion_step_embed_dim}"
            )
        self.image_size = as_tuple("image_size", self.image_size)
        if len(self.image_size) != 2 or any(not isinstance(s, int) or s < 32 for s in self.image_size):
            raise ValueError(f"image_size must be [width, height] with each >= 32, got {self.image_size!r}")
        self.action_min = tuple(float(v) for v in as_tuple("action_min", self.action_min))
        self.action_max = tuple(float(v) for v in as_tuple("action_max", self.action_max))
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
        """Read a nomad.yaml dict for the model: keys in ``NOMAD_KEYS`` and ``FLAT_EXTRA_KEYS`` are used, the rest
        (training, logging and dataset settings) belong to other readers."""
        picked = {k: data[k] for k in cls.NOMAD_KEYS + cls.FLAT_EXTRA_KEYS if k in data}
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
        check_positive_int("num_train_timesteps", self.num_train_timesteps)
        allowed = ("linear", "scaled_linear", "squaredcos_cap_v2")
        if self.beta_schedule not in allowed:
            raise ValueError(f"beta_schedule must be one of {allowed}, got {self.beta_schedule!r}")
        if self.prediction_type != "epsilon":
            raise ValueError(f"prediction_type must be 'epsilon' (NoMaD's), got {self.prediction_type!r}")

    @classmethod
    def from_nomad_yaml(cls, data: dict[str, Any]) -> SchedulerConfig:
        """``num_diffusion_iters`` (NoMaD's name) plus ``beta_schedule``/``clip_sample`` where a file written by
        ``navintent export`` states them; everything else at NoMaD's values."""
        picked = {k: data[k] for k in ("beta_schedule", "clip_sample") if k in data}
        if "num_diffusion_iters" in data:
            picked["num_train_timesteps"] = int(data["num_diffusion_iters"])
        return cls(**picked)


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
