"""Closed-loop episodes and scenes: one method driving one held-out scene, every method in a scene, and the scenes
spread over worker processes or ``torchrun`` ranks.

Owns: the episode row (the metrics of :mod:`navintent.evaluation.metrics` for one run), the navigate / explore /
goal-image task wiring around :func:`navintent.sim.rollout.rollout` (:class:`navintent.deploy.TopomapNavigator`
for ``navigate``), the per-scene order (expert first for the step budget, Adam's mean re-optimisation time as the
baselines' budget, attack success against the nominal), :func:`resolve_methods` for a checkpoint, and
:func:`run_scenes` (spawned workers, ``torchrun`` gather on rank 0). Every scene is a pure function of its index and
the config, so results do not depend on where it ran (except the wall-clock-budgeted baselines).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from navintent.checkpoint import LoadedModel
from navintent.deploy import DeployStep, TopomapNavigator
from navintent.evaluation.config import (
    LATENT_METHODS,
    METHODS,
    NOMINAL,
    EvalConfig,
    dynamics_limits,
    map_every_frames,
)
from navintent.evaluation.metrics import (
    TASK_MEANS,
    attack_success,
    dynamics_violations,
    interaction_intensity,
    mean_finite,
)
from navintent.evaluation.policy import ClosedLoopPolicy
from navintent.evaluation.scenes import TARGET_HORIZON_STEPS, evaluation_scenes, free_walk, target_pedestrian
from navintent.evaluation.tasks import (
    RecordedMap,
    TaskEpisode,
    exploration_metrics,
    navigation_metrics,
    record_topomap,
)
from navintent.sim.config import SimConfig
from navintent.sim.render import SceneRenderer
from navintent.sim.rollout import Step, rollout, run_expert

log = logging.getLogger(__name__)


def _episode_row(
    method: str, scene, result, free: np.ndarray, target: int, seconds: float, policy: ClosedLoopPolicy | None
) -> dict[str, Any]:
    m = result.metrics
    steps = len(result.poses) - 1
    intensity = interaction_intensity(result.agents, free[: steps + 1], scene.config.robot.dt)
    dist = np.linalg.norm(result.agents[:, target] - result.poses[:, :2], axis=-1)
    row: dict[str, Any] = {
        "method": method,
        "scene_seed": int(scene.seed),
        "target": int(target),
        "goal_reached": bool(m.goal_reached),
        "success": bool(m.success),
        "static_collision": m.static_collisions > 0,
        "static_collision_steps": int(m.static_collisions),
        "pedestrian_collision": m.pedestrian_collisions > 0,
        "pedestrian_collisions": int(m.pedestrian_collisions),
        "steps": int(m.steps),
        "path_length": float(m.path_length),
        "final_distance": float(m.final_distance),
        "target_min_distance": float(dist.min()),
        "target_closest_step": int(dist.argmin()),
        "min_distance_any": float(np.min(m.min_distance)) if len(m.min_distance) else None,
        "min_ttc": float(m.min_ttc),
        "interaction_deviation": float(intensity["deviation"].max()),
        "interaction_speed_deficit": float(intensity["speed_deficit"].mean()),
        "target_deviation": float(intensity["deviation"][target]),
        "seconds": float(seconds),
        "z1_loglik": None,
        "z2_loglik": None,
        "noise_loglik": None,
        "dynamics_violation_rate": None,
        "reoptimisations": 0,
        "skipped_reoptimisations": 0,
        "optimisation_seconds": None,
        "attack_success": None,
    }
    if policy is not None:
        row["z1_loglik"] = mean_finite(policy.z1_loglik)
        row["z2_loglik"] = mean_finite(policy.z2_loglik)
        row["noise_loglik"] = mean_finite(policy.noise_loglik)
        if policy.plans:
            row["dynamics_violation_rate"] = float(
                dynamics_violations(
                    np.stack(policy.plans), policy.dt_wp, dynamics_limits(scene.config.robot)
                ).mean()
            )
        row["reoptimisations"] = policy.reoptimisations
        row["skipped_reoptimisations"] = policy.skipped_reoptimisations
        row["optimisation_seconds"] = mean_finite(policy.optimisation_seconds)
    return row


@dataclass
class Episode:
    """One closed-loop run: the metrics ``row`` and the tracks for plots (``poses [S+1, 3]``, ``agents [S+1, N, 2]``)."""

    row: dict[str, Any]
    poses: np.ndarray
    agents: np.ndarray


def run_episode(
    loaded: LoadedModel | None,
    method: str,
    scene,
    *,
    config: EvalConfig,
    metric_scale: float,
    max_steps: int,
    free: np.ndarray,
    target: int,
    budget_s: float | None = None,
    recorded: RecordedMap | None = None,
) -> tuple[Episode, ClosedLoopPolicy | None]:
    """Drive ``scene`` with ``method`` for at most ``max_steps`` steps in ``config.task``; ``free`` =
    :func:`free_walk` over at least ``max_steps`` steps; ``recorded``: the expert's map (task ``navigate``).
    Returns the episode and the policy (None for the expert).

    ``navigate``: each tick a :class:`navintent.deploy.TopomapNavigator` localises the context on the map (one
    batched vision pass over its window) and the method plans towards the subgoal node's image; the episode ends
    when the navigator declares the goal (it then stands still) or after ``max_steps``; reaching the goal
    physically does not end it (the navigator must say so, as NoMaD's loop does). ``explore``: the method
    plans goal-masked for exactly ``explore_steps`` steps (passing the scene's goal does not end it). The task's
    metrics (:mod:`navintent.evaluation.tasks`) join the row; for ``navigate`` ``goal_reached`` / ``success`` are
    the navigator's (declared within 1 m of the goal)."""
    task = config.task
    if task == "navigate" and method != "expert" and recorded is None:
        raise ValueError("task 'navigate' needs the recorded map (recorded=)")
    start = time.perf_counter()
    steps: list = []
    declared: list[int] = []
    if method == "expert":
        result = run_expert(scene, max_steps=config.explore_steps if task == "explore" else max_steps)
        policy = None
    else:
        renderer = SceneRenderer(scene)
        try:
            policy = ClosedLoopPolicy(
                loaded, method, scene, config=config, metric_scale=metric_scale, target=target,
                seed=config.seed * 100_003 + scene.seed, budget_s=budget_s, goal_masked=task == "explore",
            )  # fmt: skip
            policy_fn, should_stop, horizon = policy, None, max_steps
            if task == "navigate":
                navigator = TopomapNavigator(
                    loaded.model, recorded.topomap, radius=config.radius, close_threshold=config.close_threshold,
                    metric_scale=metric_scale, waypoint_index=config.waypoint_index,
                    stop_when_closest=config.stop_when_closest,
                )  # fmt: skip
                t_pred = loaded.model.config.len_traj_pred

                def policy_fn(step: Step) -> np.ndarray:
                    t0 = time.perf_counter()
                    loc = navigator.localise(list(step.context))
                    if loc.reached_goal:
                        declared.append(len(steps))
                        waypoints = np.zeros((t_pred, 2))  # stand still: the navigator is at the goal
                    else:  # the policy plans towards the subgoal node's image
                        subgoal = recorded.topomap.images[loc.subgoal_node]
                        waypoints = policy(replace(step, goal_image=subgoal))
                    ms = (time.perf_counter() - t0) * 1000.0
                    steps.append(DeployStep(True, waypoints[config.waypoint_index], None, None, ms,
                                            loc.closest_node, loc.subgoal_node, loc.window, loc.distances,
                                            loc.reached_goal))  # fmt: skip
                    return waypoints

                def should_stop() -> bool:
                    return bool(declared)

            elif task == "explore":
                horizon = config.explore_steps
                plan = policy

                def policy_fn(step: Step) -> np.ndarray:
                    t0 = time.perf_counter()
                    waypoints = plan(step)
                    steps.append(
                        DeployStep(
                            True,
                            waypoints[config.waypoint_index],
                            latency_ms=(time.perf_counter() - t0) * 1000.0,
                        )
                    )
                    return waypoints

            result = rollout(
                policy_fn, scene, horizon, context_size=loaded.model.config.context_size,
                waypoint_index=config.waypoint_index, renderer=renderer, should_stop=should_stop,
                # the navigator ends its episode by declaring the goal; exploration runs its explore_steps
                stop_at_goal=task == "goal-image",
            )  # fmt: skip
        finally:
            renderer.close()
    seconds = time.perf_counter() - start
    row = _episode_row(method, scene, result, free, target, seconds, policy)
    if method != "expert" and task != "goal-image":
        episode = TaskEpisode(
            task,
            scene,
            result.poses,
            result.agents,
            result.static_hits,
            steps,
            declared[0] if declared else None,
        )
        if task == "navigate":
            extra = navigation_metrics(episode, recorded.path_length, target=target)
            row["goal_reached"], row["success"] = extra.pop("goal_reached"), extra.pop("success")
        else:
            extra = exploration_metrics(episode)
        row.update({k: v for k, v in extra.items() if k not in row or k in TASK_MEANS})
    return Episode(row, result.poses, result.agents), policy


def resolve_methods(requested: tuple[str, ...], loaded: LoadedModel, *, explicit: bool) -> tuple[str, ...]:
    """Methods this checkpoint can run, in ``METHODS`` order. Latent methods need an intent model: an explicit
    request for them raises ``ValueError``; the default set drops them with a note (logged at INFO)."""
    if not loaded.is_intent:
        missing = [m for m in requested if m in LATENT_METHODS]
        if missing and explicit:
            raise ValueError(
                f"methods {missing} need a two-stage intent checkpoint; {loaded.source} holds a plain NoMaD policy"
            )
        if missing:
            log.info(f"note: {loaded.source} has no intent encoders; skipping {missing}")
        requested = tuple(m for m in requested if m not in LATENT_METHODS)
    return tuple(m for m in METHODS if m in requested)


@dataclass
class SceneResult:
    """One scene's episodes (methods in order), its ``target`` pedestrian, the robot-free walk ``free`` and the
    expert's step count (for the report and plots)."""

    index: int
    scene: Any
    target: int
    free: np.ndarray
    expert_steps: int
    episodes: dict[str, Episode]


def evaluate_scene(
    loaded: LoadedModel,
    config: EvalConfig,
    methods: tuple[str, ...],
    metric_scale: float,
    index: int,
    world: SimConfig | None = None,
) -> SceneResult:
    """Every method in held-out scene ``index`` of ``evaluation_scenes(config.scenes, config.seed, world,
    scenario=config.scenario)`` (``world`` None: the built-in world, ``SimConfig()``; a pure
    function of its arguments, so scenes can run in any process): the expert's run sets the step budget, the
    map is recorded for ``navigate``, Adam's mean re-optimisation time budgets the baselines (``budget_s`` 0), and
    attack success is judged against the nominal episode of the same scene."""
    # the scene list is prefix-stable, so drawing index + 1 scenes gives the same scene for less work
    scene = evaluation_scenes(index + 1, config.seed, world, scenario=config.scenario)[index]
    expert = run_expert(scene, max_steps=400)
    max_steps = min(
        config.max_episode_steps,
        max(config.min_steps, int(math.ceil(config.step_factor * expert.metrics.steps))),
    )
    horizon = config.explore_steps if config.task == "explore" else max_steps
    free = free_walk(scene, max(TARGET_HORIZON_STEPS, horizon))  # the replay covers the whole episode
    target = target_pedestrian(scene, free[: TARGET_HORIZON_STEPS + 1])  # independent of the episode length
    recorded = None
    if config.task == "navigate":
        with contextlib.closing(SceneRenderer(scene)) as renderer:
            recorded = record_topomap(
                scene, renderer, every_frames=map_every_frames(config, loaded.waypoint_spacing)
            )
    scene_eps: dict[str, Episode] = {}
    adam_budget = None
    for method in methods:
        budget = config.budget_s if config.budget_s > 0 else adam_budget
        ep, policy = run_episode(
            loaded, method, scene, config=config, metric_scale=metric_scale, max_steps=max_steps,
            free=free, target=target, budget_s=budget, recorded=recorded,
        )  # fmt: skip
        if method == "adam" and policy is not None and policy.optimisation_seconds:
            adam_budget = float(np.mean(policy.optimisation_seconds))
        scene_eps[method] = ep
    nominal = scene_eps.get(NOMINAL)
    if nominal is not None:
        for ep in scene_eps.values():
            ep.row["attack_success"] = attack_success(
                ep.row["target_min_distance"], nominal.row["target_min_distance"], config.safety_radius
            )
    return SceneResult(index, scene, target, free, expert.metrics.steps, scene_eps)


def _scene_worker(job: tuple) -> SceneResult:
    loaded, config, methods, metric_scale, index, threads, world = job
    with torch_threads(threads):
        return evaluate_scene(loaded, config, methods, metric_scale, index, world)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block, the previous count restored after it."""
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class SceneRun:
    """What :func:`run_scenes` produced in this process: ``results`` (every scene on rank 0, sorted by index;
    only this rank's scenes elsewhere) and the ``torchrun`` ``rank`` (0 without it)."""

    results: list[SceneResult]
    rank: int = 0


def run_scenes(
    loaded: LoadedModel,
    config: EvalConfig,
    methods: tuple[str, ...],
    metric_scale: float,
    *,
    workers: int = 1,
    threads: int = 1,
    progress: bool = True,
    world: SimConfig | None = None,
) -> SceneRun:
    """Every scene of ``config`` (:func:`evaluate_scene`) in ``world`` (None: the built-in one) at
    ``metric_scale`` m per unit, in ``workers`` spawned processes (``threads`` torch threads each). Under
    ``torchrun`` (``WORLD_SIZE`` > 1) rank ``r`` takes scenes ``r, r + W, ...`` and rank 0 gathers them (gloo)."""
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    mine = list(range(rank, config.scenes, world_size))
    jobs = [(loaded, config, tuple(methods), metric_scale, i, threads, world) for i in mine]
    bar = tqdm(total=len(jobs), desc="closed loop", unit="scene", disable=not progress or rank != 0)
    results: list[SceneResult] = []
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for res in pool.imap_unordered(_scene_worker, jobs):
                results.append(res)
                bar.update(1)
            pool.close()  # let the workers exit on their own (terminate() would leave their semaphores behind)
            pool.join()
    else:
        for job in jobs:
            results.append(_scene_worker(job))
            bar.update(1)
    bar.close()
    if world_size > 1:
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        gathered: list[Any] = [None] * world_size if rank == 0 else None
        dist.gather_object(results, gathered, dst=0)
        if rank != 0:
            return SceneRun(results, rank)
        results = [r for part in gathered for r in part]
    results.sort(key=lambda r: r.index)
    return SceneRun(results, rank)
