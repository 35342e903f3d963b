"""Checkpoints: native round trip, strict nomad.pth import, packaged format behind trust_checkpoint, bad files."""

from pathlib import Path

import pytest
import torch

import navintent
from navintent.checkpoint import (
    UntrustedCheckpointError,
    export_packaged,
    inference_weights_kind,
    load_inference_model,
    load_policy,
    read_checkpoint,
    resolve_device,
    save_checkpoint,
    write_inference_checkpoint,
)
from navintent.config import SchedulerConfig, preset_model_config
from navintent.models.nomad import NoMaDPolicy


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    model = NoMaDPolicy(preset_model_config("tiny")).eval()
    torch.nn.init.normal_(model.z_proj.weight)  # make every tensor distinguishable from a fresh init
    return model


@pytest.fixture(scope="module")
def nomad_state(policy):
    """The tiny policy's weights as a nomad.pth would hold them (no z_proj)."""
    return {k: v.clone() for k, v in policy.state_dict().items() if not k.startswith("z_proj.")}


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


def test_native_round_trip_is_exact(policy, tmp_path):
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in policy.state_dict().items()}
    sched = SchedulerConfig(num_train_timesteps=7)
    path = save_checkpoint(
        tmp_path / "sub" / "ckpt.pt",
        policy,
        ema_state=ema,
        scheduler_config=sched,
        extra={"train_state": {"epoch": 3}},
    )
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # the temp file was renamed, none left
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "navintent" and raw["version"] == 1 and raw["train_state"] == {"epoch": 3}
    assert read_checkpoint(path)["config"]["scheduler"]["num_train_timesteps"] == 7

    loaded = load_policy(path, weights="model")
    _assert_same_state(loaded, policy)
    assert loaded.config == policy.config and loaded.scheduler_config == sched and not loaded.training
    ema_loaded = navintent.load_policy(path)  # EMA by default
    for k, v in ema_loaded.state_dict().items():
        torch.testing.assert_close(v, ema[k], rtol=0, atol=0, msg=k)
    with pytest.raises(ValueError, match="carries its own config"):
        load_policy(path, config={"model": {}})
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", policy, scheduler_config=sched, extra={"model": 1})


@pytest.mark.parametrize("prefix", ["", "module."])
def test_nomad_import_strict_and_keeps_new_modules(policy, nomad_state, tmp_path, prefix):
    path = tmp_path / "nomad.pth"
    torch.save({prefix + k: v for k, v in nomad_state.items()}, path)
    loaded = load_policy(path, config={"model": policy.config.to_dict()})
    own = loaded.state_dict()
    for k, v in nomad_state.items():
        torch.testing.assert_close(own[k], v, rtol=0, atol=0, msg=k)
    assert torch.count_nonzero(loaded.z_proj.weight) == 0  # new module keeps its (zero) initialisation


def _import_error(policy, state, tmp_path) -> str:
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as info:
        load_policy(path, config=policy.config)
    return str(info.value)


def test_import_missing_key_is_named(policy, nomad_state, tmp_path):
    state = dict(nomad_state)
    del state["noise_pred_net.final_conv.1.bias"]
    msg = _import_error(policy, state, tmp_path)
    assert "missing keys (1)" in msg and "noise_pred_net.final_conv.1.bias" in msg


def test_import_unexpected_key_is_named(policy, nomad_state, tmp_path):
    msg = _import_error(policy, {**nomad_state, "vision_encoder.extra_head.weight": torch.zeros(2)}, tmp_path)
    assert "unexpected keys (1)" in msg and "vision_encoder.extra_head.weight" in msg


def test_import_shape_mismatch_is_named_and_contradiction_explained(policy, nomad_state, tmp_path):
    state = dict(nomad_state)
    state["dist_pred_net.network.4.weight"] = torch.zeros(1, 3)
    msg = _import_error(policy, state, tmp_path)
    assert (
        "shape mismatches (1)" in msg and "dist_pred_net.network.4.weight: file [1, 3] vs model [1, 2]" in msg
    )
    # A file built with other sizes: the error says which config values the shapes imply.
    other = NoMaDPolicy(policy.config.replace(down_dims=(16, 32, 64), context_size=2)).state_dict()
    msg = _import_error(policy, other, tmp_path)
    assert "contradict the config" in msg
    assert "down_dims: file implies (16, 32, 64), config says (16, 32)" in msg
    assert "context_size: file implies 2, config says 3" in msg


def test_bare_state_dict_without_config_is_refused(nomad_state, tmp_path):
    path = tmp_path / "nomad.pth"
    torch.save(nomad_state, path)
    with pytest.raises(ValueError, match="holds no config"):
        load_policy(path)


class _Exploit:
    """Unpickling this would create a file: proves nothing runs without trust."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_file_refused_without_trust(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"ema_model": _Exploit(marker)}, path)
    with pytest.raises(UntrustedCheckpointError, match="trust_checkpoint=True") as info:
        load_policy(path)
    assert str(path) in str(info.value)
    assert not marker.exists()
    # Control: with trust the payload does run (so the refusal above is what protected us).
    with pytest.raises(ValueError, match="not a checkpoint navintent understands"):
        load_policy(path, trust_checkpoint=True)
    assert marker.exists()


def test_packaged_round_trip_with_trust(policy, tmp_path):
    path = export_packaged(tmp_path / "packaged.pt", policy, SchedulerConfig(num_train_timesteps=6))
    with pytest.raises(UntrustedCheckpointError):
        load_policy(path)
    loaded = load_policy(path, trust_checkpoint=True)
    _assert_same_state(loaded, policy)
    assert loaded.scheduler_config.num_train_timesteps == 6


def test_inference_model_carries_training_facts(policy, tmp_path):
    z = policy.z_dim
    stats = {"mean": torch.arange(z, dtype=torch.float32), "cov": 2 * torch.eye(z), "count": 5}
    train_state = {"config": {"train": {"waypoint_spacing": 3, "ref_horizon": 12}}}
    native = tmp_path / "native.pt"
    save_checkpoint(
        native,
        policy,
        scheduler_config=SchedulerConfig(),
        extra={"z2_stats": stats, "train_state": train_state},
    )
    for trust in (False, True):  # trusting the file must not lose what a native checkpoint stores
        loaded = load_inference_model(native, trust_checkpoint=trust)
        assert (loaded.waypoint_spacing, loaded.ref_horizon, loaded.waypoint_dt) == (3, 12, 0.75)
        assert torch.equal(loaded.z2_stats[0], stats["mean"])
        assert torch.equal(loaded.z2_stats[1], stats["cov"] + 1e-6 * torch.eye(z))
    packaged = export_packaged(tmp_path / "packaged.pt", policy, SchedulerConfig())
    loaded = load_inference_model(packaged, trust_checkpoint=True)
    assert loaded.z2_stats is None and loaded.waypoint_spacing == 1 and loaded.ref_horizon == 16
    bad = tmp_path / "bad_stats.pt"
    save_checkpoint(
        bad,
        policy,
        scheduler_config=SchedulerConfig(),
        extra={"z2_stats": {"mean": torch.zeros(z + 1), "cov": torch.eye(z)}},
    )
    with pytest.raises(ValueError, match=f"{bad}: z2_stats must be mean"):
        load_inference_model(bad)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_inference_model(tmp_path / "missing.pt")


def test_inference_checkpoint_keeps_what_deployment_reads_and_nothing_to_resume(policy, tmp_path):
    """EMA weights (float16: exactly the EMA rounded to half; float32: bit for bit), config, z2 statistics,
    training scales and training config survive; the raw weights and the optimiser state do not."""
    z = policy.z_dim
    stats = {"mean": torch.arange(z, dtype=torch.float32), "cov": 2 * torch.eye(z), "count": 5}
    scales = [{"dataset": "d", "metric_waypoint_spacing": 0.04, "waypoint_spacing": 3, "normalize": True,
               "metres_per_unit": 0.12}]  # fmt: skip
    train_state = {
        "config": {"train": {"waypoint_spacing": 3, "ref_horizon": 12}},
        "optimizer": {"state": {}},
    }
    ema = {k: v + 0.01 if v.is_floating_point() else v.clone() for k, v in policy.state_dict().items()}
    src = tmp_path / "train.pt"
    save_checkpoint(
        src, policy, ema_state=ema, scheduler_config=SchedulerConfig(),
        extra={"z2_stats": stats, "train_state": train_state, "training_scales": scales},
    )  # fmt: skip
    full = load_inference_model(src)
    for dtype, cast in (("float16", torch.float16), ("float32", torch.float32)):
        dst = tmp_path / f"{dtype}.pt"
        result = write_inference_checkpoint(src, dst, dtype=dtype)
        raw = read_checkpoint(dst)
        assert (
            result["weights"] == "ema"
            and raw["ema"] is None
            and raw["config"] == read_checkpoint(src)["config"]
        )
        assert raw["train_state"] == {"config": train_state["config"]} and raw["training_scales"] == scales
        for k, v in raw["model"].items():
            assert v.dtype == (cast if ema[k].is_floating_point() else ema[k].dtype), k
        loaded = load_inference_model(dst)
        state = loaded.model.state_dict()
        for k, v in ema.items():
            expected = v.to(cast).to(v.dtype) if v.is_floating_point() else v
            assert torch.equal(state[k], expected), k
            assert state[k].dtype == full.model.state_dict()[k].dtype
        assert (
            (loaded.waypoint_spacing, loaded.ref_horizon)
            == (full.waypoint_spacing, full.ref_horizon)
            == (3, 12)
        )
        assert (
            torch.equal(loaded.z2_stats[1], full.z2_stats[1])
            and loaded.training_scales == full.training_scales
        )
    assert (tmp_path / "float16.pt").stat().st_size < 0.6 * (tmp_path / "float32.pt").stat().st_size
    with pytest.raises(FileExistsError, match="float16.pt exists"):
        write_inference_checkpoint(src, tmp_path / "float16.pt")
    with pytest.raises(ValueError, match="dtype must be one of"):
        write_inference_checkpoint(src, tmp_path / "x.pt", dtype="bfloat8")
    bad = read_checkpoint(tmp_path / "float16.pt")
    bad["inference"]["weights"] = "raw"
    with pytest.raises(ValueError, match="inference.weights must be 'ema' or 'model', got 'raw'"):
        inference_weights_kind(bad)


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path):
    """write_atomic's temp file is owner-only (mkstemp); the result follows the umask like any other file."""
    import os

    from navintent.checkpoint import write_atomic

    old = os.umask(0o027)
    try:
        path = write_atomic(tmp_path / "a.bin", lambda fh: fh.write(b"x"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640 and path.read_bytes() == b"x"


def test_corrupt_files_name_the_file(nomad_state, tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"a": torch.zeros(3)}, good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for bad in (truncated, garbage, empty):
        with pytest.raises(ValueError, match=str(bad.name)):
            load_policy(bad, config={"model": {}})
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_policy(tmp_path / "missing.pth")
    legacy = tmp_path / "legacy.pth"
    torch.save({"a": torch.zeros(3)}, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:-20])
    with pytest.raises(ValueError, match="legacy.pth"):
        load_policy(legacy, config={"model": {}})


def test_resolve_device_maps_auto_and_passes_names_through(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
