import pytest

from navintent.config import ModelConfig, SchedulerConfig, preset_model_config


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
    from navintent.config import read_yaml_mapping

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
