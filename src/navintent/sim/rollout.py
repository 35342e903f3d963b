"""Closed-loop episodes: a policy (or the expert) drives the robot in a scene; metrics of the run.

One step ``t``: render the camera at pose ``t`` (pedestrians at their step-``t`` positions), ask the driver
for a command, advance the world (see :class:`navintent.sim.world.World`). The episode ends when the robot
is within ``goal_radius`` of the goal (checked before acting, so a robot starting at the goal takes 0 steps)
or after ``max_steps`` steps.

A policy gets one :class:`Step` per control step: the observation context and goal image it plans from, and the
simulator state it may use (the robot's pose, the pedestrians' positions and velocities), so nothing has to wrap
the renderer to learn them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from navintent.errors import NumericalStopError
from navintent.sim.planner import Expert
from navintent.sim.robot import pd_follower
from navintent.sim.scene import Scene
from navintent.sim.world import World


@dataclass(frozen=True)
class Step:
    """What a policy is given at control step ``t`` (before it acts). ``pose`` and the pedestrian arrays are copies
    the policy may keep; ``goal_image`` is the same array every step (read it, do not write to it).

    ``t``: the control step (0 = the start). ``context [C + 1, H, W, 3]`` uint8: the camera frames, oldest first,
    current LAST (before ``C`` steps have passed, the first frame is repeated to fill the context).
    ``goal_image [H, W, 3]`` uint8: the camera at the goal pose with pedestrians hidden. ``pose [3]``: the robot's
    x, y (m, world frame) and yaw (rad) at step ``t``, where ``context[-1]`` was taken. ``ped_positions [N, 2]``
    (m, world) and ``ped_velocities [N, 2]`` (m/s, world): the pedestrians at step ``t``, as drawn in
    ``context[-1]`` (``N`` may be 0).
    """

    t: int
    context: np.ndarray
    goal_image: np.ndarray
    pose: np.ndarray
    ped_positions: np.ndarray
    ped_velocities: np.ndarray


# ``policy_fn(step) -> waypoints [T, 2]`` (m, current robot frame: x forward, y left)
PolicyFn = Callable[[Step], np.ndarray]


@dataclass
class RolloutMetrics:
    """Episode metrics (metres, steps of ``dt`` s).

    ``static_collisions``: steps whose move was blocked by a wall/obstacle. ``pedestrian_collisions``: contact
    onsets, counted per pedestrian (robot and pedestrian discs start to overlap). ``min_distance``: per
    pedestrian, the smallest centre-to-centre distance ``[N]``. ``min_ttc``: the smallest time-to-collision (s)
    over all steps and pedestrians, from positions at ``t`` and finite-difference velocities over ``t -> t+1``
    held constant (0 while in contact, ``inf`` if no pair was ever on a collision course).
    """

    goal_reached: bool
    steps: int
    path_length: float
    final_distance: float
    static_collisions: int
    pedestrian_collisions: int
    min_distance: np.ndarray
    min_ttc: float

    @property
    def success(self) -> bool:
        """Reached the goal without touching anything."""
        return self.goal_reached and self.static_collisions == 0 and self.pedestrian_collisions == 0


@dataclass
class RolloutResult:
    """``poses [S+1, 3]`` (x, y, yaw per step, row 0 = start), ``commands [S, 2]`` (v, w), ``agents [S+1, N, 2]``
    pedestrian world positions, ``static_hits [S]`` bool, ``images [S+1, H, W, 3]`` uint8 or None,
    ``waypoints`` the policy outputs ``[S, T, 2]`` (robot frame, m; None for the expert), ``goal_image``."""

    scene: Scene
    poses: np.ndarray
    commands: np.ndarray
    agents: np.ndarray
    static_hits: np.ndarray
    metrics: RolloutMetrics
    images: np.ndarray | None = None
    waypoints: np.ndarray | None = None
    goal_image: np.ndarray | None = None


def time_to_collision(rel_pos: np.ndarray, rel_vel: np.ndarray, radius: float) -> np.ndarray:
    """Smallest ``tau >= 0`` with ``|rel_pos + tau * rel_vel| = radius`` for ``[..., 2]`` inputs; 0 if already within
    ``radius``, ``inf`` if never."""
    a = (rel_vel**2).sum(-1)
    b = 2 * (rel_pos * rel_vel).sum(-1)
    c = (rel_pos**2).sum(-1) - radius**2
    disc = b**2 - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
    tau = np.where((a > 1e-12) & (disc >= 0) & (tau >= 0), tau, np.inf)
    return np.where(c <= 0, 0.0, tau)


def compute_metrics(
    scene: Scene, poses: np.ndarray, agents: np.ndarray, static_hits: np.ndarray
) -> RolloutMetrics:
    """Metrics from a run's ``poses [S+1, 3]``, ``agents [S+1, N, 2]`` and ``static_hits [S]``."""
    cfg = scene.config
    steps = len(poses) - 1
    radius = cfg.robot.radius + cfg.pedestrians.radius
    final_distance = float(np.linalg.norm(scene.goal[:2] - poses[-1, :2]))
    path_length = float(np.linalg.norm(np.diff(poses[:, :2], axis=0), axis=1).sum())
    n = agents.shape[1]
    if n:
        rel = agents - poses[:, None, :2]  # [S+1, N, 2]
        dist = np.linalg.norm(rel, axis=-1)
        contact = dist < radius
        onsets = contact[0].sum() + (contact[1:] & ~contact[:-1]).sum()
        min_distance = dist.min(axis=0)
        if steps:
            rel_vel = np.diff(rel, axis=0) / cfg.robot.dt
            min_ttc = float(time_to_collision(rel[:-1], rel_vel, radius).min())
        else:
            min_ttc = 0.0 if contact.any() else float("inf")
    else:
        onsets, min_distance, min_ttc = 0, np.zeros(0), float("inf")
    return RolloutMetrics(
        goal_reached=final_distance <= cfg.goal_radius,
        steps=steps,
        path_length=path_length,
        final_distance=final_distance,
        static_collisions=int(np.sum(static_hits)),
        pedestrian_collisions=int(onsets),
        min_distance=min_distance,
        min_ttc=min_ttc,
    )


def _run(
    scene,
    driver,
    max_steps: int,
    renderer,
    record_images: bool,
    needs_frames: bool,
    should_stop=None,
    stop_at_goal: bool = True,
):
    world = World(scene)
    poses, agents, commands, hits, images = [world.pose.copy()], [world.ped_positions], [], [], []
    for _ in range(max_steps + 1):
        frame = None
        if needs_frames or record_images:
            frame = renderer.render(world.pose, world.ped_positions)
            if record_images:
                images.append(frame)
        if (
            (stop_at_goal and world.goal_reached())
            or world.t == max_steps
            or (should_stop is not None and should_stop())
        ):
            break
        v, w = driver(world, frame)
        world.step(v, w)
        poses.append(world.pose.copy())
        agents.append(world.ped_positions)
        commands.append((v, w))
        hits.append(world.last_static_collision)
    poses = np.array(poses)
    agents = np.array(agents).reshape(len(poses), scene.num_pedestrians, 2)
    hits = np.array(hits, dtype=bool)
    return (
        poses,
        np.array(commands, dtype=np.float64).reshape(-1, 2),
        agents,
        hits,
        np.stack(images) if record_images else None,
    )


def make_expert(scene: Scene) -> Expert:
    """The privileged expert for ``scene``, following ``scene.path``."""
    cfg = scene.config
    return Expert(
        scene.static,
        scene.path,
        scene.goal[:2],
        robot=cfg.robot,
        config=cfg.expert,
        pedestrian_radius=cfg.pedestrians.radius,
        goal_radius=cfg.goal_radius,
        resolution=cfg.scene.grid_resolution,
    )


def steer_noise(scene: Scene, steps: int) -> np.ndarray | None:
    """The turn-rate noise ``[steps + 1]`` (rad/s, one value per control step) the expert of ``scene`` drives with, or None when
    ``ExpertConfig.steer_noise`` is 0: a stationary Ornstein-Uhlenbeck process (exact discretisation,
    ``n[t+1] = a n[t] + sigma sqrt(1 - a^2) e[t]``, ``a = exp(-dt / steer_noise_time)``, ``n[0] ~ N(0, sigma^2)``)
    drawn from ``numpy.random.default_rng([scene.seed, 7])``."""
    cfg = scene.config
    sigma = cfg.expert.steer_noise
    if sigma == 0:
        return None
    a = math.exp(-cfg.robot.dt / cfg.expert.steer_noise_time)
    e = np.random.default_rng([int(scene.seed), 7]).standard_normal(steps + 1)
    out = np.empty(steps + 1)
    out[0] = sigma * e[0]
    for t in range(steps):
        out[t + 1] = a * out[t] + sigma * math.sqrt(1.0 - a * a) * e[t + 1]
    return out


def run_expert(
    scene: Scene, max_steps: int = 400, *, renderer=None, record_images: bool = False
) -> RolloutResult:
    """Drive ``scene`` with the expert. Rendering only if ``record_images`` (needs ``renderer``). With
    ``scene.config.expert.steer_noise`` > 0 the turn rate carries the seeded noise of :func:`steer_noise`."""
    if record_images and renderer is None:
        raise ValueError("record_images=True needs a renderer (navintent.sim.render.SceneRenderer)")
    expert = make_expert(scene)
    noise = steer_noise(scene, max_steps)
    max_w = scene.config.robot.max_w

    def driver(world: World, frame) -> tuple[float, float]:
        v, w = expert.act(world.pose, world.ped_positions, world.ped_velocities)
        if noise is not None:
            w = float(np.clip(w + noise[world.t], -max_w, max_w))
        return v, w

    poses, commands, agents, hits, images = _run(scene, driver, max_steps, renderer, record_images, False)
    return RolloutResult(
        scene, poses, commands, agents, hits, compute_metrics(scene, poses, agents, hits), images
    )


def rollout(
    policy_fn: PolicyFn,
    scene: Scene,
    max_steps: int,
    *,
    context_size: int = 3,
    waypoint_index: int = 2,
    renderer=None,
    record_images: bool = False,
    should_stop: Callable[[], bool] | None = None,
    stop_at_goal: bool = True,
) -> RolloutResult:
    """Run ``policy_fn`` closed loop in ``scene`` for at most ``max_steps`` control steps (fewer when the robot
    reaches the goal, unless ``stop_at_goal`` is False, or when ``should_stop()`` turns true: it is asked before
    each step, e.g. a navigator that declared the goal; such a loop passes ``stop_at_goal=False`` so that the
    world does not end the episode before the loop can say it has arrived).

    ``policy_fn(step) -> waypoints``: ``step`` is a :class:`Step` (context of ``context_size + 1`` frames, goal
    image, the robot's pose and the pedestrians' state at this step); ``waypoints [T, 2]`` metres in the current
    robot frame (x forward, y left). Waypoint ``min(waypoint_index, T - 1)`` (NoMaD deploys index 2) goes to
    :func:`~navintent.sim.robot.pd_follower`. A renderer (:class:`~navintent.sim.render.SceneRenderer`) is
    created and closed here unless one is given.

    Raises ``ValueError`` for ``context_size < 0`` or waypoints not of shape ``[T, 2]`` (T >= 1) and
    :class:`navintent.errors.NumericalStopError` when the policy returns NaN/inf waypoints (naming the step).
    """
    if context_size < 0:
        raise ValueError(f"context_size must be >= 0, got {context_size}")
    own = renderer is None
    if own:
        from navintent.sim.render import SceneRenderer

        renderer = SceneRenderer(scene)
    try:
        goal_image = renderer.goal_image()
        frames: list[np.ndarray] = []
        outputs: list[np.ndarray] = []

        def driver(world: World, frame: np.ndarray) -> tuple[float, float]:
            frames.append(frame)
            recent = frames[-(context_size + 1) :]
            context = np.stack([recent[0]] * (context_size + 1 - len(recent)) + recent)
            step = Step(
                world.t, context, goal_image, world.pose.copy(), world.ped_positions, world.ped_velocities
            )
            waypoints = np.asarray(policy_fn(step), dtype=np.float64)
            if waypoints.ndim != 2 or waypoints.shape[1] != 2 or len(waypoints) == 0:
                raise ValueError(f"policy_fn must return waypoints of shape [T, 2], got {waypoints.shape}")
            if not np.all(np.isfinite(waypoints)):
                raise NumericalStopError(f"policy_fn returned non-finite waypoints at step {world.t}")
            outputs.append(waypoints)
            return pd_follower(waypoints[min(waypoint_index, len(waypoints) - 1)], scene.config.robot)

        poses, commands, agents, hits, images = _run(
            scene, driver, max_steps, renderer, record_images, True, should_stop, stop_at_goal
        )
    finally:
        if own:
            renderer.close()
    waypoints = np.stack(outputs) if outputs and len({o.shape for o in outputs}) == 1 else None
    return RolloutResult(
        scene,
        poses,
        commands,
        agents,
        hits,
        compute_metrics(scene, poses, agents, hits),
        images,
        waypoints,
        goal_image,
    )
