"""Each objective against a hand-computed case; finite gradients over random inputs; spec parsing."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from navintent import objectives as obj
from navintent.actions import waypoints_to_normalized_deltas
from navintent.objectives import GridMap, Objective, ObjectiveContext, ObjectiveSpec, parse_objectives


def _line(n_steps: int = 4, speed: float = 1.0, dt: float = 0.25) -> torch.Tensor:
    """Robot going straight along x: waypoints [1, T, 2] at (speed * dt * (t + 1), 0)."""
    x = speed * dt * torch.arange(1, n_steps + 1, dtype=torch.float64)
    return torch.stack([x, torch.zeros_like(x)], -1).unsqueeze(0)


def test_deltas_to_metric_inverts_the_normalisation():
    wp = torch.tensor([[[0.5, 0.1], [1.2, -0.3], [2.0, 0.0]]], dtype=torch.float64)
    lo, hi = (-2.5, -4.0), (5.0, 4.0)
    nd = waypoints_to_normalized_deltas(wp, lo, hi)
    torch.testing.assert_close(obj.deltas_to_metric(nd, lo, hi, 0.5), wp * 0.5)
    torch.testing.assert_close(obj.deltas_to_metric(nd, lo, hi, torch.tensor([2.0])), wp * 2.0)


def test_softmin_dist_and_masks():
    wp = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)  # [1, 2, 2]
    agents = torch.tensor([[[[0.0, 1.0], [9.0, 9.0]], [[1.0, 3.0], [1.0, 0.0]]]], dtype=torch.float64)
    # distances: t0 -> (1, ~12.7), t1 -> (3, 0); agent 1 masked out => {1, 3}
    ctx = ObjectiveContext(agents=agents, agents_mask=torch.tensor([[1.0, 0.0]]))
    got = obj.softmin_dist(wp, ctx, tau=1.0)
    torch.testing.assert_close(
        got, torch.tensor([-math.log(math.exp(-1) + math.exp(-3))], dtype=torch.float64)
    )
    assert obj.min_agent_distance(wp, ctx).item() == pytest.approx(1.0)
    # no valid agent: constant 0
    ctx0 = ObjectiveContext(agents=agents, agents_mask=torch.zeros(1, 2))
    assert obj.softmin_dist(wp, ctx0).item() == 0.0
    assert obj.min_agent_distance(wp, ctx0).item() == math.inf


def test_collision_margin_sums_intrusion():
    wp = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    agents = torch.tensor([[[[0.2, 0.0]], [[1.0, 0.4]]]], dtype=torch.float64)  # d = 0.2, 0.4
    got = obj.collision_margin(wp, ObjectiveContext(agents=agents), radius=0.5)
    torch.testing.assert_close(got, torch.tensor([-(0.3 + 0.1)], dtype=torch.float64))


def test_time_to_collision_head_on_and_miss():
    wp = _line()  # 1 m/s along x, dt 0.25
    agents = torch.tensor([2.0, 0.0], dtype=torch.float64).expand(1, 4, 1, 2).clone()  # standing at x = 2
    ctx = ObjectiveContext(agents=agents, dt=0.25)
    # robot edge reaches 2 - 0.5 = 1.5 m at t = 1.5 s, whichever waypoint the estimate starts from
    values, _ = obj.time_to_collision(wp, ctx, radius=0.5)
    torch.testing.assert_close(values, torch.full((1, 4, 1), 1.5, dtype=torch.float64))
    assert obj.min_time_to_collision(wp, ctx, radius=0.5).item() == pytest.approx(1.5)
    assert obj.ttc(wp, ctx, radius=0.5, tau=0.01).item() == pytest.approx(1.5 - 0.01 * math.log(4), abs=1e-6)
    # an agent 2 m to the side behind the robot's path never comes within 0.5 m; the robot moves away,
    # so the closest approach is now: horizon (1 s) + (current distance - radius)
    side = torch.tensor([0.0, 2.0], dtype=torch.float64).expand(1, 4, 1, 2).clone()
    miss, _ = obj.time_to_collision(wp, ObjectiveContext(agents=side), radius=0.5)
    expected = 1.0 + torch.sqrt(wp[0, :, 0] ** 2 + 4.0) - 0.5
    torch.testing.assert_close(miss, expected.view(1, 4, 1), atol=1e-7, rtol=1e-7)


def test_cut_ahead_scores_presence_on_the_agents_path():
    # agent at (1, -1) walking +y at 1 m/s; robot waypoint straight in front of it at (1, -0.5)
    agent = torch.tensor([[1.0, -1.0], [1.0, -0.75]], dtype=torch.float64)
    agents = agent.view(1, 2, 1, 2)
    wp = torch.tensor([[[1.0, -0.5], [1.0, -0.25]]], dtype=torch.float64)  # along = 0.5, lateral = 0
    got = obj.cut_ahead(wp, ObjectiveContext(agents=agents, dt=0.25), sigma=0.3, length=2.0)
    unit = 1.0 - 1e-6 / 1.0  # the heading is v / (|v| + 1e-6) ~ 1 up to 1e-6
    expected = -(1 / (1 + math.exp(-0.5 / 0.3))) * math.exp(-0.25) * unit**2
    assert got.item() == pytest.approx(expected, rel=1e-5)
    standing = torch.tensor([1.0, -1.0], dtype=torch.float64).expand(1, 2, 1, 2).clone()
    assert obj.cut_ahead(wp, ObjectiveContext(agents=standing)).abs().item() < 1e-6


def test_deviation_reach_avoid():
    wp = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]], dtype=torch.float64)
    nominal = torch.tensor([[[1.0, 1.0], [2.0, 2.0]]], dtype=torch.float64)
    ctx = ObjectiveContext(nominal=nominal, point=torch.tensor([[2.0, 3.0]], dtype=torch.float64))
    assert obj.deviation(wp, ctx).item() == pytest.approx((1 + 4) / 2)
    assert obj.reach(wp, ctx).item() == pytest.approx(3.0, abs=1e-6)
    ctx_near = ObjectiveContext(point=torch.tensor([[1.0, 0.5]], dtype=torch.float64))
    # distances 0.5 and ~1.118 -> only the first is inside radius 1
    assert obj.avoid(wp, ctx_near, radius=1.0).item() == pytest.approx(0.25, abs=1e-6)
    with pytest.raises(ValueError, match="ObjectiveContext.nominal"):
        obj.deviation(wp, ObjectiveContext())


def test_grid_map_bilinear_and_occupancy():
    grid = GridMap(torch.tensor([[[0.0, 1.0], [2.0, 3.0]]]), origin=(0.0, 0.0), resolution=1.0)
    pts = torch.tensor([[[0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [0.25, 0.0], [5.0, 5.0]]])
    torch.testing.assert_close(grid.sample(pts), torch.tensor([[1.5, 1.0, 2.0, 0.25, 0.0]]))
    wp = pts[:, :2].double()
    assert obj.occupancy(wp, ObjectiveContext(cost_map=grid)).item() == pytest.approx(1.25)
    # static collision: path origin -> (1, 0): points at 0.5 and 1.0 along x with substeps 2
    line = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)
    got = obj.static_collision(line, ObjectiveContext(obstacle_map=grid), substeps=2)
    assert got.item() == pytest.approx((0.5 + 1.0) / 2)


def test_realism_terms():
    z2 = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    ctx = ObjectiveContext(
        z2=z2,
        z2_encoder=torch.tensor([[0.0, 0.0]], dtype=torch.float64),
        z2_mean=torch.tensor([1.0, 0.0], dtype=torch.float64),
        z2_cov=torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=torch.float64),
        z1=torch.tensor([[3.0, 4.0, 0.0]], dtype=torch.float64),
    )
    wp = torch.zeros(1, 2, 2, dtype=torch.float64)
    assert obj.z2_encoder(wp, ctx).item() == pytest.approx(5.0)
    # 0.5 * (0/4 + 4/1) + 0.5 * log(4) + log(2 pi)
    assert obj.z2_nll(wp, ctx).item() == pytest.approx(2.0 + 0.5 * math.log(4) + math.log(2 * math.pi))
    assert obj.z1_nll(wp, ctx).item() == pytest.approx(12.5 + 1.5 * math.log(2 * math.pi))


def test_standard_normal_nll_pinned_and_shared_by_z1_nll():
    z = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    nll = obj.standard_normal_nll(z)
    assert nll.shape == (2,) and nll.dtype == torch.float32
    c = 1.5 * math.log(2 * math.pi)
    assert nll.tolist() == [float(torch.tensor(12.5 + c)), float(torch.tensor(c))]
    ctx = ObjectiveContext(z1=z)
    assert torch.equal(obj.z1_nll(torch.zeros(2, 2, 2), ctx), nll)


def test_dynamics_hinges():
    dt = 0.5
    ctx = ObjectiveContext(dt=dt)
    # steps of 0.1 m = 0.2 m/s, straight: no penalty
    assert obj.dynamics(_line(4, 0.2, dt), ctx, max_speed=0.3).item() == pytest.approx(0.0, abs=1e-9)
    # steps of 0.25 m at dt 0.5 = 0.5 m/s -> (0.5 - 0.3)^2 per step, 3 steps
    fast = _line(3, 0.5, dt)
    assert obj.dynamics(fast, ctx, max_speed=0.3).item() == pytest.approx(3 * 0.04, abs=1e-6)
    # a 90-degree turn between two unit-speed steps: rate (pi/2)/dt; accel |(−1, 1)| * ... both hinge
    turn = torch.tensor([[[0.5, 0.0], [0.5, 0.5]]], dtype=torch.float64)
    got = obj.dynamics(turn, ctx, max_speed=10.0, max_accel=100.0, max_turn_rate=1.0)
    assert got.item() == pytest.approx((math.pi / 2 / dt - 1.0) ** 2, rel=1e-6)
    accel = math.hypot(-0.5, 0.5) / dt**2
    got = obj.dynamics(turn, ctx, max_speed=10.0, max_accel=1.0, max_turn_rate=100.0)
    assert got.item() == pytest.approx((accel - 1.0) ** 2, rel=1e-6)


def _user_fn(waypoints, ctx, *, scale=1.0):
    return scale * waypoints[..., 0].sum(-1)


def test_user_objective_and_spec_parsing(monkeypatch):
    module = types.ModuleType("navintent_test_user_obj")
    module.fn = _user_fn
    module.bad = lambda w, c: w.sum()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    specs = parse_objectives(
        "softmin_dist:1.0, dynamics:0.1@max_speed=0.3;max_accel=2,user:2@fn=navintent_test_user_obj:fn;scale=3"
    )
    assert [s.name for s in specs] == ["softmin_dist", "dynamics", "user"]
    assert specs[1].params == {"max_speed": 0.3, "max_accel": 2}
    assert specs[2].params == {"fn": "navintent_test_user_obj:fn", "scale": 3}
    wp = _line(2)
    assert Objective(specs[2:]).terms(wp, ObjectiveContext())["user"].item() == pytest.approx(3 * 0.75)
    assert Objective("user:2@fn=navintent_test_user_obj:fn")(wp, ObjectiveContext()).item() == pytest.approx(
        1.5
    )
    with pytest.raises(ValueError, match="must return a tensor"):
        Objective("user@fn=navintent_test_user_obj:bad")(wp, ObjectiveContext())
    with pytest.raises(ValueError, match="unknown objective 'nope'"):
        parse_objectives("nope:1")
    with pytest.raises(ValueError, match="unknown params \\['radiuss'\\]"):
        parse_objectives("collision_margin:1@radiuss=2")
    with pytest.raises(ValueError, match="weight must be a number"):
        parse_objectives("ttc:x")
    with pytest.raises(ValueError, match="needs params \\['fn'\\]"):
        parse_objectives("user:1")
    with pytest.raises(ValueError, match="must not repeat"):
        parse_objectives("ttc:1,ttc:2")
    assert str(ObjectiveSpec("ttc", 0.5, {"radius": 1.0})) == "ttc:0.5@radius=1.0"


def test_objective_weighted_sum_and_context_repeat():
    wp = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]], dtype=torch.float64)
    agents = torch.tensor([[[[0.2, 0.0]], [[1.0, 0.4]]]], dtype=torch.float64)
    ctx = ObjectiveContext(agents=agents, nominal=wp.clone())
    total = Objective("collision_margin:2.0@radius=0.5,deviation:-1")(wp, ctx)
    torch.testing.assert_close(total, torch.tensor([-0.8], dtype=torch.float64))
    rep = ctx.repeat_interleave(3, num_samples=1)
    assert rep.agents.shape == (3, 2, 1, 2) and rep.nominal.shape == (3, 2, 2)
    two = ObjectiveContext(z2=torch.tensor([[1.0], [2.0]]), z2_mean=torch.zeros(1))
    picked = two.select(torch.tensor([1, 1, 0]))
    assert picked.z2.flatten().tolist() == [2.0, 2.0, 1.0] and picked.z2_mean is two.z2_mean


def test_agents_jacobian_moves_the_agents_with_the_plan():
    """``agents_jacobian``: every agent term reads ``agents + J . (waypoints - nominal)``, checked against the
    agents shifted by hand (loops, no einsum), and the gradient reaches the plan through the agents too."""
    gen = torch.Generator().manual_seed(0)
    n, t, k = 2, 3, 2
    wp = torch.randn(n, t, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    nominal = torch.randn(n, t, 2, generator=gen, dtype=torch.float64)
    agents = torch.randn(n, t, k, 2, generator=gen, dtype=torch.float64)
    jac = torch.randn(n, t, k, 2, t, 2, generator=gen, dtype=torch.float64)
    moved = agents.clone()
    for i in range(n):
        for a in range(t):
            for j in range(k):
                for d in range(2):
                    for s in range(t):
                        for e in range(2):
                            moved[i, a, j, d] += (
                                jac[i, a, j, d, s, e] * (wp[i, s, e] - nominal[i, s, e]).detach()
                            )
    reactive = ObjectiveContext(agents=agents, nominal=nominal, agents_jacobian=jac)
    by_hand = ObjectiveContext(agents=moved)
    for name in ("softmin_dist", "collision_margin", "ttc", "cut_ahead"):
        torch.testing.assert_close(
            obj.TERMS[name](wp, reactive), obj.TERMS[name](wp, by_hand), rtol=0, atol=1e-12
        )
    # at the nominal plan the agents are exactly the given ones
    at_nominal = obj.softmin_dist(nominal, reactive)
    assert torch.equal(at_nominal, obj.softmin_dist(nominal, ObjectiveContext(agents=agents)))
    # d/dwp of the distance to a fixed agent differs from the reactive one by the agents' motion
    g_reactive = torch.autograd.grad(obj.softmin_dist(wp, reactive).sum(), wp)[0]
    g_fixed = torch.autograd.grad(obj.softmin_dist(wp, by_hand).sum(), wp)[0]
    assert not torch.allclose(g_reactive, g_fixed)
    # rows follow the context's row selection (scenarios -> scenarios x draws)
    assert reactive.repeat_interleave(3, num_samples=n).agents_jacobian.shape == (3 * n, t, k, 2, t, 2)
    with pytest.raises(ValueError, match="agents_jacobian must be"):
        obj.softmin_dist(wp, reactive.replace(agents_jacobian=jac[:, :, :, :, :2]))
    with pytest.raises(ValueError, match="needs ObjectiveContext.nominal"):
        obj.softmin_dist(wp, reactive.replace(nominal=None))


finite = st.floats(-3.0, 3.0, allow_nan=False, width=32)


@settings(max_examples=25, deadline=None)
@given(st.lists(finite, min_size=4 * 2 + 4 * 2 * 2 + 2, max_size=4 * 2 + 4 * 2 * 2 + 2))
def test_every_term_has_finite_gradients(values):
    v = torch.tensor(values, dtype=torch.float64)
    wp = v[:8].view(1, 4, 2).clone().requires_grad_(True)
    agents = v[8:24].view(1, 4, 2, 2)
    point = v[24:26].view(1, 2)
    ctx = ObjectiveContext(
        agents=agents,
        agents_mask=torch.tensor([[1.0, 1.0]]),
        nominal=torch.zeros(1, 4, 2, dtype=torch.float64),
        point=point,
        cost_map=GridMap(torch.rand(1, 5, 5, dtype=torch.float64), origin=(-1.0, -1.0), resolution=0.5),
        obstacle_map=GridMap(torch.rand(1, 5, 5, dtype=torch.float64), origin=(-1.0, -1.0), resolution=0.5),
        z2=torch.zeros(1, 2, dtype=torch.float64),
        z2_encoder=torch.ones(1, 2, dtype=torch.float64),
        z2_mean=torch.zeros(2, dtype=torch.float64),
        z2_cov=torch.eye(2, dtype=torch.float64),
        z1=torch.ones(1, 3, dtype=torch.float64),
    )
    for name, term in obj.TERMS.items():
        if name == "user":
            continue
        wp.grad = None
        out = term(wp, ctx)
        assert out.shape == (1,) and torch.isfinite(out).all(), name
        if out.requires_grad:
            (grad,) = torch.autograd.grad(out.sum(), wp)
            assert torch.isfinite(grad).all(), name


# ----------------------------------------------------------------------------------------- noise realism
def test_noise_nll_hand_values_and_polar_identity():
    # d = 2, noise (3, 4): r = 5, r^2 / 2 - (d - 1) log r + (d/2 - 1) log 2 + log Gamma(1) = 12.5 - log 5
    torch.testing.assert_close(
        obj.noise_nll(torch.tensor([[3.0, 4.0]], dtype=torch.float64)),
        torch.tensor([12.5 - math.log(5.0)], dtype=torch.float64),
    )
    # d = 3, noise (1, 2, 2): r = 3 -> 4.5 - 2 log 3 + 0.5 log 2 + log(sqrt(pi) / 2) = 2.5285668
    assert float(obj.noise_nll(torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64))) == pytest.approx(
        2.5285668, abs=1e-6
    )
    # Any d: the Gaussian NLL of the vector minus the polar Jacobian (d - 1) log r and the sphere's area
    # S_(d-1) = 2 pi^(d/2) / Gamma(d/2) (computed here with torch.distributions, independently of the formula).
    g = torch.Generator().manual_seed(0)
    for d in (1, 7, 160):
        x = torch.randn(5, d, generator=g, dtype=torch.float64)
        gauss = -torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
        log_area = math.log(2.0) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d)
        expected = gauss - (d - 1) * torch.log(x.norm(dim=1)) - log_area
        torch.testing.assert_close(obj.noise_nll(x), expected)


def test_noise_nll_is_a_normalised_density_of_the_norm_with_its_mode_at_sqrt_d_minus_1():
    for d in (3, 16, 160):
        r = torch.linspace(1e-4, math.sqrt(d) + 12.0, 200_001, dtype=torch.float64)
        vec = torch.zeros(r.shape[0], d, dtype=torch.float64)
        vec[:, 0] = r  # only the norm matters
        density = torch.exp(-obj.noise_nll(vec))
        assert float(torch.trapezoid(density, r)) == pytest.approx(1.0, abs=1e-6)
        assert float(r[density.argmax()]) == pytest.approx(math.sqrt(d - 1), abs=1e-3)
    # standardised squared norm: (25 - 2) / sqrt(4) for (3, 4)
    assert float(obj.noise_norm_z(torch.tensor([[3.0, 4.0]]))) == pytest.approx(11.5)
    with pytest.raises(ValueError, match=r"noise must be \[N, d\] with d >= 1, got shape \(3,\)"):
        obj.noise_nll(torch.ones(3))
    with pytest.raises(ValueError, match=r"got shape \(2, 0\)"):
        obj.noise_norm_z(torch.ones(2, 0))


def test_noise_block_nll_sums_the_blocks_and_sees_energy_moved_between_them():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3 * 16, generator=g, dtype=torch.float64)
    expected = sum(obj.noise_nll(x[:, 16 * k : 16 * (k + 1)]) for k in range(3))
    torch.testing.assert_close(obj.noise_block_nll(x, 3), expected)
    torch.testing.assert_close(obj.noise_block_nll(x, 1), obj.noise_nll(x))
    # same total norm (so the same noise_nll), energy moved from block 0 to block 2: only the block term rises
    even = torch.full((1, 48), 1.0, dtype=torch.float64)
    moved = torch.cat([torch.full((1, 16), 0.5), torch.ones(1, 16), torch.full((1, 16), 1.5**0.5 * 1.0)], 1)
    moved = moved.double() * (48 / moved.pow(2).sum()).sqrt()
    torch.testing.assert_close(obj.noise_nll(moved), obj.noise_nll(even))
    assert float(obj.noise_block_nll(moved, 3) - obj.noise_block_nll(even, 3)) > 1.0
    with pytest.raises(ValueError, match=r"d a positive multiple of blocks=5, got shape \(2, 12\)"):
        obj.noise_block_nll(torch.ones(2, 12), 5)
