"""The shipped navigator: the file is the one its record describes, loads weights-only, is small, held out."""

import shutil

import pytest
import torch

from navintent import evaluation as ev
from navintent import shipped
from navintent.checkpoint import load_inference_model, read_checkpoint


def test_shipped_checkpoint_matches_its_record_and_loads_weights_only():
    record = shipped.check_shipped_navigator()  # SHA-256 and the stored training config against the record
    path = shipped.shipped_navigator_path()
    assert path.stat().st_size <= 40e6
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["ema"] is None and "optimizer" not in raw["train_state"]
    assert {v.dtype for v in raw["model"].values() if v.is_floating_point()} == {torch.float16}
    loaded = load_inference_model(path)
    recipe = record["recipe"]
    assert loaded.model.config.to_dict() == recipe["model"]
    assert loaded.waypoint_spacing == recipe["train"]["waypoint_spacing"]
    assert loaded.z2_stats is not None and len(loaded.training_scales) == 1
    assert record["data"]["episodes"] == len(record["data"]["scene_seeds"])
    # the evaluation scenes its numbers come from are not among its training scenes
    held_out = {s.seed for s in ev.evaluation_scenes(40, 0)}
    assert not held_out & set(record["data"]["scene_seeds"])
    navigate = record["closed_loop"]["navigate"]
    assert set(navigate) == set(record["deployment"]["methods"]) == {"nomad", "reference"}
    assert navigate["reference"]["goal_rate"]["n"] >= 40


def test_a_changed_file_or_recipe_is_named(tmp_path, monkeypatch):
    copy = tmp_path / "sim_navigator.pt"
    shutil.copy(shipped.shipped_navigator_path(), copy)
    raw = read_checkpoint(copy)
    raw["train_state"]["config"]["train"]["lr"] = 1.0
    torch.save(raw, copy)
    monkeypatch.setattr(shipped, "shipped_navigator_path", lambda: copy)
    with pytest.raises(ValueError, match="SHA-256 .* its record says"):
        shipped.check_shipped_navigator()
    record = shipped.shipped_navigator_record()
    record["sha256"] = shipped.file_sha256(copy)
    monkeypatch.setattr(shipped, "shipped_navigator_record", lambda: record)
    with pytest.raises(
        ValueError, match=r"differs from sim_navigator.yaml's recipe: train.lr: checkpoint 1.0, now 0.002"
    ):
        shipped.check_shipped_navigator()
