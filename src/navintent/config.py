"""Typed configuration dataclasses, with YAML only as their on-disk form.

Every config validates itself in ``__post_init__`` and raises ``ValueError("... got X")`` on a bad
value. ``from_dict`` rejects unknown keys, naming them. ``from_nomad_yaml`` reads the subset of a
visualnav-transformer ``nomad.yaml`` that a section understands; :meth:`TwoStageTrainingConfig.from_mapping`
reads a whole nomad.yaml, applying every key navintent has and reporting each other one in a note.

YAML 1.1 (PyYAML) reads exponent numbers without a dot (``lr: 1e-4``) as strings; every ``float`` field of
every config accepts such a string and converts it (``from_dict``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
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
        """Build from a dict; unknown or missing required keys raise ``ValueError`` naming them (and
        ``where``, e.g. a file). A ``float`` field given a YAML 1.1 exponent string (``"1e-4"``) gets its
        number."""
        data = dict(data or {})
        loc = f" in {where}" if where else ""
        known = set(cls.field_names())
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys{loc}: {unknown}; known keys are {sorted(known)}")
        required = [
            f.name
            for f in fields(cls)
            if f.init and f.default is MISSING and f.default_factory is MISSING and f.name not in data
        ]
        if required:
            raise ValueError(f"{cls.__name__}{loc} is missing required keys {required}")
        kwargs = {}
        for f in fields(cls):
            if not f.init or f.name not in data:
                continue
            value = data[f.name]
            nested = cls.NESTED.get(f.name)
            if nested is not None and isinstance(value, dict):
                value = nested.from_dict(value, where=f"{where}:{f.name}" if where else f.name)
            elif f.type in _FLOAT_TYPES:
                value = yaml11_float(value)
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
        return cls.from_dict(read_yaml_mapping(path), where=str(path))


# Float field annotations (strings, as this module postpones annotations): YAML 1.1 strings convert.
_FLOAT_TYPES = (float, "float", "float | None")
# YAML 1.2 floats that YAML 1.1 (PyYAML) leaves as strings: an exponent without a dot or without a sign.
_YAML11_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


def yaml11_float(value: Any) -> Any:
    """``"1e-4"`` (how PyYAML, a YAML 1.1 parser, reads ``1e-4``) -> ``1e-4``; any other value unchanged.

    Only exponent literals convert: other strings stay strings so the config's own check names them."""
    if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
        return float(value)
    return value


def read_yaml_mapping(path: str | Path, *, what: str = "config file") -> dict[str, Any]:
    """Parse a YAML file whose top level is a mapping (an empty file reads as ``{}``).

    Errors name ``what`` and the path: missing file (``FileNotFoundError``), invalid YAML or a non-mapping
    top level (``ValueError``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{what} not found: {path}") from err
    except yaml.YAMLError as err:
        raise ValueError(f"{what} {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path} must hold a mapping at top level, got {type(data).__name__}")
    return data


# Shared validators for every config dataclass of the package (``ValueError("<name> must be ..., got X")``).
def check_positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_non_negative_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def check_positive_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def check_non_negative_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


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
        _check_probability("mha_dropout", self.mha_dropout)
        self.down_dims = tuple(self.down_dims)
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


@dataclass
class IntentConfig(ConfigBase):
    """Two-stage intent path (``navintent.models.intent``): Encoder1 -> q(z1), Encoder2 -> z2 = ``latent_z``.

    ``z1_dim`` is the high-level intent width; z2's width is the model's ``z_dim``. ``ref_dim`` is D of
    ``ref_traj [B, T_ref, D]``; reference values are divided by ``ref_scale`` before the embedding (they are in
    spacing units, as the actions; 8 is about half the default 16-step reference's reach). ``enc1_layers``
    transformer layers read [query, obs tokens, goal, null reference, reference steps]; ``enc2_hidden`` is the
    width of Encoder2's MLP. ``ref_dropout`` is the probability that a sample with a reference is trained
    reference-free (null token); ``latent_dropout`` the probability that a sample trains the unconditional
    (``latent_z=None``) branch CFG needs. The KL term is weighted by ``beta * min(1, step / kl_warmup_steps)``
    (``kl_warmup_steps = 0``: no warm-up). ``free_bits`` (nats per z1 dim, Kingma et al. 2016): the penalised KL
    is ``sum_d max(free_bits, mean_batch KL_d)``, so no gradient pushes a dim below that much information (0: the
    plain KL). Adam rescales the small but consistent KL gradient to full step size, so without free bits even
    ``beta = 1e-3`` shrank the KL from ~12 to ~1 nat within ~50 steps on sim data and the denoiser barely used z2.
    2 nats per dim is what a posterior of the initial width (sigma = exp(INIT_LOGVAR / 2) ~ 0.14) costs when its
    means spread as N(0, 1), so the prior stays a sensible source of z1 (measured on the demo preset, 60 sim
    episodes, 544 steps: ADE reduction ref vs prior 14% / 18% / 26% / 30% for free_bits 0 / 0.5 / 2 / 4; at 4
    the posterior means spread wider than the prior, std up to 1.7).
    """

    z1_dim: int = 16
    ref_dim: int = 2
    ref_scale: float = 8.0
    enc1_layers: int = 2
    enc2_hidden: int = 256
    ref_dropout: float = 0.3
    latent_dropout: float = 0.1
    beta: float = 1e-3
    kl_warmup_steps: int = 1000
    free_bits: float = 2.0

    def __post_init__(self) -> None:
        for name in ("z1_dim", "ref_dim", "enc1_layers", "enc2_hidden"):
            check_positive_int(name, getattr(self, name))
        check_non_negative_int("kl_warmup_steps", self.kl_warmup_steps)
        _check_probability("ref_dropout", self.ref_dropout)
        _check_probability("latent_dropout", self.latent_dropout)
        for name in ("ref_scale", "beta", "free_bits"):
            check_non_negative_number(name, getattr(self, name))
        if self.ref_scale == 0:
            raise ValueError(f"ref_scale must be > 0, got {self.ref_scale!r}")

    def kl_weight(self, step: int) -> float:
        """beta(step): linear warm-up from 0 to ``beta`` over ``kl_warmup_steps`` optimiser steps."""
        if self.kl_warmup_steps == 0:
            return float(self.beta)
        return float(self.beta) * min(1.0, step / self.kl_warmup_steps)


@dataclass
class TrainConfig(ConfigBase):
    """Training-loop settings (``navintent train``); names follow nomad.yaml where NoMaD has them.

    ``batch_size`` is PER PROCESS (DDP convention); the global batch is ``batch_size * world_size``.
    ``intent_lr_scale`` multiplies the LR of the modules NoMaD lacks (``z_proj``, ``encoder1``, ``encoder2``): they
    start from zero-initialised ``z_proj`` and must catch up with a denoiser that may be pretrained.
    ``vision_lr_scale`` multiplies the LR of the vision encoder (EfficientNet trunks, goal/obs compression, the
    transformer): measured on a 32 px goal-colour task, Adam at lr >= 1e-3 on the EfficientNet-GroupNorm trunks
    collapses their output to a constant within 25 steps while 1e-4 (NoMaD's lr) learns, so a run with a high LR
    for the denoiser and the intent path wants a small scale here (see README "Goal conditioning").
    The LR follows a linear warm-up (``warmup_steps``, or ``warmup_epochs`` epochs when ``warmup_steps`` is 0;
    none when ``warmup`` is false) then a cosine decay to 0 over ``epochs`` epochs (``scheduler: constant``
    keeps it flat). ``max_steps`` (0 = unlimited) only stops the run early; it never reshapes the schedule, so a
    run stopped and resumed follows the same curve. The loss is ``alpha * distance + (1 - alpha) * diffusion +
    beta(step) * KL`` (NoMaD's weighting plus the intent KL). ``clipping``/``max_norm``: gradient-norm clipping.
    EMA (NoMaD's diffusers 0.11.1 ``EMAModel``, power 0.75; :mod:`navintent.ema`): the ``n``-th update (n = 1,
    2, ...) uses decay 0 for ``n <= 2`` and ``min(ema_max_decay, 1 - (n - 1) ** -ema_power)`` afterwards.
    ``freeze``: parameter groups kept fixed ("vision": the vision encoder; "denoiser": noise_pred_net and
    dist_pred_net). Checkpoints every ``checkpoint_every`` steps (0 = epoch ends only) and at each epoch end;
    the newest ``keep_checkpoints`` step files are kept beside ``latest.pt``. Evaluation on the test split
    every ``eval_freq`` epochs and every ``eval_every`` steps (0 = off), on at most ``eval_fraction`` of it
    and ``eval_max_batches`` batches, drawing ``eval_num_samples`` trajectories per observation for ADE/FDE;
    the goal-conditioning metrics (distance-head Spearman/MAE, goal sensitivity;
    :mod:`navintent.evaluation.goal_metrics`) use ``eval_goal_observations`` random test observations (0 = off).
    Scalars are logged every ``print_log_freq`` steps.

    Dataset options (``navintent.data.NavDataset``'s names; NoMaD's defaults):
    ``min_dist_cat``/``max_dist_cat`` (nomad.yaml ``distance:``),
    ``min_action_distance``/``max_action_distance`` (nomad.yaml ``action:``), ``normalize`` (NoMaD's: actions
    divided by ``metric_waypoint_spacing * waypoint_spacing``; false: metres), ``context_type`` (only
    "temporal", the one NoMaD implements), ``ref_mode`` ("future" | "file" | "planner" | "none"; "planner": the
    future path through anchors every 4 waypoints at the nominal speed, a stand-in for a planner's path, see
    :func:`navintent.data.dataset.planner_route`) and ``ref_horizon`` (0 = ``2 * len_traj_pred``) apply to every
    dataset; ``waypoint_spacing``, ``negative_mining``, ``end_slack``
    and ``goals_per_obs`` apply to ``--data_dir`` datasets only (a config's ``datasets:`` entries carry their
    own, see :class:`DatasetSpec`).
    """

    lr: float = 1e-4
    intent_lr_scale: float = 1.0
    vision_lr_scale: float = 1.0
    weight_decay: float = 1e-2
    batch_size: int = 16
    epochs: int = 10
    max_steps: int = 0
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    warmup: bool = True
    warmup_epochs: float = 1.0
    warmup_steps: int = 0
    clipping: bool = True
    max_norm: float = 1.0
    goal_mask_prob: float = 0.5
    alpha: float = 1e-4
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    seed: int = 0
    num_workers: int = 0
    freeze: tuple[str, ...] = ()
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    print_log_freq: int = 10
    eval_freq: int = 1
    eval_every: int = 0
    eval_fraction: float = 1.0
    eval_max_batches: int = 8
    eval_num_samples: int = 8
    eval_goal_observations: int = 64
    num_images_log: int = 4
    waypoint_spacing: int = 1
    min_dist_cat: int = 0
    max_dist_cat: int = 20
    min_action_distance: int = 3
    max_action_distance: int = 20
    negative_mining: bool = True
    end_slack: int = 0
    goals_per_obs: int = 1
    normalize: bool = True
    context_type: str = "temporal"
    ref_mode: str = "future"
    ref_horizon: int = 0

    FREEZE_GROUPS: ClassVar[tuple[str, ...]] = ("vision", "denoiser")
    # nomad.yaml keys this section reads (everything else there is another section's or ignored on purpose).
    NOMAD_KEYS: ClassVar[tuple[str, ...]] = (
        "lr",
        "batch_size",
        "epochs",
        "optimizer",
        "scheduler",
        "warmup",
        "warmup_epochs",
        "clipping",
        "max_norm",
        "goal_mask_prob",
        "alpha",
        "seed",
        "num_workers",
        "print_log_freq",
        "eval_freq",
        "eval_fraction",
        "num_images_log",
        "distance",
        "action",
        "normalize",
        "context_type",
    )
    # Per-dataset options: a config's ``datasets:`` entries carry their own (DatasetSpec fields, same names).
    PER_DATASET_KEYS: ClassVar[tuple[str, ...]] = (
        "waypoint_spacing",
        "negative_mining",
        "end_slack",
        "goals_per_obs",
    )

    def __post_init__(self) -> None:
        for name in (
            "batch_size",
            "epochs",
            "eval_freq",
            "eval_max_batches",
            "eval_num_samples",
            "print_log_freq",
        ):
            check_positive_int(name, getattr(self, name))
        for name in (
            "max_steps",
            "warmup_steps",
            "checkpoint_every",
            "seed",
            "num_workers",
            "eval_every",
            "eval_goal_observations",
            "num_images_log",
            "min_dist_cat",
            "max_dist_cat",
            "min_action_distance",
            "max_action_distance",
            "end_slack",
            "ref_horizon",
        ):
            check_non_negative_int(name, getattr(self, name))
        check_positive_int("keep_checkpoints", self.keep_checkpoints)
        check_positive_int("waypoint_spacing", self.waypoint_spacing)
        check_positive_int("goals_per_obs", self.goals_per_obs)
        if self.max_dist_cat < self.min_dist_cat:
            raise ValueError(
                f"max_dist_cat must be >= min_dist_cat={self.min_dist_cat}, got {self.max_dist_cat}"
            )
        if self.ref_mode not in ("future", "file", "planner", "none"):
            raise ValueError(f"ref_mode must be 'future', 'file', 'planner' or 'none', got {self.ref_mode!r}")
        for name in ("goal_mask_prob", "alpha", "eval_fraction", "ema_max_decay"):
            _check_probability(name, getattr(self, name))
        if self.eval_fraction == 0:
            raise ValueError(f"eval_fraction must be in (0, 1], got {self.eval_fraction!r}")
        for name in (
            "lr",
            "intent_lr_scale",
            "vision_lr_scale",
            "weight_decay",
            "max_norm",
            "ema_power",
            "warmup_epochs",
        ):
            check_non_negative_number(name, getattr(self, name))
        self.lr = float(self.lr)
        if self.lr == 0 or self.max_norm == 0 or self.ema_power == 0:
            raise ValueError(
                f"lr, max_norm and ema_power must be > 0, got {self.lr!r}, {self.max_norm!r}, {self.ema_power!r}"
            )
        self.optimizer = str(self.optimizer).lower()
        if self.optimizer != "adamw":
            raise ValueError(f"optimizer must be 'adamw', got {self.optimizer!r}")
        self.scheduler = str(self.scheduler).lower()
        if self.scheduler not in ("cosine", "constant"):
            raise ValueError(f"scheduler must be 'cosine' or 'constant', got {self.scheduler!r}")
        if self.context_type != "temporal":
            raise ValueError(
                f"context_type must be 'temporal' (the only one NoMaD implements), got {self.context_type!r}"
            )
        for name in ("warmup", "clipping", "negative_mining", "normalize"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.freeze, str):
            self.freeze = (self.freeze,)
        self.freeze = tuple(self.freeze or ())
        bad = [g for g in self.freeze if g not in self.FREEZE_GROUPS]
        if bad:
            raise ValueError(f"freeze entries must be among {list(self.FREEZE_GROUPS)}, got {bad}")

    @classmethod
    def from_nomad_yaml(cls, data: dict[str, Any], **overrides: Any) -> TrainConfig:
        """Read NoMaD's nomad.yaml dict: keys in ``NOMAD_KEYS`` are used, the rest ignored by design."""
        picked = {k: data[k] for k in cls.NOMAD_KEYS if k in data}
        picked.update(_nomad_nested_bounds(picked.pop("distance", None), picked.pop("action", None)))
        picked.update(overrides)
        return cls.from_dict(picked)


def _nomad_nested_bounds(distance: Any, action: Any) -> dict[str, Any]:
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


@dataclass
class DatasetSpec(ConfigBase):
    """One entry of NoMaD's ``datasets:`` block (``datasets: {<name>: {data_folder: ..., ...}}``), as NoMaD's
    train.py reads it.

    ``name``: the entry's key (NoMaD looks it up in data_config.yaml for ``metric_waypoint_spacing`` and sorts
    the data-config names for ``dataset_idx``). ``data_folder``: the trajectories' folder. ``train``/``test``:
    split folders holding ``traj_names.txt`` (None: no such split; NoMaD skips a missing one too).
    ``end_slack`` (frames cut from each trajectory's end), ``goals_per_obs``, ``negative_mining`` and
    ``waypoint_spacing`` (frames between waypoints) take NoMaD train.py's defaults when the entry lacks them:
    0, 1, True, 1. navintent extensions: ``metric_waypoint_spacing`` (metres per frame; None: looked up by
    ``name`` in ``data_config``, as NoMaD does) and ``data_config`` (a data_config.yaml of NoMaD's form; None:
    the one shipped with navintent).

    Paths are strings kept as given; :meth:`TwoStageTrainingConfig.load_yaml` and :func:`read_nomad_datasets`
    resolve relative ones against the YAML file's folder (no ``~`` expansion, as NoMaD). Treat instances as
    immutable (use ``replace``). Bad values raise ``ValueError`` naming ``datasets.<name>.<key>``.
    """

    name: str
    data_folder: str
    train: str | None = None
    test: str | None = None
    end_slack: int = 0
    goals_per_obs: int = 1
    negative_mining: bool = True
    waypoint_spacing: int = 1
    metric_waypoint_spacing: float | None = None
    data_config: str | None = None

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("data_folder", "train", "test", "data_config")

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a dataset name must be a non-empty string, got {self.name!r}")
        prefix = f"datasets.{self.name}."
        for key in self.PATH_FIELDS:
            value = getattr(self, key)
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
                setattr(self, key, value)
            if value is None and key != "data_folder":
                continue
            if not isinstance(value, str) or not value:
                raise ValueError(f"{prefix}{key} must be a non-empty path, got {value!r}")
        check_non_negative_int(prefix + "end_slack", self.end_slack)
        check_positive_int(prefix + "goals_per_obs", self.goals_per_obs)
        check_positive_int(prefix + "waypoint_spacing", self.waypoint_spacing)
        if not isinstance(self.negative_mining, bool):
            raise ValueError(f"{prefix}negative_mining must be true or false, got {self.negative_mining!r}")
        mws = self.metric_waypoint_spacing
        if mws is not None:
            if (
                isinstance(mws, bool)
                or not isinstance(mws, (int, float))
                or not (math.isfinite(mws) and mws > 0)
            ):
                raise ValueError(
                    f"{prefix}metric_waypoint_spacing must be a positive number (m), got {mws!r}"
                )
            self.metric_waypoint_spacing = float(mws)

    def entry(self) -> dict[str, Any]:
        """The nomad.yaml entry: every field but ``name`` (which is the entry's key)."""
        out = self.to_dict()
        del out["name"]
        return out

    def resolved(self, folder: str | Path) -> DatasetSpec:
        """A copy whose relative paths are joined to ``folder`` (absolute ones and None unchanged)."""
        changes = {}
        for key in self.PATH_FIELDS:
            value = getattr(self, key)
            if value is not None and not Path(value).is_absolute():
                changes[key] = str(Path(folder) / value)
        return self.replace(**changes)

    @classmethod
    def from_entry(cls, name: Any, entry: Any, *, where: str = "") -> DatasetSpec:
        """Build from nomad.yaml's ``<name>: {...}``; unknown keys (``name`` included) or a missing
        ``data_folder`` raise ``ValueError`` naming the dataset, the key and ``where``."""
        loc = f" in {where}" if where else ""
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"dataset {name!r}{loc} must be a mapping (data_folder, train, test, ...), got "
                f"{type(entry).__name__} {entry!r}"
            )
        known = [k for k in cls.field_names() if k != "name"]
        unknown = sorted(set(entry) - set(known), key=str)
        if unknown:
            raise ValueError(f"dataset {name!r}{loc}: unknown keys {unknown}; known keys are {sorted(known)}")
        if "data_folder" not in entry:
            raise ValueError(f"dataset {name!r}{loc} has no data_folder (NoMaD needs one per dataset)")
        return cls.from_dict({"name": name, **entry}, where=where)


def _parse_datasets(block: Any, *, where: str = "", base_dir: str | Path | None = None) -> Any:
    """NoMaD's ``datasets: {<name>: {...}}`` -> ``tuple[DatasetSpec, ...]`` in file order (None -> ``()``);
    relative paths joined to ``base_dir`` when given. Anything but a mapping or None is returned unchanged for
    :class:`TwoStageTrainingConfig` to judge (it also takes a tuple of :class:`DatasetSpec`)."""
    if block is None:
        return ()
    if not isinstance(block, Mapping):
        return block
    specs = []
    for name, entry in block.items():
        spec = DatasetSpec.from_entry(name, entry, where=where)
        specs.append(spec.resolved(base_dir) if base_dir is not None else spec)
    return tuple(specs)


def read_nomad_datasets(path: str | Path) -> tuple[DatasetSpec, ...]:
    """The ``datasets:`` block of a YAML file (a nomad.yaml, or a sectioned navintent config), in file order,
    relative paths resolved against the file's folder.

    Raises ``FileNotFoundError``/``ValueError`` as :func:`read_yaml_mapping`, and ``ValueError`` naming the
    file if it has no ``datasets:`` block or an empty one, or naming the dataset and key for a bad entry."""
    data = read_yaml_mapping(path)
    block = data.get("datasets")
    if not block:
        raise ValueError(
            f"{path} holds no datasets (no 'datasets:' block, or an empty one, got {block!r}); NoMaD's "
            "form is datasets: {<name>: {data_folder: ..., train: ..., test: ...}}"
        )
    if not isinstance(block, Mapping):
        raise ValueError(
            f"'datasets' in {path} must map dataset names to entries (NoMaD's form), got "
            f"{type(block).__name__}"
        )
    return _parse_datasets(block, where=f"{path}:datasets", base_dir=Path(path).absolute().parent)


_SECTIONS = ("model", "scheduler", "intent", "train")


def _is_sectioned(data: Mapping[str, Any], loc: str) -> bool:
    """True if a section key (model, scheduler, intent, train) holds a mapping; then every other top-level key
    must be a section (a mapping or empty) or ``datasets``, else ``ValueError`` naming the key. False: a flat
    nomad.yaml, where ``train`` (a bool) and ``scheduler`` (a string) are plain keys."""
    holders = [k for k in _SECTIONS if isinstance(data.get(k), Mapping)]
    if not holders:
        return False
    for key, value in data.items():
        if key == "datasets":
            continue
        if key not in _SECTIONS:
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


@dataclass
class TwoStageTrainingConfig(ConfigBase):
    """Everything ``navintent train`` needs: the model, scheduler, intent and train sections, and datasets.

    On disk either sectioned (``model:``, ``scheduler:``, ``intent:``, ``train:`` mappings and an optional
    ``datasets:`` block; unknown keys rejected) or a flat nomad.yaml (see :meth:`from_mapping`). ``datasets``:
    NoMaD's ``datasets:`` block, one :class:`DatasetSpec` per entry in file order (empty: the data come from
    ``--data_dir``). :meth:`to_dict` writes it in NoMaD's mapping form ``{name: entry}`` and :meth:`from_dict`
    reads that form back exactly (checkpoints store ``to_dict()``; ``--resume`` rebuilds from it).

    Combinations that cannot run are refused with a ``ValueError`` naming both keys:

    - ``intent.ref_dim`` must be 4 when ``model.learn_angle`` is true and 2 when false: the training data's
      ``ref_traj`` is ``[T, 4]`` (x, y, cos, sin of the relative yaw) exactly when ``learn_angle``
      (``NavDataset``'s ``ref_yaw`` defaults to it) and Encoder1 requires ``[B, T, ref_dim]``. Decision:
      :meth:`from_mapping` derives ``ref_dim`` (with a note) when a mapping sets ``learn_angle`` but not
      ``ref_dim``; a contradicting pair is refused, never silently changed.
    - with ``datasets``, ``train.waypoint_spacing``/``negative_mining``/``end_slack``/``goals_per_obs`` must
    keep their defaults: every entry carries its own value, so a train-level one would be ignored.
    - a ``datasets`` entry name may appear once.
    - ``train.ref_mode: planner`` needs ``model.learn_angle`` false: a planner's route carries positions only,
      while ``learn_angle`` asks for a reference with yaw.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    intent: IntentConfig = dataclasses.field(default_factory=IntentConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    datasets: tuple[DatasetSpec, ...] = ()

    NESTED: ClassVar[dict[str, type[ConfigBase]]] = {
        "model": ModelConfig,
        "scheduler": SchedulerConfig,
        "intent": IntentConfig,
        "train": TrainConfig,
    }

    def __post_init__(self) -> None:
        for name, section in self.NESTED.items():
            if not isinstance(getattr(self, name), section):
                raise ValueError(
                    f"{name} must be a {section.__name__} (a mapping on disk), got "
                    f"{type(getattr(self, name)).__name__}"
                )
        if not isinstance(self.datasets, (list, tuple)):
            raise ValueError(
                f"datasets must be a tuple of DatasetSpec (a mapping name -> entry on disk), got "
                f"{type(self.datasets).__name__}"
            )
        self.datasets = tuple(self.datasets)
        bad = sorted({type(d).__name__ for d in self.datasets if not isinstance(d, DatasetSpec)})
        if bad:
            raise ValueError(f"datasets must hold DatasetSpec entries, got {bad}")
        names = [d.name for d in self.datasets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"datasets must name each dataset once, got {repeated} more than once")
        want = self.model.action_dim
        if self.intent.ref_dim != want:
            raise ValueError(
                f"intent.ref_dim must be {want} when model.learn_angle is "
                f"{str(self.model.learn_angle).lower()} (the dataset's ref_traj is [T, {want}]: "
                f"x, y{', cos, sin of the yaw' if want == 4 else ''}), got "
                f"intent.ref_dim={self.intent.ref_dim} with model.learn_angle={self.model.learn_angle}"
            )
        if self.train.ref_mode == "planner" and self.model.learn_angle:
            raise ValueError(
                "train.ref_mode 'planner' gives a reference without yaw (a route has positions only), but "
                "model.learn_angle asks for one with yaw; got train.ref_mode='planner' with model.learn_angle=True"
            )
        if self.datasets:
            defaults = TrainConfig()
            for key in TrainConfig.PER_DATASET_KEYS:
                value = getattr(self.train, key)
                if value != getattr(defaults, key):
                    raise ValueError(
                        f"train.{key}={value!r} conflicts with datasets: each datasets entry carries its own "
                        f"{key} (datasets.<name>.{key}, NoMaD's per-dataset key), so train.{key} would be "
                        f"ignored; set it per dataset, or leave train.{key} at {getattr(defaults, key)!r}"
                    )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, where: str = "") -> TwoStageTrainingConfig:
        """As :meth:`ConfigBase.from_dict`; ``datasets`` in NoMaD's mapping form (``to_dict``'s) or as a tuple
        of :class:`DatasetSpec`. Paths are taken as they are (no resolution)."""
        data = dict(data or {})
        if "datasets" in data:
            data["datasets"] = _parse_datasets(
                data["datasets"], where=f"{where}:datasets" if where else "datasets"
            )
        return super().from_dict(data, where=where)

    def to_dict(self) -> dict[str, Any]:
        """Sections as dicts and ``datasets`` as NoMaD's ``{name: entry}`` mapping, in order."""
        out = super().to_dict()
        out["datasets"] = {spec.name: spec.entry() for spec in self.datasets}
        return out

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        base: TwoStageTrainingConfig | None = None,
        where: str = "",
        base_dir: str | Path | None = None,
        notes: list[str] | None = None,
    ) -> TwoStageTrainingConfig:
        """Overlay a config mapping on ``base`` (default: the ``nomad`` preset).

        Shape: sectioned when a section key (model, scheduler, intent, train) holds a mapping; then every
        top-level key must be a section or ``datasets`` and sections override ``base`` key by key. Otherwise
        flat, read as NoMaD's nomad.yaml: each key goes to the section with a field of that name (``scheduler:
        cosine`` is ``train.scheduler``, the LR schedule); ``num_diffusion_iters`` ->
        ``scheduler.num_train_timesteps``; ``distance:``/``action:`` ->
        ``train.min/max_dist_cat``/``min/max_action_distance``; ``train: True`` (NoMaD's whether-to-train
        flag) and the other keys of :data:`NOMAD_IGNORED_KEYS` each add the note ``"NoMaD key ignored: <key>:
        <why>"`` (a value other than NoMaD's in :data:`NOMAD_REQUIRED_VALUES` raises); keys in
        :data:`NOMAD_REFUSED_KEYS` and unknown keys raise ``ValueError`` naming them, as does a mapping mixing
        both shapes. Two keys setting one field to different values (``distance: {max_dist_cat}`` and
        ``max_dist_cat``) raise naming both.

        ``datasets`` (either shape): NoMaD's ``{name: entry}`` block, replacing ``base``'s datasets (a note
        says so when ``base`` had others); relative paths are joined to ``base_dir`` when given
        (:meth:`load_yaml` gives the file's folder), else kept as written. When the mapping sets
        ``learn_angle`` but not ``ref_dim``, ``intent.ref_dim`` follows it (4 or 2) with a note. Notes
        (human-readable strings) are appended to ``notes`` if given, only when the whole mapping was accepted.
        ``where`` names the source in errors.
        """
        base = base if base is not None else preset_training_config("nomad")
        loc = f" in {where}" if where else ""
        if not isinstance(data, Mapping):
            raise ValueError(f"config{loc} must be a mapping, got {type(data).__name__}")
        sections = {name: getattr(base, name).to_dict() for name in cls.NESTED}
        assigned: dict[tuple[str, str], str] = {}  # (section, field) -> key of ``data`` that set it
        new_notes: list[str] = []

        def assign(section: str, field: str, value: Any, source: str) -> None:
            previous = assigned.get((section, field))
            if previous is not None and previous != source and sections[section][field] != value:
                raise ValueError(
                    f"{previous!r} and {source!r}{loc} both set {section}.{field}, to "
                    f"{sections[section][field]!r} and {value!r}; keep one"
                )
            assigned[(section, field)] = source
            sections[section][field] = value

        if _is_sectioned(data, loc):
            for name, values in data.items():
                if name == "datasets" or values is None:
                    continue
                for key, value in values.items():
                    assign(name, key, value, f"{name}.{key}")
        else:
            cls._read_flat(data, assign, new_notes, loc)

        datasets = base.datasets
        if "datasets" in data:
            block = data["datasets"]
            if block is not None and not isinstance(block, Mapping):
                raise ValueError(
                    f"'datasets'{loc} must map dataset names to entries (NoMaD's form), got "
                    f"{type(block).__name__}"
                )
            where_ds = f"{where}:datasets" if where else "datasets"
            datasets = _parse_datasets(block, where=where_ds, base_dir=base_dir)
            if base.datasets and datasets != base.datasets:
                new_notes.append(
                    f"datasets{loc} replace the base config's datasets {[d.name for d in base.datasets]} "
                    f"with {[d.name for d in datasets]}"
                )

        learn_angle = sections["model"].get("learn_angle")
        derive = ("model", "learn_angle") in assigned and ("intent", "ref_dim") not in assigned
        if derive and isinstance(learn_angle, bool):  # a non-bool is refused by ModelConfig
            want = 4 if learn_angle else 2
            if sections["intent"]["ref_dim"] != want:
                sections["intent"]["ref_dim"] = want
                new_notes.append(
                    f"intent.ref_dim set to {want}: model.learn_angle is {str(learn_angle).lower()}, so the "
                    f"dataset's ref_traj is [T, {want}]"
                )
        config = cls.from_dict({**sections, "datasets": datasets}, where=where)
        if notes is not None:
            notes.extend(new_notes)
        return config

    @classmethod
    def _read_flat(cls, data: Mapping[str, Any], assign: Any, new_notes: list[str], loc: str) -> None:
        """Route a flat nomad.yaml's keys (see :meth:`from_mapping`) through ``assign(section, field, value,
        source)``; notes go to ``new_notes``."""
        owners = {field: name for name, section in cls.NESTED.items() for field in section.field_names()}
        unknown = []
        for key, value in data.items():
            if key == "datasets":
                continue
            if key in ("distance", "action"):
                bounds = (
                    _nomad_nested_bounds(value, None)
                    if key == "distance"
                    else _nomad_nested_bounds(None, value)
                )
                for field, bound in bounds.items():
                    assign("train", field, bound, key)
            elif key == "num_diffusion_iters":
                check_positive_int("num_diffusion_iters", value)
                assign("scheduler", "num_train_timesteps", value, key)
            elif key in ("model", "intent"):
                raise ValueError(
                    f"{key!r}{loc} must be a mapping (the {key} section), got "
                    f"{type(value).__name__} {value!r}"
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

    @classmethod
    def load_yaml(
        cls,
        path: str | Path,
        *,
        base: TwoStageTrainingConfig | None = None,
        notes: list[str] | None = None,
    ) -> TwoStageTrainingConfig:
        """:meth:`from_mapping` of a YAML file; relative dataset paths resolve against the file's folder.

        Errors name the file (see :func:`read_yaml_mapping` and :meth:`from_mapping`)."""
        return cls.from_mapping(
            read_yaml_mapping(path),
            base=base,
            where=str(path),
            base_dir=Path(path).absolute().parent,
            notes=notes,
        )


def preset_training_config(name: str) -> TwoStageTrainingConfig:
    """``tiny`` (tests: seconds per step on CPU; 5 diffusion steps), ``demo`` (minutes on CPU), ``nomad`` (the
    paper's sizes)."""
    model = preset_model_config(name)
    if name == "nomad":
        return TwoStageTrainingConfig(model=model)
    if name == "demo":
        return TwoStageTrainingConfig(
            model=model,
            intent=IntentConfig(z1_dim=8, enc1_layers=1, enc2_hidden=128, kl_warmup_steps=200),
            train=TrainConfig(lr=3e-4, batch_size=32, checkpoint_every=200, eval_max_batches=4),
        )
    return TwoStageTrainingConfig(
        model=model,
        scheduler=SchedulerConfig(num_train_timesteps=5),
        intent=IntentConfig(z1_dim=4, enc1_layers=1, enc2_hidden=32, kl_warmup_steps=10),
        train=TrainConfig(
            lr=1e-3,
            batch_size=4,
            epochs=1,
            checkpoint_every=0,
            print_log_freq=1,
            eval_max_batches=1,
            eval_num_samples=2,
            num_images_log=1,
            warmup_steps=2,
        ),
    )
