"""Record expert episodes as a NoMaD-format dataset.

Layout written under ``out_dir``::

    <dataset_name>/<episode>/0.jpg .. N-1.jpg      camera frames (JPEG, quality 95), frame i at pose i
    <dataset_name>/<episode>/traj_data.pkl         dict of numpy float64 arrays:
        position [N, 2]   robot world position (m) at frame i
        yaw      [N]      robot heading (rad, world frame, counter-clockwise from +x)
        ref_traj [N, 2]   the expert's planned A* path (world, m) at the START of the episode, resampled so that
                          row i is the path point at arc length i * max_v * dt from the start (0.05 m per row by
                          default: the distance the robot covers per frame at full speed), the goal once the arc
                          length exceeds the path. It is the plan, not the driven track: the expert may slow down,
                          wait or detour for pedestrians.
        agents   [N, N_agents, 2]  pedestrian world positions (m) at frame i (N_agents may be 0)
    data_config.yaml                               {<dataset_name>: {metric_waypoint_spacing: m per frame}}
                                                   (total path length / steps: navintent.data.spacing)
    splits/<dataset_name>/{train,test}/traj_names.txt   via navintent.data.split (seeded, train_frac)
    sim_episodes.yaml                              per episode: scene seed, steps, pedestrians, crossing flags

Only successful expert episodes are written (goal reached, no collision): the dataset is a set of
demonstrations. A failed episode is redrawn with the next scene seed of that episode (``attempt`` + 1). With
``goals_per_start`` > 1 episodes come in groups sharing one room and start pose, each to another goal (see
:func:`record_start_group`).
Scene seeds derive from ``(seed, episode, attempt)`` with ``numpy.random.SeedSequence``, so the output is a
pure function of the arguments (identical bytes for identical arguments on the same machine).
"""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import pickle
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from tqdm import tqdm

from navintent.sim.config import RECORDING_FILE, SimConfig
from navintent.sim.planner import resample_path
from navintent.sim.render import SceneRenderer
from navintent.sim.rollout import RolloutResult, run_expert
from navintent.sim.scene import Scene, branch_scene, generate_scene, start_heading

MAX_ATTEMPTS = 10


def scene_seed(seed: int, episode: int, attempt: int) -> int:
    """Scene seed of ``episode``'s ``attempt``-th draw for dataset ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(episode), int(attempt)]).generate_state(1)[0])


@dataclass
class EpisodeRecord:
    """What one recorded episode produced (in memory, before writing)."""

    name: str
    scene_seed: int
    jpegs: list[bytes]
    traj_data: dict[str, np.ndarray]
    attempts: int
    crossing: list[bool]
    start_scene_seed: int | None = None  # branches of a start group: generate_scene seed of the group's room
    avoid_headings: tuple[float, ...] = ()  # branches: the earlier branches' start headings (rad)


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _render_episode(name: str, scene: Scene, result: RolloutResult, attempts: int) -> EpisodeRecord:
    """Render every frame of a successful expert run and pack what the dataset stores."""
    with SceneRenderer(scene) as renderer:
        images = [renderer.render(p, a) for p, a in zip(result.poses, result.agents, strict=True)]
    robot = scene.config.robot
    traj_data = {
        "position": result.poses[:, :2].copy(),
        "yaw": result.poses[:, 2].copy(),
        "ref_traj": resample_path(scene.path, len(result.poses), robot.max_v * robot.dt),
        "agents": result.agents.copy(),
    }
    return EpisodeRecord(
        name=name,
        scene_seed=scene.seed,
        jpegs=[encode_jpeg(im) for im in images],
        traj_data=traj_data,
        attempts=attempts,
        crossing=[bool(c) for c in scene.crossing],
    )


def record_episode(seed: int, episode: int, config: SimConfig, max_steps: int) -> EpisodeRecord:
    """Draw scenes for ``episode`` until the expert succeeds (at most ``MAX_ATTEMPTS``), rendering every frame."""
    for attempt in range(MAX_ATTEMPTS):
        scene = generate_scene(scene_seed(seed, episode, attempt), config)
        result = run_expert(scene, max_steps)  # cheap check first: render only successful episodes
        if result.metrics.success:
            return _render_episode(f"ep{episode:05d}", scene, result, attempt + 1)
    raise RuntimeError(
        f"episode {episode} of seed {seed}: the expert failed in {MAX_ATTEMPTS} scenes in a row"
    )


def record_start_group(
    seed: int, group: int, config: SimConfig, max_steps: int, goals: int
) -> list[EpisodeRecord]:
    """``goals`` episodes from ONE start pose in one room, each to another goal (:func:`branch_scene`).

    Episode names are ``ep{group * goals + branch:05d}``; ``goals == 1`` is exactly :func:`record_episode`.
    The base scene is drawn as :func:`record_episode` draws it; branch ``b``'s ``k``-th draw uses seed
    ``SeedSequence([seed, group, attempt, b, k])`` and its first heading must differ by >= 60 degrees from the
    earlier branches'. If a branch fails ``MAX_ATTEMPTS`` times (no such goal, or the expert fails), the whole
    group is redrawn with the next base scene (``attempt`` + 1; at most ``MAX_ATTEMPTS``). Replay: branch 0 is
    ``generate_scene(start_scene_seed)``, branch ``b > 0`` is ``branch_scene(generate_scene(start_scene_seed),
    scene_seed, avoid_headings)`` (all three recorded per episode in ``sim_episodes.yaml``).
    """
    if goals == 1:
        return [record_episode(seed, group, config, max_steps)]
    for attempt in range(MAX_ATTEMPTS):
        base = generate_scene(scene_seed(seed, group, attempt), config)
        result = run_expert(base, max_steps)
        if not result.metrics.success:
            continue
        runs = [(base, result, attempt + 1)]  # draws this group's room took
        headings = [start_heading(base.path)]
        for branch in range(1, goals):
            for k in range(MAX_ATTEMPTS):
                branch_seed = int(
                    np.random.SeedSequence([int(seed), int(group), attempt, branch, k]).generate_state(1)[0]
                )
                scene = branch_scene(base, branch_seed, tuple(headings))
                if scene is None:
                    continue
                result = run_expert(scene, max_steps)
                if result.metrics.success:
                    runs.append((scene, result, k + 1))
                    headings.append(start_heading(scene.path))
                    break
            else:
                break  # this start has no further reachable goal in a new direction: redraw the group
        if len(runs) == goals:
            return [
                dataclasses.replace(
                    _render_episode(f"ep{group * goals + b:05d}", scene, result, tries),
                    start_scene_seed=base.seed,
                    avoid_headings=tuple(headings[:b]),
                )
                for b, (scene, result, tries) in enumerate(runs)
            ]
    raise RuntimeError(
        f"start group {group} of seed {seed}: no start with {goals} reachable goals in {MAX_ATTEMPTS} rooms"
    )


def _record_star(args: tuple) -> list[EpisodeRecord]:
    return record_start_group(*args)


def _write_episode(folder: Path, record: EpisodeRecord) -> None:
    folder.mkdir(parents=True)
    for i, data in enumerate(record.jpegs):
        (folder / f"{i}.jpg").write_bytes(data)
    with open(folder / "traj_data.pkl", "wb") as f:
        pickle.dump(record.traj_data, f, protocol=4)


def record_dataset(
    out_dir: str | Path,
    episodes: int,
    seed: int,
    *,
    config: SimConfig | None = None,
    dataset_name: str = "navintent_sim",
    train_frac: float = 0.8,
    max_steps: int = 400,
    workers: int = 1,
    progress: bool = True,
    goals_per_start: int = 1,
) -> dict:
    """Write ``episodes`` expert episodes (layout in the module docstring); returns the summary dict.

    Refuses to write into an existing non-empty ``out_dir/dataset_name``. ``workers > 1`` records episodes in a
    forked process pool (results are identical to ``workers=1``).

    ``goals_per_start > 1`` records the episodes in groups of that many from one start pose in one room to
    different goals (:func:`record_start_group`): the same first view with different futures, so a policy must
    read its goal image to know where to go. ``episodes`` must then be a multiple of it, and the split keeps each
    group on one side (held-out starts stay unseen); ``sim_episodes.yaml`` records ``start_group`` per episode.
    Raises ``ValueError`` for a bad count.
    """
    from navintent.data.spacing import metres_per_frame
    from navintent.data.split import split_dataset, write_traj_names

    config = config or SimConfig()
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if goals_per_start < 1 or episodes % goals_per_start:
        raise ValueError(
            f"goals_per_start must be >= 1 and divide episodes={episodes}, got {goals_per_start}"
        )
    out_dir = Path(out_dir)
    data_folder = out_dir / dataset_name
    if data_folder.exists() and any(data_folder.iterdir()):
        raise FileExistsError(f"{data_folder} exists and is not empty; choose another --out or remove it")
    data_folder.mkdir(parents=True, exist_ok=True)
    groups = episodes // goals_per_start
    jobs = [(seed, g, config, max_steps, goals_per_start) for g in range(groups)]
    bar = tqdm(total=episodes, desc="recording episodes", unit="ep", disable=not progress, file=sys.stderr)
    meta, positions = {}, []
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        group_records = pool.imap(_record_star, jobs) if pool else map(_record_star, jobs)
        for group, records in enumerate(group_records):
            for branch, record in enumerate(records):
                _write_episode(data_folder / record.name, record)
                pos = record.traj_data["position"]
                positions.append(pos)
                meta[record.name] = {
                    "scene_seed": record.scene_seed,
                    "frames": len(pos),
                    "attempts": record.attempts,
                    "pedestrians": len(record.crossing),
                    "crossing": record.crossing,
                }
                if (
                    goals_per_start > 1
                ):  # replay: branch_scene(generate_scene(start_scene_seed), scene_seed, avoid)
                    meta[record.name]["start_group"] = group
                    meta[record.name]["branch"] = branch
                    meta[record.name]["start_scene_seed"] = record.start_scene_seed
                    meta[record.name]["avoid_headings"] = list(record.avoid_headings)
                bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    spacing = metres_per_frame(positions)
    (out_dir / "data_config.yaml").write_text(
        yaml.safe_dump({dataset_name: {"metric_waypoint_spacing": float(spacing)}}, sort_keys=False)
    )
    split_dir = out_dir / "splits" / dataset_name
    if goals_per_start == 1:
        train, test = split_dataset(data_folder, split_dir, train_frac=train_frac, seed=seed)
    else:
        order = list(range(groups))
        random.Random(seed).shuffle(order)
        cut = int(train_frac * groups)
        names = sorted(meta)
        by_group = [names[g * goals_per_start : (g + 1) * goals_per_start] for g in range(groups)]
        train = [n for g in order[:cut] for n in by_group[g]]
        test = [n for g in order[cut:] for n in by_group[g]]
        write_traj_names(split_dir / "train", train)
        write_traj_names(split_dir / "test", test)
    summary = {
        "dataset": str(data_folder),
        "episodes": episodes,
        "frames": sum(len(p) for p in positions),
        "metric_waypoint_spacing": float(spacing),
        "train": len(train),
        "test": len(test),
        "with_crossing": sum(any(m["crossing"]) for m in meta.values()),
        "redrawn": sum(m["attempts"] - 1 for m in meta.values()),
    }
    (out_dir / RECORDING_FILE).write_text(
        yaml.safe_dump(
            {
                "seed": int(seed),
                "goals_per_start": goals_per_start,
                "config": config.to_dict(),
                "episodes": meta,
            },
            sort_keys=False,
        )
    )
    return summary
