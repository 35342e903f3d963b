"""navintent.evaluation (the closed-loop package) and navintent.commands.evaluate: metrics on scripted cases against hand-computed values, writers, scene helpers, a short
closed-loop run and the experiments on a tiny model, and the CLI's error paths."""

import json
import math

import numpy as np
import pytest
import torch

from navintent import evaluation as ev
from navintent.checkpoint import LoadedModel, load_inference_model, save_checkpoint
from navintent.cli import main
from navintent.config import preset_training_config
from navintent.evaluation.policy import RESPONSE_STEP_M
from navintent.models.intent import TwoStageIntentModel
from navintent.models.nomad import NoMaDPolicy
from navintent.objectives import GridMap
from navintent.sim import RobotConfig, SimConfig, World, predict_agents_at
from navintent.sim.rollout import rollout, run_expert


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Batch-1 closed-loop inference on one thread, as the CLI runs it (two threads are far slower under load)."""
    with ev.torch_threads(1):
        yield


# ------------------------------------------------------------------------------------------------ pure metrics
def test_interaction_intensity_hand_computed():
    dt = 0.5
    # Pedestrian 0 walks +x at 1 m/s freely; in the episode it stops for one step, then walks on (0.5 m behind).
    free0 = np.array([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [1.5, 0.0]])
    act0 = np.array([[0.0, 0.0], [0.5, 0.0], [0.5, 0.0], [1.0, 0.0]])
    # Pedestrian 1 stands still in both runs, but is pushed 0.3 m sideways at the last step.
    free1 = np.zeros((4, 2))
    act1 = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.3]])
    out = ev.interaction_intensity(np.stack([act0, act1], 1), np.stack([free0, free1], 1), dt)
    np.testing.assert_allclose(out["deviation"], [0.5, 0.3])
    # Ped 0: free speed 1 m/s on all 3 steps; actual 1, 0, 1 -> deficits 0, 1, 0 -> mean 1/3.
    # Ped 1: the free walk never moves -> no step counts -> 0.
    np.testing.assert_allclose(out["speed_deficit"], [1 / 3, 0.0])
    # Faster than the free walk is no deficit (clipped at 0).
    fast = ev.interaction_intensity(np.stack([free0 * 2], 1), np.stack([free0], 1), dt)
    np.testing.assert_allclose(fast["speed_deficit"], [0.0])
    np.testing.assert_allclose(fast["deviation"], [1.5])
    with pytest.raises(ValueError, match=r"\[S\+1, N, 2\]"):
        ev.interaction_intensity(np.zeros((3, 1, 2)), np.zeros((4, 1, 2)), dt)


def test_attack_success_cases():
    assert ev.attack_success(0.4, 0.9, 0.5) is True
    assert ev.attack_success(0.6, 0.9, 0.5) is False
    assert ev.attack_success(0.5, 0.9, 0.5) is False  # on the radius is not inside
    assert ev.attack_success(0.1, 0.45, 0.5) is None  # nominal already inside: cannot count


def test_dynamics_violations_against_limits():
    steps = np.arange(1, 9)[:, None] * np.array([1.0, 0.0])
    slow = steps * 0.05  # 0.2 m/s at dt 0.25: within 0.3 m/s
    fast = steps * 0.1  # 0.4 m/s: too fast
    turn = np.cumsum(np.array([[0.05 * math.cos(a), 0.05 * math.sin(a)] for a in np.arange(8) * 0.5]), 0)
    # 0.5 rad per 0.25 s step = 2 rad/s turn rate > 0.6 rad/s
    out = ev.dynamics_violations(np.stack([slow, fast, turn]), dt=0.25)
    assert out.tolist() == [False, True, True]
    assert ev.dynamics_violations(np.zeros((0, 8, 2)), 0.25).shape == (0,)
    # the limits follow the world's robot: NoMaD's (the default) and one twice as fast and agile
    assert ev.dynamics_limits(RobotConfig()) == ev.DYNAMICS_LIMITS == {
        "max_speed": 0.3, "max_accel": 0.5, "max_turn_rate": 0.6,
    }  # fmt: skip
    fast_robot = ev.dynamics_limits(RobotConfig(max_v=0.4, max_w=0.8))
    assert fast_robot == {"max_speed": 0.6, "max_accel": 1.0, "max_turn_rate": 1.2}
    assert ev.dynamics_violations(np.stack([slow, fast, turn]), 0.25, fast_robot).tolist() == [
        False,
        False,
        True,
    ]


def _row(method, **kw):
    row = {
        "method": method,
        "goal_reached": False,
        "success": False,
        "static_collision": False,
        "pedestrian_collision": False,
        "target_min_distance": 1.0,
        "attack_success": None,
        "interaction_deviation": 0.0,
        "interaction_speed_deficit": 0.0,
        "z1_loglik": None,
        "z2_loglik": None,
        "dynamics_violation_rate": None,
        "steps": 10,
        "seconds": 1.0,
    }
    row.update(kw)
    return row


def test_aggregate_hand_computed():
    rows = [
        _row("adam", goal_reached=True, success=True, steps=40, target_min_distance=0.3, attack_success=True,
             interaction_deviation=0.2, z1_loglik=-3.0, z2_loglik=1.0, dynamics_violation_rate=0.5, seconds=2.0),
        _row("adam", pedestrian_collision=True, steps=99, target_min_distance=0.7, attack_success=False,
             interaction_deviation=0.4, z1_loglik=-5.0, z2_loglik=3.0, dynamics_violation_rate=0.0, seconds=4.0),
        _row("adam", goal_reached=True, static_collision=True, steps=60, target_min_distance=0.2,
             attack_success=None, seconds=6.0),
        _row("nomad", steps=12),
    ]  # fmt: skip
    summary = ev.aggregate(rows)
    assert list(summary) == ["nomad", "adam"]  # METHODS order
    a = summary["adam"]
    assert a["episodes"] == 3
    assert a["goal_rate"] == pytest.approx(2 / 3)
    assert a["success_rate"] == pytest.approx(1 / 3)
    assert a["static_collision_rate"] == pytest.approx(1 / 3)
    assert a["pedestrian_collision_rate"] == pytest.approx(1 / 3)
    assert a["target_min_distance"] == pytest.approx(0.4)
    assert a["attack_success_rate"] == pytest.approx(0.5) and a["attack_eligible"] == 2
    assert a["attack_success_count"] == 1
    assert a["interaction_deviation"] == pytest.approx(0.2)
    assert a["z1_loglik"] == pytest.approx(-4.0) and a["z2_loglik"] == pytest.approx(2.0)
    assert a["dynamics_violation_rate"] == pytest.approx(0.25)
    assert a["steps_to_goal"] == pytest.approx(50.0)  # reached episodes only
    assert a["seconds_per_scenario"] == pytest.approx(4.0)
    n = summary["nomad"]
    assert n["attack_success_rate"] is None and n["steps_to_goal"] is None and n["z1_loglik"] is None


def test_markdown_table_and_json_writer(tmp_path):
    summary = ev.aggregate(
        [_row("nomad", goal_reached=True, steps=30), _row("adam", target_min_distance=0.25)]
    )
    table = ev.markdown_table(summary)
    lines = table.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("| method | n | goal |") and lines[1].startswith("|---|")
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:3] == ["nomad", "1", "100%"]
    assert len(cells) == 1 + len(ev.TABLE_COLUMNS)
    adam = [c.strip() for c in lines[3].strip("|").split("|")]
    assert adam[6] == "0.25"  # target min-dist column
    assert adam[7] == "–"  # no eligible scene for attack success
    path = ev.write_json(
        tmp_path / "sub" / "m.json",
        {"a": np.float32(0.5), "b": [np.int64(3), float("nan")], "c": np.array([True])},
    )
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [3, None], "c": [True]}


def test_trajectory_spread_hand_computed():
    a = np.zeros((8, 2))
    b = np.zeros((8, 2))
    b[:, 1] = 1.0
    out = ev.trajectory_spread(np.stack([a, b]))
    assert out["pairwise"] == pytest.approx(1.0) and out["endpoint"] == pytest.approx(0.5)
    assert ev.trajectory_spread(a[None]) == {"pairwise": 0.0, "endpoint": 0.0}


def test_executable_on_a_scripted_map():
    # Occupied for x >= 0.5 m (cells every 0.1 m from -1 to 1 in x and y).
    xs = -1.0 + 0.1 * np.arange(21)
    occ = np.tile((xs >= 0.5 - 1e-9).astype(np.float32), (21, 1))  # rows: y, columns: x
    grid = GridMap(torch.from_numpy(occ)[None], origin=(-1.0, -1.0), resolution=0.1)
    t = torch.arange(1, 9, dtype=torch.float32)[:, None]
    short = torch.cat([t * 0.04, torch.zeros_like(t)], 1)  # ends at 0.32 m, 0.16 m/s
    long = torch.cat([t * 0.1, torch.zeros_like(t)], 1)  # ends at 0.8 m, 0.4 m/s
    free, dyn = ev.executable(torch.stack([short, long]), grid, torch.zeros(2, dtype=torch.long), dt=0.25)
    assert free.tolist() == [True, False]
    assert dyn.tolist() == [True, False]


# ------------------------------------------------------------------------------------------------ scene helpers
def test_reference_from_plan_straight_and_rotated():
    path = np.array([[0.0, 0.0], [10.0, 0.0]])
    ref = ev.reference_from_plan(path, np.array([1.0, 0.0, 0.0]), 4, 0.5, 2)
    np.testing.assert_allclose(ref, [[1, 0], [2, 0], [3, 0], [4, 0]], atol=1e-12)
    # Robot facing +y: the path ahead (+x world) is to its right (-y robot frame); heading -90 deg relative.
    ref4 = ev.reference_from_plan(path, np.array([1.0, 0.0, math.pi / 2]), 2, 0.5, 4)
    np.testing.assert_allclose(ref4, [[0, -1, 0, -1], [0, -2, 0, -1]], atol=1e-12)
    # Past the end: the goal repeats.
    end = ev.reference_from_plan(path, np.array([9.8, 0.0, 0.0]), 3, 0.5, 2)
    np.testing.assert_allclose(end[:, 0], [0.4, 0.4, 0.4], atol=1e-12)
    with pytest.raises(ValueError, match="ref_dim"):
        ev.reference_from_plan(path, np.zeros(3), 2, 0.5, 3)


def test_evaluation_scenes_are_held_out_and_have_pedestrians():
    scenes = ev.evaluation_scenes(3, seed=1)
    assert [s.seed for s in scenes] == sorted({s.seed for s in scenes})
    assert all(s.num_pedestrians > 0 for s in scenes)
    assert all(ev.EVAL_SEED_BASE + 1000 <= s.seed < ev.EVAL_SEED_BASE + 2000 for s in scenes)


def test_crossing_scenario_draws_the_same_seeds_with_a_crosser_in_every_scene():
    mixed = ev.evaluation_scenes(6, seed=2)
    crossing = ev.evaluation_scenes(6, seed=2, scenario="crossing")
    assert all(s.crossing.any() for s in crossing)
    assert all(s.config.scene.crossing_probability == 1.0 for s in crossing)
    assert np.mean([s.crossing.mean() for s in crossing]) > np.mean([s.crossing.mean() for s in mixed])
    # same seed formula: a scene drawn in both sets has the same room, start and goal (only pedestrians differ)
    by_seed = {s.seed: s for s in mixed}
    shared = [s for s in crossing if s.seed in by_seed]
    assert shared
    for s in shared:
        np.testing.assert_array_equal(s.start, by_seed[s.seed].start)
        np.testing.assert_array_equal(s.path, by_seed[s.seed].path)
    # prefix-stable: evaluate_scene draws index + 1 scenes and takes the last
    assert ev.evaluation_scenes(4, seed=2, scenario="crossing")[3].seed == crossing[3].seed
    with pytest.raises(ValueError, match="scenario must be one of"):
        ev.evaluation_scenes(1, scenario="crossings")
    with pytest.raises(ValueError, match="scenario must be one of .* got 'x'"):
        ev.EvalConfig(scenario="x")


def test_free_walk_ignores_the_robot_and_target_is_closest_to_the_plan():
    scene = ev.evaluation_scenes(1)[0]
    free = ev.free_walk(scene, 30)
    assert free.shape == (31, scene.num_pedestrians, 2)
    # Drive a robot straight through the room with robot_strength = 0: pedestrians do exactly the free walk.
    cfg = scene.config
    import dataclasses

    quiet = dataclasses.replace(
        scene, config=cfg.replace(pedestrians=cfg.pedestrians.replace(robot_strength=0.0))
    )
    world = World(quiet)
    walked = [world.ped_positions]
    for _ in range(30):
        world.step(0.2, 0.3)
        walked.append(world.ped_positions)
    np.testing.assert_array_equal(np.array(walked), free)
    # With the default (reacting) pedestrians and the same robot motion, the walk differs somewhere or not at all,
    # but never without the robot: free_walk is independent of the robot by construction (checked above).
    target = ev.target_pedestrian(scene, free)
    dists = [
        min(np.linalg.norm(p - q) for p in free[:, k] for q in scene.path)
        for k in range(scene.num_pedestrians)
    ]
    assert target == int(np.argmin(dists))


def test_pedestrian_tracker_matches_predict_agents_at():
    scene = ev.evaluation_scenes(1)[0]
    run = run_expert(scene, max_steps=25)
    tracker = ev.PedestrianTracker(scene)
    for t in (0, 5, 6, 20):
        tracker.sync(list(run.poses[: t + 1]), list(run.agents[: t + 1]))
        np.testing.assert_array_equal(tracker.predict(4), predict_agents_at(scene, run.poses[: t + 1], 4))
    with pytest.raises(RuntimeError, match="diverged"):
        tracker.sync(list(run.poses[:22]), list(run.agents[:21]) + [run.agents[21] + 1.0])


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    cfg = preset_training_config("tiny")
    model = TwoStageIntentModel(cfg.model, cfg.intent, cfg.scheduler).eval()
    torch.nn.init.normal_(
        model.z_proj.weight, std=0.5
    )  # give the latent an effect (zero-initialised otherwise)
    z = cfg.model.z_dim
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, scheduler_config=cfg.scheduler,
                    extra={"z2_stats": {"mean": torch.zeros(z), "cov": torch.eye(z), "count": 10}})  # fmt: skip
    return path


def test_closed_loop_evaluation_writes_table_json_and_plots(tiny_ckpt, tmp_path):
    loaded = load_inference_model(tiny_ckpt)
    assert loaded.is_intent and loaded.z2_stats is not None and loaded.ref_horizon == 16
    config = ev.EvalConfig(
        scenes=1, methods=("expert", "nomad", "reference", "adam", "guided"), min_steps=6, max_episode_steps=6,
        replan_every=4, opt_steps=2, draws=2, metric_scale=0.04, max_plots=1, task="goal-image",
    )  # fmt: skip
    result = ev.evaluate(loaded, config, tmp_path, progress=False)
    report = result.to_json()
    assert result.is_report and report["summary"] is result.summary and report["plots"] == result.plots
    assert set(report["summary"]) == set(config.methods)
    rows = report["episodes"]
    assert len(rows) == 5
    by = {r["method"]: r for r in rows}
    assert all(r["steps"] <= 6 for r in rows)
    assert by["adam"]["reoptimisations"] == 2 and by["guided"]["reoptimisations"] == 2  # steps 0 and 4
    assert by["nomad"]["z1_loglik"] is None and by["reference"]["z2_loglik"] is not None
    assert by["reference"]["attack_success"] in (False, None)  # the nominal never beats itself
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["summary"]["adam"]["episodes"] == 1 and saved["metric_scale"] == pytest.approx(0.04)
    assert list(saved) == list(report)  # metrics.json is to_json(), key order included
    assert (tmp_path / "results.md").read_text().count("\n| ") >= 6
    assert (tmp_path / f"closed_loop_{report['scenes'][0]['seed']}.png").stat().st_size > 10_000
    assert (tmp_path / "summary.png").is_file()


def test_closed_loop_noise_methods_hold_their_optimised_noise(tiny_ckpt):
    """``noise`` / ``z2+noise`` re-optimise at steps 0 and 4 and execute the HELD best draw in between (the
    executed noise's log-likelihood stays constant between re-optimisations), unlike ``reference`` (fresh noise
    every step); ``noise`` also runs on a plain NoMaD policy (z = 0)."""
    from navintent.objectives import noise_nll

    loaded = load_inference_model(tiny_ckpt)
    scene = ev.evaluation_scenes(1)[0]
    free = ev.free_walk(scene, 400)
    target = ev.target_pedestrian(scene, free)
    config = ev.EvalConfig(
        scenes=1, replan_every=4, opt_steps=2, draws=2, metric_scale=0.04, noise_lr=0.2, task="goal-image"
    )
    common = dict(config=config, metric_scale=0.04, max_steps=6, free=free, target=target, budget_s=0.0)
    ref_ep, ref_policy = ev.run_episode(loaded, "reference", scene, **common)
    assert len(set(ref_policy.noise_loglik)) == len(ref_policy.noise_loglik) == 6  # fresh noise every step
    for method in ("noise", "z2+noise"):
        ep, policy = ev.run_episode(loaded, method, scene, **common)
        assert ep.row["steps"] == 6 and policy.reoptimisations == 2
        ll = policy.noise_loglik
        assert len(ll) == 6 and len(set(ll[:4])) == 1 and len(set(ll[4:])) == 1 and ll[0] != ll[4]
        vec = policy.sampler.noise_vector(policy.noise_exec, "all")
        assert ll[-1] == pytest.approx(-float(noise_nll(vec)[0]), rel=1e-6)
        assert policy.noise_star.x_T.shape == (2, 8, 2) and policy.noise_exec.x_T.shape == (1, 8, 2)
        assert ep.row["noise_loglik"] == pytest.approx(float(np.mean(ll)))
        assert ep.row["z2_loglik"] is not None
    # a plain NoMaD checkpoint: `noise` needs no encoders (z = 0), `z2+noise` does
    cfg = preset_training_config("tiny")
    plain = LoadedModel(NoMaDPolicy(cfg.model).eval(), None, 1, 16, "plain")
    assert ev.resolve_methods(("nomad", "noise"), plain, explicit=True) == ("nomad", "noise")
    with pytest.raises(ValueError, match=r"\['z2\+noise'\]"):
        ev.resolve_methods(("noise", "z2+noise"), plain, explicit=True)
    ep, policy = ev.run_episode(plain, "noise", scene, **{**common, "max_steps": 2})
    assert policy.reoptimisations == 1 and ep.row["z2_loglik"] is None and len(policy.noise_loglik) == 2
    summary = ev.aggregate([ref_ep.row, ep.row])
    assert summary["noise"]["noise_loglik"] == pytest.approx(ep.row["noise_loglik"])
    assert "noise log-lik" in ev.markdown_table(summary)


def test_hold_offset_and_engage_distance(tiny_ckpt):
    """``hold: z2`` executes the optimised z2 unchanged for ``replan_every`` steps (its log-likelihood constant);
    ``hold: offset`` executes each step's Encoder2 z2 plus the offset (the same z2 at the re-optimising step,
    then moving with the observation). An objective with ``deviation`` gets the nominal plan (the mean plan of
    Encoder2's z2 over the draws). With no target in ``engage_distance`` nothing is re-optimised and the episode
    is the nominal one."""
    loaded = load_inference_model(tiny_ckpt)
    scene = ev.evaluation_scenes(1)[0]
    free = ev.free_walk(scene, 400)
    target = ev.target_pedestrian(scene, free)
    runs = {}
    for hold in ("z2", "offset"):
        config = ev.EvalConfig(
            scenes=1, replan_every=4, opt_steps=2, draws=2, metric_scale=0.04, task="goal-image", hold=hold,
            objective="softmin_dist:1.0,deviation:1.0",
        )  # fmt: skip
        _, policy = ev.run_episode(loaded, "adam", scene, config=config, metric_scale=0.04, max_steps=6,
                                   free=free, target=target, budget_s=0.0)  # fmt: skip
        assert policy.reoptimisations == 2
        runs[hold] = policy.z2_loglik
    held, offset = runs["z2"], runs["offset"]
    assert len(set(held[:4])) == 1 and len(set(held[4:])) == 1
    assert offset[0] == held[0] and len(set(offset[:4])) > 1
    with pytest.raises(ValueError, match="hold must be one of"):
        ev.EvalConfig(hold="latest")
    # a target never within engage_distance of the plan: no re-optimisation, the nominal latent is driven
    config = ev.EvalConfig(scenes=1, replan_every=4, opt_steps=2, draws=2, metric_scale=0.04, task="goal-image",
                           hold="offset", engage_distance=1e-9)  # fmt: skip
    common = dict(config=config, metric_scale=0.04, max_steps=6, free=free, target=target, budget_s=0.0)
    ep, policy = ev.run_episode(loaded, "adam", scene, **common)
    _, nominal = ev.run_episode(loaded, "reference", scene, **common)
    assert (policy.reoptimisations, policy.skipped_reoptimisations) == (0, 2)
    assert ep.row["skipped_reoptimisations"] == 2 and ep.row["optimisation_seconds"] is None
    assert not policy.z2_offset.any()  # Encoder2's z2 of every step is driven as it is
    _, guided = ev.run_episode(loaded, "guided", scene, **common)
    assert (guided.reoptimisations, guided.skipped_reoptimisations) == (0, 2) and not guided.guide_scale.any()
    # common random numbers: the engagement checks draw from the search stream, so a method that never engages
    # drives the nominal episode exactly (same executed noise every step), whatever it holds when engaged
    _, held = ev.run_episode(loaded, "adam", scene, **{**common, "config": config.replace(hold="z2")})
    assert policy.z2_loglik == nominal.z2_loglik == held.z2_loglik and len(policy.plans) == 6
    for steered, kept, plain in zip(policy.plans, held.plans, nominal.plans, strict=True):
        np.testing.assert_array_equal(steered, plain)
        np.testing.assert_array_equal(kept, plain)
    for guided_plan, plain in zip(guided.plans, nominal.plans, strict=True):  # scale 0, another code path
        np.testing.assert_allclose(guided_plan, plain, atol=1e-5)
    with pytest.raises(ValueError, match="engage_distance"):
        ev.EvalConfig(engage_distance=-1.0)


def test_noise_methods_engage_and_hold_like_the_z2_searches(tiny_ckpt):
    """``noise`` / ``z2+noise`` honour ``engage_distance`` (no target within reach: no search, fresh noise from the
    executed stream and Encoder2's z2, so the episode is the nominal one exactly) and ``z2+noise`` honours ``hold``
    (``z2``: the optimised z2 held; ``offset``: each step's Encoder2 z2 plus the optimised offset)."""
    loaded = load_inference_model(tiny_ckpt)
    scene = ev.evaluation_scenes(1)[0]
    free = ev.free_walk(scene, 400)
    target = ev.target_pedestrian(scene, free)
    config = ev.EvalConfig(scenes=1, replan_every=4, opt_steps=2, draws=2, metric_scale=0.04, task="goal-image",
                           hold="offset", engage_distance=1e-9)  # fmt: skip
    common = dict(config=config, metric_scale=0.04, max_steps=6, free=free, target=target, budget_s=0.0)
    _, nominal = ev.run_episode(loaded, "reference", scene, **common)
    for method in ("noise", "z2+noise"):
        ep, policy = ev.run_episode(loaded, method, scene, **common)
        assert (policy.reoptimisations, policy.skipped_reoptimisations) == (0, 2), method
        assert ep.row["optimisation_seconds"] is None and policy.noise_exec is None
        assert policy.noise_loglik == nominal.noise_loglik and policy.z2_loglik == nominal.z2_loglik
        for steered, plain in zip(policy.plans, nominal.plans, strict=True):
            np.testing.assert_array_equal(steered, plain)

    # engaged at step 0, out of reach at step 4: from then on fresh noise, the nominal episode's at the same step
    class OutOfReachAtStep4(ev.ClosedLoopPolicy):
        def target_in_reach(self, adapter):
            return len(self.poses) == 1

    for method in ("noise", "z2+noise"):
        kwargs = dict(config=config, metric_scale=0.04, target=target, seed=0, budget_s=0.0)
        policy = OutOfReachAtStep4(loaded, method, scene, **kwargs)
        rollout(policy, scene, 8, context_size=loaded.model.config.context_size)
        plain = ev.ClosedLoopPolicy(loaded, "reference", scene, **kwargs)
        rollout(plain, scene, 8, context_size=loaded.model.config.context_size)
        assert (policy.reoptimisations, policy.skipped_reoptimisations) == (1, 1)
        assert len(set(policy.noise_loglik[:4])) == 1  # the held best draw
        assert policy.noise_loglik[4:] == plain.noise_loglik[4:] != plain.noise_loglik[:4]
    runs = {}
    for hold in ("z2", "offset"):
        engaged = config.replace(hold=hold, engage_distance=0.0)
        _, policy = ev.run_episode(loaded, "z2+noise", scene, **{**common, "config": engaged})
        assert (policy.reoptimisations, policy.skipped_reoptimisations) == (2, 0)
        runs[hold] = policy.z2_loglik
    held, offset = runs["z2"], runs["offset"]
    assert len(set(held[:4])) == 1 and len(set(held[4:])) == 1
    assert offset[0] == held[0] and len(set(offset[:4])) > 1


def test_settings_no_method_or_task_reads_are_named(tiny_ckpt, tmp_path, caplog, capsys):
    """A setting away from its default that no method of the run (or not its task) reads is reported, with the
    value and who reads it: logged by ``evaluate`` in EvalConfig's words, by ``navintent evaluate`` in its flags'
    words; defaults and settings a method of the run reads are not. The target pedestrian does not depend on the
    episode length settings (the warning's "no effect" holds)."""
    from navintent.evaluation.closed_loop import evaluate_scene
    from navintent.evaluation.config import inactive_settings

    assert inactive_settings(ev.EvalConfig()) == []
    config = ev.EvalConfig(
        methods=("nomad", "reference"), prediction="reactive", hold="offset", engage_distance=0.5,
        noise_lr=0.1, task="goal-image", stop_when_closest=True, explore_steps=500,
    )  # fmt: skip
    notes = inactive_settings(config)
    assert [note.split(" = ")[0] for note in notes] == [
        "hold", "engage_distance", "prediction", "noise_lr", "stop_when_closest", "explore_steps",
    ]  # fmt: skip
    assert notes[2] == (
        "prediction = 'reactive' has no effect: only adam, best_of_n, cem, guided, noise, z2+noise read it, this "
        "run has ['nomad', 'reference']"
    )
    assert notes[-1] == (
        "explore_steps = 500 has no effect: only the explore task reads it, this run's task is 'goal-image'"
    )
    # a method that reads a setting silences it: hold is read by the z2 searches and z2+noise, not guided / noise
    names = lambda cfg, methods: [n.split(" = ")[0] for n in inactive_settings(cfg, methods)]  # noqa: E731
    assert names(config, ("reference", "guided")) == [
        "hold",
        "noise_lr",
        "stop_when_closest",
        "explore_steps",
    ]
    assert names(config, ("z2+noise",)) == ["stop_when_closest", "explore_steps"]
    # only Adam runs opt_steps (and its time budgets the others); only the others read budget_s; lr: adam, z2+noise
    tuned = ev.EvalConfig(opt_steps=50, lr=0.2, budget_s=2.0, lambda_cfg=1.0)
    assert names(tuned, ("reference", "cem")) == ["opt_steps", "lr"]
    assert names(tuned, ("reference", "adam")) == ["budget_s"]
    assert names(tuned, ("z2+noise",)) == ["opt_steps"]
    assert names(tuned, ("nomad",)) == ["opt_steps", "lr", "budget_s", "lambda_cfg"]
    assert names(ev.EvalConfig(task="explore", max_episode_steps=100, stop_when_closest=True), None) == [
        "stop_when_closest", "max_episode_steps",
    ]  # fmt: skip
    # the target is chosen over the same free walk whatever explore_steps / the episode length
    loaded = load_inference_model(tiny_ckpt)
    short = ev.EvalConfig(scenes=1, methods=("reference",), task="goal-image", min_steps=2, max_episode_steps=2,
                          metric_scale=0.04, max_plots=0)  # fmt: skip
    base = evaluate_scene(loaded, short, ("reference",), 0.04, 0)
    longer = evaluate_scene(loaded, short.replace(explore_steps=500), ("reference",), 0.04, 0)
    assert longer.target == base.target and longer.free.shape[0] == base.free.shape[0] == 401
    explore = evaluate_scene(
        loaded, short.replace(task="explore", explore_steps=450), ("reference",), 0.04, 0
    )
    assert explore.target == base.target and explore.free.shape[0] == 451
    # evaluate logs them; navintent evaluate says them with its flags
    with caplog.at_level("WARNING", logger="navintent"):
        ev.evaluate(loaded, short.replace(prediction="nominal"), tmp_path / "a", plots=False, progress=False)
        assert [r.getMessage() for r in caplog.records] == [
            "evaluate: warning: prediction = 'nominal' has no effect: only adam, best_of_n, cem, guided, noise, "
            "z2+noise read it, this run has ['reference']"
        ]
        caplog.clear()
        main(["evaluate", "--ckpt", str(tiny_ckpt), "--methods", "reference", "--task", "goal-image", "--scenes",
              "1", "--max-episode-steps", "2", "--budget", "2", "--metric-scale", "0.04", "--workers", "1",
              "--no-plots", "--no-progress", "--out-dir", str(tmp_path / "b")])  # fmt: skip
        assert [r.getMessage() for r in caplog.records] == [
            "navintent evaluate: warning: --budget = 2.0 has no effect: only best_of_n, cem, guided, noise, "
            "z2+noise read it, this run has ['reference']"
        ]


def test_prediction_nominal_aims_at_the_target_reacting_to_the_nominal_plan(tiny_ckpt):
    """``prediction: nominal``: the target's future is predicted with the robot driving the nominal plan (a plan
    that stays put gives the held-still prediction exactly), and the searches' objective aims at it."""
    loaded = load_inference_model(tiny_ckpt)
    scene = ev.evaluation_scenes(1, scenario="crossing")[0]
    free = ev.free_walk(scene, 400)
    target = ev.target_pedestrian(scene, free)
    config = ev.EvalConfig(scenes=1, replan_every=4, opt_steps=1, draws=2, metric_scale=0.04, task="goal-image",
                           prediction="nominal")  # fmt: skip
    seen = []

    class Spy(ev.ClosedLoopPolicy):
        def adapter(self, obs, goal, ref, z1):
            adapter = super().adapter(obs, goal, ref, z1)
            seen.append((adapter, self.target_future(), self.target_future(adapter.context.nominal[0])))
            return adapter

    policy = Spy(loaded, "adam", scene, config=config, metric_scale=0.04, target=target, seed=0, budget_s=0.0)
    rollout(policy, scene, 5, context_size=loaded.model.config.context_size)
    zero = torch.zeros(loaded.model.config.len_traj_pred, 2)  # a plan that stays put: the robot held still
    torch.testing.assert_close(policy.target_future(), policy.target_future(zero), rtol=0, atol=0)
    assert len(seen) == 2  # steps 0 and 4
    for adapter, _held, along in seen:
        torch.testing.assert_close(adapter.context.agents, along, rtol=0, atol=0)
        torch.testing.assert_close(adapter.scenarios.agents, along, rtol=0, atol=0)
    assert any(not torch.equal(held, along) for _, held, along in seen)
    with pytest.raises(ValueError, match="prediction must be one of"):
        ev.EvalConfig(prediction="oracle")


def test_prediction_reactive_linearises_the_targets_reaction_to_the_plan(tiny_ckpt, monkeypatch):
    """``prediction: reactive``: the target's Jacobian w.r.t. the plan is causal, predicts the social-force
    model's answer to a moved plan to first order, and reaches the searches' objective (at the nominal plan)."""
    loaded = load_inference_model(tiny_ckpt)
    scene = ev.evaluation_scenes(1, scenario="crossing")[0]
    target = ev.target_pedestrian(scene, ev.free_walk(scene, 400))
    config = ev.EvalConfig(scenes=1, replan_every=4, opt_steps=1, draws=2, metric_scale=0.04, task="goal-image",
                           prediction="reactive")  # fmt: skip
    policy = ev.ClosedLoopPolicy(
        loaded, "adam", scene, config=config, metric_scale=0.04, target=target, seed=0, budget_s=0.0
    )
    # the robot 0.8 m from the target's start, facing it (step 0: the pedestrians have not moved yet)
    world = World(scene)
    start = world.ped_positions[target]
    policy.poses, policy.peds = [np.array([start[0] - 0.8, start[1], 0.0])], [world.ped_positions.copy()]
    horizon = loaded.model.config.len_traj_pred
    plan = torch.stack([torch.linspace(0.05, 0.4, horizon), torch.zeros(horizon)], 1)  # driving at it
    jac = policy.target_response(plan)
    assert jac.shape == (1, horizon, 1, 2, horizon, 2)
    for t in range(horizon):  # causal: the target at waypoint t does not see later waypoints
        assert bool((jac[0, t, 0, :, t + 1 :] == 0).all())
    assert float(jac.abs().max()) > 0.05  # it reacts to a robot this close
    delta = torch.zeros(horizon, 2)
    delta[2, 1], delta[3, 0] = 0.03, 0.03
    before, after = policy.target_future(plan)[0, :, 0], policy.target_future(plan + delta)[0, :, 0]
    linear = before + torch.einsum("tdsj,sj->td", jac[0, :, 0], delta)
    change, error = float((after - before).abs().max()), float((after - linear).abs().max())
    assert change > 3e-4 and error < 0.3 * change, (change, error)  # most of the reaction, to first order
    # one column by hand: the central difference of the prediction itself
    h = RESPONSE_STEP_M
    step = torch.zeros(horizon, 2)
    step[2, 1] = h
    by_hand = (policy.target_future(plan + step) - policy.target_future(plan - step))[0, :, 0] / (2 * h)
    torch.testing.assert_close(jac[0, 2:, 0, :, 2, 1], by_hand[2:], rtol=0, atol=1e-4)
    assert bool((by_hand[:2] == 0).all())  # the prediction before waypoint 2 does not see it at all

    seen = []

    class Spy(ev.ClosedLoopPolicy):
        def reoptimise(self, adapter, strategy):
            super().reoptimise(adapter, strategy)
            seen.append(adapter.context)

    policy = Spy(loaded, "adam", scene, config=config, metric_scale=0.04, target=target, seed=0, budget_s=0.0)
    rollout(policy, scene, 5, context_size=loaded.model.config.context_size)
    assert len(seen) == 2  # steps 0 and 4, both with the target's reaction at that step's nominal plan
    for ctx in seen:
        assert ctx.agents_jacobian.shape == (1, horizon, 1, 2, horizon, 2)
        assert ctx.nominal.shape == (1, horizon, 2)
    # the re-optimisation's clock (Adam's time budgets the baselines) does not run while the reaction is computed
    clock = [0.0]

    class FakeTime:
        @staticmethod
        def perf_counter():
            return clock[0]

    class SlowReaction(ev.ClosedLoopPolicy):
        def target_response(self, plan, step_m=RESPONSE_STEP_M):
            clock[0] += 100.0
            return super().target_response(plan, step_m)

    monkeypatch.setattr(ev.policy, "time", FakeTime)
    policy = SlowReaction(
        loaded, "adam", scene, config=config, metric_scale=0.04, target=target, seed=0, budget_s=0.0
    )
    rollout(policy, scene, 1, context_size=loaded.model.config.context_size)
    assert clock[0] == 100.0 and policy.optimisation_seconds == [0.0]
    nominal = ev.EvalConfig(scenes=1, replan_every=4, opt_steps=1, draws=2, metric_scale=0.04, task="goal-image",
                            prediction="nominal")  # fmt: skip
    seen.clear()
    policy = Spy(
        loaded, "adam", scene, config=nominal, metric_scale=0.04, target=target, seed=0, budget_s=0.0
    )
    rollout(policy, scene, 1, context_size=loaded.model.config.context_size)
    assert len(seen) == 1 and seen[0].agents_jacobian is None


def test_every_method_runs_in_the_navigate_and_explore_tasks(tiny_ckpt, tmp_path):
    """The deployment tasks end to end on a tiny model: a map recorded by the expert, every method driven through
    NoMaD's topological-map loop (localisation each tick) and goal-masked exploration, with the tasks' metrics."""
    loaded = load_inference_model(tiny_ckpt)
    common = dict(
        scenes=1, min_steps=3, max_episode_steps=3, explore_steps=3, replan_every=2, opt_steps=1, draws=1,
        metric_scale=0.04, max_plots=0, budget_s=0.05,
    )  # fmt: skip
    nav = ev.evaluate(
        loaded, ev.EvalConfig(**common, task="navigate"), tmp_path / "nav", plots=False, progress=False
    ).to_json()
    assert set(nav["summary"]) == set(ev.METHODS)
    for row in nav["episodes"]:
        if row["method"] == "expert":
            continue
        assert row["steps"] <= 3 and row["localisation_consistency"] is not None, row["method"]
        assert (
            row["replan_ms_median"] > 0 and row["spl"] == 0.0 and not row["goal_reached"]
        )  # 3 steps: not there
    assert "SPL" in nav["table"] and "loc. consistent" in nav["table"]
    # map_every 0: a node every 4 x the checkpoint's waypoint spacing frames, stated in the report's config
    assert nav["config"]["map_every"] == 4 * loaded.waypoint_spacing
    assert "task `navigate`" in (tmp_path / "nav" / "results.md").read_text()
    exp = ev.evaluate(
        loaded, ev.EvalConfig(**common, task="explore"), tmp_path / "exp", plots=False, progress=False
    ).to_json()
    for row in exp["episodes"]:
        if row["method"] != "expert":
            assert row["steps"] == 3 and row["coverage_m2"] >= 0.25 and row["static_collisions"] >= 0
    assert "coverage (m2)" in exp["table"]
    with pytest.raises(ValueError, match="task must be one of"):
        ev.EvalConfig(task="teleport")


def test_only_the_goal_image_task_ends_when_the_robot_reaches_the_goal(tiny_ckpt, monkeypatch):
    """Exploration runs its explore_steps and navigation ends on the navigator's declaration: neither is cut
    short by the world when the robot passes the scene's goal (the goal-image task is)."""
    from navintent.evaluation import closed_loop

    seen = {}
    real = closed_loop.rollout

    def spy(*args, **kwargs):
        seen[task] = kwargs["stop_at_goal"]
        return real(*args, **kwargs)

    monkeypatch.setattr(closed_loop, "rollout", spy)
    loaded = load_inference_model(tiny_ckpt)
    for task in ("explore", "goal-image"):
        config = ev.EvalConfig(scenes=1, task=task, explore_steps=2, metric_scale=0.04)
        scene = ev.evaluation_scenes(1)[0]
        free = ev.free_walk(scene, 400)
        ev.run_episode(loaded, "nomad", scene, config=config, metric_scale=0.04, max_steps=2, free=free,
                       target=ev.target_pedestrian(scene, free))  # fmt: skip
    assert seen == {"explore": False, "goal-image": True}


def test_stop_when_closest_reaches_the_navigator_of_every_episode(tiny_ckpt, tmp_path, monkeypatch):
    """EvalConfig.stop_when_closest is handed to the topological-map navigator (NoMaD's goal rule), off by default."""
    from navintent.evaluation import closed_loop

    seen = []

    class Spy(closed_loop.TopomapNavigator):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs.get("stop_when_closest"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(closed_loop, "TopomapNavigator", Spy)
    loaded = load_inference_model(tiny_ckpt)
    common = dict(
        scenes=1, min_steps=2, max_episode_steps=2, metric_scale=0.04, max_plots=0, methods=("nomad",)
    )
    for flag in (True, False):
        ev.evaluate(loaded, ev.EvalConfig(**common, stop_when_closest=flag), tmp_path / str(flag), plots=False,
                    progress=False)  # fmt: skip
    assert seen == [True, False]
    with pytest.raises(ValueError, match="stop_when_closest must be true or false, got 'yes'"):
        ev.EvalConfig(stop_when_closest="yes")


def test_map_node_gap_follows_the_waypoint_spacing():
    from navintent.evaluation.config import map_every_frames

    assert map_every_frames(ev.EvalConfig(), 1) == 4  # NoMaD: a node every 4 frames at spacing 1
    assert map_every_frames(ev.EvalConfig(), 4) == 16
    assert map_every_frames(ev.EvalConfig(map_every=6), 4) == 6
    with pytest.raises(ValueError, match="map_every must be"):
        ev.EvalConfig(map_every=-1)


def test_results_do_not_depend_on_the_worker_count(tiny_ckpt, tmp_path):
    """Two scenes in one process and in two spawned workers give the same rows (methods without a wall-clock
    budget), and the report carries the closed_loop block with bootstrap intervals and the paired comparisons."""
    loaded = load_inference_model(tiny_ckpt)
    config = ev.EvalConfig(
        scenes=2, methods=("nomad", "reference", "adam"), min_steps=4, max_episode_steps=4, replan_every=2,
        opt_steps=2, draws=2, metric_scale=0.04, max_plots=0, task="goal-image",
    )  # fmt: skip
    one = ev.evaluate(loaded, config, tmp_path / "one", plots=False, progress=False, workers=1).to_json()
    two = ev.evaluate(loaded, config, tmp_path / "two", plots=False, progress=False, workers=2).to_json()
    timing = {"seconds", "optimisation_seconds"}
    strip = [{k: v for k, v in r.items() if k not in timing} for r in one["episodes"]]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in two["episodes"]]
    stats = one["closed_loop"]["goal-image"]
    assert set(stats) == {"nomad", "reference", "adam"}
    for method, metrics in stats.items():
        rows = [r for r in one["episodes"] if r["method"] == method]
        assert metrics["success"]["n"] == 2 and metrics["success"]["mean"] == np.mean(
            [r["success"] for r in rows]
        )
        lo, hi = metrics["target_min_distance"]["ci95"]
        assert lo <= metrics["target_min_distance"]["mean"] <= hi
    assert set(one["paired"]) == {"adam vs reference"} and one["paired"]["adam vs reference"]["n"] == 2
    assert "[" in (tmp_path / "one" / "results.md").read_text()  # the interval table


def test_experiments_on_a_latent_free_model(tmp_path):
    # z_proj zero-initialised: the latent has no effect, so varying z1 with fixed noise spreads nothing and the
    # executable fraction cannot depend on sigma.
    cfg = preset_training_config("tiny")
    model = TwoStageIntentModel(cfg.model, cfg.intent, cfg.scheduler).eval()
    loaded = LoadedModel(model, None, 1, 16, "tiny")
    div = ev.run_diversity(loaded, tmp_path, scenes=1, samples=3, metric_scale=0.04)
    s = div["summary"]
    # (batched rows may differ in the last float bits: tolerance 1e-6 m)
    assert s["z1 varies, noise fixed"]["pairwise"] < 1e-6 and s["z1 varies, noise fixed"]["endpoint"] < 1e-6
    for cond in ("z1 fixed, noise varies", "z1 and noise vary"):
        for key in ("pairwise", "endpoint"):
            assert s[cond][key] == pytest.approx(s["no latent"][key], abs=1e-6)
    assert s["no latent"]["pairwise"] > 0
    per = ev.run_perturb(loaded, tmp_path, scenes=1, samples=3, sigmas=(0.0, 4.0), metric_scale=0.04)
    assert [lv["executable"] for lv in per["levels"]][0] == per["levels"][1]["executable"]
    for name in (
        "diversity.json",
        "diversity.md",
        "diversity.png",
        "perturb.json",
        "perturb.md",
        "perturb.png",
    ):
        assert (tmp_path / name).is_file(), name


# ------------------------------------------------------------------------------------------------ CLI errors
def test_cli_error_paths(tiny_ckpt, tmp_path, capsys):
    assert (
        main(
            ["evaluate", "--ckpt", str(tmp_path / "missing.pt"), "--out-dir", str(tmp_path)],
            report_errors=True,
        )
        == 2
    )
    assert "missing.pt" in capsys.readouterr().err
    assert main(["evaluate", "--ckpt", str(tiny_ckpt), "--methods", "adam,teleport"], report_errors=True) == 2
    assert "teleport" in capsys.readouterr().err
    assert main(["evaluate", "--ckpt", str(tiny_ckpt), "--scenes", "0"], report_errors=True) == 2
    assert "--scenes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # the flag shared with optimize-z2 checks at parse time
        main(["evaluate", "--ckpt", str(tiny_ckpt), "--noise-lr", "0"])
    assert exit_info.value.code == 2
    assert "argument --noise-lr: must be a number > 0.0, got '0'" in capsys.readouterr().err
    assert main(["evaluate", "--ckpt", str(tiny_ckpt), "--objective", "nonsense:1"], report_errors=True) == 2
    assert "nonsense" in capsys.readouterr().err
    assert main(["evaluate", "--ckpt", str(tiny_ckpt), "--data-dir", str(tmp_path)], report_errors=True) == 2
    assert (
        f"--data-dir {tmp_path} has no 'splits' folder" in capsys.readouterr().err
    )  # a data root is expected
    # A plain NoMaD checkpoint has no encoders: latent methods named explicitly are refused, by name.
    cfg = preset_training_config("tiny")
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, NoMaDPolicy(cfg.model), scheduler_config=cfg.scheduler)
    assert main(["evaluate", "--ckpt", str(plain), "--methods", "nomad,reference"], report_errors=True) == 2
    assert "['reference']" in capsys.readouterr().err
    assert main(["experiment", "diversity", "--ckpt", str(plain)], report_errors=True) == 2
    assert "intent" in capsys.readouterr().err
    assert (
        main(["experiment", "perturb", "--ckpt", str(tiny_ckpt), "--samples", "1"], report_errors=True) == 2
    )
    assert "--samples" in capsys.readouterr().err
    with pytest.raises(ValueError, match="methods"):
        ev.EvalConfig(methods=("warp",))
    with pytest.raises(ValueError, match="replan_every"):
        ev.EvalConfig(replan_every=0)


def test_cli_passes_the_navigation_loop_settings(tiny_ckpt, tmp_path):
    """--waypoint-index, --map-every, --radius, --close-threshold and --stop-when-closest reach the evaluation
    (its report's config)."""
    import json

    out = tmp_path / "cli"
    args = [
        "evaluate", "--ckpt", str(tiny_ckpt), "--out-dir", str(out), "--scenes", "1", "--methods", "nomad",
        "--max-episode-steps", "2", "--step-factor", "0.01", "--metric-scale", "0.04", "--workers", "1",
        "--no-plots", "--no-progress", "--waypoint-index", "0", "--map-every", "6", "--radius", "2",
        "--close-threshold", "2.5", "--stop-when-closest",
    ]  # fmt: skip
    assert main(args, report_errors=True) == 0
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert (
        config["waypoint_index"], config["map_every"], config["radius"], config["close_threshold"],
        config["stop_when_closest"],
    ) == (0, 6, 2, 2.5, True)  # fmt: skip


def test_evaluation_runs_in_the_world_it_is_given(tiny_ckpt, tmp_path, caplog):
    """--world (a make-data output) puts the scenes in that world (metrics.json, results.md, the scenes' own
    config); without it, --data-dir recorded with another camera than the built-in world is warned about."""
    from navintent.sim import load_sim_config

    world_file = tmp_path / "world.yaml"
    world_file.write_text("camera:\n  hfov_deg: 110.0\n")
    data = tmp_path / "data"
    assert main(["make-data", "--out", str(data), "--episodes", "2", "--config", str(world_file)]) == 0
    base = [
        "evaluate", "--ckpt", str(tiny_ckpt), "--scenes", "1", "--methods", "nomad", "--max-episode-steps", "2",
        "--step-factor", "0.01", "--workers", "1", "--no-plots", "--no-progress", "--data-dir", str(data),
    ]  # fmt: skip
    with caplog.at_level("INFO", logger="navintent.commands.evaluate"):
        assert main([*base, "--out-dir", str(tmp_path / "default")], report_errors=True) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "navintent.commands.evaluate"] == [
        f"navintent evaluate: warning: {data / 'sim_episodes.yaml'} was recorded with another robot or camera than "
        "the world this evaluation runs in (recorded -> evaluated: camera.hfov_deg 110.0 -> 100.0); pass --world "
        f"{data} to evaluate in the recorded world"
    ]
    assert json.loads((tmp_path / "default" / "metrics.json").read_text())["world"] == SimConfig().to_dict()
    assert "World:" not in (tmp_path / "default" / "results.md").read_text()
    caplog.clear()
    with caplog.at_level("INFO", logger="navintent.commands.evaluate"):
        argv = [*base, "--out-dir", str(tmp_path / "recorded"), "--world", str(data)]
        assert main(argv, report_errors=True) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "navintent.commands.evaluate"] == [
        f"navintent evaluate: world from {data / 'sim_episodes.yaml'}: the built-in defaults except "
        "camera.hfov_deg 100.0 -> 110.0"
    ]
    saved = json.loads((tmp_path / "recorded" / "metrics.json").read_text())
    assert (
        saved["world"] == load_sim_config(data)[0].to_dict() and saved["world"]["camera"]["hfov_deg"] == 110.0
    )
    assert "World: the built-in defaults except camera.hfov_deg 100.0 -> 110.0." in (
        (tmp_path / "recorded" / "results.md").read_text()
    )
    # the library call: the scenes themselves carry the world
    loaded = load_inference_model(tiny_ckpt)
    config = ev.EvalConfig(scenes=1, methods=("nomad",), min_steps=2, max_episode_steps=2, metric_scale=0.04)
    world = load_sim_config(world_file)[0]
    result = ev.evaluate(loaded, config, tmp_path / "api", plots=False, progress=False, world=world)
    assert result.scene_results[0].scene.config.camera.hfov_deg == 110.0
    assert result.to_json()["world"] == world.to_dict()
