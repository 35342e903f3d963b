"""The training evaluation: losses, sample quality and goal conditioning on the test split, and its picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from navintent.actions import normalized_deltas_to_waypoints
from navintent.config import TwoStageTrainingConfig
from navintent.data.sources import set_goal_seed
from navintent.evaluation.goal_metrics import goal_metrics
from navintent.models.intent import TwoStageIntentModel
from navintent.models.nomad import build_noise_scheduler
from navintent.training.distributed import to_device

# where z1 comes from when sampling: Encoder1 with the reference, the prior mean, no latent at all
EVAL_MODES = ("ref", "prior", "none")


@torch.no_grad()
def evaluate_model(
    model: TwoStageIntentModel,
    dataset: Dataset,
    config: TwoStageTrainingConfig,
    *,
    device: torch.device,
    kl_weight: float = 0.0,
    figure_path: Path | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Losses and sample quality of ``model`` (eval mode) on ``dataset``; deterministic given ``config.train.seed``.

    Losses (``eval/loss_*``): diffusion with z1 from the reference, without reference (null token) and without
    latent; distance; KL. Sampling, for the goal masked (``gm``) and visible (``gv``): ``ade_*``/``fde_*`` are the
    mean over samples of the average/final displacement to the ground truth (metres), ``minade_*`` the best of
    the samples, for z1 from Encoder1 with the reference (``ref``), z1 = prior mean (``prior``) and no latent
    (``none``); ``spread_*`` is the mean distance (metres) of the samples to their own mean, per waypoint, i.e.
    how much trajectories vary with z1 fixed. Only samples with ``action_mask = 1`` count. The conditions are
    paired: within a batch each one sees the same random draws (diffusion noise, timesteps, goal masks).
    Goal conditioning (``train.eval_goal_observations`` random observations; definitions in
    :mod:`navintent.evaluation.goal_metrics`): ``dist_spearman``, ``dist_mae`` (waypoint steps),
    ``goal_sensitivity``, ``goal_mask_sensitivity`` and their displacements in metres. Covers
    ``min(eval_max_batches, eval_fraction of the batches)`` batches of ``train.batch_size``; with ``figure_path``
    and ``train.num_images_log > 0`` also draws :func:`save_trajectory_figure` there.
    """
    tc, mc = config.train, config.model
    set_goal_seed(dataset, tc.seed)
    loader = DataLoader(dataset, batch_size=tc.batch_size, shuffle=False, num_workers=tc.num_workers)
    n_batches = min(tc.eval_max_batches, max(1, int(len(loader) * tc.eval_fraction)))
    gen = torch.Generator(device=device)
    gen.manual_seed(tc.seed)
    scheduler = build_noise_scheduler(config.scheduler)
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}

    def add(name: str, value: float, weight: float) -> None:
        sums[name] = sums.get(name, 0.0) + value * weight
        counts[name] = counts.get(name, 0.0) + weight

    figure_rows: dict[str, Any] | None = None
    batches = iter(loader)
    for b in tqdm(range(n_batches), desc="eval", leave=False, disable=not progress):
        try:
            batch = to_device(next(batches), device)
        except StopIteration:
            break
        bsz = batch["obs_img"].shape[0]
        common = dict(kl_weight=kl_weight, goal_mask_prob=tc.goal_mask_prob, alpha=tc.alpha, generator=gen)
        for tag, ref_p, lat_p in (("ref", 0.0, 0.0), ("noref", 1.0, 0.0), ("nolatent", 0.0, 1.0)):
            gen.manual_seed(tc.seed * 1_000_003 + b)  # paired: every condition sees the same draws
            losses = model.compute_loss(batch, scheduler, ref_dropout=ref_p, latent_dropout=lat_p, **common)
            add(f"eval/loss_diffusion_{tag}", losses["diffusion"].item(), bsz)
            if tag == "ref":
                add("eval/loss_distance", losses["distance"].item(), bsz)
                add("eval/loss_kl", losses["kl"].item(), bsz)
        mask = batch["action_mask"] > 0.5
        n_valid = float(mask.sum())
        if n_valid == 0:
            continue
        scale = batch["metric_scale"].to(torch.float32)[:, None, None]
        gt = batch["actions"][..., :2] * scale  # [B, T, 2] metres
        for gtag, gval in (("gm", 1), ("gv", 0)):
            goal_mask = torch.full((bsz,), gval, dtype=torch.long, device=device)
            cond, tokens = model.encode(batch["obs_img"], batch["goal_img"], goal_mask, return_tokens=True)
            for mode in EVAL_MODES:
                gen.manual_seed(tc.seed * 1_000_003 + b)  # paired: the same initial and step noise per mode
                x, _ = model.sample_from_tokens(
                    cond,
                    tokens,
                    goal_mask,
                    mode=mode,
                    ref_traj=batch.get("ref_traj"),
                    ref_mask=batch.get("ref_mask"),
                    num_samples=tc.eval_num_samples,
                    scheduler=scheduler,
                    generator=gen,
                )
                way = normalized_deltas_to_waypoints(x, mc.action_min, mc.action_max)[..., :2]
                way = way * scale[:, None]  # [B, S, T, 2] metres
                err = (way - gt[:, None]).norm(dim=-1)  # [B, S, T]
                ade, fde = err.mean(-1), err[..., -1]  # [B, S]
                spread = (way - way.mean(1, keepdim=True)).norm(dim=-1).mean((1, 2))  # [B]
                for name, per_row in (
                    (f"eval/ade_{mode}_{gtag}", ade.mean(1)),
                    (f"eval/minade_{mode}_{gtag}", ade.min(1).values),
                    (f"eval/fde_{mode}_{gtag}", fde.mean(1)),
                    (f"eval/spread_{mode}_{gtag}", spread),
                ):
                    add(name, float(per_row[mask].mean()), n_valid)
                if figure_rows is None and gtag == "gm":
                    figure_rows = {"obs": batch["obs_img"], "gt": gt, "mask": mask}
                if figure_rows is not None and gtag == "gm" and "samples_" + mode not in figure_rows:
                    figure_rows["samples_" + mode] = way
    result = {k: sums[k] / counts[k] for k in sums if counts[k] > 0}
    if tc.eval_goal_observations > 0:
        goal = goal_metrics(
            model,
            dataset,
            device=device,
            observations=tc.eval_goal_observations,
            seed=tc.seed,
            scheduler=scheduler,
        )
        result.update(goal.as_scalars("eval/"))
    if figure_path is not None and figure_rows is not None and tc.num_images_log > 0:
        save_trajectory_figure(figure_rows, figure_path, mc.context_size, tc.num_images_log)
    return result


def save_trajectory_figure(rows: dict[str, Any], path: Path, context_size: int, max_rows: int) -> None:
    """PNG of up to ``max_rows`` observations: the current observation (left) beside the sampled trajectories,
    top-down in the robot frame (right): ground truth black, samples per condition coloured (goal masked).

    ``rows``: ``obs`` ``[B, 3 * (context_size + 1), H, W]`` (ImageNet-normalised), ``gt`` ``[B, T, 2]`` metres,
    ``mask`` ``[B]`` (action_mask), and ``samples_<mode>`` ``[B, S, T, 2]`` metres for the modes of
    :data:`EVAL_MODES` present. Drawn on a :class:`matplotlib.figure.Figure`, so the caller's backend is left alone.
    """
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    n = min(max_rows, rows["obs"].shape[0])
    fig = Figure(figsize=(7, 3.2 * n))
    axes = fig.subplots(n, 2, squeeze=False)
    colors = {"ref": "tab:green", "prior": "tab:blue", "none": "tab:orange"}
    for r in range(n):
        cur = rows["obs"][r, 3 * context_size : 3 * context_size + 3].cpu() * std + mean
        axes[r, 0].imshow(cur.clamp(0, 1).permute(1, 2, 0).numpy())
        axes[r, 0].set_axis_off()
        axes[r, 0].set_title("current observation" + ("" if rows["mask"][r] else " (action_mask 0)"))
        ax = axes[r, 1]
        for mode, color in colors.items():
            samples = rows.get("samples_" + mode)
            if samples is None:
                continue
            for s in range(samples.shape[1]):
                w = samples[r, s].cpu()
                ax.plot(-w[:, 1], w[:, 0], color=color, alpha=0.5, lw=1, label=mode if s == 0 else None)
        g = rows["gt"][r].cpu()
        ax.plot(-g[:, 1], g[:, 0], "k-o", ms=2, lw=2, label="ground truth")
        ax.plot([0], [0], "r^", ms=8)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("-y (m, right)")
        ax.set_ylabel("x (m, forward)")
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
