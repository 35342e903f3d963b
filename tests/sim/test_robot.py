import math

import numpy as np
import pytest

from navintent.sim import RobotConfig
from navintent.sim.robot import pd_follower, unicycle_rollout, unicycle_step


@pytest.mark.parametrize("v,w", [(0.2, 0.0), (0.2, 0.4), (0.1, -0.3), (0.0, 0.4)])
def test_unicycle_step_matches_fine_euler_integration(v, w):
    pose = np.array([1.0, 2.0, 0.7])
    exact = unicycle_step(pose, v, w, 0.25)
    x, y, yaw = pose
    h = 0.25 / 20000
    for _ in range(20000):
        x, y, yaw = x + v * h * math.cos(yaw), y + v * h * math.sin(yaw), yaw + w * h
    np.testing.assert_allclose(exact, [x, y, yaw], atol=1e-5)


def test_unicycle_rollout_matches_repeated_steps():
    pose = np.array([0.5, -1.0, 3.0])
    v, w = np.array([0.2, 0.1, 0.0]), np.array([0.0, -0.4, 0.3])
    traj = unicycle_rollout(pose, v, w, 6, 0.25)
    for k in range(3):
        p = pose.copy()
        for t in range(1, 7):
            p = unicycle_step(p, v[k], w[k], 0.25)
            np.testing.assert_allclose(traj[k, t], p, atol=1e-12)


def test_pd_follower_is_nomads_controller():
    robot = RobotConfig()
    # v = dx / dt, w = atan(dy / dx) / dt, clipped
    assert pd_follower(np.array([0.02, 0.0]), robot) == pytest.approx((0.08, 0.0))
    v, w = pd_follower(np.array([0.03, 0.002]), robot)
    assert v == pytest.approx(0.12) and w == pytest.approx(math.atan(0.002 / 0.03) / 0.25)
    assert pd_follower(np.array([1.0, 1.0]), robot) == pytest.approx((0.2, 0.4))
    assert pd_follower(np.array([0.0, -0.5]), robot) == pytest.approx((0.0, -0.4))  # dx = 0: turn
    assert pd_follower(np.array([-0.1, 0.1]), robot) == pytest.approx((0.0, -0.4))  # atan, as NoMaD
    with pytest.raises(ValueError, match="waypoint"):
        pd_follower(np.array([np.nan, 0.0]), robot)
