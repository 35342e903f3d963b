"""Every command accepts what another navintent command writes.

Pairs (writer -> reader), each run through the CLI as a user would:

- ``make-data`` (``--dataset-name``, ``--train-frac 1``, ``--image-size``) -> ``check-data`` on the root and on the
  dataset folder, ``train --data_dir``, ``evaluate --data-dir``, ``optimize-z2 --dataset`` / ``--realism-data``;
- ``split`` (``--train-frac 1`` leaves an empty test list) -> ``check-data --split``, ``train --data_dir``;
- ``train`` -> its own ``config.yaml`` as ``train --config``; ``latest.pt`` as ``train --ckpt``, ``sample``,
  ``optimize-z2``, ``evaluate``, ``experiment``, ``export``; ``--export_packaged`` as ``sample`` / ``export`` /
  ``evaluate`` with ``--trust-checkpoint``;
- ``export`` -> ``OUT.pth`` + ``OUT.yaml`` as ``sample``, ``evaluate`` and ``train --ckpt ... --config``;
  ``--format inference`` (float16) as ``sample``, ``optimize-z2``, ``evaluate``, ``experiment``, ``export
  --format nomad`` and ``train --ckpt`` (initial weights; ``--resume`` refuses it by name).

``optimize-z2`` writes ``report.json``, ``trajectories.pt`` and ``z2_optimized.pt``: results for people and scripts,
which no navintent command reads.
"""

import shutil

import pytest
import yaml

from navintent.checkpoint import read_checkpoint
from navintent.cli import main
from navintent.config import TwoStageTrainingConfig

FAST = ["--preset", "tiny", "--batch_size", "2", "--max_steps", "2", "--no_progress", "--device", "cpu"]
TINY_IMAGES = "model:\n  image_size: [32, 32]\n"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """``make-data`` with a custom name, all episodes in train, small images; then a tiny ``train`` on it."""
    root = tmp_path_factory.mktemp("pairs")
    mp = pytest.MonkeyPatch()
    mp.setenv("NAVINTENT_CACHE_DIR", str(root / "cache"))
    data = root / "data"
    argv = ["make-data", "--out", str(data), "--episodes", "3", "--seed", "4", "--dataset-name", "corridor"]
    assert main([*argv, "--train-frac", "1", "--image-size", "48", "40", "--max-steps", "80"]) == 0
    config = root / "tiny.yaml"
    config.write_text(TINY_IMAGES)
    assert (
        main(["train", "--data_dir", str(data), "--config", str(config), *FAST, "--out", str(root / "run")])
        == 0
    )
    yield root, data, root / "run"
    mp.undo()


def test_make_data_output_is_read_by_check_data_and_train(made, capsys):
    root, data, run = made
    assert main(["check-data", str(data), "--no-decode"]) == 0  # the root: every dataset and split
    assert main(["check-data", str(data / "corridor"), "--no-decode"]) == 0  # one dataset folder
    out = capsys.readouterr()
    assert "splits/traj_data.pkl" not in out.out and "0 error(s)" in out.out
    raw = read_checkpoint(run / "latest.pt")
    assert [s["dataset"] for s in raw["training_scales"]] == ["corridor"]
    assert raw["train_state"]["step"] == 2


def test_train_writes_a_config_and_checkpoints_that_train_reads_back(made, capsys):
    root, data, run = made
    saved = TwoStageTrainingConfig.load_yaml(run / "config.yaml")
    assert saved == TwoStageTrainingConfig.from_dict(
        read_checkpoint(run / "latest.pt")["train_state"]["config"]
    )
    argv = [
        "train",
        "--data_dir",
        str(data),
        "--config",
        str(run / "config.yaml"),
        "--ckpt",
        str(run / "latest.pt"),
    ]
    assert main([*argv, "--max_steps", "1", "--no_progress", "--out", str(root / "again")]) == 0
    assert read_checkpoint(root / "again" / "latest.pt")["train_state"]["step"] == 1


def _read_by_every_inference_command(ckpt: str, data, out) -> None:
    """sample, optimize-z2, evaluate, experiment and export --format nomad all accept ``ckpt``."""
    assert main(["sample", "--ckpt", ckpt, "--out-dir", str(out / "s"), "--num-samples", "2"]) == 0
    opt = ["optimize-z2", "--ckpt", ckpt, "--steps", "1", "--draws", "1", "--eval-draws", "1", "--no-plots"]
    assert main([*opt, "--out-dir", str(out / "o"), "--dataset", str(data), "--split", "train"]) == 0
    ev = ["--ckpt", ckpt, "--scenes", "1", "--no-plots", "--no-progress", "--data-dir", str(data)]
    assert (
        main(["evaluate", *ev, "--methods", "nomad", "--max-episode-steps", "2", "--out-dir", str(out)]) == 0
    )
    assert main(["experiment", "diversity", *ev, "--samples", "2", "--out-dir", str(out / "x")]) == 0
    assert main(["export", "--ckpt", ckpt, "--format", "nomad", str(out / "n.pth"), "--latent", "none"]) == 0


def test_a_checkpoint_is_read_by_every_inference_command(made, tmp_path):
    _, data, run = made
    _read_by_every_inference_command(str(run / "latest.pt"), data, tmp_path)


def test_exported_files_are_read_by_sample_evaluate_and_train(made, tmp_path):
    root, data, run = made
    pth = tmp_path / "exported.pth"
    assert (
        main(["export", "--ckpt", str(run / "latest.pt"), "--format", "nomad", str(pth), "--latent", "none"])
        == 0
    )
    yaml_path = str(pth.with_suffix(".yaml"))
    assert main(["sample", "--ckpt", str(pth), "--config", yaml_path, "--out-dir", str(tmp_path / "s")]) == 0
    ev = ["evaluate", "--ckpt", str(pth), "--config", yaml_path, "--scenes", "1", "--methods", "nomad"]
    assert (
        main([*ev, "--max-episode-steps", "2", "--no-plots", "--no-progress", "--out-dir", str(tmp_path)])
        == 0
    )
    argv = ["train", "--data_dir", str(data), "--ckpt", str(pth), "--config", yaml_path, "--preset", "tiny"]
    assert (
        main([*argv, "--batch_size", "2", "--max_steps", "1", "--no_progress", "--out", str(tmp_path / "t")])
        == 0
    )


def test_inference_export_is_read_by_every_inference_command_and_train(made, tmp_path, capsys):
    root, data, run = made
    small = tmp_path / "navigator.pt"
    assert main(["export", "--ckpt", str(run / "latest.pt"), "--format", "inference", str(small)]) == 0
    ckpt = str(small)
    _read_by_every_inference_command(ckpt, data, tmp_path)
    argv = ["train", "--data_dir", str(data), "--config", str(root / "tiny.yaml"), "--ckpt", ckpt, *FAST]
    assert main([*argv, "--out", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    resume = ["train", "--data_dir", str(data), "--config", str(root / "tiny.yaml"), "--resume", ckpt, *FAST]
    assert main([*resume, "--out", str(tmp_path / "r")], report_errors=True) == 2
    assert "is an inference checkpoint" in capsys.readouterr().err


def test_packaged_export_is_read_with_trust(made, tmp_path):
    root, data, run = made
    packaged = tmp_path / "packaged.pt"
    argv = [
        "train",
        "--data_dir",
        str(data),
        "--config",
        str(root / "tiny.yaml"),
        *FAST,
        "--out",
        str(tmp_path),
    ]
    assert main([*argv, "--export_packaged", str(packaged)]) == 0
    trust = ["--ckpt", str(packaged), "--trust-checkpoint"]
    assert main(["sample", *trust, "--out-dir", str(tmp_path / "s"), "--num-samples", "2"]) == 0
    assert main(["export", *trust, "--format", "nomad", str(tmp_path / "n.pth"), "--latent", "none"]) == 0
    ev = ["evaluate", *trust, "--scenes", "1", "--methods", "nomad", "--max-episode-steps", "2", "--no-plots"]
    assert main([*ev, "--no-progress", "--out-dir", str(tmp_path / "e")]) == 0


def test_split_output_is_read_by_check_data_train_and_optimize(made, tmp_path):
    _, data, run = made
    root = tmp_path / "data"
    shutil.copytree(data / "corridor", root / "corridor")
    (root / "data_config.yaml").write_text((data / "data_config.yaml").read_text())
    argv = ["split", str(root / "corridor"), "--out", str(root / "splits" / "corridor"), "--train-frac", "1"]
    assert main(argv) == 0
    assert (root / "splits" / "corridor" / "test" / "traj_names.txt").read_text().strip() == ""
    split = ["--split", str(root / "splits" / "corridor" / "train")]
    assert main(["check-data", str(root / "corridor"), *split, "--no-decode"]) == 0
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_IMAGES)
    assert (
        main(["train", "--data_dir", str(root), "--config", str(config), *FAST, "--out", str(tmp_path / "r")])
        == 0
    )
    (scale,) = read_checkpoint(tmp_path / "r" / "latest.pt")["training_scales"]
    recorded = yaml.safe_load((data / "data_config.yaml").read_text())["corridor"]["metric_waypoint_spacing"]
    assert scale["dataset"] == "corridor" and scale["metres_per_unit"] == pytest.approx(recorded)
    # a split with a test list gives optimize-z2 its realism range; without one the flag is named
    opt = [
        "optimize-z2",
        "--ckpt",
        str(run / "latest.pt"),
        "--steps",
        "1",
        "--draws",
        "1",
        "--eval-draws",
        "1",
    ]
    opt += ["--no-plots", "--method", "plain", "--realism-data", str(root)]
    with pytest.raises(ValueError, match=f"--realism-data {root} has no 'test' split"):
        main([*opt, "--out-dir", str(tmp_path / "no_test")])
    assert main([*argv[:-2], "--train-frac", "0.67"]) == 0
    assert main([*opt, "--out-dir", str(tmp_path / "o")]) == 0
