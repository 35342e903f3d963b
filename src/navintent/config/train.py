"""The ``intent:`` and ``train:`` sections: :class:`IntentConfig` (the two-stage intent path and its KL) and
:class:`TrainConfig` (the training loop, evaluation and the dataset options)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from navintent.config.base import (
    ConfigBase,
    check_non_negative_int,
    check_non_negative_number,
    check_positive_int,
    check_probability,
)
from navintent.config.nomad_yaml import nomad_nested_bounds


@dataclass
class IntentConfig(ConfigBase):
    """Two-stage intent path (``navintent.models.intent``): Encoder1 -> q(z1), Encoder2 -> z2 = ``latent_z``.

    ``z1_dim`` is the high-level intent width; z2's width is the model's ``z_dim``. ``ref_dim`` is D of
    ``ref_traj [B, T_ref, D]``; reference values are divided by ``ref_scale`` before the embedding (they are in
    spacing units, as the actions; 8 is about half the default 16-step reference's reach). ``enc1_layers``
    transformer layers read [query, obs tokens, goal, null reference, reference steps]; ``enc2_hidden`` is the
    width of Encoder2's MLP. ``ref_dropout`` is the probability that a sample with a reference is trained
    reference-free (null token); ``latent_dropout`` the probability that a sample trains the unconditional
    (``latent_z=None``) branch CFG needs. ``latent_free_weight`` > 0 adds, for every sample, a second diffusion
    loss on that branch (same noisy actions and timestep, no latent) with this weight: the branch NoMaD deploys
    then learns from the whole batch instead of ``latent_dropout`` of it, where the goal image is its only
    guide (with a latent, the reference through Encoder1 already tells the denoiser where to go). Measured on
    sim data in README "Goal conditioning"; costs one more denoiser pass per step. The KL term is weighted by ``beta * min(1, step / kl_warmup_steps)``
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
    latent_free_weight: float = 0.0
    beta: float = 1e-3
    kl_warmup_steps: int = 1000
    free_bits: float = 2.0

    def __post_init__(self) -> None:
        for name in ("z1_dim", "ref_dim", "enc1_layers", "enc2_hidden"):
            check_positive_int(name, getattr(self, name))
        check_non_negative_int("kl_warmup_steps", self.kl_warmup_steps)
        check_probability("ref_dropout", self.ref_dropout)
        check_probability("latent_dropout", self.latent_dropout)
        for name in ("ref_scale", "beta", "free_bits", "latent_free_weight"):
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
    beta(step) * KL`` (NoMaD's weighting plus the intent KL), plus ``dist_rank_weight`` times RankNet's pairwise
    ranking loss on the distance head (navintent's, 0 = off as in NoMaD;
    :func:`navintent.models.intent.pairwise_rank_loss`). ``clipping``/``max_norm``: gradient-norm clipping.
    EMA (NoMaD's diffusers 0.11.1 ``EMAModel``, power 0.75; :mod:`navintent.ema`): the ``n``-th update (n = 1,
    2, ...) uses decay 0 for ``n <= 2`` and ``min(ema_max_decay, 1 - (n - 1) ** -ema_power)`` afterwards.
    ``freeze``: parameter groups kept fixed ("vision": the vision encoder; "denoiser": noise_pred_net and
    dist_pred_net). Checkpoints every ``checkpoint_every`` steps (0 = epoch ends only) and at each epoch end;
    the newest ``keep_checkpoints`` step files are kept beside ``latest.pt``. Evaluation on the test split
    every ``eval_freq`` epochs and every ``eval_every`` steps (0 = off), on at most ``eval_fraction`` of it
    and ``eval_max_batches`` batches, drawing ``eval_num_samples`` trajectories per observation for ADE/FDE;
    the goal-conditioning metrics (distance-head Spearman/MAE, goal sensitivity;
    :mod:`navintent.evaluation.goal_metrics`) use ``eval_goal_observations`` random test observations (0 = off).
    Scalars are logged every ``print_log_freq`` steps. ``random_shift`` (pixels, 0 = off; navintent's, NoMaD
    trains without augmentation): each training batch's images are shifted at random by up to that many pixels
    (DrQ's random shift, :mod:`navintent.training.augmentation`); evaluation and deployment never shift.

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
    schedule_steps: int = 0
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    warmup: bool = True
    warmup_epochs: float = 1.0
    warmup_steps: int = 0
    clipping: bool = True
    max_norm: float = 1.0
    goal_mask_prob: float = 0.5
    random_shift: int = 0
    alpha: float = 1e-4
    dist_rank_weight: float = 0.0
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
            "schedule_steps",
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
            "random_shift",
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
            check_probability(name, getattr(self, name))
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
            "dist_rank_weight",
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
        picked.update(nomad_nested_bounds(picked.pop("distance", None), picked.pop("action", None)))
        picked.update(overrides)
        return cls.from_dict(picked)
