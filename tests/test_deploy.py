"""navintent.deploy: NoMaD's deployment loop checked on scripted distances, the map's files, the recorder, and the
latent plumbing; the controller is NoMaD's (one implementation)."""

import numpy as np
import pytest
import torch

from navintent.config import IntentConfig, preset_model_config
from navintent.control import pd_follower
from navintent.deploy import Explorer, LatentRequest, Topomap, TopomapNavigator, TopomapRecorder
from navintent.models.intent import TwoStageIntentModel
from navintent.models.nomad import NoMaDPolicy

CFG = preset_model_config("tiny").replace(image_size=(32, 32))


def _frame(value: int, size: int = 40) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


class ScriptedDistances(NoMaDPolicy):
    """A tiny NoMaD whose distance head returns scripted temporal distances: ``true(tick, node)``, read for the
    window the navigator asks about (nodes are in window order in the batch)."""

    def __init__(self, true, navigator_ref):
        super().__init__(CFG)
        self.true, self.navigator_ref, self.tick = true, navigator_ref, 0

    def predict_distance(self, obsgoal_cond):
        start, end = self.navigator_ref[0].window()
        assert obsgoal_cond.shape[0] == end - start + 1  # the whole window in one batch
        values = [self.true(self.tick, node) for node in range(start, end + 1)]
        self.tick += 1
        return torch.tensor(values, dtype=obsgoal_cond.dtype)[:, None]


def test_localisation_and_subgoal_switching_follow_nomads_rules():
    """Nodes every 4 frames; the robot advances one frame per tick, so the temporal distance to node i at tick t is
    |4 i - t| (in frames; NoMaD's distance is in waypoint steps, one per frame here). Hand-derived expectations:
    at tick t the closest node is round(t / 4) (ties -> the lower index, argmin), the subgoal is the next node
    when the closest is within 3, and the window is [closest - 2, min(closest + 3, goal)] of the PREVIOUS tick."""
    ref = []
    policy = ScriptedDistances(lambda t, i: abs(4 * i - t), ref)
    topomap = Topomap([_frame(10 * i) for i in range(6)])
    nav = TopomapNavigator(policy, topomap, radius=2, close_threshold=3, metric_scale=0.1, num_samples=2)
    ref.append(nav)
    steps = []
    for _ in range(CFG.context_size):  # the context queue fills first: no plan, zero waypoint
        out = nav.step(_frame(0))
        assert not out.ready and np.array_equal(out.waypoint, np.zeros(2))
    for _ in range(24):
        steps.append(nav.step(_frame(0)))
    closest = [s.closest_node for s in steps]
    subgoal = [s.subgoal_node for s in steps]
    windows = [s.window for s in steps]
    # tick t: distances |4i - t|; argmin, the lower node on ties (t = 2: |0 - 2| = |4 - 2|)
    expected = [min(range(6), key=lambda i, t=t: (abs(4 * i - t), i)) for t in range(24)]
    assert closest == expected and closest[:8] == [0, 0, 0, 1, 1, 1, 1, 2]
    # the window comes from the previous tick's closest node c: [max(c - 2, 0), min(c + 3, goal 5)]
    previous = [0, *closest[:-1]]
    assert windows == [(max(c - 2, 0), min(c + 3, 5)) for c in previous]
    assert windows[:5] == [(0, 3), (0, 3), (0, 3), (0, 3), (0, 4)]
    # subgoal: the next node while the closest is within 3 (d = 0, 1, 2, 1, 0 at t = 0..4), capped at the window
    assert subgoal == [
        min(c + (abs(4 * c - t) < 3), w[1]) for t, (c, w) in enumerate(zip(closest, windows, strict=True))
    ]
    assert subgoal[:5] == [1, 1, 1, 2, 2]
    # the goal node 5 is closest from t = 19 (t = 18 ties |20 - 18| = |16 - 18|: node 4)
    first_goal = next(t for t, s in enumerate(steps) if s.closest_node == 5)
    assert first_goal == 19
    # reached: the goal node closest AND within the threshold (|20 - t| < 3): t = 19..22, not 23 (3 past it)
    assert [s.reached_goal for s in steps[18:24]] == [False, True, True, True, True, False]
    assert all(s.subgoal_node == 5 for s in steps[19:])  # capped at the window's last node
    assert all(s.ready and s.trajectories.shape == (2, CFG.len_traj_pred, 2) for s in steps)


def test_reached_goal_needs_the_threshold_unless_nomads_rule_is_asked_for():
    ref = []
    far = ScriptedDistances(
        lambda t, i: 10.0 if i == 1 else 20.0, ref
    )  # goal node 1 closest, but 10 steps away
    topomap = Topomap([_frame(0), _frame(200)])
    nav = TopomapNavigator(far, topomap, metric_scale=0.1, num_samples=1)
    ref.append(nav)
    for _ in range(CFG.context_size + 1):
        out = nav.step(_frame(0))
    assert out.closest_node == 1 and not out.reached_goal
    ref.clear()
    nomad_rule = TopomapNavigator(far, topomap, metric_scale=0.1, num_samples=1, stop_when_closest=True)
    ref.append(nomad_rule)
    for _ in range(CFG.context_size + 1):
        out = nomad_rule.step(_frame(0))
    assert out.reached_goal


def test_steered_latent_reaches_the_denoiser():
    """A callable latent's z2 is what the sampler conditions on: the navigator's trajectories equal a direct
    sample_from_condition with that z2 and the same noise, and differ from the latent-free plan."""
    torch.manual_seed(0)
    model = TwoStageIntentModel(CFG, IntentConfig(z1_dim=4, enc2_hidden=16)).eval()
    torch.nn.init.normal_(model.z_proj.weight, std=0.5)
    z2 = torch.linspace(-1, 1, CFG.z_dim)[None]
    seen: list[LatentRequest] = []

    def steer(req: LatentRequest):
        seen.append(req)
        return z2

    steered = Explorer(model, metric_scale=0.2, latent=steer, num_samples=3, seed=5)
    plain = Explorer(model, metric_scale=0.2, latent="none", num_samples=3, seed=5)
    frames = [_frame(40 + 20 * i) for i in range(CFG.context_size + 1)]
    for f in frames:
        a, b = steered.step(f), plain.step(f)
    assert (
        len(seen) == 1
        and seen[0].goal_mask.tolist() == [1]
        and seen[0].tokens.shape[1] == CFG.context_size + 2
    )
    gen = torch.Generator().manual_seed(5)
    direct = model.sample_from_condition(seen[0].cond, num_samples=3, latent_z=z2, generator=gen)[0]
    from navintent.actions import normalized_deltas_to_waypoints

    expected = normalized_deltas_to_waypoints(direct, CFG.action_min, CFG.action_max)[..., :2] * 0.2
    np.testing.assert_allclose(a.trajectories, expected.numpy(), rtol=0, atol=1e-7)
    assert torch.equal(a.z2, z2) and b.z2 is None
    assert np.abs(a.trajectories - b.trajectories).max() > 1e-3
    np.testing.assert_allclose(a.waypoint, a.trajectories[0, 2])  # sample 0, waypoint_index 2


def test_prior_and_reference_latents_use_the_encoders():
    torch.manual_seed(0)
    model = TwoStageIntentModel(CFG, IntentConfig(z1_dim=4, enc2_hidden=16)).eval()
    ref_path = torch.stack([torch.arange(1, 17, dtype=torch.float32), torch.zeros(16)], -1)
    prior = Explorer(model, metric_scale=0.2, latent="prior", num_samples=1)
    reference = Explorer(
        model, metric_scale=0.2, latent="reference", reference_fn=lambda: ref_path, num_samples=1
    )
    for _ in range(CFG.context_size + 1):
        p, r = prior.step(_frame(90)), reference.step(_frame(90))
    with torch.no_grad():
        obs = prior._images([_frame(90)] * (CFG.context_size + 1))[None]
        goal = torch.zeros(1, 3, 32, 32)
        mask = torch.ones(1, dtype=torch.long)
        _, tokens = model.encode(obs, goal, mask, return_tokens=True)
        z_prior = model.z2_from_tokens(torch.zeros(1, 4), tokens)
        z1, _ = model.posterior(tokens, mask, ref_path[None], torch.ones(1, dtype=torch.bool))
        z_ref = model.z2_from_tokens(z1, tokens)
    torch.testing.assert_close(p.z2, z_prior, rtol=0, atol=0)
    torch.testing.assert_close(r.z2, z_ref, rtol=0, atol=0)
    with pytest.raises(ValueError, match="latent='reference' needs reference_fn"):
        Explorer(model, metric_scale=0.2, latent="reference")
    with pytest.raises(ValueError, match="needs a two-stage intent policy"):
        Explorer(NoMaDPolicy(CFG), metric_scale=0.2, latent="prior")


def test_topomap_folder_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(12)]
    folder = Topomap(images).save(tmp_path / "map")
    back = Topomap.from_folder(folder)
    assert len(back) == 12 and all(np.array_equal(a, b) for a, b in zip(images, back.images, strict=True))
    (folder / "10.png").rename(
        folder / "x.png"
    )  # ordering by integer name: 0, 1, 2, ..., not 0, 1, 10, 11, 2
    with pytest.raises(ValueError, match=r"named by their index .*\['x.png'\]"):
        Topomap.from_folder(folder)
    with pytest.raises(FileExistsError):
        Topomap(images).save(folder)
    with pytest.raises(FileNotFoundError):
        Topomap.from_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="node 1 must be a uint8"):
        Topomap([images[0], images[1].astype(np.float32)])


def test_recorder_every_k_frames_and_every_d_metres():
    rec = TopomapRecorder(every_frames=4)
    added = [rec.add(_frame(i)) for i in range(10)]
    assert added == [True, False, False, False, True, False, False, False, True, False]
    assert [int(img[0, 0, 0]) for img in rec.topomap().images] == [
        0,
        4,
        8,
        9,
    ]  # the last frame becomes the goal
    rec = TopomapRecorder(every_metres=1.0)
    xs = [0.0, 0.4, 0.8, 1.2, 1.5, 2.3, 2.4]
    added = [rec.add(_frame(i), np.array([x, 0.0, 0.0])) for i, x in enumerate(xs)]
    assert added == [True, False, False, True, False, True, False]
    topo = rec.topomap()
    assert [p[0] for p in topo.poses] == [0.0, 1.2, 2.3, 2.4]
    with pytest.raises(ValueError, match="exactly one of every_frames and every_metres"):
        TopomapRecorder()
    with pytest.raises(ValueError, match="needs each frame's pose"):
        TopomapRecorder(every_metres=1.0).add(_frame(0))


def test_controller_is_nomads_and_shared_with_the_world():
    from navintent.sim.config import RobotConfig
    from navintent.sim.robot import pd_follower as world_follower

    robot = RobotConfig()
    for wp in ([0.02, 0.0], [0.03, 0.002], [1.0, 1.0], [0.0, -0.5], [-0.1, 0.1]):
        expected = pd_follower(np.array(wp), max_v=robot.max_v, max_w=robot.max_w, dt=robot.dt)
        assert world_follower(np.array(wp), robot) == expected
    assert pd_follower(np.array([0.02, 0.0]), max_v=0.2, max_w=0.4, dt=0.25) == pytest.approx((0.08, 0.0))
