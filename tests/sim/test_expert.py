import numpy as np

from navintent.sim import generate_scene
from navintent.sim.planner import resample_path
from navintent.sim.rollout import run_expert


def test_expert_reaches_goal_without_collision_in_95_percent_of_20_scenes():
    results = [run_expert(generate_scene(seed), max_steps=400) for seed in range(20)]
    successes = sum(r.metrics.success for r in results)
    assert successes >= 19, [(seed, r.metrics) for seed, r in enumerate(results) if not r.metrics.success]
    # the scenes exercise interaction: some have pedestrians crossing the planned path
    assert sum(bool(r.scene.crossing.any()) for r in results) >= 3
    steps = [r.metrics.steps for r in results if r.metrics.success]
    assert 30 <= np.median(steps) <= 150


def test_resample_path_rows_are_arc_length_samples_padded_with_the_goal():
    path = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.5]])
    ref = resample_path(path, 40, 0.05)
    np.testing.assert_allclose(ref[0], [0.0, 0.0])
    np.testing.assert_allclose(ref[10], [0.5, 0.0])
    np.testing.assert_allclose(ref[25], [1.0, 0.25])
    np.testing.assert_allclose(ref[30:], np.tile([1.0, 0.5], (10, 1)))


def test_steer_noise_is_a_seeded_ornstein_uhlenbeck_process_of_the_configured_size():
    """Stationary std and lag-1 autocorrelation against the closed form (sigma, exp(-dt / tau)); None when off."""
    import dataclasses
    import math

    import pytest

    from navintent.sim.config import ExpertConfig
    from navintent.sim.rollout import steer_noise

    scene = generate_scene(3)
    assert steer_noise(scene, 50) is None
    cfg = dataclasses.replace(scene.config, expert=ExpertConfig(steer_noise=0.3, steer_noise_time=1.5))
    noisy = dataclasses.replace(scene, config=cfg)
    n = steer_noise(noisy, 200_000)
    assert n.shape == (200_001,)
    assert n.std() == pytest.approx(0.3, rel=0.03)
    a = math.exp(-cfg.robot.dt / 1.5)
    assert np.corrcoef(n[:-1], n[1:])[0, 1] == pytest.approx(a, abs=0.01)
    np.testing.assert_array_equal(steer_noise(noisy, 100), n[:101])  # seeded by the scene, not a global RNG
    with pytest.raises(ValueError, match="steer_noise must be a non-negative number"):
        ExpertConfig(steer_noise=-0.1)


def test_expert_with_steer_noise_leaves_its_path_and_comes_back():
    """The noisy expert drives another, reproducible trajectory, farther from the A* path, and still arrives."""
    import dataclasses

    from navintent.evaluation.scenes import point_at_arc_length, project_on_path
    from navintent.sim.config import ExpertConfig

    def off_path(run):
        path = run.scene.path
        return max(
            float(
                np.linalg.norm(point_at_arc_length(path, np.array([project_on_path(path, p[:2])]))[0] - p[:2])
            )
            for p in run.poses
        )

    scene = generate_scene(5)
    cfg = dataclasses.replace(scene.config, expert=ExpertConfig(steer_noise=0.4, steer_noise_time=1.5))
    noisy_scene = dataclasses.replace(scene, config=cfg)
    plain, noisy, again = run_expert(scene), run_expert(noisy_scene), run_expert(noisy_scene)
    np.testing.assert_array_equal(noisy.poses, again.poses)
    assert off_path(noisy) > off_path(plain) + 0.03, (off_path(noisy), off_path(plain))
    assert noisy.metrics.goal_reached
