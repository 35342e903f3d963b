"""Image augmentation of training batches: random shifts (DrQ, Kostrikov et al., 2020, "Image Augmentation Is All
You Need": pad by ``pad`` pixels with the border values, crop back to the original size at a random offset).

Why here and not in the dataset: the decoded-image cache serves normalised frames at the model's size, and a
shift is cheapest as one batched gather on the tensors the model reads. What moves: the context frames of one
observation share one shift (one camera, one moment's mounting), the goal image gets its own (it was taken from
another pose anyway), so the goal encoder, which stacks the current frame with the goal, sees both shifted
independently. Deployment and evaluation never augment.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_shift(images: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """``images [B, C, H, W]`` shifted per sample by integers ``dx, dy`` uniform in ``[-pad, pad]``, the uncovered
    border filled by replicating the edge pixels (DrQ's random shift). ``pad`` 0 returns ``images`` itself.

    Offsets come from ``generator`` (None: torch's global RNG), drawn as one ``[B, 2]`` tensor. Raises
    ``ValueError`` for a tensor that is not 4-d or a negative ``pad``.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if pad == 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(
        0, 2 * pad + 1, (b, 2), generator=generator, device=generator.device if generator else None
    )
    offsets = offsets.to(images.device)
    rows = offsets[:, 0, None] + torch.arange(h, device=images.device)  # [B, H]
    cols = offsets[:, 1, None] + torch.arange(w, device=images.device)  # [B, W]
    batch = torch.arange(b, device=images.device)[:, None, None]
    # advanced indexing over (batch, row, col) with the channel slice kept: [B, H, W, C] -> [B, C, H, W]
    return (
        padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
    )


def augment_batch(
    batch: dict[str, Tensor], shift: int, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """A copy of a training ``batch`` with ``obs_img [B, 3 * (context + 1), H, W]`` and ``goal_img [B, 3, H, W]``
    randomly shifted by up to ``shift`` pixels (:func:`random_shift`; one shift for all context frames of a
    sample, an independent one for its goal). Other keys are passed through unchanged; ``shift`` 0 returns
    ``batch`` itself."""
    if shift == 0:
        return batch
    out = dict(batch)
    out["obs_img"] = random_shift(batch["obs_img"], shift, generator)
    out["goal_img"] = random_shift(batch["goal_img"], shift, generator)
    return out
