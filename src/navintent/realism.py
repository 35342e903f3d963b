"""The realism range seen on data, and whether steered results stay inside it.

"Adversarial yet plausible" needs a yardstick. For a two-stage checkpoint and the data it was trained on, this module
measures, on one split (default ``test``):

- ``z2_nll``: negative log-likelihood (nats) of Encoder2's z2 under the checkpoint's fitted z2 Gaussian, with z1 =
  Encoder1's mean both with the sample's reference (where present) and without it; goal visible. Two values per
  sample.
- ``dynamics``: the ``dynamics`` objective term (default limits, at the checkpoint's waypoint time step) of the
  POLICY's own samples on the split: z1 = Encoder1's mean with the reference, one DDPM draw, NoMaD's hard clip.
- ``dynamics_ground_truth``: the same term on the recorded future trajectories.

Decision: the dynamics gate uses the policy's samples. Expert or teleoperated ground truth usually never exceeds the
limits (the sim's is exactly 0), while the unsteered policy already does now and then; a steering method is judged
against what the policy itself produces on data, not against a bar the policy cannot meet.

:func:`in_data_range` compares realism values (``realism_eval_draws`` of an ``optimize-z2`` report) against the
range's maxima (lower is more realistic for both terms).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from navintent.checkpoint import LoadedModel

GATED_TERMS: tuple[str, ...] = ("z2_nll", "dynamics")


def _summary(values: list[Tensor]) -> dict[str, float]:
    v = torch.cat(values).double().numpy()
    p5, p50, p95 = np.percentile(v, [5, 50, 95])
    return {
        "min": float(v.min()),
        "p5": float(p5),
        "p50": float(p50),
        "p95": float(p95),
        "max": float(v.max()),
        "n": int(len(v)),
    }


@torch.no_grad()
def data_realism_range(
    loaded: LoadedModel,
    data_dir: str | Path,
    *,
    split: str = "test",
    batch_size: int = 64,
    max_samples: int = 2048,
    seed: int = 0,
    what: str = "data folder",
) -> dict[str, dict[str, float]]:
    """``{"z2_nll" | "dynamics" | "dynamics_ground_truth": {min, p5, p50, p95, max, n}}`` on ``split`` of
    ``data_dir`` (layout of ``navintent train --data_dir``), built at the checkpoint's waypoint spacing and
    reference horizon; at most ``max_samples`` samples (the first ones; goals and noise drawn from ``seed``).
    ``what`` names ``data_dir`` in errors (e.g. the CLI flag that gave it)."""
    from torch.utils.data import DataLoader, Subset

    from navintent.data.sources import load_inference_split
    from navintent.diffusion import build_sampler, policy_eps_fn
    from navintent.objectives import ObjectiveContext, deltas_to_metric, dynamics, gaussian_nll

    if not loaded.is_intent or loaded.z2_stats is None:
        raise ValueError(
            f"{loaded.source}: a realism range needs a two-stage checkpoint with z2_stats (written by navintent train)"
        )
    if max_samples < 1 or batch_size < 1:
        raise ValueError(f"max_samples and batch_size must be >= 1, got {max_samples} and {batch_size}")
    model, (mean, cov) = loaded.model, loaded.z2_stats
    device = next(model.parameters()).device
    dataset = load_inference_split(
        data_dir,
        split,
        model.config,
        waypoint_spacing=loaded.waypoint_spacing,
        ref_horizon=loaded.ref_horizon,
        goal_seed=seed,
        what=what,
    )
    if len(dataset) > max_samples:
        dataset = Subset(dataset, range(max_samples))
    cfg = model.config
    context = ObjectiveContext(dt=loaded.waypoint_dt)
    sampler = build_sampler(model.scheduler_config, kind="ddpm", clip="hard")
    generator = torch.Generator(device=device).manual_seed(seed)
    nll, policy_dyn, truth_dyn = [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size):
        batch = {k: v.to(device) for k, v in batch.items()}
        goal_mask = torch.zeros(batch["obs_img"].shape[0], dtype=torch.bool, device=device)
        cond, tokens = model.encode(batch["obs_img"], batch["goal_img"], goal_mask, return_tokens=True)
        present = batch["ref_mask"] > 0.5
        z1_ref, _ = model.posterior(tokens, goal_mask, batch["ref_traj"], present)
        z1_none, _ = model.posterior(tokens, goal_mask, None, None)
        z2_ref = model.z2_from_tokens(z1_ref, tokens)
        for z2 in (z2_ref, model.z2_from_tokens(z1_none, tokens)):
            nll.append(gaussian_nll(z2, mean, cov).cpu())
        scale = batch["metric_scale"].float()
        truth = batch["actions"][..., :2].float() * scale.view(-1, 1, 1)
        truth_dyn.append(dynamics(truth, context).cpu())
        noise = sampler.draw_noise(
            (len(z2_ref), cfg.len_traj_pred, cfg.action_dim), generator=generator, device=device
        )
        x = sampler.sample(policy_eps_fn(model, cond, z2_ref), noise)
        sampled = deltas_to_metric(x, cfg.action_min, cfg.action_max, scale)
        policy_dyn.append(dynamics(sampled, context).cpu())
    return {
        "z2_nll": _summary(nll),
        "dynamics": _summary(policy_dyn),
        "dynamics_ground_truth": _summary(truth_dyn),
    }


def in_data_range(realism: dict[str, Any], data_range: dict[str, dict[str, float]]) -> dict[str, bool]:
    """Per gated term present in ``realism`` (name -> value): value <= the data range's maximum."""
    return {name: float(realism[name]) <= data_range[name]["max"] for name in GATED_TERMS if name in realism}
