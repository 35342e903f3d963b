"""Property tests (hypothesis): frame round trips, action normalisation round trips, and finite objective gradients
in DEGENERATE configurations (agents exactly on waypoints, a robot standing still, waypoints on the nominal path).

Random well-separated inputs are already covered by tests/test_objectives.py::test_every_term_has_finite_gradients;
fixed hand cases of the frames by tests/test_actions.py.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from navintent import objectives as obj
from navintent.actions import (
    normalized_deltas_to_waypoints,
    to_local,
    to_world,
    waypoints_to_normalized_deltas,
)
from navintent.objectives import GridMap, ObjectiveContext

coord = st.floats(-50.0, 50.0, allow_nan=False, allow_infinity=False)
angle = st.floats(-4 * math.pi, 4 * math.pi, allow_nan=False, allow_infinity=False)
SETTINGS = settings(max_examples=50, deadline=None)


def _tensor(values, *shape) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(*shape)


@SETTINGS
@given(st.lists(coord, min_size=10, max_size=10), st.lists(coord, min_size=2, max_size=2), angle)
def test_world_local_round_trip_and_isometry(points, origin, yaw):
    p, o, y = _tensor(points, 5, 2), _tensor(origin, 2), torch.tensor(yaw, dtype=torch.float64)
    local = to_local(p, o, y)
    torch.testing.assert_close(to_world(local, o, y), p, rtol=0, atol=1e-11)
    torch.testing.assert_close(to_local(to_world(p, o, y), o, y), p, rtol=0, atol=1e-11)
    # a rigid motion: distances to the origin and between points are preserved
    torch.testing.assert_close(local.norm(dim=-1), (p - o).norm(dim=-1), rtol=0, atol=1e-11)
    torch.testing.assert_close(torch.cdist(local, local), torch.cdist(p, p), rtol=0, atol=1e-10)
    # the heading direction maps to +x
    ahead = o + torch.stack([torch.cos(y), torch.sin(y)])
    torch.testing.assert_close(to_local(ahead[None], o, y)[0], _tensor([1.0, 0.0], 2), rtol=0, atol=1e-12)


bound = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(
    st.lists(coord, min_size=24, max_size=24),
    st.tuples(bound, bound, bound, bound),
    st.floats(0.01, 10.0),
    st.booleans(),
)
def test_action_normalisation_round_trips(values, lows, width, with_angle):
    lo = (min(lows[0], lows[1]), min(lows[2], lows[3]))
    hi = (lo[0] + width, lo[1] + 2 * width)
    d = 4 if with_angle else 2
    wp = _tensor(values[: 6 * d], 1, 6, d)
    nd = waypoints_to_normalized_deltas(wp, lo, hi)
    back = normalized_deltas_to_waypoints(nd, lo, hi)
    scale = 1.0 + wp.abs().max()
    torch.testing.assert_close(back, wp, rtol=0, atol=1e-10 * scale * (1 + 10 / width))
    assert torch.equal(nd[..., 2:], wp[..., 2:])  # angle channels pass through untouched
    again = waypoints_to_normalized_deltas(back, lo, hi)
    torch.testing.assert_close(again, nd, rtol=0, atol=1e-9 * scale * (1 + 10 / width))
    # deltas equal to the bounds map to exactly -1 / +1
    edge = torch.tensor([[lo, hi]], dtype=torch.float64).cumsum(1)
    torch.testing.assert_close(
        waypoints_to_normalized_deltas(edge, lo, hi),
        _tensor([-1.0, -1.0, 1.0, 1.0], 1, 2, 2),
        rtol=0,
        atol=1e-12,
    )


@SETTINGS
@given(
    st.lists(st.floats(-3.0, 3.0, allow_nan=False, width=32), min_size=8, max_size=8),
    st.integers(0, 3),
    st.sampled_from([torch.float32, torch.float64]),
)
def test_objective_gradients_finite_in_degenerate_configurations(values, stuck_from, dtype):
    """Agents ON the waypoints (distance 0), a robot that stops (zero velocity from ``stuck_from``), waypoints
    equal to the nominal path and the target point, z2 at the prior mean: every term and its gradient finite."""
    wp = torch.tensor(values, dtype=dtype).view(1, 4, 2)
    wp[:, stuck_from:] = wp[:, stuck_from : stuck_from + 1]  # stands still from there on
    wp = wp.clone().requires_grad_(True)
    on_path = wp.detach().clone().view(1, 4, 1, 2).repeat(1, 1, 2, 1)  # both agents exactly on the robot
    on_path[:, :, 1] = on_path[:, :1, 1]  # the second agent stands still on the first waypoint
    ctx = ObjectiveContext(
        agents=on_path,
        agents_mask=torch.tensor([[1.0, 1.0]], dtype=dtype),
        nominal=wp.detach().clone(),
        point=wp.detach()[:, -1].clone(),
        cost_map=GridMap(torch.rand(1, 5, 5, dtype=dtype), origin=(-1.0, -1.0), resolution=0.5),
        obstacle_map=GridMap(torch.ones(1, 5, 5, dtype=dtype), origin=(-1.0, -1.0), resolution=0.5),
        z2=torch.zeros(1, 2, dtype=dtype),
        z2_encoder=torch.zeros(1, 2, dtype=dtype),
        z2_mean=torch.zeros(2, dtype=dtype),
        z2_cov=torch.eye(2, dtype=dtype),
        z1=torch.zeros(1, 3, dtype=dtype),
    )
    for name, term in obj.TERMS.items():
        if name == "user":
            continue
        out = term(wp, ctx)
        assert out.shape == (1,) and torch.isfinite(out).all(), (name, out)
        if out.requires_grad:
            (grad,) = torch.autograd.grad(out.sum(), wp)
            assert torch.isfinite(grad).all(), (name, grad)
