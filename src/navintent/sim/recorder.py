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
demonstrations. A failed episode is redrawn with the next scene seed of that episode (``attempt`` + 1).
Scene seeds derive from ``(seed, episode, attempt)`` with ``numpy.random.SeedSequence``, so the output is a
pure function of the arguments (identical bytes for identical arguments on the same machine).
"""

from __future__ import annotations

import io
import multiprocessing
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from tqdm import tqdm

from navintent.sim.config import SimConfig
from navintent.sim.planner import resample_path
from navintent.sim.render import SceneRenderer
from navintent.sim.rollout import run_expert
from navintent.sim.scene import generate_scene

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


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def record_episode(seed: int, episode: int, config: SimConfig, max_steps: int) -> EpisodeRecord:
    """Draw scenes for ``episode`` until the expert succeeds (at most ``MAX_ATTEMPTS``), rendering every frame."""
    for attempt in range(MAX_ATTEMPTS):
        s = scene_seed(seed, episode, attempt)
        scene = generate_scene(s, config)
        result = run_expert(scene, max_steps)  # cheap check first: render only successful episodes
        if not result.metrics.success:
            continue
        with SceneRenderer(scene) as renderer:
            images = [renderer.render(p, a) for p, a in zip(result.poses, result.agents, strict=True)]
        robot = config.robot
        n = len(result.poses)
        traj_data = {
            "position": result.poses[:, :2].copy(),
            "yaw": result.poses[:, 2].copy(),
            "ref_traj": resample_path(scene.path, n, robot.max_v * robot.dt),
            "agents": result.agents.copy(),
        }
        return EpisodeRecord(
            name=f"ep{episode:05d}",
            scene_seed=s,
            jpegs=[encode_jpeg(im) for im in images],
            traj_data=traj_data,
            attempts=attempt + 1,
            crossing=[bool(c) for c in scene.crossing],
        )
    raise RuntimeError(
        f"episode {episode} of seed {seed}: the expert failed in {MAX_ATTEMPTS} scenes in a row"
    )


def _record_star(args: tuple) -> EpisodeRecord:
    return record_episode(*args)


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
) -> dict:
    """Write ``episodes`` expert episodes (layout in the module docstring); returns the summary dict.

    Refuses to write into an existing non-empty ``out_dir/dataset_name``. ``workers > 1`` records episodes in a
    forked process pool (results are identical to ``workers=1``).
    """
    from navintent.data.spacing import metres_per_frame
    from navintent.data.split import split_dataset

    config = config or SimConfig()
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out_dir = Path(out_dir)
    data_folder = out_dir / dataset_name
    if data_folder.exists() and any(data_folder.iterdir()):
        raise FileExistsError(f"{data_folder} exists and is not empty; choose another --out or remove it")
    data_folder.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, i, config, max_steps) for i in range(episodes)]
    bar = tqdm(total=episodes, desc="recording episodes", unit="ep", disable=not progress, file=sys.stderr)
    meta, positions = {}, []
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        records = pool.imap(_record_star, jobs) if pool else map(_record_star, jobs)
        for record in records:
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
    train, test = split_dataset(
        data_folder, out_dir / "splits" / dataset_name, train_frac=train_frac, seed=seed
    )
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
    (out_dir / "sim_episodes.yaml").write_text(
        yaml.safe_dump({"seed": int(seed), "config": config.to_dict(), "episodes": meta}, sort_keys=False)
    )
    return summary
