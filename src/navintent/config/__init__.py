"""Typed configuration dataclasses, with YAML only as their on-disk form.

Every config validates itself in ``__post_init__`` and raises ``ValueError("... got X")`` on a bad
value. ``from_dict`` rejects unknown keys, naming them. ``from_nomad_yaml`` reads the subset of a
visualnav-transformer ``nomad.yaml`` that a section understands; :meth:`TwoStageTrainingConfig.from_mapping`
reads a whole nomad.yaml, applying every key navintent has and reporting each other one in a note.

YAML 1.1 (PyYAML) reads exponent numbers without a dot (``lr: 1e-4``) as strings; every ``float`` field of
every config accepts such a string and converts it (``from_dict``).

By concern (import every name from ``navintent.config``):

- :mod:`~navintent.config.base`: :class:`ConfigBase`, :func:`read_yaml_mapping`, :func:`yaml11_float` and the
  shared validators (``check_positive_int`` and friends);
- :mod:`~navintent.config.model`: the ``model:`` and ``scheduler:`` sections (:class:`ModelConfig`,
  :class:`SchedulerConfig`, NoMaD's action bounds, :func:`preset_model_config`);
- :mod:`~navintent.config.train`: the ``intent:`` and ``train:`` sections (:class:`IntentConfig`,
  :class:`TrainConfig`);
- :mod:`~navintent.config.datasets`: NoMaD's ``datasets:`` block (:class:`DatasetSpec`,
  :func:`read_nomad_datasets`);
- :mod:`~navintent.config.nomad_yaml`: reading a flat nomad.yaml (the keys ignored, required or refused, and where
  each other key goes);
- :mod:`~navintent.config.two_stage`: :class:`TwoStageTrainingConfig` (everything ``navintent train`` needs) and
  :func:`preset_training_config`.
"""

from navintent.config.base import (
    ConfigBase,
    check_non_negative_int,
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
    check_probability,
    read_yaml_mapping,
    yaml11_float,
)
from navintent.config.datasets import DatasetSpec, read_nomad_datasets
from navintent.config.model import (
    NOMAD_ACTION_MAX,
    NOMAD_ACTION_MIN,
    ModelConfig,
    SchedulerConfig,
    preset_model_config,
)
from navintent.config.nomad_yaml import NOMAD_IGNORED_KEYS, NOMAD_REFUSED_KEYS, NOMAD_REQUIRED_VALUES
from navintent.config.train import IntentConfig, TrainConfig
from navintent.config.two_stage import TwoStageTrainingConfig, preset_training_config

__all__ = [
    "NOMAD_ACTION_MAX",
    "NOMAD_ACTION_MIN",
    "NOMAD_IGNORED_KEYS",
    "NOMAD_REFUSED_KEYS",
    "NOMAD_REQUIRED_VALUES",
    "ConfigBase",
    "DatasetSpec",
    "IntentConfig",
    "ModelConfig",
    "SchedulerConfig",
    "TrainConfig",
    "TwoStageTrainingConfig",
    "check_non_negative_int",
    "check_non_negative_number",
    "check_positive_int",
    "check_positive_number",
    "check_probability",
    "preset_model_config",
    "preset_training_config",
    "read_nomad_datasets",
    "read_yaml_mapping",
    "yaml11_float",
]
