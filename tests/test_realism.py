"""Realism range seen on data: values against per-sample computations, the gate, errors, and optimize-z2's flags."""

from __future__ import annotations

import json

import pytest
import torch

from navintent.checkpoint import load_inference_model, save_checkpoint
from navintent.cli import main
from navintent.config import IntentConfig, SchedulerConfig, preset_model_config
from navintent.models.intent import TwoStageIntentModel
from navintent.objectives import ObjectiveContext, dynamics, gaussian_nll
from navintent.realism import data_realism_range, in_data_range


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from navintent.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("realism")
    torch.manual_seed(0)
    model = TwoStageIntentModel(preset_model_config("tiny"), IntentConfig(z1_dim=4, enc2_hidden=16)).eval()
    torch.nn.init.normal_(model.z_proj.weight, std=0.5)
    stats = {"mean": torch.zeros(model.z_dim), "cov": 0.5 * torch.eye(model.z_dim), "count": 10}
    ckpt = root / "tiny.pt"
    save_checkpoint(ckpt, model, scheduler_config=SchedulerConfig(), extra={"z2_stats": stats})
    data = root / "data"
    write_synthetic_dataset(
        data / "synth", 2, 24, image_size=(64, 48), with_ref_traj=True, num_agents=1,
        split_folder=data / "splits" / "synth" / "test",
    )  # fmt: skip
    (data / "data_config.yaml").write_text("synth:\n  metric_waypoint_spacing: 0.25\n")
    return ckpt, data


def test_range_matches_per_sample_computations(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("NAVINTENT_CACHE_DIR", str(tmp_path / "cache"))
    ckpt, data = setup
    loaded = load_inference_model(ckpt)
    rng = data_realism_range(loaded, data, batch_size=5)
    assert set(rng) == {"z2_nll", "dynamics", "dynamics_ground_truth"}
    for entry in rng.values():
        assert entry["min"] <= entry["p5"] <= entry["p50"] <= entry["p95"] <= entry["max"]

    # independent: one sample at a time, no DataLoader, same goals (seed 0)
    from navintent.config import TrainConfig
    from navintent.data.sources import build_split, discover_datasets, set_goal_seed

    model, (mean, cov) = loaded.model, loaded.z2_stats
    dataset = build_split(discover_datasets(data), "test", model.config, TrainConfig(), progress=False)
    set_goal_seed(dataset, 0)
    nll, truth = [], []
    with torch.no_grad():
        for i in range(len(dataset)):
            s = dataset[i]
            gm = torch.zeros(1, dtype=torch.bool)
            _, tokens = model.encode(s["obs_img"][None], s["goal_img"][None], gm, return_tokens=True)
            for ref, present in ((s["ref_traj"][None], s["ref_mask"][None] > 0.5), (None, None)):
                z1, _ = model.posterior(tokens, gm, ref, present)
                nll.append(float(gaussian_nll(model.z2_from_tokens(z1, tokens), mean, cov)[0]))
            wp = s["actions"][None, :, :2] * s["metric_scale"]
            truth.append(float(dynamics(wp, ObjectiveContext(dt=0.25))[0]))
    assert rng["z2_nll"]["n"] == 2 * len(dataset) and rng["dynamics"]["n"] == len(dataset)
    assert rng["z2_nll"]["min"] == pytest.approx(min(nll), abs=1e-4)
    assert rng["z2_nll"]["max"] == pytest.approx(max(nll), abs=1e-4)
    assert rng["dynamics_ground_truth"]["max"] == pytest.approx(max(truth), abs=1e-6)
    rebatched = data_realism_range(loaded, data, batch_size=7)
    for name in ("z2_nll", "dynamics_ground_truth"):  # batching does not change the data terms
        assert rebatched[name] == pytest.approx(rng[name], abs=1e-5)

    capped = data_realism_range(loaded, data, max_samples=3)
    assert capped["dynamics"]["n"] == 3 and capped["z2_nll"]["n"] == 6


def test_gate_and_errors(setup, tmp_path):
    ckpt, data = setup
    rng = {"z2_nll": {"max": -10.0}, "dynamics": {"max": 0.5}}
    assert in_data_range({"z2_nll": -12.0, "dynamics": 0.5, "z2_encoder": 99.0}, rng) == {
        "z2_nll": True,
        "dynamics": True,
    }
    assert in_data_range({"z2_nll": -9.0, "dynamics": 0.51}, rng) == {"z2_nll": False, "dynamics": False}
    loaded = load_inference_model(ckpt)
    with pytest.raises(ValueError, match="has no 'train' split"):
        data_realism_range(loaded, data, split="train")
    loaded.z2_stats = None
    with pytest.raises(ValueError, match="needs a two-stage checkpoint with z2_stats"):
        data_realism_range(loaded, data)


def test_optimize_cli_flags_realism_against_the_range(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("NAVINTENT_CACHE_DIR", str(tmp_path / "cache"))
    ckpt, data = setup
    out = tmp_path / "opt"
    argv = ["optimize-z2", "--ckpt", str(ckpt), "--dataset", str(data), "--index", "0", "5", "--steps", "2"]
    argv += ["--draws", "2", "--eval-draws", "2", "--method", "adam,best_of_n", "--budget", "0", "--no-plots"]
    assert (
        main(
            [
                *argv,
                "--objective",
                "softmin_dist:1,z2_nll:0.1",
                "--realism-data",
                str(data),
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    rng = report["realism_range"]
    for method, summary in report["summary"].items():
        flags = []
        for sc in report["scenarios"]:
            row = sc["methods"][method]
            expected = {k: row["realism_eval_draws"][k] <= rng[k]["max"] for k in ("z2_nll", "dynamics")}
            assert row["realism_in_data_range"] == expected
            flags.append(all(expected.values()))
        assert summary["in_data_range_rate"] == pytest.approx(sum(flags) / len(flags))
    with pytest.raises(FileNotFoundError, match="--realism-data .*missing does not exist"):
        main([*argv, "--realism-data", str(tmp_path / "missing"), "--out-dir", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
