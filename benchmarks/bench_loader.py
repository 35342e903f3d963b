"""Loader throughput vs NoMaD-size training consumption, measured in the same process.

    .venv/bin/python benchmarks/bench_loader.py [--trajectories 20 --length 100 --train-steps 4]

1. Writes a synthetic NoMaD-format dataset (160x120 JPEGs) to a temporary folder and times the one-off
   cache build (decode + crop + resize of every image).
2. Loader samples/s at 96x96, context 3, len_traj_pred 8 (nomad.yaml values), batch 64, with 0 and with 2
   DataLoader workers (steady state: timed from the first batch, worker start-up reported separately).
3. NoMaD-size training step at batch 8 (``NoMaDPolicy(ModelConfig())``: goal-masked encode, distance loss,
   epsilon-prediction loss on noised normalised deltas, backward, AdamW step; no EMA), samples/s.
4. Ratio loader / training (required: >= 3x).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler

from navintent.actions import waypoints_to_normalized_deltas
from navintent.config import ModelConfig, SchedulerConfig
from navintent.data import NavDataset
from navintent.data.synthetic import write_synthetic_dataset

NOMAD_REFERENCE_SAMPLES_PER_S = 8 / 1.56  # nomad-facts.md: reference NoMaD train step, batch 8, 1.56 s


def make_dataset(root: Path, trajectories: int, length: int) -> tuple[NavDataset, float]:
    synth = write_synthetic_dataset(root / "data", trajectories, length, image_size=(160, 120))
    start = time.perf_counter()
    ds = NavDataset(
        synth.data_folder,
        synth.split_folder,
        "synthetic",
        [96, 96],
        waypoint_spacing=1,
        min_dist_cat=0,
        max_dist_cat=20,
        min_action_distance=3,
        max_action_distance=20,
        negative_mining=True,
        len_traj_pred=8,
        learn_angle=False,
        context_size=3,
        metric_waypoint_spacing=synth.metric_waypoint_spacing,
        cache_dir=root / "cache",
        progress=False,
    )
    return ds, time.perf_counter() - start


def loader_rate(ds: NavDataset, workers: int, batches: int, batch_size: int = 64) -> tuple[float, float]:
    """(steady-state samples/s, seconds to the first batch)."""
    sampler = RandomSampler(ds, replacement=True, num_samples=(batches + 1) * batch_size)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers)
    start = time.perf_counter()
    it = iter(loader)
    next(it)
    first = time.perf_counter() - start
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += next(it)["obs_img"].shape[0]
    rate = n / (time.perf_counter() - t0)
    del it
    return rate, first


def train_rate(ds: NavDataset, steps: int, batch_size: int = 8) -> float | None:
    """NoMaD training step samples/s at ``batch_size``, or None if the model is not available."""
    try:
        from navintent.models.nomad import NoMaDPolicy, build_noise_scheduler
    except ImportError as err:
        print(f"navintent.models.nomad not importable ({err})")
        return None
    cfg = ModelConfig()
    model = NoMaDPolicy(cfg).train()
    scheduler = build_noise_scheduler(SchedulerConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = next(iter(DataLoader(ds, batch_size=batch_size, shuffle=True)))
    alpha, goal_mask_prob = 1e-4, 0.5

    def step() -> None:
        goal_mask = (torch.rand(batch_size) < goal_mask_prob).long()
        cond = model.encode(batch["obs_img"], batch["goal_img"], goal_mask)
        dist = model.predict_distance(cond).squeeze(-1)
        visible = 1.0 - goal_mask.float()
        dist_loss = ((dist - batch["distance"].float()) ** 2 * visible).sum() / visible.sum().clamp(min=1)
        x0 = waypoints_to_normalized_deltas(batch["actions"], cfg.action_min, cfg.action_max)
        noise = torch.randn_like(x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,))
        eps = model.predict_noise(scheduler.add_noise(x0, noise, t), t, cond)
        per_sample = ((eps - noise) ** 2).mean(dim=(1, 2))
        mask = batch["action_mask"]
        diff_loss = (per_sample * mask).sum() / mask.sum().clamp(min=1)
        loss = alpha * dist_loss + (1 - alpha) * diff_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, oneDNN kernels)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"train step batch {batch_size}: median {med:.3f} s over {steps} steps (min {min(times):.3f} s)")
    return batch_size / med


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trajectories", type=int, default=20)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--batches", type=int, default=30, help="loader batches of 64 timed per setting")
    parser.add_argument("--train-steps", type=int, default=4)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        ds, build = make_dataset(Path(tmp), args.trajectories, args.length)
        n_img = len(ds.images)
        print(
            f"dataset: {n_img} images 160x120 -> 96x96, {len(ds)} samples; construction incl. cache build "
            f"{build:.2f} s ({n_img / build:.0f} images/s)"
        )
        rates = {}
        for workers in (0, 2):
            rate, first = loader_rate(ds, workers, args.batches)
            rates[workers] = rate
            print(f"loader, {workers} workers: {rate:8.1f} samples/s (first batch after {first:.2f} s)")
        train = train_rate(ds, args.train_steps)
    if train is None:
        train = NOMAD_REFERENCE_SAMPLES_PER_S
        print(f"training: {train:.2f} samples/s -- NOT MEASURED: reference figure from nomad-facts.md")
    else:
        print(f"training (NoMaD size, measured): {train:.2f} samples/s")
    for workers, rate in rates.items():
        verdict = "OK" if rate >= 3 * train else "TOO SLOW"
        print(f"ratio loader({workers} workers) / training = {rate / train:7.1f}x  (need >= 3x: {verdict})")


if __name__ == "__main__":
    main()
