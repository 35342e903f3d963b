"""`navintent demo --quick` end to end (the CI smoke test): files, report sections and the metrics keys."""

import json

from navintent import evaluation as ev
from navintent.cli import main
from navintent.demo import METRICS_KEYS, PLANS, QUICK, spearman_text


def test_quick_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out / "report.md") in printed and str(out / "metrics.json") in printed

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(METRICS_KEYS) <= set(metrics)
    assert metrics["mode"] == "quick"
    plan = PLANS[QUICK]
    assert metrics["data"]["episodes"] == plan.episodes
    assert metrics["train"]["steps"] == plan.train_steps and "train/loss" in metrics["train"]["final"]
    assert metrics["train"]["obs_encoder"] == plan.obs_encoder == "convnet"
    assert set(metrics["stages"]) == {"record", "train", "optimize", "evaluate", "navigator", "experiments"}
    summary = metrics["closed_loop_details"]["summary"]
    stats = metrics["closed_loop"]["goal-image"]  # the closed-loop issue's {task: {method: {metric: ...}}}
    assert list(stats) == list(ev.METHODS)
    for key in (
        "success",
        "static_collision_rate",
        "pedestrian_collision_rate",
        "attack_success",
        "goal_rate",
    ):
        assert set(stats["reference"][key]) == {"mean", "ci95", "n"} and stats["reference"][key]["n"] == 1
    shipped = metrics["shipped_navigator"]  # the packaged navigator in NoMaD's loop, same form
    assert shipped["checkpoint"].endswith("sim_navigator.pt") and "goal_conditioning.py" in shipped["command"]
    assert list(shipped["closed_loop"]["navigate"]) == ["nomad", "reference"]
    assert shipped["closed_loop"]["navigate"]["reference"]["goal_rate"]["n"] == plan.nav_scenes
    assert list(summary) == list(ev.METHODS)  # every method ran, in order
    for row in summary.values():
        assert row["episodes"] == plan.eval_scenes
        for key, _, _ in ev.TABLE_COLUMNS:
            assert key in row
    assert {"adam", "best_of_n", "cem", "guided", "plain"} <= set(metrics["optimize"]["summary"])
    assert set(metrics["experiments"]["diversity"]) == {
        "z1 fixed, noise varies",
        "z1 varies, noise fixed",
        "z1 and noise vary",
        "no latent",
    }
    assert [lv["sigma"] for lv in metrics["experiments"]["perturb"]] == list(plan.sigmas)

    report = (out / "report.md").read_text()
    for section in (
        "## 1. Data",
        "## 2. Training",
        "## 3. z2 optimisation",
        "## 4. Closed loop",
        "## 5. The shipped navigator",
        "## 6. Latent",
    ):
        assert section in report
    assert ev.markdown_table(summary).splitlines()[0] in report
    final = metrics["train"]["final"]  # the goal-conditioning metrics of the last evaluation, in the report
    assert "`convnet` image trunks" in report
    assert f"distance head Spearman {spearman_text(final['eval/dist_spearman'])} " in report
    assert f"goal sensitivity {final['eval/goal_sensitivity']:.2f}" in report
    opt_summary = json.loads((out / "optimize" / "report.json").read_text())["summary"]
    adam_nll = opt_summary["adam"]["realism_eval_draws_mean"]["z2_nll"]
    assert f"| adam | {opt_summary['adam']['objective_eval_draws_mean']:.3f} |" in report
    assert f"| {adam_nll:.1f} |" in report  # the open-loop table shows the realism terms
    rate = opt_summary["adam"]["in_data_range_rate"]  # measured against the demo's own test split
    assert f"| {100 * rate:.0f}% |" in report and "z2_nll up to" in report
    for rel in ("train/latest.pt", "evaluate/summary.png", "experiments/diversity.png", "experiments/perturb.png",
                "optimize/report.json"):  # fmt: skip
        assert (out / rel).is_file(), rel
    assert "benchmarks/goal_conditioning.py --out" in report and "so no run can reach its goal" in report
    for plot in metrics["files"]["closed_loop_plots"]:
        assert (out / "evaluate" / plot.rsplit("/", 1)[-1]).is_file()

    # A second run refuses to overwrite the results.
    assert main(["demo", "--quick", "--out-dir", str(out)], report_errors=True) == 2
    assert "not empty" in capsys.readouterr().err


def test_full_plan_recipe_is_a_config_navintent_train_reads(tmp_path):
    """The sections the demo (and benchmarks/goal_conditioning.py) write load as a training config that carries
    every choice of the plan, with the LR annealed at the run's own length."""
    import yaml

    from navintent.demo import FULL, TRAIN_STEPS, recipe_sections
    from navintent.training import training_config

    plan = PLANS[FULL]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_sections(plan, 1234)))
    config = training_config(plan.preset, path, notes=[], where="test")
    assert config.train.schedule_steps == 1234 and config.train.warmup_steps == plan.warmup_steps
    assert config.train.goal_mask_prob == plan.goal_mask_prob and config.train.alpha == plan.alpha
    assert config.intent.latent_free_weight == plan.latent_free_weight
    assert config.train.eval_goal_observations == plan.eval_goal_observations
    assert config.model.obs_encoder == plan.obs_encoder and config.model.image_size == plan.model_image_size
    assert config.train.waypoint_spacing == plan.waypoint_spacing
    assert plan.train_steps == TRAIN_STEPS
