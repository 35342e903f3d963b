"""Flags more than one command shares, and their translation into the typed calls."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from navintent.cli import float_at_least
from navintent.metric_scale import (
    NOMAD_FRAME_RATE,
    NOMAD_MAX_V,
    MetricScale,
    TrainingScale,
    resolve_and_log_metric_scale,
)


def add_metric_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """``--metric-scale``, ``--robot`` and ``--scale-dataset``, the same in every inference command."""
    parser.add_argument(
        "--metric-scale",
        type=float_at_least(0.0, strict=True),
        default=None,
        help="metres per normalised unit (default: the data being read, else the checkpoint's training data, "
        "else max_v / frame_rate of --robot)",
    )
    parser.add_argument(
        "--robot",
        type=Path,
        default=None,
        help="NoMaD robot.yaml (max_v, frame_rate) for a checkpoint that records no training scale (nomad.pth); "
        f"default {NOMAD_MAX_V} m/s / {NOMAD_FRAME_RATE:g} Hz",
    )
    parser.add_argument(
        "--scale-dataset",
        default=None,
        metavar="NAME",
        help="for a checkpoint trained on datasets with different metres per unit: use this dataset's",
    )


def metric_scale_for_command(
    args: argparse.Namespace, checkpoint: Sequence[TrainingScale] = (), data: Sequence[TrainingScale] = ()
) -> MetricScale:
    """:func:`navintent.metric_scale.resolve_and_log_metric_scale` from the arguments
    :func:`add_metric_scale_arguments` adds (the one line saying which scale is used and where it came from is
    logged; the commands print it on stderr)."""
    return resolve_and_log_metric_scale(
        explicit=args.metric_scale,
        robot_yaml=args.robot,
        pick=args.scale_dataset,
        checkpoint=checkpoint,
        data=data,
    )
