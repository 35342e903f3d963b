"""The two-stage intent on real robot data (the Go2 dataset): learnt, steerable and measured.

From the data as published to the measured table, in one command::

    OMP_NUM_THREADS=1 NAVINTENT_CACHE_DIR=/tmp/cache python benchmarks/intent_real.py \\
        --data ../shared/real/go2_dataset --out DIR [--modes future planner] [--steer]

1. **Spacing.** The published ``metric_waypoint_spacing`` (0.3 m) does not fit the poses, so the script measures
   metres per frame as ``navintent check-data`` does (:func:`navintent.data.spacing.metres_per_frame`: total path
   length / steps over every trajectory), says so, and writes the measured value into the config.
2. **Splits and config.** ``navintent split`` semantics (:func:`navintent.data.split.split_dataset`, 80/20, seed
   0) into ``DIR/splits``; ``DIR/go2.yaml`` (reference ``future``) and ``DIR/go2_planner.yaml`` (reference
   ``planner``) hold the recipe (:data:`RECIPE`, changed with ``--set section.key=value``) and NoMaD's
   ``datasets:`` block (data folder absolute, splits relative to the file). The data folder is only read.
3. **Training** with :func:`navintent.training.train` (as ``navintent train --config DIR/go2*.yaml --preset demo``;
   in this process, one thread unless ``--threads``), wall-clock measured around it; ``epochs`` is set so the cosine
   schedule ends at ``--max-steps``.
4. **Evaluation on the test split** (trajectories never trained on), every sample, goal masked unless said:
   :func:`navintent.training.evaluate_model` (ADE/FDE/minADE in metres for z1 from Encoder1 with the reference,
   z1 = the prior mean, no latent; ``spread`` = mean distance of the samples to their own mean with z1 fixed, over
   diffusion noise), plus the same spread with z1 drawn from the prior N(0, I) per sample (:func:`prior_spread`).
   Targets: ADE and FDE with the reference at least 50% below the prior mean's, and the spread with z1 fixed at
   most half of the spread with z1 from the prior.
5. **The seed's experiments on real frames** (``--frames`` test observations, goal masked): z1 fixed ->
   diversity over noise (:func:`run_diversity_real`), z1 perturbed -> share still executable within the dynamics
   limits measured from the Go2 poses (:func:`data_dynamics_limits`, :func:`run_perturb_real`); tables and plots.
6. **Steering** (``--steer``): ``navintent optimize-z2 --dataset DIR/go2.yaml --split test --index ...
   --crossing-pedestrian AHEAD SPEED --method all --lr 0.2 --realism-data DIR/go2.yaml`` (Adam against best-of-N,
   CEM and guided diffusion at Adam's wall-clock; realism flagged against the range measured on the Go2 test
   split), run as the typed call :func:`navintent.steering.optimize` and summarised from its result.

Prints the tables and writes ``DIR/results.json`` and ``DIR/results.md``; the last line printed is
``ade_reduction <fraction>``: ``1 - ADE(reference) / ADE(prior mean)`` for the ``future`` reference on the test
split, goal masked.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from navintent.actions import normalized_deltas_to_waypoints
from navintent.checkpoint import LoadedModel, load_inference_model, read_checkpoint
from navintent.cli import configure_logging
from navintent.config import TwoStageTrainingConfig, preset_training_config
from navintent.data.format import list_trajectory_folders, load_trajectory
from navintent.data.sources import build_split, nav_datasets, set_goal_seed, sources_from_specs
from navintent.data.spacing import metres_per_frame
from navintent.data.split import split_dataset
from navintent.diffusion import build_sampler, policy_eps_fn
from navintent.evaluation.experiments import trajectory_spread
from navintent.models.nomad import build_noise_scheduler
from navintent.objectives import deltas_to_metric
from navintent.steering import DatasetSamples, Z2OptimConfig, optimize
from navintent.steering.report import summary_lines
from navintent.training import evaluate_model, training_config
from navintent.training import train as run_training

DATASET_NAME = "go2_dataset"
PRESET = "demo"  # the recipe's model sizes; --preset tiny is for tests
# The recipe (sections of a navintent config); the datasets: block is added per run. See README "Results".
RECIPE: dict[str, dict[str, Any]] = {
    # context_size 1 (NoMaD: 3): with the vision encoder frozen the image pass is most of a step's cost; one
    # past frame instead of three makes a step 1.5x cheaper at the same quality per step (see README Results)
    "model": {"image_size": [32, 32], "context_size": 1},
    # z1_dim 16 (demo preset: 8): twice the free-bits capacity (2 nats per dimension); the change that took the
    # ADE reduction from 41% to 57% at 4200 steps (see README Results)
    "intent": {"z1_dim": 16},
    "train": {
        "batch_size": 32,
        "lr": 2.0e-3,
        "freeze": ["vision"],
        "eval_freq": 100_000,  # no evaluation inside the timed training; the script evaluates afterwards
        "checkpoint_every": 0,
        "num_images_log": 0,
    },
}
WAYPOINT_SPACING = 4
MAX_STEPS = 4200  # about 14 minutes on one thread of this 2-core machine
MODES = ("future", "planner")
# Heading changes count only between steps at least this share of the nominal step (metric_waypoint_spacing x
# waypoint_spacing): the heading of a near-zero step (the robot standing) is noise, not a turn.
MIN_TURN_STEP_SHARE = 0.25
PERTURB_SIGMAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


# ------------------------------------------------------------------------------------------------- set-up
def measure_spacing(data: Path) -> tuple[float, int]:
    """Metres per frame of every trajectory under ``data`` (:func:`metres_per_frame`, as check-data measures it)
    and the number of trajectories. Raises ``DataError`` (from the loader) for an unreadable trajectory."""
    trajectories = [load_trajectory(folder) for folder in list_trajectory_folders(data)]
    return metres_per_frame(t.position for t in trajectories), len(trajectories)


def parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["intent.z1_dim=16", "train.lr=1e-3"]`` -> ``{"intent": {"z1_dim": 16}, "train": {"lr": 0.001}}`` (values
    parsed as YAML). Raises ``ValueError`` for an item without ``section.key=value``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or section not in ("model", "intent", "train", "scheduler") or not name:
            raise ValueError(
                f"--set takes section.key=value with section model|intent|train|scheduler, got {item!r}"
            )
        out.setdefault(section, {})[name] = yaml.safe_load(value)
    return out


def write_config(
    out: Path,
    data: Path,
    spacing: float,
    ref_mode: str,
    sets: dict[str, dict[str, Any]],
    epochs: int,
    preset: str = PRESET,
) -> Path:
    """``out/go2.yaml`` (``ref_mode`` future) or ``out/go2_<ref_mode>.yaml``: :data:`RECIPE` <- ``sets``, the
    reference mode and ``epochs``, and NoMaD's ``datasets:`` block with the measured spacing. Returns the path."""
    sections: dict[str, dict[str, Any]] = {k: dict(v) for k, v in RECIPE.items()}
    for section, values in sets.items():
        sections.setdefault(section, {}).update(values)
    sections["train"].update({"ref_mode": ref_mode, "epochs": epochs})
    sections["datasets"] = {
        DATASET_NAME: {
            "data_folder": str(data.resolve()),
            "train": "splits/train",
            "test": "splits/test",
            "waypoint_spacing": WAYPOINT_SPACING,
            "metric_waypoint_spacing": float(f"{spacing:.6g}"),
        }
    }
    path = out / ("go2.yaml" if ref_mode == "future" else f"go2_{ref_mode}.yaml")
    header = (
        f"# written by benchmarks/intent_real.py: preset {preset}; metric_waypoint_spacing measured from the poses "
        "(navintent.data.spacing.metres_per_frame), not the published 0.3\n"
    )
    path.write_text(header + yaml.safe_dump(sections, sort_keys=False))
    return path


def load_config(path: Path, preset: str = PRESET) -> TwoStageTrainingConfig:
    """The config ``navintent train --config path --preset preset`` trains with."""
    return TwoStageTrainingConfig.load_yaml(path, base=preset_training_config(preset))


def split(config: TwoStageTrainingConfig, which: str):
    """The ``which`` split of the config's datasets with its reference mode (None if absent)."""
    return build_split(sources_from_specs(config.datasets), which, config.model, config.train, progress=False)


def epochs_for(config: TwoStageTrainingConfig, max_steps: int) -> int:
    """Epochs whose cosine schedule ends at (or just after) ``max_steps`` for this config's train split."""
    per_epoch = len(split(config, "train")) // config.train.batch_size
    if per_epoch == 0:
        raise ValueError(f"the train split is smaller than batch_size={config.train.batch_size}")
    return max(1, math.ceil(max_steps / per_epoch))


def train(config_path: Path, run: Path, max_steps: int, preset: str = PRESET) -> float:
    """:func:`navintent.training.train` (``navintent train``) on ``config_path`` into ``run``; returns the
    wall-clock seconds. Raises what training raises (``ValueError`` for bad data or config,
    :class:`navintent.training.NonFiniteLossError` for NaN/inf)."""
    # the equivalent command, as the benchmark has always printed it
    print(
        f"$ navintent train --config {config_path} --preset {preset} --out {run} --max_steps {max_steps} "
        "--device cpu --no_progress",
        flush=True,
    )
    notes: list[str] = []
    config = training_config(
        preset, config_path, train={"max_steps": max_steps}, notes=notes, where="--max-steps"
    )
    trained = run_training(config, run, device="cpu", progress=False, notes=notes)
    print(trained.describe())
    return trained.seconds


# ------------------------------------------------------------------------------------------------- sampling
def sample_rows(model, cond_rows, z2_rows, noise, scale: float) -> torch.Tensor:
    """Hard-clipped DDPM samples (NoMaD's sampler, :func:`navintent.diffusion.build_sampler`) for prepared rows
    ``cond_rows [R, E]``, ``z2_rows [R, z] | None`` and ``noise`` (a :class:`SamplerNoise` of R rows) -> metres
    ``[R, T, 2]`` in the robot frame (``scale`` metres per spacing unit)."""
    sampler = build_sampler(model.scheduler_config, kind="ddpm", clip="hard")
    with torch.no_grad():
        x = sampler.sample(policy_eps_fn(model, cond_rows, z2_rows), noise)
    cfg = model.config
    return deltas_to_metric(x, cfg.action_min, cfg.action_max, scale)


def _batches(dataset, batch_size: int, seed: int):
    set_goal_seed(dataset, seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    yield from loader


@torch.no_grad()
def prior_spread(model, dataset, *, samples: int, seed: int, batch_size: int = 64) -> dict[str, float]:
    """Spread (m) with z1 drawn from the prior: per observation (goal masked, ``action_mask = 1`` only),
    ``samples`` trajectories each with its own ``z1 ~ N(0, I)`` and diffusion noise (DDPM through
    ``model.sample_from_condition``); spread = mean over waypoints of the distance of the samples to their own
    mean, as :func:`navintent.training.evaluate_model` defines it. Also their ADE/FDE (m) to the ground truth."""
    gen = torch.Generator().manual_seed(seed)
    scheduler = build_noise_scheduler(model.scheduler_config)
    mc = model.config
    total = {"spread": 0.0, "ade": 0.0, "fde": 0.0}
    count = 0
    for batch in _batches(dataset, batch_size, seed):
        mask = batch["action_mask"] > 0.5
        if not mask.any():
            continue
        b = int(mask.sum())
        goal_mask = torch.ones(b, dtype=torch.long)
        cond, tokens = model.encode(
            batch["obs_img"][mask], batch["goal_img"][mask], goal_mask, return_tokens=True
        )
        z1 = torch.randn(b * samples, model.z1_dim, generator=gen)
        z2 = model.z2_from_tokens(z1, tokens.repeat_interleave(samples, 0))
        x = model.sample_from_condition(
            cond, num_samples=samples, latent_z=z2, scheduler=scheduler, generator=gen
        )
        scale = batch["metric_scale"][mask].float()[:, None, None, None]
        way = normalized_deltas_to_waypoints(x, mc.action_min, mc.action_max)[..., :2] * scale  # [b, S, T, 2]
        gt = (batch["actions"][mask][..., :2] * scale[:, 0])[:, None]  # [b, 1, T, 2]
        err = (way - gt).norm(dim=-1)
        total["spread"] += float((way - way.mean(1, keepdim=True)).norm(dim=-1).mean((1, 2)).sum())
        total["ade"] += float(err.mean(-1).mean(-1).sum())
        total["fde"] += float(err[..., -1].mean(-1).sum())
        count += b
    if count == 0:
        raise ValueError("no test sample has action_mask 1")
    return {k: v / count for k, v in total.items()}


def evaluate(
    loaded: LoadedModel, config: TwoStageTrainingConfig, test_set, *, samples: int, fig: Path | None
) -> dict[str, float]:
    """Every test sample: :func:`evaluate_model` (goal masked and visible) plus :func:`prior_spread`."""
    tc = config.train.replace(
        eval_max_batches=10_000, eval_fraction=1.0, eval_num_samples=samples, batch_size=64, num_images_log=4
    )
    cfg = config.replace(train=tc)
    result = evaluate_model(loaded.model, test_set, cfg, device=torch.device("cpu"), figure_path=fig)
    prior = prior_spread(loaded.model, test_set, samples=samples, seed=tc.seed)
    result.update({f"eval/{k}_priorz1_gm": v for k, v in prior.items()})
    return result


def summary(result: dict[str, float]) -> dict[str, float]:
    """The three target quantities: ADE and FDE reductions (reference vs prior mean) and the spread ratio."""
    return {
        "ade_reduction": 1.0 - result["eval/ade_ref_gm"] / result["eval/ade_prior_gm"],
        "fde_reduction": 1.0 - result["eval/fde_ref_gm"] / result["eval/fde_prior_gm"],
        "spread_ratio": result["eval/spread_ref_gm"] / result["eval/spread_priorz1_gm"],
    }


# ------------------------------------------------------------------------------------------------- dynamics
def dynamics_profile(waypoints: np.ndarray, dt: float, min_step: float) -> dict[str, np.ndarray]:
    """Per trajectory of ``waypoints [N, T, 2]`` (m, robot frame, ``dt`` s apart, the robot at the origin): the
    largest speed ``|d_k| / dt`` (m/s), acceleration ``|d_{k+1} - d_k| / dt^2`` (m/s^2) and turn rate
    ``|atan2(d_k x d_{k+1}, d_k . d_{k+1})| / dt`` (rad/s), with ``d_k = w_k - w_{k-1}``, ``w_0 = 0`` -- the
    quantities of :func:`navintent.objectives.dynamics` -- except that a turn counts only where both steps are at
    least ``min_step`` m. Returns ``{"speed", "accel", "turn"}``, each ``[N]``."""
    w = np.asarray(waypoints, dtype=np.float64)
    if w.ndim != 3 or w.shape[-1] != 2 or w.shape[1] < 2:
        raise ValueError(f"waypoints must be [N, T >= 2, 2], got {list(w.shape)}")
    d = np.diff(np.concatenate([np.zeros_like(w[:, :1]), w], axis=1), axis=1)  # [N, T, 2]
    length = np.linalg.norm(d, axis=-1)
    accel = np.linalg.norm(np.diff(d, axis=1), axis=-1) / dt**2
    a, b = d[:, :-1], d[:, 1:]
    turn = np.abs(np.arctan2(a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0], (a * b).sum(-1))) / dt
    turn = np.where((length[:, :-1] >= min_step) & (length[:, 1:] >= min_step), turn, 0.0)
    return {"speed": length.max(1) / dt, "accel": accel.max(1), "turn": turn.max(1)}


def ground_truth_waypoints(dataset) -> np.ndarray:
    """Every indexed observation's future waypoints (m, robot frame) ``[N, T, 2]`` of a split (no images read)."""
    out = []
    for ds in nav_datasets(dataset):
        ws, horizon = ds.waypoint_spacing, ds.len_traj_pred
        for j, t in zip(ds.index_traj, ds.index_time, strict=True):
            traj = ds.trajectories[int(j)]
            times = np.minimum(int(t) + ws * np.arange(1, horizon + 1), len(traj) - 1)
            rel = traj.position[times] - traj.position[int(t)]
            c, s = math.cos(float(traj.yaw[int(t)])), math.sin(float(traj.yaw[int(t)]))
            out.append(np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]], axis=-1))
    return np.stack(out)


def data_dynamics_limits(train_set, dt: float, min_step: float) -> dict[str, float]:
    """The dynamics limits seen in the data: the maxima of :func:`dynamics_profile` over every indexed future of
    the training split (the Go2's own poses)."""
    prof = dynamics_profile(ground_truth_waypoints(train_set), dt, min_step)
    return {k: float(v.max()) for k, v in prof.items()}


def within(prof: dict[str, np.ndarray], limits: dict[str, float]) -> np.ndarray:
    """bool ``[N]``: every quantity of ``prof`` at most its limit (+1e-9)."""
    return np.all([prof[k] <= limits[k] + 1e-9 for k in ("speed", "accel", "turn")], axis=0)


# ------------------------------------------------------------------------------------------------- experiments
def pick_frames(dataset, count: int, seed: int) -> dict[str, torch.Tensor]:
    """``count`` test observations with ``action_mask = 1``, evenly spread over the split (goals from ``seed``),
    stacked as a batch."""
    set_goal_seed(dataset, seed)
    valid = [i for i in range(len(dataset)) if float(dataset[i]["action_mask"]) > 0.5]
    if not valid:
        raise ValueError("no test sample has action_mask 1")
    chosen = [valid[int(k)] for k in np.linspace(0, len(valid) - 1, min(count, len(valid)))]
    batch = torch.utils.data.default_collate([dataset[i] for i in chosen])
    batch["index"] = torch.tensor(chosen)
    return batch


@torch.no_grad()
def _encode(model, batch):
    b = batch["obs_img"].shape[0]
    goal_mask = torch.ones(b, dtype=torch.long)
    cond, tokens = model.encode(batch["obs_img"], batch["goal_img"], goal_mask, return_tokens=True)
    mu, _ = model.posterior(tokens, goal_mask, batch["ref_traj"], batch["ref_mask"] > 0.5)
    return cond, tokens, mu


def _ade(way: np.ndarray, gt: np.ndarray) -> float:
    return float(np.linalg.norm(way - gt, axis=-1).mean())


@torch.no_grad()
def run_diversity_real(loaded: LoadedModel, batch, *, samples: int, seed: int) -> dict[str, Any]:
    """z1 fixed -> diversity, on real frames (goal masked). Conditions per frame, ``samples`` trajectories each:
    z1 = Encoder1's mean with the reference, noise varies; z1 = the prior mean, noise varies; z1 ~ N(0, I) with
    one shared noise draw; z1 ~ N(0, I) and noise vary; no latent. Spreads as
    :func:`navintent.evaluation.trajectory_spread` (pairwise and endpoint, m) and the ADE to the ground truth (m)."""
    model = loaded.model
    cond, tokens, mu = _encode(model, batch)
    scale = float(batch["metric_scale"][0])
    gen = torch.Generator().manual_seed(seed)
    sampler = build_sampler(model.scheduler_config, kind="ddpm", clip="hard")
    cfg = model.config
    shape = (samples, cfg.len_traj_pred, cfg.action_dim)
    names = (
        "z1 fixed (Encoder1 + reference), noise varies",
        "z1 fixed (prior mean), noise varies",
        "z1 from the prior, noise fixed",
        "z1 from the prior and noise vary",
        "no latent, noise varies",
    )
    per: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    examples: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for b in range(cond.shape[0]):
        cond_b, tok_b = cond[b : b + 1].repeat(samples, 1), tokens[b : b + 1].repeat(samples, 1, 1)
        noise = sampler.draw_noise(shape, generator=gen)
        one = sampler.draw_noise((1, *shape[1:]), generator=gen)
        shared = type(one)(one.x_T.repeat(samples, 1, 1), one.steps.repeat(1, samples, 1, 1))
        z1_prior = torch.randn(samples, model.z1_dim, generator=gen)
        z2 = {
            names[0]: model.z2_from_tokens(mu[b : b + 1].repeat(samples, 1), tok_b),
            names[1]: model.z2_from_tokens(torch.zeros(samples, model.z1_dim), tok_b),
            names[2]: model.z2_from_tokens(z1_prior, tok_b),
            names[3]: model.z2_from_tokens(z1_prior, tok_b),
            names[4]: None,
        }
        gt = (batch["actions"][b, :, :2] * scale).numpy()
        for name in names:
            way = sample_rows(model, cond_b, z2[name], shared if name == names[2] else noise, scale).numpy()
            per[name].append({**trajectory_spread(way), "ade": _ade(way, gt[None])})
            examples[name].append(way)
    table = {
        n: {k: float(np.mean([r[k] for r in per[n]])) for k in ("pairwise", "endpoint", "ade")} for n in names
    }
    return {"frames": int(cond.shape[0]), "samples": samples, "summary": table, "examples": examples}


@torch.no_grad()
def run_perturb_real(
    loaded: LoadedModel, batch, limits: dict[str, float], *, samples: int, seed: int, min_step: float,
    sigmas: tuple[float, ...] = PERTURB_SIGMAS,
) -> dict[str, Any]:  # fmt: skip
    """z1 perturbed -> share still executable, on real frames (goal masked): z1 = Encoder1's mean with the
    reference + sigma * N(0, I), the same directions and diffusion noise for every sigma (common random numbers).
    Executable = within the dynamics ``limits`` measured from the Go2 poses (:func:`data_dynamics_limits`; no
    obstacle map exists for these frames, so no collision check). Also the ADE to the ground truth (m) and the
    pairwise spread (m); reference rows: the ground truth itself and z1 drawn from the prior."""
    model = loaded.model
    cond, tokens, mu = _encode(model, batch)
    scale = float(batch["metric_scale"][0])
    b, n = cond.shape[0], samples
    gen = torch.Generator().manual_seed(seed)
    sampler = build_sampler(model.scheduler_config, kind="ddpm", clip="hard")
    cfg = model.config
    noise = sampler.draw_noise((b * n, cfg.len_traj_pred, cfg.action_dim), generator=gen)
    eps = torch.randn(b * n, model.z1_dim, generator=gen)
    rows = torch.arange(b).repeat_interleave(n)
    gt = (batch["actions"][..., :2] * scale).numpy()  # [b, T, 2]
    dt = loaded.waypoint_dt
    levels: list[dict[str, Any]] = []
    examples: dict[str, np.ndarray] = {}

    def level(label: str, z1_rows: torch.Tensor, sigma: float | None) -> None:
        z2 = model.z2_from_tokens(z1_rows, tokens[rows])
        way = sample_rows(model, cond[rows], z2, noise, scale).numpy()
        ok = within(dynamics_profile(way, dt, min_step), limits)
        grouped = way.reshape(b, n, *way.shape[1:])
        levels.append(
            {
                "z1": label,
                "sigma": sigma,
                "executable": float(ok.mean()),
                "ade": _ade(grouped, gt[:, None]),
                "spread": float(np.mean([trajectory_spread(g)["pairwise"] for g in grouped])),
            }
        )
        examples[label] = grouped[0]

    for sigma in sigmas:
        level(f"Encoder1 + reference, sigma {sigma:g}", mu[rows] + sigma * eps, float(sigma))
    level("from the prior N(0, I)", eps, None)
    truth_ok = within(dynamics_profile(gt, dt, min_step), limits)
    return {
        "frames": b,
        "samples": n,
        "limits": limits,
        "dt": dt,
        "ground_truth_executable": float(truth_ok.mean()),
        "levels": levels,
        "examples": examples,
        "ground_truth_example": gt[0],
    }


def plot_experiments(
    out: Path, diversity: dict[str, Any], perturb: dict[str, Any], batch, frames: int = 4
) -> None:
    """``out/diversity.png`` (top-down samples per condition for the first ``frames`` frames, ground truth
    black) and ``out/perturb.png`` (executable share and ADE against sigma; samples of frame 0 per level)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(diversity["examples"])
    scale = float(batch["metric_scale"][0])
    frames = min(frames, diversity["frames"])
    fig, axes = plt.subplots(frames, len(names), figsize=(3 * len(names), 3 * frames), squeeze=False)
    for r in range(frames):
        gt = batch["actions"][r, :, :2].numpy() * scale
        for c, name in enumerate(names):
            ax = axes[r, c]
            for way in diversity["examples"][name][r]:
                ax.plot(-way[:, 1], way[:, 0], color="tab:blue", alpha=0.4, lw=1)
            ax.plot(-gt[:, 1], gt[:, 0], "k-o", ms=2, lw=2)
            ax.plot([0], [0], "r^")
            ax.set_aspect("equal", adjustable="datalim")
            if r == 0:
                ax.set_title(name, fontsize=7)
    fig.suptitle(
        "Go2 test frames, goal masked: samples (blue), ground truth (black); x forward (up), right to the right, m"
    )
    fig.tight_layout()
    fig.savefig(out / "diversity.png", dpi=80)
    plt.close(fig)

    lv = [x for x in perturb["levels"] if x["sigma"] is not None]
    fig, axes = plt.subplots(1, 2 + len(lv), figsize=(3.2 * (2 + len(lv)), 3.2))
    sig = [x["sigma"] for x in lv]
    axes[0].plot(sig, [100 * x["executable"] for x in lv], "o-")
    axes[0].set_xlabel("sigma")
    axes[0].set_ylabel("executable (%)")
    axes[0].set_ylim(0, 105)
    axes[1].plot(sig, [x["ade"] for x in lv], "o-")
    axes[1].set_xlabel("sigma")
    axes[1].set_ylabel("ADE to ground truth (m)")
    gt = perturb["ground_truth_example"]
    for ax, x in zip(axes[2:], lv, strict=True):
        for way in perturb["examples"][x["z1"]]:
            ax.plot(-way[:, 1], way[:, 0], color="tab:green", alpha=0.4, lw=1)
        ax.plot(-gt[:, 1], gt[:, 0], "k-o", ms=2, lw=2)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"sigma {x['sigma']:g}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "perturb.png", dpi=80)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- steering
def steer(
    ckpt: Path, config_path: Path, out: Path, indices: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    """:func:`navintent.steering.optimize` (``navintent optimize-z2``) on Go2 test frames with a synthetic crossing
    pedestrian, writing ``out/report.json``; returns the equivalent command and the report
    (:meth:`navintent.steering.OptimizeResult.to_report`). Raises what ``optimize`` raises (``ValueError`` /
    ``FileNotFoundError`` for bad input, :class:`navintent.steering.NonFiniteObjectiveError` for NaN/inf)."""
    # the equivalent command, as the benchmark has always printed it
    command = (
        f"navintent optimize-z2 --ckpt {ckpt} --dataset {config_path} --split test --index "
        f"{' '.join(map(str, indices))} --crossing-pedestrian {args.ahead} {args.ped_speed} --method all "
        f"--lr 0.2 --steps {args.steer_steps} --objective {args.objective} --realism-data {config_path} "
        f"--out-dir {out} --no-plots"
    )
    print(f"$ {command}", flush=True)
    result = optimize(
        ckpt,
        DatasetSamples(config_path, tuple(indices), "test"),
        objective=args.objective,
        methods="all",
        config=Z2OptimConfig(steps=args.steer_steps, lr=0.2),
        crossing=(args.ahead, args.ped_speed),
        realism_data=config_path,
        out_dir=out,
        plots=False,
    )
    for line in summary_lines(result.summary):
        print(line)
    print(f"wrote {out / 'z2_optimized.pt'}, report.json, trajectories.pt")
    return {"command": command, "report": result.to_report()}


# ------------------------------------------------------------------------------------------------- tables
def eval_table(mode: str, result: dict[str, float]) -> str:
    lines = [
        f"reference `{mode}`, test split, goal masked, every sample with action_mask 1:",
        "",
        "| z1 | ADE (m) | FDE (m) | minADE (m) | spread over noise (m) |",
        "|---|---:|---:|---:|---:|",
    ]
    for tag, label in (("ref", "Encoder1 + reference"), ("prior", "prior mean"), ("none", "no latent")):
        lines.append(
            f"| {label} | {result[f'eval/ade_{tag}_gm']:.3f} | {result[f'eval/fde_{tag}_gm']:.3f} | "
            f"{result[f'eval/minade_{tag}_gm']:.3f} | {result[f'eval/spread_{tag}_gm']:.3f} |"
        )
    lines.append(
        f"| drawn from the prior (per sample) | {result['eval/ade_priorz1_gm']:.3f} | "
        f"{result['eval/fde_priorz1_gm']:.3f} | | {result['eval/spread_priorz1_gm']:.3f} |"
    )
    s = summary(result)
    lines += [
        "",
        f"ADE {100 * s['ade_reduction']:.1f}% and FDE {100 * s['fde_reduction']:.1f}% lower with the reference than "
        f"with the prior mean; spread with z1 fixed / with z1 from the prior = {s['spread_ratio']:.2f}; goal "
        f"visible: ADE {result['eval/ade_ref_gv']:.3f} (reference) vs {result['eval/ade_prior_gv']:.3f} (prior mean)",
    ]
    return "\n".join(lines)


def experiment_tables(diversity: dict[str, Any], perturb: dict[str, Any]) -> str:
    lines = [
        f"z1 fixed -> diversity ({diversity['frames']} test frames x {diversity['samples']} samples, goal masked):",
        "",
        "| condition | pairwise spread (m) | endpoint spread (m) | ADE to ground truth (m) |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {n} | {v['pairwise']:.3f} | {v['endpoint']:.3f} | {v['ade']:.3f} |"
        for n, v in diversity["summary"].items()
    ]
    lim = perturb["limits"]
    lines += [
        "",
        f"z1 perturbed -> executable ({perturb['frames']} frames x {perturb['samples']} samples; limits seen in the "
        f"Go2 training poses at dt {perturb['dt']:g} s per waypoint: speed {lim['speed']:.3f} m/s, acceleration "
        f"{lim['accel']:.3f} m/s^2, turn rate {lim['turn']:.3f} rad/s; the test split's ground truth is "
        f"{100 * perturb['ground_truth_executable']:.0f}% within them):",
        "",
        "| z1 | executable | ADE to ground truth (m) | pairwise spread (m) |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {x['z1']} | {100 * x['executable']:.0f}% | {x['ade']:.3f} | {x['spread']:.3f} |"
        for x in perturb["levels"]
    ]
    return "\n".join(lines)


def steer_table(steering: dict[str, Any]) -> str:
    """One row per method from optimize-z2's ``report.json`` ``summary`` (means over the frames; "fresh draws" =
    noise never used while optimising) and the realism range it measured on the Go2 test split."""
    report = steering["report"]
    lines = [
        "| method | objective (fresh draws) | min distance (m) | attack success | z2_nll | dynamics "
        "| in data range | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, v in report["summary"].items():
        if v.get("optimises_noise"):
            continue
        realism = v["realism_eval_draws_mean"]
        lines.append(
            f"| {method} | {v['objective_eval_draws_mean']:.3f} | {v['min_distance_eval_draws_mean']:.2f} | "
            f"{100 * v['attack_success_rate_mean']:.0f}% | {realism.get('z2_nll', float('nan')):.1f} | "
            f"{realism.get('dynamics', float('nan')):.3f} | {100 * v['in_data_range_rate']:.0f}% | "
            f"{v['seconds']:.1f} |"
        )
    rng = report["realism_range"]
    lines += [
        "",
        "realism range measured on the Go2 test split (navintent.realism): z2_nll of Encoder2's z2 "
        f"{rng['z2_nll']['min']:.1f} to {rng['z2_nll']['max']:.1f} (95th percentile {rng['z2_nll']['p95']:.1f}), "
        f"dynamics term of the policy's own samples 0 to {rng['dynamics']['max']:.2f} (95th percentile "
        f"{rng['dynamics']['p95']:.3f})",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="the Go2 dataset folder as published (read only)")
    p.add_argument("--out", required=True, type=Path, help="work folder: splits, configs, runs, results")
    p.add_argument("--preset", choices=("tiny", "demo", "nomad"), default=PRESET, help="default %(default)s")
    p.add_argument("--modes", nargs="+", choices=("future", "planner", "none"), default=list(MODES))
    p.add_argument(
        "--max-steps", type=int, default=MAX_STEPS, help="training steps per mode (default %(default)s)"
    )
    p.add_argument(
        "--stop-after",
        type=int,
        default=0,
        help="stop training after N steps, keeping --max-steps' LR schedule",
    )
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--samples", type=int, default=16, help="samples per observation in the evaluation")
    p.add_argument("--frames", type=int, default=16, help="test frames for the experiments")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-train", action="store_true", help="reuse OUT/run_<mode>/latest.pt")
    p.add_argument("--no-experiments", action="store_true")
    p.add_argument("--steer", action="store_true", help="also run optimize-z2 on --steer-index test frames")
    p.add_argument("--steer-index", type=int, nargs="+", default=[0, 60, 120, 180])
    p.add_argument("--steer-steps", type=int, default=100)
    p.add_argument(
        "--ahead",
        type=float,
        default=1.0,
        help="pedestrian crossing distance ahead (m, default %(default)s; the README run uses 1.5)",
    )
    p.add_argument("--ped-speed", type=float, default=0.5, help="pedestrian speed (m/s, default %(default)s)")
    p.add_argument("--objective", default="softmin_dist:1.0,dynamics:10,z2_nll:0.03")
    args = p.parse_args(argv)
    if args.max_steps < 1 or args.threads < 1 or args.samples < 2 or args.frames < 1:
        p.error("--max-steps, --threads and --frames must be >= 1 and --samples >= 2")
    configure_logging()  # the library's notes on stderr, as navintent train / optimize-z2 print them
    torch.set_num_threads(args.threads)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    sets = parse_sets(args.sets)

    spacing, count = measure_spacing(args.data)
    print(
        f"measured {spacing:.4f} m per frame over {count} trajectories (navintent.data.spacing.metres_per_frame, as "
        f"check-data); the published metric_waypoint_spacing 0.3 is {0.3 / spacing:.2f}x that: using the measured "
        f"value, waypoint_spacing {WAYPOINT_SPACING} ({spacing * WAYPOINT_SPACING:.4f} m per unit)",
        flush=True,
    )
    train_names, test_names = split_dataset(args.data, out / "splits", 0.8, seed=0)
    print(
        f"split: {len(train_names)} train / {len(test_names)} test trajectories -> {out / 'splits'}",
        flush=True,
    )

    results: dict[str, Any] = {
        "metres_per_frame": spacing,
        "modes": {},
        "recipe": {"preset": args.preset, **RECIPE, "sets": sets, "max_steps": args.max_steps},
    }
    texts: list[str] = []
    for mode in args.modes:
        probe = write_config(out, args.data, spacing, mode, sets, 1, args.preset)
        epochs = epochs_for(load_config(probe, args.preset), args.max_steps)
        config_path = write_config(out, args.data, spacing, mode, sets, epochs, args.preset)
        run = out / f"run_{mode}"
        seconds = None
        if not args.skip_train:
            stop = args.stop_after or args.max_steps
            seconds = train(config_path, run, stop, args.preset)
            print(f"trained `{mode}`: {stop} steps in {seconds:.0f} s wall-clock", flush=True)
        ckpt = run / "latest.pt"
        saved = TwoStageTrainingConfig.from_dict(read_checkpoint(ckpt)["train_state"]["config"])
        steps = int(read_checkpoint(ckpt)["train_state"]["step"])
        loaded = load_inference_model(ckpt)
        test_set = split(saved, "test")
        start = time.perf_counter()
        result = evaluate(loaded, saved, test_set, samples=args.samples, fig=out / f"eval_{mode}.png")
        entry: dict[str, Any] = {
            "config": str(config_path),
            "steps": steps,
            "train_seconds": seconds,
            "eval_seconds": time.perf_counter() - start,
            "eval": result,
            **summary(result),
        }
        text = eval_table(mode, result)
        print(f"\n{text}\n", flush=True)
        texts.append(f"### `{mode}` ({steps} steps, {seconds or 0:.0f} s training)\n\n{text}")
        if not args.no_experiments and mode == "future":
            batch = pick_frames(test_set, args.frames, args.seed)
            dt = loaded.waypoint_dt
            min_step = MIN_TURN_STEP_SHARE * spacing * WAYPOINT_SPACING
            limits = data_dynamics_limits(split(saved, "train"), dt, min_step)
            diversity = run_diversity_real(loaded, batch, samples=args.samples, seed=args.seed)
            perturb = run_perturb_real(
                loaded, batch, limits, samples=args.samples, seed=args.seed, min_step=min_step
            )
            plot_experiments(out, diversity, perturb, batch)
            text = experiment_tables(diversity, perturb)
            print(f"{text}\n", flush=True)
            texts.append(f"### Experiments (`{mode}`)\n\n{text}\n\nPlots: diversity.png, perturb.png")
            entry["diversity"] = diversity["summary"]
            entry["perturb"] = {
                k: v for k, v in perturb.items() if k not in ("examples", "ground_truth_example")
            }
        if args.steer and mode == "future":
            steering = steer(ckpt, config_path, out / "steer", args.steer_index, args)
            text = steer_table(steering)
            print(f"{steering['command']}\n\n{text}\n", flush=True)
            texts.append(f"### Steering (`{mode}`)\n\n    {steering['command']}\n\n{text}")
            entry["steer_command"] = steering["command"]
        results["modes"][mode] = entry
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    (out / "results.md").write_text("\n\n".join(texts) + "\n")
    for mode, entry in results["modes"].items():
        print(
            f"{mode}: ade_reduction {entry['ade_reduction']:.3f}, fde_reduction {entry['fde_reduction']:.3f}, "
            f"spread_ratio {entry['spread_ratio']:.3f}"
        )
    if "future" in results["modes"]:
        print(f"ade_reduction {results['modes']['future']['ade_reduction']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
