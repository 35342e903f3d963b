"""navintent.data.sources: NoMaD's datasets: block as a mixture, each dataset with its own options."""

import pytest
from torch.utils.data import ConcatDataset

from navintent.config import TrainConfig, TwoStageTrainingConfig, preset_model_config
from navintent.data.sources import (
    build_split,
    data_dir_scales,
    nav_datasets,
    sources_at,
    sources_from_specs,
    training_scales,
)
from navintent.data.split import write_traj_names
from navintent.data.synthetic import write_synthetic_dataset
from navintent.metric_scale import TrainingScale
from navintent.training import training_sources


def _config(tmp_path):
    for name, step in (("alpha", 0.25), ("beta", 0.1)):
        ds = write_synthetic_dataset(
            tmp_path / name, 2, 40, step=step, split_folder=tmp_path / "splits" / name / "train"
        )
        write_traj_names(tmp_path / "splits" / name / "test", ds.names[:1])
    path = tmp_path / "mix.yaml"
    path.write_text(
        "datasets:\n"
        "  alpha:\n    data_folder: alpha\n    train: splits/alpha/train\n    test: splits/alpha/test\n"
        "    end_slack: 3\n    goals_per_obs: 2\n    negative_mining: false\n    metric_waypoint_spacing: 0.25\n"
        "  beta:\n    data_folder: beta\n    train: splits/beta/train\n    waypoint_spacing: 2\n"
        "    metric_waypoint_spacing: 0.1\n"
    )
    return path


def test_a_datasets_block_builds_a_mixture_with_each_datasets_options(tmp_path, monkeypatch):
    monkeypatch.setenv("NAVINTENT_CACHE_DIR", str(tmp_path / "cache"))
    path = _config(tmp_path)
    config = TwoStageTrainingConfig.load_yaml(path)
    model = preset_model_config("tiny").replace(image_size=(32, 32))
    train = build_split(sources_from_specs(config.datasets), "train", model, config.train, progress=False)
    assert isinstance(train, ConcatDataset)
    alpha, beta = nav_datasets(train)
    assert (alpha.dataset_name, alpha.end_slack, alpha.goals_per_obs, alpha.negative_mining) == (
        "alpha",
        3,
        2,
        False,
    )
    assert (alpha.waypoint_spacing, beta.waypoint_spacing, beta.end_slack, beta.negative_mining) == (
        1,
        2,
        0,
        True,
    )
    assert (
        len(train) == len(alpha) + len(beta) and len(alpha) == 2 * alpha.num_observations
    )  # goals_per_obs 2
    # NoMaD's sampling of the mixture: a shuffled loader over the concatenation, in proportion to the sizes
    assert training_scales(train) == (TrainingScale("alpha", 0.25, 1), TrainingScale("beta", 0.1, 2))
    test = build_split(sources_from_specs(config.datasets), "test", model, config.train, progress=False)
    assert [d.dataset_name for d in nav_datasets(test)] == ["alpha"]  # beta has no test split
    # the same file names the data for inference commands, at each dataset's own spacing
    assert [s.name for s in sources_at(path)] == ["alpha", "beta"]
    assert data_dir_scales(path, 4) == (TrainingScale("alpha", 0.25, 1), TrainingScale("beta", 0.1, 2))


def test_the_command_line_data_wins_over_the_block_with_a_note(tmp_path):
    path = _config(tmp_path)
    config = TwoStageTrainingConfig.load_yaml(path)
    data = tmp_path / "root"
    write_synthetic_dataset(data / "synth", 2, 20, split_folder=data / "splits" / "synth" / "train")
    kept, sources, where, notes = training_sources(data, config)
    assert kept.datasets == () and [s.name for s in sources] == ["synth"] and where == f"--data_dir {data}"
    assert notes == [
        f"note: --data_dir {data} given, so the config's datasets: block (alpha, beta) was not used"
    ]
    kept, sources, where, notes = training_sources(None, config)
    assert [s.name for s in sources] == ["alpha", "beta"] and notes == []
    with pytest.raises(ValueError, match="pass --data_dir DIR, or a --config whose datasets: block"):
        training_sources(None, TwoStageTrainingConfig(train=TrainConfig()))
