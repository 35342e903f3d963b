"""Shared builders for the simulator tests."""

import dataclasses

import numpy as np
import pytest

from navintent.sim import SceneConfig, SimConfig, generate_scene


def corridor_scene(
    routes=(), speeds=(), robot_strength: float = 2.0, start=(1.0, 3.0, 0.0), goal=(5.0, 3.0, 0.0)
):
    """An empty 6 x 6 m room with hand-placed start, goal and pedestrian routes."""
    config = SimConfig(scene=SceneConfig(n_obstacles=(0, 0), n_pedestrians=(0, 0)))
    config = config.replace(pedestrians=config.pedestrians.replace(robot_strength=robot_strength))
    base = generate_scene(0, config)
    n = len(routes)
    return dataclasses.replace(
        base,
        start=np.array(start, dtype=float),
        goal=np.array(goal, dtype=float),
        path=np.array([start[:2], goal[:2]], dtype=float),
        routes=tuple(np.asarray(r, dtype=float) for r in routes),
        speeds=np.asarray(speeds, dtype=float),
        pedestrian_colors=np.tile([0.2, 0.6, 0.3, 1.0], (n, 1)),
        crossing=np.zeros(n, dtype=bool),
    )


@pytest.fixture
def make_corridor():
    return corridor_scene
