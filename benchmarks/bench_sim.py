"""Simulator speed: rendering frames/s and closed-loop steps/s.

    .venv/bin/python benchmarks/bench_sim.py [--frames 300] [--scenes 5]

Rendering is timed at the default 96 x 96 robot camera with our settings (no multisampling, no shadows,
1 m floor checker) against MuJoCo's defaults (4x multisampling, shadows) in the same process, same scene and
poses. Steps/s are per control step (dt = 0.25 s): the expert without rendering, the expert rendering every
frame (what ``make-data`` does, JPEG encoding excluded), and ``rollout`` with a trivial policy (render + context
+ follower; the policy's own cost excluded).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from navintent.sim import generate_scene
from navintent.sim.render import SceneRenderer
from navintent.sim.rollout import rollout, run_expert
from navintent.sim.scene import scene_to_mjcf


def _poses(scene, n):
    t = np.linspace(0, 1, n)[:, None]
    xy = scene.start[:2] + t * (scene.goal[:2] - scene.start[:2])
    return np.concatenate([xy, np.linspace(0, 2 * np.pi, n)[:, None]], axis=1)


def time_ours(scene, poses):
    with SceneRenderer(scene) as r:
        r.render(poses[0], None)
        t0 = time.perf_counter()
        for p in poses:
            r.render(p, None)
        return len(poses) / (time.perf_counter() - t0)


def time_defaults(scene, poses):
    import mujoco  # after navintent.sim, which sets MUJOCO_GL / LP_NUM_THREADS first

    xml = scene_to_mjcf(scene).replace('offsamples="0" shadowsize="0"', "").replace(' castshadow="false"', "")
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    robot = model.body_mocapid[model.body("robot").id]
    with mujoco.Renderer(model, 96, 96) as r:
        t0 = None
        for k, p in enumerate(np.concatenate([poses[:1], poses])):
            if k == 1:
                t0 = time.perf_counter()
            data.mocap_pos[robot] = [p[0], p[1], 0.0]
            data.mocap_quat[robot] = [np.cos(p[2] / 2), 0, 0, np.sin(p[2] / 2)]
            mujoco.mj_forward(model, data)
            r.update_scene(data, "robot_cam")
            r.render()
        return len(poses) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--scenes", type=int, default=5)
    args = parser.parse_args()
    scenes = [generate_scene(s) for s in range(args.scenes)]

    ours = [time_ours(s, _poses(s, args.frames)) for s in scenes]
    base = [time_defaults(s, _poses(s, args.frames)) for s in scenes]
    print(
        f"render 96x96, ours          : {np.median(ours):8.0f} frames/s ({1e3 / np.median(ours):.2f} ms/frame)"
    )
    print(
        f"render 96x96, MuJoCo default: {np.median(base):8.0f} frames/s ({1e3 / np.median(base):.2f} ms/frame)"
    )
    print(f"  speed-up over defaults    : {np.median(ours) / np.median(base):8.2f}x")

    t0, steps = time.perf_counter(), 0
    for s in scenes:
        steps += run_expert(s).metrics.steps
    expert = steps / (time.perf_counter() - t0)
    t0, steps = time.perf_counter(), 0
    for s in scenes:
        with SceneRenderer(s) as r:
            steps += run_expert(s, renderer=r, record_images=True).metrics.steps
    expert_img = steps / (time.perf_counter() - t0)
    t0, steps = time.perf_counter(), 0
    for s in scenes:
        steps += rollout(lambda step: np.array([[0.05, 0.0], [0.1, 0.0], [0.15, 0.01]]), s, 100).metrics.steps
    policy = steps / (time.perf_counter() - t0)
    print(f"expert steps/s, no rendering: {expert:8.0f}")
    print(f"expert steps/s, rendering   : {expert_img:8.0f}  ({expert_img / expert:.2f}x of no rendering)")
    print(f"rollout steps/s, trivial policy (render + follower): {policy:8.0f}")


if __name__ == "__main__":
    main()
