"""``navintent export``: NoMaD's exact key set, the latent refusal, an exact round trip (``--format nomad``) and
the shippable inference checkpoint (``--format inference``)."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from navintent.checkpoint import (
    UntrustedCheckpointError,
    export_packaged,
    load_policy,
    read_checkpoint,
    save_checkpoint,
)
from navintent.cli import main
from navintent.config import (
    NOMAD_ACTION_MAX,
    NOMAD_ACTION_MIN,
    TwoStageTrainingConfig,
    preset_model_config,
    preset_training_config,
)
from navintent.export import export_nomad
from navintent.models import build_model
from navintent.models.nomad import NoMaDPolicy

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "nomad_reference.json"
INTENT_PREFIXES = ("z_proj.", "encoder1.", "encoder2.")


def _tiny_config() -> TwoStageTrainingConfig:
    tc = preset_training_config("tiny")
    # Non-default bounds and action stats, so the YAML demonstrably carries this checkpoint's values.
    return tc.replace(
        model=tc.model.replace(action_min=(-1.5, -3.0), action_max=(4.0, 3.0)),
        train=tc.train.replace(
            min_dist_cat=1, max_dist_cat=15, min_action_distance=2, max_action_distance=12
        ),
    )


def _intent_checkpoint(path: Path, tc: TwoStageTrainingConfig) -> tuple[Path, dict, dict]:
    """A native checkpoint of a tiny intent model with a non-zero z_proj; raw and EMA weights differ."""
    torch.manual_seed(0)
    model = build_model({"model": tc.model, "scheduler": tc.scheduler, "intent": tc.intent})
    torch.nn.init.normal_(model.z_proj.weight)
    torch.nn.init.normal_(model.z_proj.bias)
    raw = {k: v.clone() for k, v in model.state_dict().items()}
    ema = {k: v + 0.01 if v.is_floating_point() else v.clone() for k, v in raw.items()}
    save_checkpoint(
        path,
        model,
        ema_state=ema,
        scheduler_config=tc.scheduler,
        extra={"train_state": {"config": tc.to_dict()}},
    )
    return path, raw, ema


@pytest.fixture(scope="module")
def tiny():
    return _tiny_config()


@pytest.fixture(scope="module")
def intent_ckpt(tiny, tmp_path_factory):
    return _intent_checkpoint(tmp_path_factory.mktemp("ckpt") / "intent.pt", tiny)


def _nomad_keys(config) -> set[str]:
    with torch.device("meta"):
        return {k for k in NoMaDPolicy(config).state_dict() if not k.startswith("z_proj.")}


def _inputs(config, batch: int = 2):
    g = torch.Generator().manual_seed(3)
    w, h = config.image_size
    obs = torch.randn(batch, 3 * (config.context_size + 1), h, w, generator=g)
    goal = torch.randn(batch, 3, h, w, generator=g)
    sample = torch.randn(batch, config.len_traj_pred, config.action_dim, generator=g)
    return obs, goal, sample


def test_nonzero_latent_is_refused_naming_the_flag(intent_ckpt, tmp_path):
    path, _, _ = intent_ckpt
    with pytest.raises(ValueError, match="--latent none") as err:
        export_nomad(path, tmp_path / "nomad.pth")
    assert "z_proj holds 288 non-zero values" in str(err.value)  # 32 x 8 weight + 32 bias, tiny preset
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("latent", ["prior", "ref", "mean"])
def test_other_latents_are_refused_with_the_reason(intent_ckpt, tmp_path, latent):
    with pytest.raises(ValueError, match="depends on each observation"):
        export_nomad(intent_ckpt[0], tmp_path / "nomad.pth", latent=latent)
    assert list(tmp_path.iterdir()) == []


def test_latent_none_writes_exactly_nomads_keys_and_the_ema_weights(intent_ckpt, tiny, tmp_path):
    path, _, ema = intent_ckpt
    result = export_nomad(path, tmp_path / "nomad.pth", latent="none")
    assert result.yaml_path == tmp_path / "nomad.yaml" and result.yaml_path.is_file()
    assert (result.source_kind, result.weights_used, result.latent) == ("native", "ema", "none")
    state = torch.load(result.weights_path, weights_only=True)
    assert type(state) is dict and all(isinstance(v, torch.Tensor) for v in state.values())
    assert set(state) == _nomad_keys(tiny.model)
    assert not any(k.startswith("module.") or k.startswith(INTENT_PREFIXES) for k in state)
    assert result.num_tensors == len(state) == 561
    assert set(result.dropped_keys) == {k for k in ema if k.startswith(INTENT_PREFIXES)}
    for k, v in state.items():
        assert torch.equal(v, ema[k]), k
    assert result.note.startswith("NoMaD without the latent: the unconditional branch")
    assert "latent dropout (p = 0.1)" in result.note
    # The tiny U-Net's step embedding (16) is not what NoMaD's code builds (256): a warning, not a refusal.
    assert len(result.warnings) == 2
    assert "cannot build this model size" in result.warnings[0]
    assert "diffusion_step_embed_dim=256" in result.warnings[0]
    assert "diffusion_step_embed_dim=16" in result.warnings[0]
    assert "action_min [-1.5, -3.0]" in result.warnings[1] and "action_stats" in result.warnings[1]


def test_yaml_holds_nomads_keys_with_the_source_values(intent_ckpt, tiny, tmp_path):
    result = export_nomad(intent_ckpt[0], tmp_path / "out" / "policy.pth", latent="none")
    data = yaml.safe_load(result.yaml_path.read_text())
    m = tiny.model
    assert data == {
        "model_type": "nomad",
        "vision_encoder": "nomad_vint",
        "encoding_size": 32,
        "context_size": 3,
        "obs_encoder": "efficientnet-b0",
        "mha_num_attention_heads": 2,
        "mha_num_attention_layers": 1,
        "mha_ff_dim_factor": 2,
        "down_dims": [16, 32],
        "cond_predict_scale": False,
        "len_traj_pred": 8,
        "learn_angle": False,
        "num_diffusion_iters": 5,
        "image_size": [64, 64],
        "normalize": True,
        "distance": {"min_dist_cat": 1, "max_dist_cat": 15},
        "action": {"min_dist_cat": 2, "max_dist_cat": 12},
        "kernel_size": 3,
        "n_groups": 8,
        "diffusion_step_embed_dim": 16,
        "mha_dropout": 0.1,
        "action_min": [-1.5, -3.0],
        "action_max": [4.0, 3.0],
        "beta_schedule": "squaredcos_cap_v2",
        "clip_sample": True,
    }
    assert data == result.nomad_config
    # Every NoMaD-named value is the source config's (not a copy of the literal above).
    for key in ("encoding_size", "context_size", "mha_num_attention_heads", "mha_num_attention_layers"):
        assert data[key] == getattr(m, key), key
    assert tuple(data["down_dims"]) == m.down_dims and tuple(data["image_size"]) == m.image_size
    assert data["num_diffusion_iters"] == tiny.scheduler.num_train_timesteps
    # The same file is a valid flat config for navintent train: every key is known or ignored on purpose.
    flat = TwoStageTrainingConfig.from_mapping(data, where=str(result.yaml_path))
    assert flat.model.replace(z_dim=m.z_dim) == m and flat.scheduler == tiny.scheduler
    assert (flat.train.min_dist_cat, flat.train.max_dist_cat) == (1, 15)
    assert (flat.train.min_action_distance, flat.train.max_action_distance) == (2, 12)


def test_load_policy_with_the_yaml_reproduces_the_source_exactly(intent_ckpt, tiny, tmp_path):
    path = intent_ckpt[0]
    result = export_nomad(path, tmp_path / "nomad.pth", latent="none")
    exported = load_policy(result.weights_path, config=result.yaml_path)
    source = load_policy(path)  # EMA weights, eval mode
    assert type(exported) is NoMaDPolicy and not exported.training and not source.training
    assert exported.config.replace(z_dim=source.config.z_dim) == source.config
    assert exported.scheduler_config == source.scheduler_config
    assert torch.count_nonzero(exported.z_proj.weight) == 0  # NoMaD has no latent: z_proj keeps its zero init
    obs, goal, sample = _inputs(tiny.model)
    with torch.no_grad():
        for m in (0, 1):
            mask = torch.full((2,), m)
            assert torch.equal(exported.encode(obs, goal, mask), source.encode(obs, goal, mask)), m
        cond = source.encode(obs, goal, torch.zeros(2, dtype=torch.long))
        for t in (0, 2, 4):
            eps = exported.predict_noise(sample, t, cond)
            assert torch.equal(eps, source.predict_noise(sample, t, cond, latent_z=None)), t
            # ... and the source's latent really changes the policy (why the export needed --latent none).
            z = torch.ones(2, source.z_dim)
            assert not torch.allclose(eps, source.predict_noise(sample, t, cond, latent_z=z))
        assert torch.equal(exported.predict_distance(cond), source.predict_distance(cond))


def test_weights_model_exports_the_raw_training_weights(intent_ckpt, tmp_path):
    path, raw, _ = intent_ckpt
    result = export_nomad(path, tmp_path / "nomad.pth", latent="none", weights="model")
    assert result.weights_used == "model"
    state = torch.load(result.weights_path, weights_only=True)
    for k, v in state.items():
        assert torch.equal(v, raw[k]), k


def test_bare_nomad_pth_round_trip_is_identical(intent_ckpt, tmp_path):
    first = export_nomad(intent_ckpt[0], tmp_path / "a.pth", latent="none")
    # The exported file is a bare nomad.pth whose z_proj (rebuilt at zero) cannot change the policy.
    second = export_nomad(first.weights_path, tmp_path / "b.pth", config=first.yaml_path)
    assert (second.source_kind, second.weights_used) == ("nomad.pth", "file")
    assert second.note.startswith("NoMaD as the source samples it") and "all-zero z_proj" in second.note
    a = torch.load(first.weights_path, weights_only=True)
    b = torch.load(second.weights_path, weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ya, yb = yaml.safe_load(first.yaml_path.read_text()), yaml.safe_load(second.yaml_path.read_text())
    # The training bounds come from the native checkpoint's train_state; a bare nomad.pth carries none.
    assert {k: v for k, v in ya.items() if k not in ("distance", "action")} == yb
    with pytest.raises(ValueError, match="holds one set of weights"):
        export_nomad(first.weights_path, tmp_path / "c.pth", config=first.yaml_path, weights="model")


def test_plain_policy_from_a_packaged_file_needs_trust(tmp_path):
    torch.manual_seed(1)
    policy = NoMaDPolicy(preset_model_config("tiny")).eval()  # z_proj zero: exports without --latent
    packaged = export_packaged(tmp_path / "packaged.pt", policy)
    with pytest.raises(UntrustedCheckpointError, match="--trust-checkpoint"):
        export_nomad(packaged, tmp_path / "nomad.pth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["packaged.pt"]
    result = export_nomad(packaged, tmp_path / "nomad.pth", trust_checkpoint=True)
    assert (result.source_kind, result.weights_used, result.dropped_keys) == (
        "packaged",
        "file",
        ("z_proj.bias", "z_proj.weight"),
    )
    state = torch.load(result.weights_path, weights_only=True)
    own = policy.state_dict()
    assert set(state) == _nomad_keys(policy.config)
    for k, v in state.items():
        assert torch.equal(v, own[k]), k
    data = yaml.safe_load(result.yaml_path.read_text())
    assert "distance" not in data and "action" not in data  # no training config in a packaged file
    assert data["action_min"] == list(NOMAD_ACTION_MIN) and data["action_max"] == list(NOMAD_ACTION_MAX)


def test_outputs_are_never_overwritten_silently(intent_ckpt, tmp_path):
    out = tmp_path / "nomad.pth"
    out.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_nomad(intent_ckpt[0], out, latent="none")
    assert out.read_bytes() == b"keep" and not (tmp_path / "nomad.yaml").exists()
    result = export_nomad(intent_ckpt[0], out, latent="none", overwrite=True)
    assert len(torch.load(result.weights_path, weights_only=True)) == 561
    with pytest.raises(ValueError, match="checkpoint being exported"):
        export_nomad(intent_ckpt[0], intent_ckpt[0], latent="none", overwrite=True)
    with pytest.raises(ValueError, match="not a YAML file"):
        export_nomad(intent_ckpt[0], tmp_path / "x.yaml", latent="none")


def test_full_size_export_has_exactly_nomads_645_keys_and_shapes(tmp_path):
    reference = json.loads(FIXTURE.read_text())
    tc = preset_training_config("nomad")
    torch.manual_seed(0)
    model = build_model({"model": tc.model, "scheduler": tc.scheduler, "intent": tc.intent})
    torch.nn.init.normal_(model.z_proj.bias)
    path = save_checkpoint(tmp_path / "full.pt", model, scheduler_config=tc.scheduler)
    result = export_nomad(path, tmp_path / "nomad.pth", latent="none")
    state = torch.load(result.weights_path, weights_only=True)
    assert len(state) == result.num_tensors == 645
    assert {k: list(v.shape) for k, v in state.items()} == reference["manifest"]  # NoMaD's loader takes all
    assert result.num_values == reference["parameter_counts"]["total"] == 19_050_955
    # No EMA stored: the raw weights, said so. NoMaD's own sizes: no other warning.
    assert result.weights_used == "model"
    assert result.warnings == (f"{path} stores no EMA weights; exported its raw training weights",)
    data = yaml.safe_load(result.yaml_path.read_text())
    nomad_keys = {k: v for k, v in data.items() if k in reference["nomad_yaml"]}
    assert nomad_keys == reference["nomad_yaml"]


def test_cli_refusal_exits_2_with_the_message(intent_ckpt, tmp_path, capsys):
    out = tmp_path / "nomad.pth"
    code = main(["export", "--ckpt", str(intent_ckpt[0]), "--format", "nomad", str(out)], report_errors=True)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("navintent export: error: ")
    assert "--latent none" in err and not out.exists()


def test_cli_writes_the_files_and_warns(intent_ckpt, tmp_path, capsys):
    out = tmp_path / "deploy" / "nomad.pth"
    yaml_out = tmp_path / "cfg" / "nomad_tiny.yaml"
    argv = ["export", "--ckpt", str(intent_ckpt[0]), "--format", "nomad", str(out), "--latent", "none"]
    code = main([*argv, "--yaml", str(yaml_out)], report_errors=True)
    captured = capsys.readouterr()
    assert code == 0 and out.is_file() and yaml_out.is_file() and not out.with_suffix(".yaml").exists()
    assert f"wrote {out}: NoMaD state dict, 561 tensors" in captured.out
    assert "model: NoMaD without the latent" in captured.out
    assert "warning: NoMaD's deployment code cannot build this model size" in captured.err
    assert len(torch.load(out, weights_only=True)) == 561


def test_cli_inference_format_writes_a_loadable_half_precision_checkpoint_that_cannot_resume(
    intent_ckpt, tiny, tmp_path, capsys
):
    from navintent.training.checkpoints import check_resumable

    out = tmp_path / "navigator.pt"
    code = main(
        ["export", "--ckpt", str(intent_ckpt[0]), "--format", "inference", str(out)], report_errors=True
    )
    assert code == 0 and f"wrote {out}: navintent inference checkpoint" in capsys.readouterr().out
    state = load_policy(out).state_dict()
    for k, v in intent_ckpt[2].items():  # the EMA weights, rounded to float16
        assert torch.equal(state[k], v.half().float() if v.is_floating_point() else v), k
    with pytest.raises(ValueError, match="is an inference checkpoint .* cannot be resumed"):
        check_resumable(read_checkpoint(out), out, tiny, 1)
    # the command refuses it by name before it looks for data (none is given here)
    resume = ["train", "--resume", str(out), "--out", str(tmp_path / "resumed")]
    assert main(resume, report_errors=True) == 2
    assert "is an inference checkpoint" in capsys.readouterr().err
    # re-exported, the file's weights are still named the EMA ones, without a warning
    again = tmp_path / "again.pt"
    assert (
        main(["export", "--ckpt", str(out), "--format", "inference", "--dtype", "float32", str(again)]) == 0
    )
    assert "(ema weights of" in capsys.readouterr().out
    nomad = ["export", "--ckpt", str(out), "--format", "nomad", "--latent", "none"]
    assert main([*nomad, str(tmp_path / "n.pth")]) == 0
    assert "no EMA" not in capsys.readouterr().err
    code = main([*nomad, str(tmp_path / "m.pth"), "--weights", "model"], report_errors=True)
    assert code == 2 and "holding only the ema weights" in capsys.readouterr().err
    for extra in (["--latent", "none"], ["--weights", "model"]):
        code = main(["export", "--ckpt", str(intent_ckpt[0]), "--format", "inference", str(tmp_path / "b.pt"), *extra],
                    report_errors=True)  # fmt: skip
        assert code == 2 and f"takes no ['{extra[0]}']" in capsys.readouterr().err
    code = main(["export", "--ckpt", str(intent_ckpt[0]), "--format", "nomad", str(tmp_path / "c.pth"), "--latent",
                 "none", "--dtype", "float16"], report_errors=True)  # fmt: skip
    assert code == 2 and "--dtype is for --format inference" in capsys.readouterr().err


def test_convnet_model_round_trips_and_warns_that_nomad_cannot_build_it(tiny, tmp_path):
    tc = tiny.replace(model=tiny.model.replace(obs_encoder="convnet"))
    path, _, _ = _intent_checkpoint(tmp_path / "convnet.pt", tc)
    result = export_nomad(path, tmp_path / "nomad.pth", latent="none")
    assert any("obs_encoder='convnet'" in w for w in result.warnings)
    exported, source = load_policy(result.weights_path, config=result.yaml_path), load_policy(path)
    assert exported.config.obs_encoder == "convnet"
    obs, goal, _ = _inputs(tc.model)
    with torch.no_grad():
        assert torch.equal(exported.encode(obs, goal), source.encode(obs, goal))
