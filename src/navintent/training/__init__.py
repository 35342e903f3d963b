"""Training the two-stage intent model (NoMaD + Encoder1/Encoder2): one CPU, one GPU, or DDP under ``torchrun``.

The typed entry point is :func:`train` (``from navintent.training import train``, also ``navintent.train(...)``),
which returns a :class:`TrainResult`; :func:`training_config` builds its config from a preset, a config file and
overrides as ``navintent train`` does, and ``navintent train`` (:mod:`navintent.commands.train`) is a thin layer
over both. The modules, by concern:

- :mod:`~navintent.training.distributed`: the ``torchrun`` world, devices, each rank's resumable shard;
- :mod:`~navintent.training.state`: RNG capture/restore and seeding, the running z2 Gaussian fit;
- :mod:`~navintent.training.optim`: freezing, parameter groups, the LR schedule;
- :mod:`~navintent.training.checkpoints`: initial weights, resume checks, ``latest.pt`` and rotation;
- :mod:`~navintent.training.metrics_log`: ``metrics.csv`` and TensorBoard, :func:`final_metrics`;
- :mod:`~navintent.training.evaluation`: :func:`evaluate_model` on the test split and its picture;
- :mod:`~navintent.training.trainer`: :class:`Trainer`, the loop (EMA, z2 fit, exact resume, NaN guard);
- :mod:`~navintent.training.sources`: where the data comes from, spacing warnings;
- :mod:`~navintent.training.api`: :func:`train`, :func:`training_config`, :class:`TrainResult`.
"""

from __future__ import annotations

from navintent.training.api import TrainResult, train, training_config
from navintent.training.checkpoints import (
    LATEST,
    RESUMABLE_TRAIN_KEYS,
    InitialWeights,
    checkpoint_config,
    load_initial_weights,
    resume_checkpoint,
    scale_changes,
)
from navintent.training.distributed import DistInfo, ResumableDistributedSampler, init_distributed
from navintent.training.evaluation import EVAL_MODES, evaluate_model, save_trajectory_figure
from navintent.training.metrics_log import MetricsLog, final_metrics
from navintent.training.optim import (
    FREEZE_PREFIXES,
    apply_freeze,
    lr_factor,
    parameter_groups,
    set_train_mode,
)
from navintent.training.sources import spacing_warnings, training_sources
from navintent.training.state import GaussianFit, capture_rng, restore_rng, seed_everything
from navintent.training.trainer import FitResult, NonFiniteLossError, Trainer

__all__ = [
    "EVAL_MODES",
    "FREEZE_PREFIXES",
    "LATEST",
    "RESUMABLE_TRAIN_KEYS",
    "DistInfo",
    "FitResult",
    "GaussianFit",
    "MetricsLog",
    "NonFiniteLossError",
    "ResumableDistributedSampler",
    "TrainResult",
    "InitialWeights",
    "Trainer",
    "apply_freeze",
    "capture_rng",
    "checkpoint_config",
    "evaluate_model",
    "final_metrics",
    "init_distributed",
    "load_initial_weights",
    "lr_factor",
    "parameter_groups",
    "restore_rng",
    "resume_checkpoint",
    "save_trajectory_figure",
    "scale_changes",
    "seed_everything",
    "set_train_mode",
    "spacing_warnings",
    "train",
    "training_config",
    "training_sources",
]
