"""navintent.transforms: the one frame preprocessing (crop, resize, normalise) pinned to exact values."""

from __future__ import annotations

import numpy as np
import pytest

from navintent.transforms import IMAGENET_MEAN, IMAGENET_STD, crop_box, normalize_frames, prepare_frames

# 1 frame of 4 x 6 pixels (wider than 4:3): values 0, 3, ..., 213 in [H, W, C] order
FRAMES = np.arange(72, dtype=np.uint8).reshape(1, 4, 6, 3) * 3


def test_prepare_frames_pinned_output():
    # crop_box(6, 4) = (0, 0, 5, 4), bicubic to w=3, h=2, ImageNet normalisation: float32 [3, 2, 3]
    assert crop_box(6, 4) == (0, 0, 5, 4)
    expected = np.array(
        [
            [[-1.5185376, -1.2616663, -1.004795], [0.15968826, 0.41655958, 0.67343086]],
            [[-1.3704481, -1.1078432, -0.8452381], [0.3452381, 0.6078431, 0.8704482]],
            [[-1.0898474, -0.82840955, -0.56697166], [0.6182136, 0.8796515, 1.1410894]],
        ],
        dtype=np.float32,
    )
    out = prepare_frames(FRAMES, (3, 2))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_prepare_frames_without_crop_pinned_output():
    expected = np.array(
        [
            [[-1.4842881, -1.1760426, -0.8849217], [0.19393778, 0.5021833, 0.79330415]],
            [[-1.3354341, -1.0203081, -0.72268903], [0.3802521, 0.6953781, 0.99299717]],
            [[-1.0549891, -0.74126357, -0.44496727], [0.65307194, 0.9667975, 1.2630937]],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(prepare_frames(FRAMES, [3, 2], center_crop=False), expected)


def test_prepare_frames_stacks_frames_channel_major_in_order():
    two = np.concatenate([FRAMES, 255 - FRAMES])
    out = prepare_frames(two, (3, 2))
    assert out.shape == (6, 2, 3)
    np.testing.assert_array_equal(out[:3], prepare_frames(FRAMES, (3, 2)))
    np.testing.assert_array_equal(out[3:], prepare_frames(255 - FRAMES, (3, 2)))


def test_normalize_frames_matches_imagenet_formula():
    frames = np.stack([np.full((1, 2, 3), v, dtype=np.uint8) for v in (0, 128, 255)])
    out = normalize_frames(frames).reshape(3, 3, 1, 2)
    for i, v in enumerate((0, 128, 255)):
        want = ((v / 255.0 - IMAGENET_MEAN.astype(np.float64)) / IMAGENET_STD.astype(np.float64)).astype(
            np.float32
        )
        np.testing.assert_array_equal(out[i, :, 0, 0], want)


def test_prepare_frames_refuses_non_uint8_or_wrong_shape():
    with pytest.raises(ValueError, match=r"uint8 \[K, H, W, 3\]"):
        prepare_frames(FRAMES.astype(np.float32), (3, 2))
    with pytest.raises(ValueError, match=r"uint8 \[K, H, W, 3\]"):
        prepare_frames(FRAMES[0], (3, 2))
