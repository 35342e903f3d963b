"""Random-shift augmentation: values against plain slicing of the padded image, identity at 0, bad input."""

import pytest
import torch
import torch.nn.functional as F

from navintent.training.augmentation import augment_batch, random_shift


def test_random_shift_equals_a_crop_of_the_edge_padded_image_at_the_drawn_offset():
    images = torch.randn(5, 6, 8, 10, generator=torch.Generator().manual_seed(0))
    pad = 2
    shifted = random_shift(images, pad, torch.Generator().manual_seed(3))
    offsets = torch.randint(0, 2 * pad + 1, (5, 2), generator=torch.Generator().manual_seed(3))
    padded = F.pad(images, (pad,) * 4, mode="replicate")
    for b, (dy, dx) in enumerate(offsets.tolist()):
        assert torch.equal(shifted[b], padded[b, :, dy : dy + 8, dx : dx + 10])
    assert len({tuple(o) for o in offsets.tolist()}) > 1  # the samples did not all move alike


def test_random_shift_fills_from_the_border_and_keeps_every_channel_together():
    """A shift by the whole pad moves the image content and repeats the edge row, the same for every channel."""
    image = (
        torch.arange(16.0).reshape(1, 1, 4, 4).repeat(1, 3, 1, 1)
        * torch.tensor([1.0, 2.0, 3.0])[:, None, None]
    )
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        out = random_shift(image, 1, gen)
        for c in range(3):
            assert torch.equal(out[0, c], out[0, 0] * (c + 1))
        assert set(out[0, 0].unique().tolist()) <= set(image[0, 0].unique().tolist())


def test_pad_zero_is_the_identity_and_bad_input_is_refused():
    images = torch.randn(2, 3, 4, 4)
    assert random_shift(images, 0) is images
    batch = {"obs_img": images, "goal_img": images, "distance": torch.zeros(2)}
    assert augment_batch(batch, 0) is batch
    with pytest.raises(ValueError, match=r"images must be \[B, C, H, W\], got shape \(3, 4, 4\)"):
        random_shift(images[0], 1)
    with pytest.raises(ValueError, match="pad must be >= 0, got -1"):
        random_shift(images, -1)


def test_augment_batch_shifts_context_frames_together_and_the_goal_on_its_own():
    """The current frame sits in both obs_img (last 3 channels) and, here, goal_img: over a few draws the goal
    moves differently from the context at least once, while the context frames always move as one."""
    frame = torch.randn(1, 3, 6, 6, generator=torch.Generator().manual_seed(1)).repeat(4, 1, 1, 1)
    batch = {
        "obs_img": torch.cat([frame, frame], dim=1),
        "goal_img": frame.clone(),
        "distance": torch.arange(4),
    }
    out = augment_batch(batch, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out["obs_img"][:, :3], out["obs_img"][:, 3:])
    assert not torch.equal(out["goal_img"], out["obs_img"][:, 3:])
    assert out["distance"] is batch["distance"] and batch["obs_img"][:, :3].equal(frame)  # input untouched
