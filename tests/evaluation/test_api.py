"""navintent.evaluation's typed call and layout: ``evaluate(...) -> EvaluateResult`` whose ``to_json()`` is
``metrics.json``, the method -> strategy tables of the closed-loop policy, the lazy package exports, and the
deprecated ``navintent.evaluate`` forwarding old names with a warning."""

import json
import warnings

import pytest
import torch

import navintent.evaluation as evaluation
from navintent.checkpoint import LoadedModel
from navintent.config import preset_training_config
from navintent.evaluation import EvalConfig, EvaluateResult, evaluate
from navintent.evaluation.config import METHODS, STEERING_METHODS
from navintent.evaluation.policy import (
    GuidedSteering,
    NoiseSteering,
    NoLatent,
    PriorLatent,
    ReferenceLatent,
    Unsteered,
    Z2Search,
    latent_source,
    steering,
)
from navintent.models.intent import TwoStageIntentModel
from navintent.models.nomad import NoMaDPolicy


def _expert_only():
    """The expert alone in one scene: the cheapest full run (no model call)."""
    config = EvalConfig(scenes=1, methods=("expert",), max_plots=0, task="goal-image")
    return config, dict(plots=False, progress=False, meta={"ckpt": "x"})


def _tiny(intent: bool) -> LoadedModel:
    cfg = preset_training_config("tiny")
    model = TwoStageIntentModel(cfg.model, cfg.intent, cfg.scheduler) if intent else NoMaDPolicy(cfg.model)
    return LoadedModel(model.eval(), None, 1, 16, "tiny")


def test_evaluate_returns_a_result_whose_json_is_metrics_json(tmp_path):
    loaded = _tiny(intent=True)
    config, kwargs = _expert_only()
    with torch.no_grad():
        result = evaluate(loaded, config, tmp_path, **kwargs)
    assert isinstance(result, EvaluateResult) and result.is_report and result.plots is None
    report = result.to_json()
    assert list(report)[:2] == ["ckpt", "config"] and "plots" not in report
    assert report["methods"] == ["expert"] and report["summary"]["expert"]["episodes"] == 1
    assert report["scenes"] == result.scenes and len(result.scene_results) == 1
    assert report["metric_scale"] == result.metric_scale.metres_per_unit
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert list(saved) == list(report) and saved["summary"] == json.loads(json.dumps(report["summary"]))
    assert result.table in (tmp_path / "results.md").read_text()


def test_a_non_root_rank_result_says_which_scenes_it_ran():
    result = EvaluateResult(EvalConfig(), ("nomad",), None, None, rank=2)
    assert not result.is_report and result.to_json() == {"rank": 2, "scenes": []}


def test_every_method_has_a_latent_source_and_a_steering_strategy():
    intent, plain = _tiny(intent=True), _tiny(intent=False)
    expected_latent = {"nomad": NoLatent, "prior": PriorLatent}
    for method in METHODS[1:]:
        assert type(latent_source(method, intent)) is expected_latent.get(method, ReferenceLatent)
        assert type(latent_source(method, plain)) is (PriorLatent if method == "prior" else NoLatent)
        strategy = steering(method)
        assert strategy.predicts_agents == (method in STEERING_METHODS)
    assert [type(steering(m)) for m in ("nomad", "prior", "reference")] == [Unsteered] * 3
    assert [type(steering(m)) for m in ("adam", "best_of_n", "cem")] == [Z2Search] * 3
    assert type(steering("guided")) is GuidedSteering and not steering("guided").warm_start_z2
    noise, both = steering("noise"), steering("z2+noise")
    assert isinstance(noise, NoiseSteering) and not noise.with_z2 and not noise.warm_start_z2
    assert both.with_z2 and both.warm_start_z2 and steering("adam").warm_start_z2


def test_package_exports_are_lazy_and_complete():
    assert evaluation.__all__ == sorted(evaluation._EXPORTS)
    for name in evaluation.__all__:
        assert getattr(evaluation, name) is not None
    with pytest.raises(AttributeError, match="teleport"):
        evaluation.teleport  # noqa: B018


def test_deprecated_module_forwards_old_names_with_a_warning(tmp_path):
    import navintent.evaluate as old

    with pytest.warns(DeprecationWarning, match="navintent.evaluation.EvalConfig"):
        assert old.EvalConfig is EvalConfig
    with pytest.warns(DeprecationWarning, match="navintent.evaluation.scenes.PedestrianTracker"):
        assert old._PedestrianTracker is evaluation.PedestrianTracker
    with pytest.warns(DeprecationWarning, match="navintent.commands.evaluate.register"):
        old.register  # noqa: B018
    with pytest.raises(AttributeError, match="teleport"):
        old.teleport  # noqa: B018
    loaded = _tiny(intent=True)
    config, kwargs = _expert_only()
    with pytest.warns(DeprecationWarning, match="EvaluateResult"):
        old_evaluate = old.evaluate
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = old_evaluate(loaded, config, tmp_path, **kwargs)
    assert isinstance(report, dict) and list(report) == list(
        json.loads((tmp_path / "metrics.json").read_text())
    )
