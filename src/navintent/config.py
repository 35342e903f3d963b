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
        return cls.from_dict(read_yaml_mapping(path), where=str(path))


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
        check_positive_int("num_train_timesteps", self.num_train_timesteps)
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
    The LR follows a linear warm-up (``warmup_steps``, or ``warmup_epochs`` epochs when ``warmup_steps`` is 0;
    none when ``warmup`` is false) then a cosine decay to 0 over ``epochs`` epochs (``scheduler: constant``
    keeps it flat). ``max_steps`` (0 = unlimited) only stops the run early; it never reshapes the schedule, so a
    run stopped and resumed follows the same curve. The loss is ``alpha * distance + (1 - alpha) * diffusion +
    beta(step) * KL`` (NoMaD's weighting plus the intent KL). ``clipping``/``max_norm``: gradient-norm clipping.
    EMA: decay ``min(ema_max_decay, 1 - (1 + s) ** -ema_power)`` with ``s`` = updates so far - 1 (NoMaD's
    diffusers EMAModel with power 0.75). ``freeze``: parameter groups kept fixed ("vision": the vision encoder;
    "denoiser": noise_pred_net and dist_pred_net). Checkpoints every ``checkpoint_every`` steps (0 = epoch ends
    only) and at each epoch end; the newest ``keep_checkpoints`` step files are kept beside ``latest.pt``.
    Evaluation on the test split every ``eval_freq`` epochs and every ``eval_every`` steps (0 = off), on at
    most ``eval_fraction`` of it and ``eval_max_batches`` batches, drawing ``eval_num_samples`` trajectories
    per observation for ADE/FDE. Scalars are logged every ``print_log_freq`` steps.

    Dataset options (``navintent.data.NavDataset``'s names; NoMaD's defaults): ``waypoint_spacing``,
    ``min_dist_cat``/``max_dist_cat`` (nomad.yaml ``distance:``), ``min_action_distance``/``max_action_distance``
    (nomad.yaml ``action:``), ``negative_mining``, ``end_slack``, ``goals_per_obs``, ``ref_mode``
    ("future" | "file" | "none") and ``ref_horizon`` (0 = ``2 * len_traj_pred``).
    """

    lr: float = 1e-4
    intent_lr_scale: float = 1.0
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
    num_images_log: int = 4
    waypoint_spacing: int = 1
    min_dist_cat: int = 0
    max_dist_cat: int = 20
    min_action_distance: int = 3
    max_action_distance: int = 20
    negative_mining: bool = True
    end_slack: int = 0
    goals_per_obs: int = 1
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
        if self.ref_mode not in ("future", "file", "none"):
            raise ValueError(f"ref_mode must be 'future', 'file' or 'none', got {self.ref_mode!r}")
        for name in ("goal_mask_prob", "alpha", "eval_fraction", "ema_max_decay"):
            _check_probability(name, getattr(self, name))
        if self.eval_fraction == 0:
            raise ValueError(f"eval_fraction must be in (0, 1], got {self.eval_fraction!r}")
        for name in ("lr", "intent_lr_scale", "weight_decay", "max_norm", "ema_power", "warmup_epochs"):
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
        for name in ("warmup", "clipping", "negative_mining"):
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
        for key in ("lr", "alpha"):
            if isinstance(picked.get(key), str):  # YAML 1.1 reads "1e-4" as a string
                picked[key] = float(picked[key])
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


# nomad.yaml keys that ``navintent train`` knowingly ignores in a flat config (logging services, hardware,
# dataset paths given by --data_dir instead, options NoMaD's model does not use).
NOMAD_IGNORED_KEYS: tuple[str, ...] = (
    "project_name",
    "run_name",
    "use_wandb",
    "train",
    "gpu_ids",
    "cyclic_period",
    "plateau_patience",
    "plateau_factor",
    "model_type",
    "vision_encoder",
    "attn_unet",
    "normalize",
    "context_type",
    "datasets",
    "image_log_freq",
    "pairwise_test_freq",
    "wandb_log_freq",
    "load_run",
)


@dataclass
class TwoStageTrainingConfig(ConfigBase):
    """Everything ``navintent train`` needs: the model, scheduler, intent and train sections.

    On disk either sectioned (``model:``, ``scheduler:``, ``intent:``, ``train:``; unknown keys rejected) or a flat
    nomad.yaml-style mapping (see :meth:`from_mapping`).
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    scheduler: SchedulerConfig = dataclasses.field(default_factory=SchedulerConfig)
    intent: IntentConfig = dataclasses.field(default_factory=IntentConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    NESTED: ClassVar[dict[str, type[ConfigBase]]] = {
        "model": ModelConfig,
        "scheduler": SchedulerConfig,
        "intent": IntentConfig,
        "train": TrainConfig,
    }

    @classmethod
    def from_mapping(
        cls, data: dict[str, Any], *, base: TwoStageTrainingConfig | None = None, where: str = ""
    ) -> TwoStageTrainingConfig:
        """Overlay a config mapping on ``base`` (default: the ``nomad`` preset).

        Sectioned mappings override per section, key by key. A flat mapping (no section names at top level) is
        read as nomad.yaml: each key goes to the section that has a field of that name (``num_diffusion_iters``
        to the scheduler); keys in ``NOMAD_IGNORED_KEYS`` are skipped; any other key raises ``ValueError`` naming it.
        """
        base = base or preset_training_config("nomad")
        loc = f" in {where}" if where else ""
        sections = {name: getattr(base, name).to_dict() for name in cls.NESTED}
        if any(name in data for name in cls.NESTED):
            unknown = sorted(set(data) - set(cls.NESTED))
            if unknown:
                raise ValueError(f"unknown config sections{loc}: {unknown}; known are {sorted(cls.NESTED)}")
            for name, values in data.items():
                if values is None:
                    continue
                if not isinstance(values, dict):
                    raise ValueError(f"section {name!r}{loc} must be a mapping, got {type(values).__name__}")
                sections[name].update(values)
        else:
            owners = {field: name for name, section in cls.NESTED.items() for field in section.field_names()}
            unknown = []
            sections["train"].update(_nomad_nested_bounds(data.get("distance"), data.get("action")))
            for key, value in data.items():
                if key in ("distance", "action"):
                    continue
                if key == "num_diffusion_iters":
                    sections["scheduler"]["num_train_timesteps"] = int(value)
                elif key in owners:
                    sections[owners[key]][key] = value
                elif key not in NOMAD_IGNORED_KEYS:
                    unknown.append(key)
            if unknown:
                raise ValueError(
                    f"unknown config keys{loc}: {sorted(unknown)}; they belong to no section "
                    f"(model, scheduler, intent, train) and are not nomad.yaml keys ignored on purpose"
                )
            for key in ("lr", "alpha", "weight_decay"):
                if isinstance(sections["train"].get(key), str):  # YAML 1.1 reads "1e-4" as a string
                    sections["train"][key] = float(sections["train"][key])
        return cls.from_dict(sections, where=where)

    @classmethod
    def load_yaml(
        cls, path: str | Path, *, base: TwoStageTrainingConfig | None = None
    ) -> TwoStageTrainingConfig:
        return cls.from_mapping(read_yaml_mapping(path), base=base, where=str(path))


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
