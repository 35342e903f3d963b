"""The typed call: ``navintent.steering.optimize`` returns what ``optimize-z2`` writes, methods take explicit start
points, and the old module name forwards with a deprecation warning."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from navintent.checkpoint import save_checkpoint
from navintent.cli import main
from navintent.config import IntentConfig, SchedulerConfig, preset_model_config
from navintent.diffusion import build_sampler
from navintent.models.intent import TwoStageIntentModel
from navintent.objectives import Objective
from navintent.steering import (
    DiffusionAdapter,
    OptimizeResult,
    SampleFile,
    Scenarios,
    SimScenes,
    Z2OptimConfig,
    best_of_n,
    cem,
    guided_baseline,
    optimize,
    optimize_adam,
    optimize_noise,
    plain,
)

B, T, H = 2, 8, 64
OBJECTIVE = "softmin_dist:1.0@tau=0.3,z2_encoder:0.1"


def _model() -> TwoStageIntentModel:
    torch.manual_seed(0)
    model = TwoStageIntentModel(preset_model_config("tiny"), IntentConfig(z1_dim=4, enc2_hidden=16)).eval()
    torch.nn.init.normal_(model.z_proj.weight, std=0.5)  # z_proj starts at zero: give z2 an effect
    return model


def _scenarios() -> Scenarios:
    g = torch.Generator().manual_seed(1)
    agents = torch.stack([torch.linspace(0.2, 1.0, T), torch.linspace(0.6, -0.2, T)], -1)
    return Scenarios(
        obs_img=torch.randn(B, 12, H, H, generator=g),
        goal_img=torch.randn(B, 3, H, H, generator=g),
        metric_scale=torch.tensor([0.1, 0.2]),
        agents=agents.view(1, T, 1, 2).repeat(B, 1, 2, 1),
        agents_mask=torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
    )


def _adapter(model) -> DiffusionAdapter:
    return DiffusionAdapter(
        model,
        _scenarios(),
        Objective(OBJECTIVE),
        sampler=build_sampler(SchedulerConfig(), clip="hard"),
        draws=2,
        generator=torch.Generator().manual_seed(2),
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    model = _model()
    root = tmp_path_factory.mktemp("steering")
    ckpt = root / "tiny.pt"
    stats = {"mean": torch.zeros(model.z_dim), "cov": torch.eye(model.z_dim), "count": 10}
    save_checkpoint(ckpt, model, scheduler_config=SchedulerConfig(), extra={"z2_stats": stats})
    sc = _scenarios()
    sample = {
        "obs_img": sc.obs_img,
        "goal_img": sc.goal_img,
        "agents": sc.agents / 0.1,
        "agents_mask": sc.agents_mask,
        "metric_scale": torch.full((B,), 0.1),
    }
    torch.save(sample, root / "sample.pt")
    return ckpt, root / "sample.pt"


def test_typed_call_returns_what_the_command_writes(files, tmp_path):
    ckpt, sample = files
    config = Z2OptimConfig(steps=2, lr=0.1, draws=2, eval_draws=3)
    out = tmp_path / "typed"
    result = optimize(
        ckpt,
        SampleFile(sample),
        objective=OBJECTIVE,
        methods="adam,best_of_n",
        config=config,
        budget_s=0.0,
        out_dir=out,
        plots=False,
        progress=False,
    )
    assert isinstance(result, OptimizeResult) and result.out_dir == out
    assert list(result.methods) == ["adam", "best_of_n", "plain"] == list(result.summary)
    assert result.z2.shape == (B, 8) and result.config.dt == pytest.approx(0.25)
    assert result.z1 == "data" and result.space == "whitened" and result.z2_stats
    report = json.loads((out / "report.json").read_text())
    assert report == json.loads(json.dumps(result.to_report()))
    assert report["arguments"]["source"] == {"kind": "SampleFile", "path": str(sample)}
    assert torch.equal(torch.load(out / "z2_optimized.pt", weights_only=True), result.z2)
    assert result.trajectories["eval"]["adam"].shape == (B, 3, T, 2)
    # the command, given the same settings, writes the same numbers (the timings aside)
    argv = ["optimize-z2", "--ckpt", str(ckpt), "--data_sample", str(sample), "--steps", "2", "--lr", "0.1"]
    argv += ["--draws", "2", "--eval-draws", "3", "--method", "adam,best_of_n", "--budget", "0", "--no-plots"]
    assert main([*argv, "--objective", OBJECTIVE, "--out-dir", str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "report.json").read_text())
    for key in ("objective", "methods", "config", "z1", "z2_stats", "space", "waypoint_spacing"):
        assert cli[key] == report[key], key
    for a, b in zip(cli["scenarios"], report["scenarios"], strict=True):
        for method in ("adam", "plain"):
            assert a["methods"][method]["objective_eval_draws"] == pytest.approx(
                b["methods"][method]["objective_eval_draws"], rel=1e-5
            )
    assert cli["arguments"]["method"] == "adam,best_of_n" and "func" not in cli["arguments"]


def test_typed_call_without_out_dir_writes_nothing_and_checks_its_input(files, tmp_path, monkeypatch):
    ckpt, sample = files
    monkeypatch.chdir(tmp_path)
    result = optimize(
        ckpt, SampleFile(sample), methods=["plain"], config=Z2OptimConfig(draws=1, eval_draws=1)
    )
    assert result.out_dir is None and list(result.methods) == ["plain"] and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="unknown \\['sgd'\\]"):
        optimize(ckpt, methods="sgd")
    with pytest.raises(ValueError, match="z1 must be one of"):
        optimize(ckpt, z1="posterior")
    with pytest.raises(ValueError, match="--crossing-pedestrian adds a pedestrian"):
        optimize(ckpt, SimScenes(1), crossing=(1.0, 1.0))


def test_explicit_start_points_equal_a_warm_started_adapter():
    """Passing ``start`` / ``start_noise`` gives what assigning ``adapter.z2_init`` / ``adapter.noise`` gave."""
    model = _model()
    start = _adapter(model).z2_init + 0.3
    config = Z2OptimConfig(steps=2, lr=0.1, cem_population=2, eval_chunk=2, guide_scales=(0.3,))
    calls = {
        "adam": lambda a, **k: optimize_adam(a, config, progress=False, **k),
        "best_of_n": lambda a, **k: best_of_n(a, 0.0, config, torch.Generator().manual_seed(0), **k),
        "cem": lambda a, **k: cem(a, 0.0, config, torch.Generator().manual_seed(0), **k),
        "guided": lambda a, **k: guided_baseline(a, 0.0, config, torch.Generator().manual_seed(0), **k),
        "plain": lambda a, **k: plain(a, **k),
    }
    for name, call in calls.items():
        given = call(_adapter(model), start=start)
        mutated = _adapter(model)
        mutated.z2_init = start.clone()
        old = call(mutated)
        torch.testing.assert_close(given.z2, old.z2, msg=name)
        torch.testing.assert_close(given.loss, old.loss, msg=name)
    noise = _adapter(model).draw_noise(2, torch.Generator().manual_seed(5))
    given = optimize_noise(
        _adapter(model), 0.0, config, with_z2=True, start=start, start_noise=noise, progress=False
    )
    mutated = _adapter(model)
    mutated.z2_init, mutated.noise = start.clone(), noise
    old = optimize_noise(mutated, 0.0, config, with_z2=True, progress=False)
    torch.testing.assert_close(given.loss, old.loss)
    torch.testing.assert_close(given.noise.x_T, old.noise.x_T)
    with pytest.raises(ValueError, match="start must have shape"):
        plain(_adapter(model), start=start[:1])


def test_old_module_name_forwards_with_a_deprecation_warning():
    import navintent.optimize as old
    import navintent.steering as steering

    with pytest.warns(
        DeprecationWarning, match="navintent.optimize.DiffusionAdapter moved to navintent.steering"
    ):
        assert old.DiffusionAdapter is steering.DiffusionAdapter
    with pytest.raises(AttributeError, match="no attribute 'run_cli'"):
        old.run_cli  # noqa: B018


def test_proof_table_needs_the_realism_range(files):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "z2_proof.py"
    spec = importlib.util.spec_from_file_location("z2_proof", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ckpt, sample = files
    result = optimize(ckpt, SampleFile(sample), methods="plain", config=Z2OptimConfig(draws=1, eval_draws=1))
    with pytest.raises(ValueError, match="needs a result made with realism_data"):
        module.proof_table(result)
