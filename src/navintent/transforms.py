"""Camera frames -> model input: NoMaD's 4:3 centre crop, bicubic resize and ImageNet normalisation.

One home for the frame preprocessing every caller shares: the dataset (:mod:`navintent.data.dataset`, via the
decoded-image cache of :mod:`navintent.data.cache`), deployment (:mod:`navintent.deploy`), the closed-loop
policy (:mod:`navintent.evaluation.policy`), the simulator scenarios of steering
(:mod:`navintent.steering.sim_scenarios`) and the image figures (:mod:`navintent.steering.plots`).
Only numpy and PIL: no torch, so light commands may import it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

ASPECT_RATIO = 4 / 3

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Centre 4:3 crop box ``(left, top, right, bottom)`` for an image of ``width x height`` pixels.

    Same sizes and offsets as NoMaD's ``resize_and_aspect_crop`` (``int(h * 4/3)`` or ``int(w / (4/3))``,
    offsets ``round((size - crop) / 2)``), except that an image wider than tall but narrower than 4:3 is cropped
    in height, where NoMaD's ``center_crop`` would zero-pad it in width.
    """
    if width * 3 > height * 4:  # wider than 4:3: crop width
        crop_w, crop_h = int(height * ASPECT_RATIO), height
    else:
        crop_w, crop_h = width, int(width / ASPECT_RATIO)
    left = int(round((width - crop_w) / 2.0))
    top = int(round((height - crop_h) / 2.0))
    return left, top, left + crop_w, top + crop_h


# uint8 value -> normalised float32, per channel: (v / 255 - mean_c) / std_c. A table lookup is ~3x faster
# than the float arithmetic on the whole frame stack.
_NORMALIZE_LUT = (
    (np.arange(256, dtype=np.float64)[None] / 255.0 - IMAGENET_MEAN[:, None]) / IMAGENET_STD[:, None]
).astype(np.float32)


def prepare_frames(frames: np.ndarray, image_size: Sequence[int], *, center_crop: bool = True) -> np.ndarray:
    """Camera frames uint8 ``[K, H, W, 3]`` -> model input float32 ``[3K, h, w]``: the 4:3 centre crop of
    :func:`crop_box` (as training data is served; NoMaD's deployment skips it: ``center_crop=False``), bicubic
    resize to ``image_size`` = ``[w, h]``, ImageNet normalisation per frame (:func:`normalize_frames`)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [K, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    height, width = frames.shape[1:3]
    box = crop_box(width, height) if center_crop else (0, 0, width, height)
    size = (int(image_size[0]), int(image_size[1]))
    out = np.stack([np.asarray(Image.fromarray(f).crop(box).resize(size, Image.BICUBIC)) for f in frames])
    return normalize_frames(out)


def normalize_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 ``[F, H, W, 3]`` -> float32 ``[3F, H, W]``: [0, 1], ImageNet mean/std per frame, frames in order."""
    chw = frames.transpose(0, 3, 1, 2)
    out = np.empty(chw.shape, dtype=np.float32)
    for c in range(3):
        np.take(_NORMALIZE_LUT[c], chw[:, c], out=out[:, c])
    f, _, h, w = chw.shape
    return out.reshape(f * 3, h, w)
