import math

import numpy as np
import pytest
import torch

from navintent.actions import (
    normalized_deltas_to_waypoints,
    to_local,
    to_world,
    waypoints_to_normalized_deltas,
)
from navintent.config import NOMAD_ACTION_MAX, NOMAD_ACTION_MIN


def test_normalisation_matches_hand_computation():
    wp = torch.tensor([[1.0, 0.0], [2.5, 1.0], [2.5, -3.0]])
    nd = waypoints_to_normalized_deltas(wp, NOMAD_ACTION_MIN, NOMAD_ACTION_MAX)
    # deltas (1,0), (1.5,1), (0,-4); x in [-2.5,5] -> (d+2.5)/7.5*2-1; y in [-4,4] -> d/4
    expected = torch.tensor([[3.5 / 7.5 * 2 - 1, 0.0], [4.0 / 7.5 * 2 - 1, 0.25], [2.5 / 7.5 * 2 - 1, -1.0]])
    torch.testing.assert_close(nd, expected)


def test_round_trip_and_angle_channels_pass_through():
    wp = torch.randn(3, 8, 4, dtype=torch.float64)
    back = normalized_deltas_to_waypoints(
        waypoints_to_normalized_deltas(wp, NOMAD_ACTION_MIN, NOMAD_ACTION_MAX),
        NOMAD_ACTION_MIN,
        NOMAD_ACTION_MAX,
    )
    torch.testing.assert_close(back, wp, rtol=0, atol=1e-12)
    assert torch.equal(back[..., 2:], wp[..., 2:])


def test_local_frame_convention_x_forward_y_left():
    # Robot at (1, 1) facing +y (yaw 90 deg): a world point at (1, 3) is 2 m straight ahead; (0, 1) is 1 m to the left.
    pts = torch.tensor([[1.0, 3.0], [0.0, 1.0]], dtype=torch.float64)
    local = to_local(
        pts, torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor(math.pi / 2, dtype=torch.float64)
    )
    torch.testing.assert_close(local, torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64))


def test_local_matches_numpy_reference_and_inverts():
    rng = np.random.default_rng(0)
    pts, origin, yaw = rng.normal(size=(5, 2)), rng.normal(size=2), 0.7
    rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    expected = (pts - origin) @ rot
    t = torch.from_numpy
    local = to_local(t(pts), t(origin), torch.tensor(yaw, dtype=torch.float64))
    np.testing.assert_allclose(local.numpy(), expected, atol=1e-12)
    torch.testing.assert_close(to_world(local, t(origin), torch.tensor(yaw, dtype=torch.float64)), t(pts))


def test_bad_bounds_raise():
    with pytest.raises(ValueError, match="shape"):
        waypoints_to_normalized_deltas(torch.zeros(4, 2), (0.0,), (1.0,))
