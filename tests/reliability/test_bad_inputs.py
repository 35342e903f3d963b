"""Bad inputs, one test each: the CLI answers ``navintent CMD: error: <what and where>`` with exit status 2 and no
traceback; the data layer converts or refuses odd images by a documented rule; untrusted or mismatched files are
refused with the file named.

Covered elsewhere (referenced in the README's reliability table, not repeated): NaN/inf in poses, yaw, ref_traj,
agents (tests/data/test_data_errors.py::test_bad_data_raises_naming_file_and_check_data_lists_it), trajectories too
short / split without usable samples (test_short_trajectories_excluded_with_one_counted_warning), unknown config
keys in Python (tests/test_config.py::test_unknown_keys_are_named_with_the_file), pickled checkpoints without trust
and corrupt checkpoint files (tests/test_checkpoint.py), malformed --data_sample fields
(tests/test_optimize.py::test_data_sample_validation_names_the_field), a resume with a changed config
(tests/test_train.py::test_resume_reproduces_the_uninterrupted_run_bit_for_bit).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from navintent.checkpoint import UntrustedCheckpointError, load_policy, save_checkpoint
from navintent.cli import main
from navintent.config import SchedulerConfig, preset_model_config
from navintent.data import DataError, NavDataset
from navintent.data.cache import decode_image
from navintent.data.synthetic import write_synthetic_dataset
from navintent.models.nomad import NoMaDPolicy


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``navintent ARGV`` as the program reports them (``report_errors=True``)."""
    try:
        code = main(argv, report_errors=True)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    return code, err


def assert_reported(argv, capsys, fragment: str) -> str:
    code, err = run_cli(argv, capsys)
    command = argv[0]
    assert code == 2, err
    assert f"navintent {command}: error: " in err and fragment in err, err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------------------------------------ CLI ranges
RANGE_CASES = [
    (["train", "--data_dir", "d", "--batch_size", "0"], "batch_size must be a positive int, got 0"),
    (["train", "--data_dir", "d", "--lr", "-0.001"], "lr must be a non-negative number, got -0.001"),
    (["train", "--data_dir", "d", "--max_steps", "-1"], "max_steps must be a non-negative int, got -1"),
    (["train", "--data_dir", "d", "--epochs", "0"], "epochs must be a positive int, got 0"),
    (["make-data", "--out", "o", "--episodes", "0"], "argument --episodes: must be an integer >= 1, got '0'"),
    (["make-data", "--out", "o", "--episodes", "2", "--train-frac", "1.5"], "argument --train-frac: must be"),
    (["make-data", "--out", "o", "--episodes", "2", "--workers", "0"], "argument --workers: must be"),
    (["split", "d", "--out", "o", "--train-frac", "-0.1"], "argument --train-frac: must be a number >= 0.0"),
    (["sample", "--num-samples", "0"], "argument --num-samples: must be an integer >= 1, got '0'"),
    (["sample", "--metric-scale", "-0.25"], "argument --metric-scale: must be a number > 0.0, got '-0.25'"),
    (["sample", "--metric-scale", "nan"], "argument --metric-scale: must be a number > 0.0, got 'nan'"),
    (["sample", "--lambda-cfg", "-1"], "argument --lambda-cfg: must be a number >= 0.0"),
    (["sample", "--num-samples", "two"], "argument --num-samples: must be an integer >= 1, got 'two'"),
    (["optimize-z2", "--ckpt", "c.pt", "--steps", "-1"], "steps must be a positive int, got -1"),
    (["optimize-z2", "--ckpt", "c.pt", "--draws", "0"], "draws must be a positive int, got 0"),
    (["optimize-z2", "--ckpt", "c.pt", "--lr", "-0.1"], "lr must be > 0, got -0.1"),
    (["optimize-z2", "--ckpt", "c.pt", "--budget", "-5"], "argument --budget: must be a number >= 0.0"),
    (["optimize-z2", "--ckpt", "c.pt", "--num-scenarios", "0"], "argument --num-scenarios: must be"),
    (["optimize-z2", "--ckpt", "c.pt", "--camera-hfov", "200"], "argument --camera-hfov: must be"),
    (["optimize-z2", "--ckpt", "c.pt", "--method", "sgd"], "--method: unknown ['sgd']"),
    (["evaluate", "--ckpt", "c.pt", "--scenes", "0"], "--scenes must be >= 1, got 0"),
    # EvalConfig's checks, in the flag's words and before the (missing) checkpoint is looked for
    (
        ["evaluate", "--ckpt", "c.pt", "--engage-distance", "-1"],
        "--engage-distance must be a non-negative number, got -1.0",
    ),
    (["evaluate", "--ckpt", "c.pt", "--budget", "-1"], "--budget must be a non-negative number, got -1.0"),
    (["evaluate", "--ckpt", "c.pt", "--replan-every", "0"], "--replan-every must be a positive int, got 0"),
]


@pytest.mark.parametrize(
    ("argv", "fragment"), RANGE_CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in RANGE_CASES]
)
def test_out_of_range_arguments_are_usage_errors(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written anywhere that matters
    assert_reported(argv, capsys, fragment)
    assert not (tmp_path / "o").exists() and not (tmp_path / "runs").exists()


GPU_ABSENT = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--data_dir", "d", "--preset", "tiny"],
        ["sample", "--preset", "tiny"],
        ["optimize-z2", "--ckpt", "c.pt"],
        ["evaluate", "--ckpt", "c.pt"],
    ],
    ids=lambda a: a[0],
)
def test_gpu_requested_but_absent(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_reported([*argv, "--device", GPU_ABSENT], capsys, f"argument --device: {GPU_ABSENT} requested but")
    with pytest.raises(ValueError, match="requested but"):  # Python callers get the exception
        main([*argv, "--device", GPU_ABSENT])


def test_program_prints_one_line_and_python_callers_get_the_exception(tmp_path, monkeypatch, capsys):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "navintent",
            "train",
            "--data_dir",
            str(tmp_path / "nope"),
            "--preset",
            "tiny",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"navintent train: error: --data_dir {tmp_path / 'nope'} does not exist or is not a folder"
    )
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(["train", "--data_dir", str(tmp_path / "nope"), "--preset", "tiny"])
    monkeypatch.setenv("NAVINTENT_TRACEBACK", "1")  # debugging: the traceback comes back
    with pytest.raises(FileNotFoundError):
        main(["train", "--data_dir", str(tmp_path / "nope"), "--preset", "tiny"], report_errors=True)


# ------------------------------------------------------------------------------------------------ config files
def test_config_files_with_unknown_keys_name_them(tmp_path, capsys):
    bad = tmp_path / "train.yaml"
    bad.write_text("model:\n  image_size: [32, 32]\n  encodng_size: 64\ntrain:\n  batchsize: 2\n")
    assert_reported(
        ["train", "--data_dir", str(tmp_path), "--preset", "tiny", "--config", str(bad)],
        capsys,
        "unknown ModelConfig keys",
    )
    sim = tmp_path / "sim.yaml"
    sim.write_text("camera:\n  fov: 100\n")
    err = assert_reported(
        ["make-data", "--out", str(tmp_path / "o"), "--episodes", "1", "--config", str(sim)],
        capsys,
        "['fov']",
    )
    assert str(sim) in err


# ------------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(path, NoMaDPolicy(preset_model_config("tiny")), scheduler_config=SchedulerConfig())


def test_checkpoint_that_does_not_match_its_config(tiny_ckpt, tmp_path, capsys):
    raw = torch.load(tiny_ckpt, weights_only=True)
    raw["config"]["model"]["encoding_size"] = 2 * raw["config"]["model"]["encoding_size"]
    bad = tmp_path / "edited.pt"
    torch.save(raw, bad)
    with pytest.raises(
        ValueError, match=r"edited\.pt \(model weights\) does not match the model its config builds"
    ):
        load_policy(bad)
    err = assert_reported(
        ["sample", "--ckpt", str(bad), "--out-dir", str(tmp_path / "s")], capsys, "shape mismatches"
    )
    assert str(bad) in err
    raw["config"]["model"]["encodng_size"] = 8  # an unknown key in the stored config
    torch.save(raw, bad)
    assert_reported(
        ["sample", "--ckpt", str(bad), "--out-dir", str(tmp_path / "s")], capsys, "['encodng_size']"
    )


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_files_are_refused_by_the_cli_without_running_them(tiny_ckpt, tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"ema_model": _Payload(marker)}, evil)
    assert_reported(
        ["sample", "--ckpt", str(evil), "--out-dir", str(tmp_path / "s")], capsys, "--trust-checkpoint"
    )
    assert_reported(["optimize-z2", "--ckpt", str(evil), "--out-dir", str(tmp_path / "o")], capsys, str(evil))
    sample = tmp_path / "sample.pt"
    torch.save({"obs_img": _Payload(marker)}, sample)
    err = assert_reported(
        [
            "optimize-z2",
            "--ckpt",
            str(tiny_ckpt),
            "--data_sample",
            str(sample),
            "--out-dir",
            str(tmp_path / "o"),
        ],
        capsys,
        "holds pickled Python objects",
    )
    assert str(sample) in err and not marker.exists()
    sample.write_bytes(sample.read_bytes()[:100])  # truncated
    assert_reported(
        [
            "optimize-z2",
            "--ckpt",
            str(tiny_ckpt),
            "--data_sample",
            str(sample),
            "--out-dir",
            str(tmp_path / "o"),
        ],
        capsys,
        f"--data_sample {sample} is truncated or corrupt",
    )
    with pytest.raises(UntrustedCheckpointError):
        load_policy(evil)
    assert not marker.exists()


def test_truncated_latest_checkpoint_on_resume_names_the_file(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    data = tiny_ckpt.read_bytes()
    (out / "latest.pt").write_bytes(data[: len(data) // 3])
    assert_reported(
        ["train", "--data_dir", str(tmp_path), "--out", str(out), "--resume"],
        capsys,
        f"checkpoint {out / 'latest.pt'} is corrupt or truncated",
    )
    assert_reported(
        ["train", "--data_dir", str(tmp_path), "--out", str(tmp_path / "none"), "--resume"],
        capsys,
        "--resume: no checkpoint at",
    )


# ------------------------------------------------------------------------------------------------ images
def _gradient(h: int = 30, w: int = 40) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 5 + y * 3) % 256).astype(np.uint8)


def _same_as(path: Path, rgb: np.ndarray, tmp_path: Path, size=(16, 12)) -> None:
    """decode_image(path) equals decoding the lossless RGB equivalent ``rgb``."""
    ref = tmp_path / "reference.png"
    Image.fromarray(rgb, mode="RGB").save(ref)
    np.testing.assert_array_equal(decode_image(path, size), decode_image(ref, size))


def test_image_modes_converted_by_the_documented_rule(tmp_path):
    g = _gradient()
    Image.fromarray(g, mode="L").save(tmp_path / "gray.png")
    _same_as(tmp_path / "gray.png", np.repeat(g[..., None], 3, -1), tmp_path)  # grayscale: replicated

    rgba = np.stack([g, 255 - g, g // 2, np.full_like(g, 7)], -1)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    _same_as(tmp_path / "rgba.png", rgba[..., :3], tmp_path)  # alpha dropped, not composited

    wide = g.astype(np.uint16) * 257 + 100  # 16-bit grayscale: the high byte (PIL alone would clip at 255)
    Image.fromarray(wide).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    _same_as(tmp_path / "gray16.png", np.repeat((wide >> 8).astype(np.uint8)[..., None], 3, -1), tmp_path)

    pal = Image.fromarray(rgba[..., :3], mode="RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.save(tmp_path / "palette.png")
    _same_as(tmp_path / "palette.png", np.asarray(pal.convert("RGB")), tmp_path)

    Image.fromarray(rgba[..., :3], mode="RGB").convert("CMYK").save(tmp_path / "cmyk.jpg")
    out = decode_image(tmp_path / "cmyk.jpg", (16, 12))
    assert out.shape == (12, 16, 3) and out.dtype == np.uint8

    Image.fromarray(g.astype(np.float32) / 255, mode="F").save(tmp_path / "float.tiff")
    with pytest.raises(DataError, match=r"float\.tiff: 32-bit float image \(PIL mode 'F'\)"):
        decode_image(tmp_path / "float.tiff", (16, 12))
    Image.fromarray(g.astype(np.int32) * 1000, mode="I").save(tmp_path / "int32.tiff")
    with pytest.raises(DataError, match=r"int32\.tiff: 32-bit integer image"):
        decode_image(tmp_path / "int32.tiff", (16, 12))
    Image.new("RGB", (1, 5)).save(tmp_path / "sliver.png")
    with pytest.raises(DataError, match=r"sliver\.png: image of 1x5 pixels is too small"):
        decode_image(tmp_path / "sliver.png", (16, 12))


def test_dataset_frames_of_other_modes_and_sizes(tmp_path, capsys):
    ds = write_synthetic_dataset(tmp_path / "d", num_trajectories=1, length=14, split_folder=tmp_path / "s")
    folder = ds.data_folder / ds.names[0]
    colour = np.asarray(Image.open(folder / "3.jpg").convert("RGB"))
    Image.fromarray(colour[..., 0], mode="L").save(folder / "3.jpg", format="JPEG", quality=100)  # grayscale
    big = np.repeat(np.repeat(colour, 5, 0), 5, 1)  # a frame 5x larger than the others: resized like them
    Image.fromarray(np.dstack([big, np.full(big.shape[:2], 9, np.uint8)]), mode="RGBA").save(
        folder / "4.jpg", format="PNG"
    )
    Image.fromarray(colour[..., 1].astype(np.uint16) * 257).save(folder / "2.jpg", format="PNG")  # 16-bit
    kwargs = dict(
        data_folder=ds.data_folder,
        data_split_folder=ds.split_folder,
        dataset_name="synthetic",
        image_size=[32, 24],
        waypoint_spacing=1,
        min_dist_cat=0,
        max_dist_cat=4,
        min_action_distance=1,
        max_action_distance=4,
        negative_mining=False,
        len_traj_pred=4,
        learn_angle=False,
        context_size=2,
        metric_waypoint_spacing=0.25,
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    dataset = NavDataset(**kwargs)
    assert len(dataset) > 0 and torch.isfinite(dataset[0]["obs_img"]).all()
    assert main(["check-data", str(ds.data_folder)]) == 0
    capsys.readouterr()

    Image.fromarray(colour[..., 0].astype(np.float32), mode="F").save(folder / "5.jpg", format="TIFF")
    with pytest.raises(DataError, match=rf"{folder / '5.jpg'}: 32-bit float image"):
        NavDataset(**{**kwargs, "cache_dir": tmp_path / "cache2"})
    assert main(["check-data", str(ds.data_folder)]) == 1
    assert f"{folder / '5.jpg'}: 32-bit float image" in capsys.readouterr().out


def test_sample_command_obs_and_goal_images(tmp_path, capsys):
    g = _gradient(48, 64)
    Image.fromarray(g, mode="L").save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([g, g, g, g]), mode="RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(g.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    out = tmp_path / "out"
    argv = ["sample", "--preset", "tiny", "--num-samples", "1", "--out-dir", str(out)]
    code, err = run_cli(
        [
            *argv,
            "--obs",
            str(tmp_path / "gray.png"),
            str(tmp_path / "rgba.png"),
            "--goal",
            str(tmp_path / "gray16.png"),
        ],
        capsys,
    )
    assert code == 0, err
    assert torch.load(out / "trajectories.pt", weights_only=True)["waypoints_m"].isfinite().all()
    Image.fromarray(g.astype(np.float32), mode="F").save(tmp_path / "depth.tiff")
    assert_reported(
        [*argv, "--obs", str(tmp_path / "depth.tiff")], capsys, f"{tmp_path / 'depth.tiff'}: 32-bit float"
    )
    assert_reported(
        [*argv, "--obs", str(tmp_path / "gray.png"), "--goal", str(tmp_path / "missing.png")],
        capsys,
        f"{tmp_path / 'missing.png'}: image file is missing",
    )


# ------------------------------------------------------------------------------------------------ empty data
def test_empty_datasets(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["check-data", str(tmp_path / "empty")]) == 1
    assert "no trajectory folders" in capsys.readouterr().out
    (tmp_path / "d" / "splits").mkdir(parents=True)
    assert_reported(
        ["train", "--data_dir", str(tmp_path / "d"), "--preset", "tiny"], capsys, "holds no dataset folders"
    )
    ds = write_synthetic_dataset(
        tmp_path / "x" / "synth",
        num_trajectories=1,
        length=14,
        split_folder=tmp_path / "x" / "splits" / "synth" / "train",
    )
    (ds.split_folder / "traj_names.txt").write_text("\n")
    with pytest.raises(DataError, match=r"traj_names\.txt: split lists no trajectories"):
        NavDataset(
            ds.data_folder,
            ds.split_folder,
            "synth",
            [32, 24],
            1,
            0,
            4,
            1,
            4,
            False,
            4,
            False,
            2,
            metric_waypoint_spacing=0.25,
            cache_dir=tmp_path / "cache",
            progress=False,
        )
    assert_reported(
        ["train", "--data_dir", str(tmp_path / "x"), "--preset", "tiny"],
        capsys,
        "traj_names.txt: split lists no trajectories",
    )
