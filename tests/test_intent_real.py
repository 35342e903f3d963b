"""The two-stage intent trained on real robot data (``../shared/real/go2_dataset``, as published).

A few training steps of the tiny preset on a small part of the Go2 data, then: the reference given to Encoder1
changes z1 and the sampled trajectories (with the diffusion noise held fixed), while samples that do not read it
(prior mean, no latent) stay identical. Also ``benchmarks/intent_real.py`` end to end on the tiny preset (its
spacing, configs, splits and last line) and its dynamics measure against a hand computation. Skipped, with the
reason, only where ``../shared/real`` is absent.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from navintent.checkpoint import load_inference_model, read_checkpoint
from navintent.cli import main
from navintent.config import TwoStageTrainingConfig
from navintent.data.sources import build_split, set_goal_seed, sources_from_specs
from navintent.data.split import write_traj_names

ROOT = Path(__file__).resolve().parents[1]
GO2 = ROOT.parent / "shared" / "real" / "go2_dataset"
pytestmark = pytest.mark.skipif(not GO2.is_dir(), reason=f"real inputs not found at {GO2} (../shared/real)")
# a small part of the data: 3 trajectories to train on, 1 to test on
TRAIN_NAMES = ["go2_20250717_174636", "go2_20250717_175049", "go2_20250717_175121"]
TEST_NAMES = ["go2_20250717_175701"]


def _benchmark():
    """``benchmarks/intent_real.py`` as a module (the benchmarks folder is not a package)."""
    spec = importlib.util.spec_from_file_location("intent_real", ROOT / "benchmarks" / "intent_real.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["intent_real"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def image_cache(tmp_path_factory):
    """One decoded-image cache for the module's runs (``NAVINTENT_CACHE_DIR``)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NAVINTENT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, image_cache):
    """30 tiny-preset steps on 3 Go2 trajectories (waypoint spacing 4, measured 0.0402 m per frame)."""
    work = tmp_path_factory.mktemp("intent_real")
    write_traj_names(work / "splits" / "train", TRAIN_NAMES)
    write_traj_names(work / "splits" / "test", TEST_NAMES)
    config = work / "go2.yaml"
    config.write_text(
        "model: {image_size: [32, 32]}\n"
        "train: {batch_size: 8, lr: 3.0e-3, epochs: 10, warmup_steps: 2, eval_freq: 1000}\n"
        "datasets:\n  go2_dataset:\n"
        f"    data_folder: {GO2}\n    train: splits/train\n    test: splits/test\n"
        "    waypoint_spacing: 4\n    metric_waypoint_spacing: 0.0402\n"
    )
    argv = ["train", "--config", str(config), "--preset", "tiny", "--max_steps", "30", "--no_progress"]
    assert main([*argv, "--out", str(work / "run"), "--device", "cpu"]) == 0
    return work, work / "run" / "latest.pt"


def _batch(ckpt: Path):
    loaded = load_inference_model(ckpt)
    config = TwoStageTrainingConfig.from_dict(read_checkpoint(ckpt)["train_state"]["config"])
    test = build_split(
        sources_from_specs(config.datasets), "test", config.model, config.train, progress=False
    )
    set_goal_seed(test, 0)
    rows = [test[i] for i in range(len(test)) if float(test[i]["action_mask"]) > 0.5][:6]
    return loaded, torch.utils.data.default_collate(rows)


def _sample(model, batch, ref_traj, mode: str) -> torch.Tensor:
    goal_mask = torch.ones(batch["obs_img"].shape[0], dtype=torch.long)
    x, _ = model.sample_intent(
        batch["obs_img"],
        batch["goal_img"],
        goal_mask,
        mode=mode,
        ref_traj=ref_traj,
        ref_mask=batch["ref_mask"],
        num_samples=4,
        generator=torch.Generator().manual_seed(0),
    )
    return x


def test_the_reference_changes_z1_and_the_samples(small_run):
    _, ckpt = small_run
    loaded, batch = _batch(ckpt)
    model = loaded.model
    assert loaded.training_scales[0].metres_per_unit == pytest.approx(0.0402 * 4)
    assert model.z_proj.weight.abs().max() > 0  # training moved the zero-initialised latent path
    ref = batch["ref_traj"]
    assert ref.shape == (6, 16, 2) and bool((batch["ref_mask"] == 1).all())
    mirrored = ref * torch.tensor([1.0, -1.0])  # the same path mirrored left/right
    goal_mask = torch.ones(6, dtype=torch.long)
    with torch.no_grad():
        _, tokens = model.encode(batch["obs_img"], batch["goal_img"], goal_mask, return_tokens=True)
        mu, _ = model.posterior(tokens, goal_mask, ref, None)
        mu_mirrored, _ = model.posterior(tokens, goal_mask, mirrored, None)
    assert (mu - mu_mirrored).abs().max() > 1e-3
    # the same noise for every call: the only difference between these two is the reference
    with_ref = _sample(model, batch, ref, "ref")
    torch.testing.assert_close(_sample(model, batch, ref, "ref"), with_ref, rtol=0, atol=0)
    assert (with_ref - _sample(model, batch, mirrored, "ref")).abs().max() > 1e-4
    for mode in ("prior", "none"):  # these do not read the reference
        torch.testing.assert_close(
            _sample(model, batch, ref, mode), _sample(model, batch, mirrored, mode), rtol=0, atol=0
        )


def test_dynamics_profile_by_hand():
    bench = _benchmark()
    # steps (1, 0), (1, 0), (0, 1) m at dt 0.5 s: speed 2 m/s; acceleration |(-1, 1)| / 0.25 = 4 sqrt(2);
    # heading changes 0 and pi / 2 -> pi rad/s
    way = np.array([[[1.0, 0.0], [2.0, 0.0], [2.0, 1.0]]])
    prof = bench.dynamics_profile(way, 0.5, 0.1)
    np.testing.assert_allclose(
        [prof["speed"][0], prof["accel"][0], prof["turn"][0]], [2, 4 * math.sqrt(2), math.pi]
    )
    # a step shorter than min_step carries no heading: no turn counted
    assert bench.dynamics_profile(way * 0.05, 0.5, 0.1)["turn"][0] == 0.0
    limits = {"speed": 2.0, "accel": 6.0, "turn": 3.0}
    assert bench.within(prof, limits).tolist() == [False]
    assert bench.within(prof, {**limits, "turn": 3.2}).tolist() == [True]


def test_benchmark_end_to_end_on_the_tiny_preset(tmp_path, image_cache, capsys):
    bench = _benchmark()
    argv = ["--data", str(GO2), "--out", str(tmp_path / "out"), "--preset", "tiny", "--max-steps", "2"]
    assert bench.main([*argv, "--samples", "2", "--frames", "2", "--set", "train.batch_size=8"]) == 0
    out = capsys.readouterr().out
    assert "measured 0.0402 m per frame over 25 trajectories" in out
    assert re.fullmatch(r"ade_reduction -?\d+\.\d{4}", out.strip().splitlines()[-1])
    for name, mode in (("go2.yaml", "future"), ("go2_planner.yaml", "planner")):
        config = yaml.safe_load((tmp_path / "out" / name).read_text())
        entry = config["datasets"]["go2_dataset"]
        assert entry["metric_waypoint_spacing"] == pytest.approx(0.04023, abs=5e-6)
        assert entry["waypoint_spacing"] == 4 and entry["data_folder"] == str(GO2.resolve())
        assert config["train"]["ref_mode"] == mode and config["train"]["batch_size"] == 8
    names = [
        (tmp_path / "out" / "splits" / s / "traj_names.txt").read_text().split() for s in ("train", "test")
    ]
    assert [len(n) for n in names] == [20, 5] and not set(names[0]) & set(names[1])
    assert {"diversity.png", "perturb.png", "results.json", "results.md"} <= {
        p.name for p in (tmp_path / "out").iterdir()
    }
