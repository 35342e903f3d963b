"""Where a training run's data comes from, and what it should know about that data before it starts."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from navintent.config import ModelConfig, TwoStageTrainingConfig
from navintent.data.sources import DatasetSource, discover_datasets, nav_datasets, sources_from_specs
from navintent.data.spacing import spacing_report


def training_sources(
    data_dir: str | Path | None, config: TwoStageTrainingConfig
) -> tuple[TwoStageTrainingConfig, list[DatasetSource], str, list[str]]:
    """Where training data comes from: ``--data_dir`` (a data root, :func:`navintent.data.sources.discover_datasets`)
    or else the config's ``datasets:`` block (NoMaD's form). When both are given the command line wins, the block is
    dropped from the config (so checkpoints record what was used) and a note says so.

    Returns ``(config, sources, where, notes)``; ``where`` names the data in messages. ``ValueError`` when neither
    is given."""
    notes: list[str] = []
    if data_dir is not None:
        if config.datasets:
            names = ", ".join(spec.name for spec in config.datasets)
            notes.append(
                f"note: --data_dir {data_dir} given, so the config's datasets: block ({names}) was not used"
            )
            config = config.replace(datasets=())
        return config, discover_datasets(data_dir), f"--data_dir {data_dir}", notes
    if not config.datasets:
        raise ValueError(
            "no training data: pass --data_dir DIR, or a --config whose datasets: block names the data"
        )
    return config, sources_from_specs(config.datasets), "the config's datasets: block", notes


def spacing_warnings(train_set: Dataset, model_config: ModelConfig) -> list[str]:
    """One warning per training dataset whose configured ``metric_waypoint_spacing`` does not fit its poses
    (:func:`navintent.data.spacing.spacing_report`: the measured metres per frame and the share of normalised
    deltas outside the action range or squeezed into a tenth of it). Datasets trained in metres
    (``normalize: false``) have no spacing to check."""
    out = []
    for ds in nav_datasets(train_set):
        if not ds.normalize:
            continue
        report = spacing_report(
            ds.trajectories,
            ds.metric_waypoint_spacing,
            dataset=ds.dataset_name,
            source=ds.metric_waypoint_spacing_source,
            waypoint_spacing=ds.waypoint_spacing,
            len_traj_pred=ds.len_traj_pred,
            context_size=ds.context_size,
            end_slack=ds.end_slack,
            action_min=model_config.action_min,
            action_max=model_config.action_max,
        )
        if (warning := report.warning()) is not None:
            out.append(f"warning: {warning}")
    return out
