"""Image crop/resize/normalisation and the memmap cache (sharing, invalidation, atomic build)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from navintent.data import cache as cache_mod
from navintent.data.split import write_traj_names
from navintent.data.synthetic import decode_frame_ids, straight_poses, write_trajectory
from navintent.transforms import crop_box

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def write_png_frames(folder, frames):
    """Lossless frames under NoMaD's .jpg names (PIL identifies the format from the content)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, arr in enumerate(frames):
        Image.fromarray(arr).save(folder / f"{t}.jpg", format="PNG")


@pytest.mark.parametrize(
    ("w", "h", "box"),
    [
        (40, 24, (4, 0, 36, 24)),  # wider than 4:3: width int(24 * 4/3) = 32, centred
        (24, 40, (0, 11, 24, 29)),  # taller: height int(24 / (4/3)) = 18, top round(11.0)
        (40, 32, (0, 1, 40, 31)),  # between 1:1 and 4:3: cropped in height (NoMaD would zero-pad the width)
        (640, 480, (0, 0, 640, 480)),  # already 4:3
    ],
)
def test_crop_box(w, h, box):
    assert crop_box(w, h) == box


def test_served_pixels_equal_independent_crop_and_normalisation(tmp_path, make_dataset):
    rng = np.random.default_rng(0)
    n = 12
    frames = [rng.integers(0, 256, size=(24, 40, 3), dtype=np.uint8) for _ in range(n)]  # H=24, W=40
    write_png_frames(tmp_path / "d" / "a", frames)
    p, y = straight_poses(n)
    with open(tmp_path / "d" / "a" / "traj_data.pkl", "wb") as f:
        pickle.dump({"position": p, "yaw": y[:, None]}, f)  # yaw as [N, 1] is accepted
    write_traj_names(tmp_path / "s", ["a"])
    ds = make_dataset(tmp_path / "d", tmp_path / "s", len_traj_pred=2, goal_seed=0)
    s = ds[0]  # current frame 3, context frames 0..3
    expected = [((frames[k][:, 4:36] / 255.0 - MEAN) / STD).transpose(2, 0, 1) for k in range(4)]
    np.testing.assert_allclose(s["obs_img"].numpy(), np.concatenate(expected), atol=1e-5)
    assert s["obs_img"].dtype == torch.float32 and s["obs_img"].shape == (12, 24, 32)
    # resizing goes through PIL bicubic on the cropped image
    small = make_dataset(tmp_path / "d", tmp_path / "s", len_traj_pred=2, goal_seed=0, image_size=[16, 12])
    crop = Image.fromarray(frames[3][:, 4:36]).resize((16, 12), Image.BICUBIC)
    exp = ((np.asarray(crop) / 255.0 - MEAN) / STD).transpose(2, 0, 1)
    np.testing.assert_allclose(small[0]["obs_img"][9:].numpy(), exp, atol=1e-5)


@pytest.fixture
def small_data(tmp_path):
    n = 14
    p, y = straight_poses(n)
    write_trajectory(tmp_path / "d", "a", p, y, traj_index=0)
    write_traj_names(tmp_path / "s", ["a"])
    return tmp_path / "d", tmp_path / "s"


def test_cache_reused_then_invalidated(small_data, make_dataset, cache_dir, monkeypatch):
    data, split = small_data
    first = make_dataset(data, split, len_traj_pred=2, goal_seed=0)
    path = first.images.cache_path
    assert path.exists() and path.parent == cache_dir
    assert [f.name for f in cache_dir.iterdir()] == [path.name]  # no temporary file left behind
    before = first[0]

    calls = []
    real = cache_mod.decode_image
    monkeypatch.setattr(cache_mod, "decode_image", lambda *a: calls.append(a) or real(*a))
    again = make_dataset(data, split, len_traj_pred=2, goal_seed=0)
    assert again.images.cache_path == path and calls == []  # same data + params: reused, nothing decoded
    torch.testing.assert_close(again[0]["obs_img"], before["obs_img"], rtol=0, atol=0)

    # changing a parameter -> a different cache
    resized = make_dataset(data, split, len_traj_pred=2, image_size=[16, 12])
    assert resized.images.cache_path != path and len(calls) == 14

    # changing an image -> fresh cache serving the new pixels
    Image.new("RGB", (32, 24), (4 + 8 * 20, 4, 4 + 8 * 5)).save(data / "a" / "3.jpg", quality=95)
    st = os.stat(data / "a" / "3.jpg")
    os.utime(data / "a" / "3.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = make_dataset(data, split, len_traj_pred=2, goal_seed=0)
    assert changed.images.cache_path != path
    assert decode_frame_ids(changed[0]["obs_img"])[-1] == (5, 20)
    assert decode_frame_ids(before["obs_img"])[-1] == (0, 3)


def test_uncached_matches_cached_and_pickles(small_data, make_dataset):
    data, split = small_data
    cached = make_dataset(data, split, len_traj_pred=2, goal_seed=0)
    direct = make_dataset(data, split, len_traj_pred=2, goal_seed=0, use_cache=False)
    assert direct.images.cache_path is None
    cached[0]  # opens the memmap; pickling must drop it and reopen lazily
    clone = pickle.loads(pickle.dumps(cached))
    assert clone.images._array is None
    for i in (0, len(cached) - 1):
        torch.testing.assert_close(direct[i]["obs_img"], cached[i]["obs_img"], rtol=0, atol=0)
        torch.testing.assert_close(clone[i]["goal_img"], cached[i]["goal_img"], rtol=0, atol=0)
