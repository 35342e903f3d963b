"""`navintent sample`: end-to-end runs on the tiny preset, outputs, input handling and the built-in scene."""

import numpy as np
import pytest
import torch
from PIL import Image

from navintent.actions import normalized_deltas_to_waypoints
from navintent.checkpoint import save_checkpoint
from navintent.cli import main
from navintent.config import SchedulerConfig, preset_model_config
from navintent.models.nomad import NoMaDPolicy
from navintent.sample import CAMERA_HEIGHT_M, DISPLAY_SIZE, ground_to_pixels, project, render_corridor


def test_builtin_scene_run_writes_plot_and_trajectories(tmp_path, capsys):
    assert (
        main(["sample", "--preset", "tiny", "--out-dir", str(tmp_path), "--num-samples", "5", "--seed", "3"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "10 DDPM denoising steps for 5 samples" in printed and str(tmp_path / "sample.png") in printed
    with Image.open(tmp_path / "sample.png") as png:
        assert png.size[0] > 800 and png.size[1] > 300
    out = torch.load(tmp_path / "trajectories.pt", weights_only=True)
    cfg = preset_model_config("tiny")
    assert out["waypoints_m"].shape == (5, cfg.len_traj_pred, 2)
    assert out["normalized_deltas"].shape == (5, cfg.len_traj_pred, 2)
    assert out["normalized_deltas"].abs().max() <= 1.0
    # a random preset records no training scale: NoMaD's deployment rule 0.2 m/s / 4 Hz = 0.05 m per unit
    assert out["metric_scale"] == pytest.approx(0.05)
    expected = normalized_deltas_to_waypoints(out["normalized_deltas"], cfg.action_min, cfg.action_max) * 0.05
    torch.testing.assert_close(out["waypoints_m"], expected, rtol=0, atol=0)
    assert out["goal_mask"] == 0 and len(out["obs"]) == cfg.context_size + 1
    # Same seed, same trajectories.
    assert (
        main(
            [
                "sample",
                "--preset",
                "tiny",
                "--out-dir",
                str(tmp_path / "b"),
                "--num-samples",
                "5",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    again = torch.load(tmp_path / "b" / "trajectories.pt", weights_only=True)
    assert torch.equal(again["normalized_deltas"], out["normalized_deltas"])


def test_user_images_checkpoint_and_masked_goal(tmp_path, capsys):
    torch.manual_seed(0)
    cfg = preset_model_config("tiny")
    ckpt = save_checkpoint(
        tmp_path / "c.pt", NoMaDPolicy(cfg), scheduler_config=SchedulerConfig(num_train_timesteps=4)
    )
    img = tmp_path / "frame.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)).save(img)
    args = [
        "sample",
        "--ckpt",
        str(ckpt),
        "--obs",
        str(img),
        "--out-dir",
        str(tmp_path / "o"),
        "--num-samples",
        "2",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "goal masked (exploration)" in printed and "4 DDPM denoising steps" in printed
    out = torch.load(tmp_path / "o" / "trajectories.pt", weights_only=True)
    assert out["goal_mask"] == 1 and out["obs"] == [str(img)] * (cfg.context_size + 1)
    with pytest.raises(ValueError, match="at most 4"):
        main(["sample", "--preset", "tiny", "--obs", *[str(img)] * 5, "--out-dir", str(tmp_path / "x")])


def test_corridor_is_a_structured_scene_not_noise():
    a = np.asarray(render_corridor(0.0, seed=1))
    assert a.shape == (DISPLAY_SIZE[1], DISPLAY_SIZE[0], 3)
    assert np.array_equal(a, np.asarray(render_corridor(0.0, seed=1)))
    assert len(np.unique(a.reshape(-1, 3), axis=0)) < 200  # flat-shaded polygons
    top, bottom = a[:20, 140:180].mean(), a[-20:, 140:180].mean()
    assert top > bottom + 40  # bright ceiling above, darker floor below
    assert not np.array_equal(a, np.asarray(render_corridor(1.0, seed=1)))  # moving changes the view


def test_projection_of_ground_points():
    # A ground point straight ahead projects onto the vertical centre line, below the horizon; farther is higher.
    pix = ground_to_pixels(np.array([[1.0, 0.0], [4.0, 0.0], [1.0, 1.0], [-1.0, 0.0]]))
    assert pix.shape == (3, 2)  # the point behind the camera is dropped
    w, h = DISPLAY_SIZE
    assert pix[0, 0] == pytest.approx(w / 2) and pix[0, 1] > pix[1, 1] > h / 2
    assert pix[2, 0] < w / 2  # y left -> image left
    # 90 degree field of view: x = y at the image edge.
    assert project(np.array([[2.0, 2.0, 0.0]]))[0, 0] == pytest.approx(0.0)
    assert project(np.array([[CAMERA_HEIGHT_M, 0.0, -CAMERA_HEIGHT_M]]))[0, 1] == pytest.approx(h / 2 + w / 2)
