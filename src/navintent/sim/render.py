"""Offscreen rendering of a scene with MuJoCo, safe around ``fork``.

The MuJoCo model (``MjModel``/``MjData``) is built eagerly (no GL involved); the GL renderer is created
lazily on the first :meth:`SceneRenderer.render` call IN THE CALLING PROCESS and remembered per process id,
so a forked child (a DataLoader worker, a multiprocessing pool) never touches its parent's GL context and
makes its own. Close renderers explicitly (:meth:`close` or ``with``): only this process's renderer is
closed. ``navintent.sim`` sets ``MUJOCO_GL=egl`` and ``LP_NUM_THREADS=0`` before MuJoCo is imported (see
its ``__init__``); the latter keeps Mesa's software rasteriser single-threaded, without which a child forked
after the parent rendered hangs on its first frame.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from navintent.sim.config import CameraConfig
from navintent.sim.scene import Scene, scene_to_mjcf


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


class SceneRenderer:
    """Renders the robot camera (``[H, W, 3]`` uint8) at any robot pose with pedestrians at given positions."""

    def __init__(self, scene: Scene, camera: CameraConfig | None = None) -> None:
        self.scene = scene
        self.camera = camera or scene.config.camera
        self.model = mujoco.MjModel.from_xml_string(scene_to_mjcf(scene, self.camera))
        self.data = mujoco.MjData(self.model)
        self._robot_mocap = self.model.body_mocapid[self.model.body("robot").id]
        self._ped_mocap = [
            self.model.body_mocapid[self.model.body(f"ped{i}").id] for i in range(scene.num_pedestrians)
        ]
        self._renderers: dict[int, mujoco.Renderer] = {}

    def _renderer(self) -> mujoco.Renderer:
        pid = os.getpid()
        if pid not in self._renderers:
            width, height = self.camera.image_size
            self._renderers[pid] = mujoco.Renderer(self.model, height=height, width=width)
        return self._renderers[pid]

    def set_state(self, pose: np.ndarray, ped_positions: np.ndarray | None) -> None:
        """Place the robot at ``pose (x, y, yaw)`` and pedestrians at ``[N, 2]`` (None hides them)."""
        self.data.mocap_pos[self._robot_mocap] = [pose[0], pose[1], 0.0]
        self.data.mocap_quat[self._robot_mocap] = _yaw_quat(float(pose[2]))
        for k, mocap in enumerate(self._ped_mocap):
            if ped_positions is None:
                self.data.mocap_pos[mocap] = [0.0, 0.0, -10.0]
            else:
                self.data.mocap_pos[mocap] = [ped_positions[k, 0], ped_positions[k, 1], 0.0]
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)

    def render(
        self, pose: np.ndarray, ped_positions: np.ndarray | None, camera: str = "robot_cam"
    ) -> np.ndarray:
        """RGB ``[H, W, 3]`` uint8 from ``camera`` ("robot_cam" or "overview")."""
        self.set_state(pose, ped_positions)
        renderer = self._renderer()
        renderer.update_scene(self.data, camera=camera)
        return renderer.render()

    def overview(self, pose: np.ndarray, ped_positions: np.ndarray | None, size: int = 480) -> np.ndarray:
        """Top-down RGB ``[size, size, 3]`` uint8 of the whole room (for figures), from a second lazily created
        per-process renderer."""
        key = -os.getpid() - 1  # negative keys: overview renderers
        renderer = self._renderers.get(key)
        if renderer is None or renderer.width != size:
            if renderer is not None:
                renderer.close()
            renderer = self._renderers[key] = mujoco.Renderer(self.model, height=size, width=size)
        self.set_state(pose, ped_positions)
        renderer.update_scene(self.data, camera="overview")
        return renderer.render()

    def goal_image(self) -> np.ndarray:
        """The robot camera at the goal pose, pedestrians hidden (a map image taken when nobody was there)."""
        return self.render(self.scene.goal, None)

    def close(self) -> None:
        """Close this process's renderers (renderers of other processes are left alone)."""
        for key in (os.getpid(), -os.getpid() - 1):
            renderer = self._renderers.pop(key, None)
            if renderer is not None:
                renderer.close()

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
