import io
from pathlib import Path

import pytest
import torch

from navintent.config import (
    DatasetSpec,
    IntentConfig,
    ModelConfig,
    SchedulerConfig,
    TrainConfig,
    TwoStageTrainingConfig,
    preset_model_config,
    read_nomad_datasets,
    read_yaml_mapping,
)


def test_yaml_round_trip_is_exact(tmp_path):
    cfg = preset_model_config("tiny").replace(down_dims=(16, 32, 48), learn_angle=True)
    path = tmp_path / "model.yaml"
    cfg.save_yaml(path)
    assert ModelConfig.load_yaml(path) == cfg


def test_unknown_keys_are_named_with_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("encoding_size: 64\nencodng_sise: 3\nfoo: 1\n")
    with pytest.raises(
        ValueError, match=r"unknown ModelConfig keys in .*bad\.yaml: \['encodng_sise', 'foo'\]"
    ):
        ModelConfig.load_yaml(path)


def test_bad_values_are_named_with_the_file_and_section(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  alpha: 2.0\n")
    with pytest.raises(ValueError, match=r"bad\.yaml:train: alpha must be a number in \[0, 1\], got 2\.0"):
        TwoStageTrainingConfig.load_yaml(path)
    path.write_text("encoding_size: -3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: encoding_size must be a positive int, got -3"):
        ModelConfig.load_yaml(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"encoding_size": 0}, "encoding_size must be a positive int, got 0"),
        ({"encoding_size": 30, "mha_num_attention_heads": 4}, "divisible by mha_num_attention_heads"),
        ({"down_dims": (12, 32)}, "divisible by n_groups"),
        ({"image_size": (96,)}, "image_size must be"),
        ({"action_min": (5.0, -4.0)}, "action_min must be below action_max"),
        ({"obs_encoder": "resnet18"}, "got 'resnet18'"),
    ],
)
def test_bad_values_raise(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)


def test_nomad_yaml_subset_is_read_and_the_rest_ignored():
    nomad_yaml = {
        "encoding_size": 256,
        "context_size": 5,
        "down_dims": [64, 128, 256],
        "lr": 1e-4,
        "datasets": {},
    }
    cfg = ModelConfig.from_nomad_yaml(nomad_yaml)
    assert cfg.context_size == 5 and cfg.down_dims == (64, 128, 256) and cfg.num_obs_frames == 6
    assert SchedulerConfig.from_nomad_yaml({"num_diffusion_iters": 7}).num_train_timesteps == 7


def test_unknown_preset_raises():
    with pytest.raises(ValueError, match="got 'huge'"):
        preset_model_config("huge")


def test_read_yaml_mapping_names_the_file_for_each_failure(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_yaml_mapping(empty) == {}
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(
        ValueError, match=r"data config .*list\.yaml must hold a mapping at top level, got list"
    ):
        read_yaml_mapping(listing, what="data config")
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match=r"broken\.yaml is not valid YAML"):
        read_yaml_mapping(broken)
    with pytest.raises(FileNotFoundError, match=r"config file not found: .*absent\.yaml"):
        read_yaml_mapping(tmp_path / "absent.yaml")


# --------------------------------------------------------------------------------------------------
# TwoStageTrainingConfig: real nomad.yaml, datasets, shapes and refused combinations
# --------------------------------------------------------------------------------------------------
REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
REAL_NOMAD_YAML = REAL / "nomad.yaml"
needs_real = pytest.mark.skipif(
    not REAL_NOMAD_YAML.is_file(), reason=f"real inputs folder absent: {REAL_NOMAD_YAML} not found"
)

# Every top-level key of NoMaD's released nomad.yaml, split into what navintent applies and what it notes.
REAL_APPLIED = {
    "batch_size", "epochs", "num_workers", "lr", "optimizer", "clipping", "max_norm", "scheduler", "warmup",
    "warmup_epochs", "seed", "encoding_size", "obs_encoder", "cond_predict_scale", "mha_num_attention_heads",
    "mha_num_attention_layers", "mha_ff_dim_factor", "down_dims", "num_diffusion_iters", "goal_mask_prob",
    "normalize", "context_type", "context_size", "alpha", "distance", "action", "len_traj_pred",
    "learn_angle", "image_size", "datasets", "print_log_freq", "num_images_log", "eval_fraction", "eval_freq",
}  # fmt: skip
REAL_NOTED = {
    "project_name", "run_name", "use_wandb", "train", "gpu_ids", "cyclic_period", "plateau_patience",
    "plateau_factor", "model_type", "vision_encoder", "attn_unet", "image_log_freq", "pairwise_test_freq",
    "wandb_log_freq",
}  # fmt: skip


def _noted_keys(notes: list[str]) -> list[str]:
    prefix = "NoMaD key ignored: "
    return [n[len(prefix) :].split(":")[0] for n in notes if n.startswith(prefix)]


@needs_real
def test_real_nomad_yaml_loads_with_every_key_applied_or_noted():
    notes: list[str] = []
    cfg = TwoStageTrainingConfig.load_yaml(REAL_NOMAD_YAML, notes=notes)
    raw = read_yaml_mapping(REAL_NOMAD_YAML)
    assert raw["train"] is True and raw["scheduler"] == "cosine" and raw["lr"] == "1e-4"  # the file's quirks
    assert set(raw) == REAL_APPLIED | REAL_NOTED and not REAL_APPLIED & REAL_NOTED
    noted = _noted_keys(notes)
    assert sorted(noted) == sorted(REAL_NOTED)  # each exactly once
    assert len(notes) == len(REAL_NOTED)  # and nothing else (no derived ref_dim, no datasets replacement)
    assert "NoMaD key ignored: train: NoMaD's whether-to-train flag; navintent train always trains" in notes

    tc, mc = cfg.train, cfg.model
    assert type(tc.lr) is float and tc.lr == 1e-4 and tc.alpha == 1e-4
    assert (tc.batch_size, tc.epochs, tc.num_workers, tc.seed) == (256, 100, 12, 0)
    assert (tc.optimizer, tc.scheduler, tc.warmup, tc.warmup_epochs) == ("adamw", "cosine", True, 4)
    assert (tc.clipping, tc.max_norm, tc.goal_mask_prob) == (False, 1.0, 0.5)
    assert (tc.min_dist_cat, tc.max_dist_cat, tc.min_action_distance, tc.max_action_distance) == (
        0,
        20,
        3,
        20,
    )
    assert (tc.normalize, tc.context_type) == (True, "temporal")
    assert (tc.print_log_freq, tc.num_images_log, tc.eval_fraction, tc.eval_freq) == (100, 8, 0.25, 1)
    assert (mc.context_size, mc.len_traj_pred, mc.learn_angle, mc.image_size) == (3, 8, False, (96, 96))
    assert (mc.encoding_size, mc.down_dims, mc.mha_num_attention_layers) == (256, (64, 128, 256), 4)
    assert cfg.scheduler.num_train_timesteps == 10
    assert cfg.intent.ref_dim == 2

    names = [d.name for d in cfg.datasets]
    assert names == ["recon", "go_stanford", "cory_hall", "tartan_drive", "sacson"]
    by_name = {d.name: d for d in cfg.datasets}
    assert by_name["go_stanford"].goals_per_obs == 2 and by_name["go_stanford"].end_slack == 0
    assert by_name["recon"].end_slack == 3 and by_name["recon"].goals_per_obs == 1
    assert all(d.negative_mining is True and d.waypoint_spacing == 1 for d in cfg.datasets)  # NoMaD's default
    assert all(d.metric_waypoint_spacing is None and d.data_config is None for d in cfg.datasets)
    # absolute paths are kept exactly as written (trailing slash included)
    assert by_name["recon"].data_folder == "/home/<username>/nomad_dataset/recon"
    assert by_name["recon"].train == "/home/<username>/data_splits/recon/train/"
    assert by_name["sacson"].test == "/home/<username>/data_splits/sacson/test/"

    # checkpoints store to_dict() and --resume rebuilds from it: exact, also through the weights-only loader
    assert TwoStageTrainingConfig.from_dict(cfg.to_dict()) == cfg
    buffer = io.BytesIO()
    torch.save({"config": cfg.to_dict()}, buffer)
    buffer.seek(0)
    assert TwoStageTrainingConfig.from_dict(torch.load(buffer, weights_only=True)["config"]) == cfg


@needs_real
def test_real_nomad_yaml_section_readers_and_dataset_reader():
    raw = read_yaml_mapping(REAL_NOMAD_YAML)
    model = ModelConfig.from_nomad_yaml(raw)
    assert (model.context_size, model.encoding_size, model.image_size, model.down_dims) == (
        3,
        256,
        (96, 96),
        (64, 128, 256),
    )
    assert SchedulerConfig.from_nomad_yaml(raw).num_train_timesteps == 10
    train = TrainConfig.from_nomad_yaml(raw)
    assert (train.lr, train.alpha, train.scheduler, train.warmup_epochs) == (1e-4, 1e-4, "cosine", 4)
    assert (train.normalize, train.context_type, train.max_action_distance) == (True, "temporal", 20)
    specs = read_nomad_datasets(REAL_NOMAD_YAML)
    assert [(d.name, d.end_slack, d.goals_per_obs) for d in specs] == [
        ("recon", 3, 1),
        ("go_stanford", 0, 2),
        ("cory_hall", 3, 1),
        ("tartan_drive", 3, 1),
        ("sacson", 3, 1),
    ]


FLAT_WITH_DATASETS = """\
lr: 3e-4
normalize: false
context_type: temporal
datasets:
  mine:
    data_folder: data/mine
    train: splits/mine/train/
    test: /abs/splits/mine/test
    end_slack: 3
    goals_per_obs: 2
    negative_mining: false
    waypoint_spacing: 2
    metric_waypoint_spacing: 5e-2
    data_config: data_config.yaml
  other:
    data_folder: ../other
"""


def test_flat_datasets_block_gives_exactly_its_values_with_paths_resolved(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / "nomad_small.yaml"
    path.write_text(FLAT_WITH_DATASETS)
    notes: list[str] = []
    cfg = TwoStageTrainingConfig.load_yaml(path, notes=notes)
    assert notes == []
    assert (cfg.train.lr, cfg.train.normalize, cfg.train.context_type) == (3e-4, False, "temporal")
    mine, other = cfg.datasets
    assert mine == DatasetSpec(
        name="mine",
        data_folder=str(folder / "data" / "mine"),
        train=str(folder / "splits" / "mine" / "train"),
        test="/abs/splits/mine/test",
        end_slack=3,
        goals_per_obs=2,
        negative_mining=False,
        waypoint_spacing=2,
        metric_waypoint_spacing=0.05,
        data_config=str(folder / "data_config.yaml"),
    )
    # NoMaD train.py's defaults for the keys an entry lacks
    assert other == DatasetSpec(name="other", data_folder=str(folder / ".." / "other"))
    assert (other.end_slack, other.goals_per_obs, other.negative_mining, other.waypoint_spacing) == (
        0,
        1,
        True,
        1,
    )
    assert (other.train, other.test) == (None, None)
    # without a file, relative paths stay as written
    kept = TwoStageTrainingConfig.from_mapping(read_yaml_mapping(path))
    assert kept.datasets[0].data_folder == "data/mine" and kept.datasets[0].train == "splits/mine/train/"
    # round trips: dict (checkpoints) and a sectioned YAML file elsewhere (paths now absolute)
    assert TwoStageTrainingConfig.from_dict(cfg.to_dict()) == cfg
    assert list(cfg.to_dict()["datasets"]) == ["mine", "other"]
    saved = tmp_path / "elsewhere" / "saved.yaml"
    saved.parent.mkdir()
    cfg.save_yaml(saved)
    assert TwoStageTrainingConfig.load_yaml(saved) == cfg


def test_sectioned_config_with_datasets_section_and_replacement_note(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "train:\n  epochs: 3\n  lr: 1e-3\nintent:\n  beta: 2e-3\n"
        "datasets:\n  sim:\n    data_folder: sim\n    train: splits/sim/train\n"
    )
    base = TwoStageTrainingConfig(datasets=(DatasetSpec(name="old", data_folder="/d"),))
    notes: list[str] = []
    cfg = TwoStageTrainingConfig.load_yaml(path, base=base, notes=notes)
    assert (cfg.train.epochs, cfg.train.lr, cfg.intent.beta) == (3, 1e-3, 2e-3)
    assert cfg.datasets == (
        DatasetSpec(name="sim", data_folder=str(tmp_path / "sim"), train=str(tmp_path / "splits/sim/train")),
    )
    assert notes == [f"datasets in {path} replace the base config's datasets ['old'] with ['sim']"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train:\n  epochs: 3\nlr: 1e-4\n", r"top-level key 'lr' is not a section"),
        (
            "train:\n  epochs: 3\nscheduler: cosine\n",
            r"'scheduler' holds str 'cosine', not a section mapping",
        ),
        ("model:\n  context_size: 2\ntrain: true\n", r"'train' holds bool True"),
        ("train: false\n", r"nomad.yaml key train .* is False, but navintent supports only True"),
        ("model_type: vint\n", r"model_type .* is 'vint', but navintent supports only 'nomad'"),
        ("attn_unet: true\n", r"attn_unet .* is True, but navintent supports only False"),
        ("load_run: nomad_2023\n", r"load_run .* cannot be honoured: .*--ckpt"),
        ("model: nomad\n", r"'model' .* must be a mapping \(the model section\), got str 'nomad'"),
        ("context_type: randomized\n", r"context_type must be 'temporal' .*got 'randomized'"),
        ("lr: fast\n", r"lr must be a non-negative number, got 'fast'"),
        ("distance:\n  max_dist_cat: 15\nmax_dist_cat: 20\n", r"'distance' and 'max_dist_cat' .*15 and 20"),
        (
            "num_diffusion_iters: 7\nnum_train_timesteps: 5\n",
            r"'num_diffusion_iters' and 'num_train_timesteps'",
        ),
        (
            "datasets:\n  recon:\n    data_folder: r\n    end_slak: 3\n",
            r"dataset 'recon' .*unknown keys \['end_slak'\]",
        ),
        ("datasets:\n  recon:\n    train: t\n", r"dataset 'recon' .*has no data_folder"),
        (
            "datasets:\n  recon:\n    data_folder: r\n    goals_per_obs: 0\n",
            r"datasets.recon.goals_per_obs .*got 0",
        ),
        ("datasets:\n  recon: r\n", r"dataset 'recon' .*must be a mapping"),
        ("datasets: [recon]\n", r"'datasets' .*must map dataset names to entries"),
        (
            "end_slack: 2\ndatasets:\n  recon:\n    data_folder: r\n",
            r"train.end_slack=2 conflicts with datasets: .*datasets.<name>.end_slack",
        ),
    ],
)
def test_bad_shapes_and_values_are_refused_naming_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    notes: list[str] = []
    with pytest.raises(ValueError, match=message):
        TwoStageTrainingConfig.load_yaml(path, notes=notes)
    assert notes == []  # nothing reported for a refused file


def test_learn_angle_needs_ref_dim_4_refused_or_derived(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text("model:\n  learn_angle: true\nintent:\n  ref_dim: 2\n")
    with pytest.raises(
        ValueError, match=r"intent.ref_dim must be 4 when model.learn_angle is true .*got intent"
    ):
        TwoStageTrainingConfig.load_yaml(both)
    with pytest.raises(ValueError, match=r"intent.ref_dim must be 2 when model.learn_angle is false"):
        TwoStageTrainingConfig(intent=IntentConfig(ref_dim=4))
    only = tmp_path / "only.yaml"
    only.write_text("model:\n  learn_angle: true\n")
    notes: list[str] = []
    cfg = TwoStageTrainingConfig.load_yaml(only, notes=notes)
    assert (cfg.model.learn_angle, cfg.model.action_dim, cfg.intent.ref_dim) == (True, 4, 4)
    assert notes == [
        "intent.ref_dim set to 4: model.learn_angle is true, so the dataset's ref_traj is [T, 4]"
    ]
    flat = tmp_path / "flat.yaml"
    flat.write_text("learn_angle: True\nref_dim: 4\n")  # consistent: no note
    notes = []
    assert TwoStageTrainingConfig.load_yaml(flat, notes=notes).intent.ref_dim == 4 and notes == []
    # switching back derives 2 again
    back = TwoStageTrainingConfig.from_mapping({"learn_angle": False}, base=cfg, notes=notes)
    assert back.intent.ref_dim == 2 and notes == [
        "intent.ref_dim set to 2: model.learn_angle is false, so the dataset's ref_traj is [T, 2]"
    ]


def test_yaml11_exponent_strings_fill_float_fields_only():
    cfg = TwoStageTrainingConfig.from_dict(
        {"train": {"lr": "3e-4", "weight_decay": "1E2"}, "intent": {"beta": "2e-3"}}
    )
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.intent.beta) == (3e-4, 100.0, 2e-3)
    with pytest.raises(ValueError, match="beta must be a non-negative number, got -0.0005"):
        IntentConfig.from_dict({"beta": "-0.5e-3"})  # converted, then judged by the config's own check
    with pytest.raises(ValueError, match="batch_size must be a positive int, got '1e2'"):
        TrainConfig.from_dict({"batch_size": "1e2"})  # int fields are not converted
    with pytest.raises(ValueError, match=r"DatasetSpec is missing required keys \['data_folder'\]"):
        DatasetSpec.from_dict({"name": "x"})


@pytest.mark.parametrize("key", ["image_size", "down_dims", "action_min", "action_max"])
def test_a_scalar_where_a_list_belongs_is_a_value_error_naming_the_key(key):
    """``image_size: 32`` in a YAML file: a ValueError (exit 2 with the key), not a TypeError traceback."""
    with pytest.raises(ValueError, match=f"{key} must be a list, got 32"):
        ModelConfig(**{key: 32})


def test_infinite_numbers_are_refused_by_name():
    """YAML's ``.inf`` passes a ``> 0`` check; every positive or non-negative setting refuses it, naming the key."""
    from navintent.sim.config import ExpertConfig

    with pytest.raises(ValueError, match="steer_noise_time must be finite, got inf"):
        ExpertConfig(steer_noise_time=float("inf"))
    with pytest.raises(ValueError, match="steer_noise must be finite, got inf"):
        ExpertConfig(steer_noise=float("inf"))
    with pytest.raises(ValueError, match="lr must be finite, got inf"):
        TrainConfig(lr=float("inf"))
