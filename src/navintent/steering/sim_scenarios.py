"""Scenarios from the built-in MuJoCo world: the moment before a pedestrian interaction in front of the expert.

Owns :func:`sim_scenarios` (scene seeds, the chosen step, rendered context and goal frames, pedestrians' future
positions in the robot frame, the occupancy map for the static-collision term) and its camera description.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from navintent.config import check_positive_int, check_positive_number
from navintent.objectives import GridMap
from navintent.steering.scenarios import Scenarios, SimCamera
from navintent.transforms import crop_box, prepare_frames


def _sim_obstacle_map(
    static, pose: np.ndarray, half: float = 3.0, resolution: float = 0.1, radius: float = 0.2
):
    """Occupancy ``[1, H, W]`` in the robot frame at ``pose``: 1 where the robot disc would touch a wall/obstacle."""
    n = int(round(2 * half / resolution)) + 1
    xs = -half + resolution * np.arange(n)
    gx, gy = np.meshgrid(xs, xs, indexing="xy")  # row i <-> y, column j <-> x
    local = np.stack([gx.ravel(), gy.ravel()], axis=1)
    c, s = np.cos(pose[2]), np.sin(pose[2])
    world = local @ np.array([[c, s], [-s, c]]) + pose[:2]
    occ = (static.clearance(world) < radius).astype(np.float32).reshape(n, n)
    return GridMap(torch.from_numpy(occ).unsqueeze(0), origin=(-half, -half), resolution=resolution)


def sim_scenarios(
    model_config,
    num: int,
    seed: int,
    *,
    metric_scale: float,
    waypoint_spacing: int = 1,
    max_steps: int = 240,
    require_pedestrians: bool = False,
) -> tuple[Scenarios, SimCamera]:
    """Built-in scenarios from the MuJoCo world: scene seeds ``seed, seed + 1, ...``; with
    ``require_pedestrians`` scenes without pedestrians are skipped until ``num`` are found (at most ``20 * num``
    seeds tried). Scene seeds are disjoint from the recorder's, whose seeds are hashed.

    The expert drives each scene; the scenario is the step where a pedestrian's true future (over the
    prediction horizon, only points at least 0.2 m ahead of the robot) comes closest to the robot's current
    position while still >= 0.6 m away (the moment before an interaction in front), or step
    ``context_size * waypoint_spacing`` if no such step exists. Frames are ``waypoint_spacing`` control
    steps apart, as in the dataset a checkpoint trained on: context frames are the rendered camera at the
    previous ``context_size + 1`` frames, the goal image the camera at the goal; agents are the pedestrians'
    positions at the ``len_traj_pred`` waypoint times in the robot frame (metres). ``metric_scale``: metres per
    normalised unit, as :func:`navintent.metric_scale.resolve_metric_scale` gives it for the checkpoint. The
    obstacle map feeds the static-collision term.
    """
    # MuJoCo (through navintent.sim) loads only when sim scenes are built: scenarios from data, and every importer
    # of navintent.steering, never start it.
    from navintent.sim import generate_scene, to_robot_frame
    from navintent.sim.render import SceneRenderer
    from navintent.sim.rollout import run_expert

    check_positive_int("waypoint_spacing", waypoint_spacing)
    check_positive_number("metric_scale", metric_scale)
    ws = waypoint_spacing
    c, t_pred = model_config.context_size, model_config.len_traj_pred
    wp_steps = ws * np.arange(1, t_pred + 1)  # control steps from now to each waypoint
    obs, goals, agents, masks, scales, maps, names = [], [], [], [], [], [], []
    camera = None
    scene_seed = seed
    while len(obs) < num:
        if scene_seed - seed >= 20 * num:
            raise ValueError(
                f"only {len(obs)} of {num} scenes with pedestrians among sim seeds {seed}..{scene_seed - 1}"
            )
        scene = generate_scene(scene_seed)
        scene_seed += 1
        if require_pedestrians and not scene.num_pedestrians:
            continue
        run = run_expert(scene, max_steps=max_steps)
        poses, peds = run.poses, run.agents  # [S+1, 3], [S+1, N, 2]
        scale = float(metric_scale)
        last = len(poses) - 1
        t_best = min(c * ws, last)
        if scene.num_pedestrians and last > c * ws:
            best = math.inf
            for t in range(c * ws, last):
                fut = peds[np.minimum(t + wp_steps, last)]
                local = to_robot_frame(fut.reshape(-1, 2), poses[t])
                ahead = local[local[:, 0] > 0.2]
                d = np.linalg.norm(ahead, axis=-1).min() if len(ahead) else math.inf
                if 0.6 <= d < best:
                    best, t_best = d, t
        future = peds[np.minimum(t_best + wp_steps, last)]  # [T, N, 2]
        width, height = scene.config.camera.image_size
        box = crop_box(width, height)
        frames = []
        with SceneRenderer(scene) as renderer:
            for k in range(t_best - c * ws, t_best + 1, ws):
                k = max(k, 0)
                frames.append(renderer.render(poses[k], peds[k]))
            goal = renderer.goal_image()

        obs.append(torch.from_numpy(prepare_frames(np.stack(frames), model_config.image_size)))
        goals.append(torch.from_numpy(prepare_frames(goal[None], model_config.image_size)))
        n_ped = scene.num_pedestrians
        local = (
            to_robot_frame(future.reshape(-1, 2), poses[t_best]).reshape(t_pred, n_ped, 2) if n_ped else None
        )
        agents.append(local)
        masks.append(n_ped)
        scales.append(scale)
        maps.append(_sim_obstacle_map(scene.static, poses[t_best], radius=scene.config.robot.radius))
        names.append(f"sim_seed{scene_seed - 1}_t{t_best}")
        camera = SimCamera(scene.config.camera.hfov_deg, scene.config.camera.height, (width, height), box)
    k_max = max(max(masks), 1)
    agent_t = torch.zeros(num, t_pred, k_max, 2)
    agent_m = torch.zeros(num, k_max)
    for i, (a, n) in enumerate(zip(agents, masks, strict=True)):
        if n:
            agent_t[i, :, :n] = torch.from_numpy(a).float()
            agent_m[i, :n] = 1.0
    grid = GridMap(torch.cat([m.values for m in maps]), maps[0].origin, maps[0].resolution)
    sc = Scenarios(
        obs_img=torch.stack(obs),
        goal_img=torch.stack(goals),
        metric_scale=torch.tensor(scales, dtype=torch.float32),
        agents=agent_t,
        agents_mask=agent_m,
        obstacle_map=grid,
        names=names,
    )
    return sc, camera
