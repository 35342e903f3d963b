"""Built-in MuJoCo world with pedestrians: scenes, expert, dataset recorder, closed-loop rollouts.

Importing this package sets two environment variables with ``os.environ.setdefault`` (a value you set
yourself wins) BEFORE MuJoCo is imported: ``MUJOCO_GL=egl`` (headless offscreen rendering; Mesa's
software rasteriser on a machine without GPU) and ``LP_NUM_THREADS=0`` (Mesa llvmpipe renders on the
calling thread; its worker threads do not survive ``fork`` and a forked child would hang on its first
frame). Import ``navintent.sim`` before anything else imports ``mujoco``.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "0")

from navintent.sim.config import (  # noqa: E402
    CameraConfig,
    ExpertConfig,
    PedestrianConfig,
    RobotConfig,
    SceneConfig,
    SimConfig,
)
from navintent.sim.scene import Scene, generate_scene  # noqa: E402
from navintent.sim.world import World, predict_agents_at, to_robot_frame  # noqa: E402

__all__ = [
    "CameraConfig",
    "ExpertConfig",
    "PedestrianConfig",
    "RobotConfig",
    "SceneConfig",
    "SimConfig",
    "Scene",
    "World",
    "generate_scene",
    "predict_agents_at",
    "to_robot_frame",
]
