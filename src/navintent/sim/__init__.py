"""Built-in MuJoCo world with pedestrians: scenes, expert, dataset recorder, closed-loop rollouts.

Importing this package sets two environment variables with ``os.environ.setdefault`` (a value you set
yourself wins) BEFORE MuJoCo is imported: ``MUJOCO_GL=egl`` (headless offscreen rendering; Mesa's
software rasteriser on a machine without GPU) and ``LP_NUM_THREADS=0`` (Mesa llvmpipe renders on the
calling thread; its worker threads do not survive ``fork`` and a forked child would hang on its first
frame). Import ``navintent.sim`` before anything else imports ``mujoco``. Importing it creates no GL context
(renderers are created lazily per process, see :mod:`navintent.sim.render`), so it is safe before ``fork``.
The single-threaded rasteriser costs ~40 % of render speed at 96 x 96 (measured: ~1000 vs ~1700 frames/s with
``LP_NUM_THREADS=2``); set ``LP_NUM_THREADS`` yourself if your process never forks after rendering.

Main entry points: :func:`generate_scene` (seeded world), :class:`World` (state, stepping,
``predict_agents``, ``replay``), :func:`rollout` (a policy closed loop, given a :class:`Step` each control step), :func:`run_expert`, :class:`SceneRenderer`,
:func:`record_dataset` (``navintent make-data``).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "0")

from navintent.sim.config import (  # noqa: E402
    RECORDING_FILE,
    CameraConfig,
    ExpertConfig,
    PedestrianConfig,
    RobotConfig,
    SceneConfig,
    SimConfig,
    load_sim_config,
    sim_config_changes,
)
from navintent.sim.recorder import record_dataset  # noqa: E402
from navintent.sim.render import SceneRenderer  # noqa: E402
from navintent.sim.rollout import (  # noqa: E402
    RolloutMetrics,
    RolloutResult,
    Step,
    compute_metrics,
    make_expert,
    rollout,
    run_expert,
)
from navintent.sim.scene import Scene, generate_scene  # noqa: E402
from navintent.sim.world import World, predict_agents_at, predict_agents_local, to_robot_frame  # noqa: E402

__all__ = [
    "CameraConfig",
    "ExpertConfig",
    "PedestrianConfig",
    "RobotConfig",
    "SceneConfig",
    "SimConfig",
    "RECORDING_FILE",
    "load_sim_config",
    "sim_config_changes",
    "Scene",
    "SceneRenderer",
    "RolloutMetrics",
    "RolloutResult",
    "Step",
    "compute_metrics",
    "make_expert",
    "record_dataset",
    "rollout",
    "run_expert",
    "World",
    "generate_scene",
    "predict_agents_at",
    "predict_agents_local",
    "to_robot_frame",
]
