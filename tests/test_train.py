"""Training loop: exact resume (via the CLI), freezing, the NaN guard, DDP on two gloo processes, helpers."""

import argparse
import math
import os
import socket
import warnings
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset

import navintent
import navintent.training
from navintent.checkpoint import read_checkpoint
from navintent.cli import main
from navintent.commands.train import add_train_arguments
from navintent.config import TrainConfig, TwoStageTrainingConfig, preset_training_config
from navintent.data import write_traj_names
from navintent.data.synthetic import write_synthetic_dataset
from navintent.metric_scale import TrainingScale
from navintent.training import (
    GaussianFit,
    NonFiniteLossError,
    Trainer,
    apply_freeze,
    final_metrics,
    init_distributed,
    lr_factor,
    scale_changes,
    training_config,
)

# The tiny preset at the smallest image size the model accepts: the two EfficientNets dominate CPU time.
TINY = preset_training_config("tiny")
TINY = TINY.replace(model=TINY.model.replace(image_size=(32, 32)))


class MemorySet(Dataset):
    """Deterministic dict samples (tiny preset shapes); ``nan_actions`` poisons every sample's actions."""

    def __init__(self, n: int, nan_actions: bool = False) -> None:
        self.n, self.nan_actions = n, nan_actions

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        mc = TINY.model
        w, h = mc.image_size
        steps = torch.rand(mc.len_traj_pred, 2, generator=g) + torch.tensor([0.5, -0.5])
        actions = torch.cumsum(steps, 0)
        if self.nan_actions:
            actions[3, 0] = float("nan")
        return {
            "obs_img": torch.randn(3 * (mc.context_size + 1), h, w, generator=g),
            "goal_img": torch.randn(3, h, w, generator=g),
            "actions": actions,
            "distance": torch.tensor(i % 10),
            "action_mask": torch.tensor(1.0),
            "ref_traj": torch.cat([actions, actions + actions[-1]]),
            "ref_mask": torch.tensor(1.0),
            "metric_scale": torch.tensor(0.25),
        }


def tiny_config(**train_changes) -> TwoStageTrainingConfig:
    train = TrainConfig.from_dict({**TINY.train.to_dict(), "batch_size": 2, **train_changes})
    return TINY.replace(train=train)


# --------------------------------------------------------------------------------------------------
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, monkeypatch):
    """Resume from the step-2 checkpoint to step 4 (across an epoch end with evaluation) == one run to step 4."""
    monkeypatch.setenv("NAVINTENT_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    write_synthetic_dataset(
        data / "synth", num_trajectories=3, length=14, split_folder=data / "splits" / "synth" / "train"
    )
    write_traj_names(
        data / "splits" / "synth" / "train", ["traj_000", "traj_001"]
    )  # 6 samples: 3 steps/epoch
    write_traj_names(data / "splits" / "synth" / "test", ["traj_002"])
    (data / "data_config.yaml").write_text("synth:\n  metric_waypoint_spacing: 0.25\n")
    config = tmp_path / "train.yaml"
    config.write_text(
        "model:\n  image_size: [32, 32]\ntrain:\n  keep_checkpoints: 3\n  checkpoint_every: 2\n  epochs: 2\n"
    )
    common = [
        "train",
        "--data_dir",
        str(data),
        "--preset",
        "tiny",
        "--config",
        str(config),
        "--batch_size",
        "2",
    ]
    common += ["--device", "cpu", "--no_progress", "--max_steps", "4"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*common, "--out", str(a)]) == 0
    assert sorted(p.name for p in a.glob("step_*.pt")) == [f"step_0000000{i}.pt" for i in (2, 3, 4)]
    assert main([*common, "--out", str(b), "--resume", str(a / "step_00000002.pt")]) == 0

    ca, cb = read_checkpoint(a / "latest.pt"), read_checkpoint(b / "latest.pt")
    assert ca["train_state"]["step"] == cb["train_state"]["step"] == 4
    for key in ("model", "ema"):
        assert ca[key].keys() == cb[key].keys()
        for name, value in ca[key].items():
            assert torch.equal(value, cb[key][name]), f"{key}: {name}"
    opt_a, opt_b = ca["train_state"]["optimizer"]["state"], cb["train_state"]["optimizer"]["state"]
    for pid, state in opt_a.items():
        for name, value in state.items():
            assert torch.equal(value, opt_b[pid][name]), f"optimizer {pid} {name}"
    assert torch.equal(ca["z2_stats"]["cov"], cb["z2_stats"]["cov"])
    assert list((a / "viz").glob("eval_step3.png")) and (a / "tb").is_dir()
    rows = (b / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:] if ",train/loss," in r] == ["3", "4"]
    assert any(",eval/ade_ref_gm," in r for r in rows)

    with pytest.raises(ValueError, match=r"train\.lr: checkpoint 0\.001, now 0\.5"):
        main([*common, "--out", str(b), "--resume", "--lr", "0.5"])


def test_freeze_fixes_exactly_the_named_groups(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(
        tiny_config(freeze=("vision",), max_steps=1), MemorySet(4), None, tmp_path, progress=False
    )
    model = trainer.model
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters() if n.startswith("vision_encoder.")}
    assert {id(p) for p in trainer.params} == {id(p) for n, p in model.named_parameters() if n not in frozen}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.fit()
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    assert not torch.equal(
        before["noise_pred_net.final_conv.1.weight"], after["noise_pred_net.final_conv.1.weight"]
    )
    assert not model.vision_encoder.training and model.noise_pred_net.training

    names = apply_freeze(model, ["denoiser"])
    assert set(names) == {
        n for n, _ in model.named_parameters() if n.startswith(("noise_pred_net.", "dist_pred_net."))
    }
    with pytest.raises(
        ValueError, match=r"freeze entries must be among \['vision', 'denoiser'\], got \['unet'\]"
    ):
        TrainConfig(freeze=("unet",))


def test_vision_lr_scale_gives_the_vision_encoder_its_own_learning_rate(tmp_path):
    trainer = Trainer(
        tiny_config(vision_lr_scale=0.05, lr=1e-3), MemorySet(4), None, tmp_path, progress=False
    )
    vision = {id(p) for n, p in trainer.model.named_parameters() if n.startswith("vision_encoder.")}
    groups = trainer.optimizer.param_groups
    (vision_group,) = [g for g in groups if {id(p) for p in g["params"]} == vision]
    assert vision_group["initial_lr"] == pytest.approx(5e-5)
    assert all(g["initial_lr"] == pytest.approx(1e-3) for g in groups if g is not vision_group)
    default = Trainer(tiny_config(lr=1e-3), MemorySet(4), None, tmp_path / "d", progress=False)
    assert len(default.optimizer.param_groups) == len(groups) - 1  # old checkpoints' optimiser layout


def test_nan_loss_stops_with_a_diagnostic_before_ema_or_checkpoint(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(
        tiny_config(checkpoint_every=1), MemorySet(4, nan_actions=True), None, tmp_path, progress=False
    )
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(
        NonFiniteLossError, match=r"step 1 \(epoch 0, batch 0 .*sample indices \[\d, \d\]\): loss, diffusion"
    ):
        trainer.fit()
    assert trainer.ema.num_updates == 0 and trainer.step == 0
    assert not list(tmp_path.glob("*.pt"))
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())


# --------------------------------------------------------------------------------------------------
def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1"}
    )
    os.environ["MASTER_PORT"] = str(port)
    info, device = init_distributed("cpu")
    try:
        trainer = Trainer(
            tiny_config(max_steps=1), MemorySet(8), None, Path(out) / "run", dist_info=info, progress=False
        )
        trainer.fit()
        order = trainer.sampler.epoch_indices()
        torch.save({"state": trainer.model.state_dict(), "order": order}, Path(out) / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_two_gloo_processes_hold_identical_weights(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert not set(r0["order"]) & set(r1["order"])  # each rank read its own shard
    init = Trainer(
        tiny_config(max_steps=1), MemorySet(8), None, tmp_path / "x", progress=False
    ).model.state_dict()
    changed = 0
    for name, value in r0["state"].items():
        assert torch.equal(value, r1["state"][name]), name
        changed += not torch.equal(value, init[name])
    assert changed > 0
    assert sorted(p.name for p in (tmp_path / "run").glob("*.pt")) == ["latest.pt", "step_00000001.pt"]


# --------------------------------------------------------------------------------------------------
def test_lr_schedule_warms_up_then_follows_a_cosine():
    values = [lr_factor(s, 4, 20, "cosine") for s in range(21)]
    assert values[:4] == [0.25, 0.5, 0.75, 1.0]
    assert values[4] == 1.0 and values[20] == 0.0
    assert math.isclose(values[12], 0.5 * (1 + math.cos(math.pi * 8 / 16)))
    assert lr_factor(10, 0, 20, "constant") == 1.0


def test_schedule_steps_anneal_a_step_budgeted_run_to_zero(tmp_path):
    """epochs x steps_per_epoch = 1000 x 2 updates, but schedule_steps 6: the LR follows the cosine of a 6-update
    run (warm-up 2) and is 0 at its last update; without it the same run keeps the full LR."""
    config = tiny_config(epochs=1000, max_steps=6, schedule_steps=6, warmup_steps=2, lr=1e-3)
    trainer = Trainer(config, MemorySet(4), None, tmp_path / "a", progress=False)
    lrs = []
    for _ in range(6):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.lr_scheduler.step()
    assert lrs == pytest.approx([1e-3 * lr_factor(s, 2, 6, "cosine") for s in range(6)])
    assert trainer.optimizer.param_groups[0]["lr"] == 0.0
    flat = Trainer(
        tiny_config(epochs=1000, max_steps=6, warmup_steps=2, lr=1e-3),
        MemorySet(4),
        None,
        tmp_path / "b",
        progress=False,
    )
    for _ in range(6):
        flat.lr_scheduler.step()
    assert flat.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3, rel=1e-4)
    with pytest.raises(ValueError, match="schedule_steps must be"):
        TrainConfig(schedule_steps=-1)


def test_logged_lr_is_the_lr_of_the_update_and_a_short_schedule_is_named(tmp_path, caplog):
    config = tiny_config(epochs=1000, max_steps=6, schedule_steps=4, warmup_steps=2, lr=1e-3)
    with caplog.at_level("WARNING", logger="navintent.training.trainer"):
        trainer = Trainer(config, MemorySet(4), None, tmp_path, progress=False)
    assert "train.schedule_steps=4 is below the run's 6 updates: updates 5-6 run at LR 0" in caplog.text
    batch = torch.utils.data.default_collate([MemorySet(4)[i] for i in range(2)])
    first = trainer.train_step(batch, 0, 0, [0, 1])
    second = trainer.train_step(batch, 0, 1, [0, 1])
    assert (first["train/lr"], second["train/lr"]) == pytest.approx((0.5e-3, 1e-3))  # warm-up: 1/2, 2/2


def test_random_shift_reaches_the_loss_as_shifted_images(tmp_path):
    """train.random_shift 2: the loss sees every image as a crop of its edge-padded self; 0 passes them through."""
    batch = torch.utils.data.default_collate([MemorySet(4)[i] for i in range(2)])
    for shift in (0, 2):
        trainer = Trainer(
            tiny_config(random_shift=shift), MemorySet(4), None, tmp_path / str(shift), progress=False
        )
        seen = {}
        loss_module = trainer.loss_module

        def spy(b, *args, _inner=loss_module, _seen=seen, **kwargs):
            _seen.update(b)
            return _inner(b, *args, **kwargs)

        trainer.loss_module = spy
        trainer.train_step(batch, 0, 0, [0, 1])
        for key in ("obs_img", "goal_img"):
            h, w = batch[key].shape[-2:]
            padded = torch.nn.functional.pad(batch[key], (shift,) * 4, mode="replicate")
            for b in range(2):
                crops = [
                    (dy, dx)
                    for dy in range(2 * shift + 1)
                    for dx in range(2 * shift + 1)
                    if torch.equal(seen[key][b], padded[b, :, dy : dy + h, dx : dx + w])
                ]
                assert crops, f"{key}[{b}] is no shift of the input"
        if shift == 0:
            assert seen["obs_img"] is batch["obs_img"]
    with pytest.raises(ValueError, match="random_shift must be"):
        TrainConfig(random_shift=-1)
    with pytest.raises(
        ValueError,
        match=r"random_shift must be below a quarter of model.image_size \[32, 32\] \(< 8 px\), got 8",
    ):
        tiny_config(random_shift=8)


def test_gaussian_fit_matches_the_sample_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(6, 50, 3, generator=g) @ torch.tensor(
        [[1.0, 0.5, 0.0], [0.0, 1.0, 0.2], [0.0, 0.0, 0.3]]
    )
    fit = GaussianFit(3)
    for chunk in data:
        fit.update(chunk)
    flat = data.reshape(-1, 3).double()
    stats = fit.stats()
    torch.testing.assert_close(stats["mean"].double(), flat.mean(0), rtol=0, atol=1e-6)
    torch.testing.assert_close(stats["cov"].double(), torch.cov(flat.T, correction=0), rtol=0, atol=1e-5)
    assert stats["count"] == 300


def test_config_accepts_nomad_yaml_keys_and_names_unknown_ones(tmp_path):
    flat = tmp_path / "nomad.yaml"
    flat.write_text(
        "project_name: nomad\nlr: 1e-4\nbatch_size: 8\nalpha: 1e-4\ngoal_mask_prob: 0.3\nnum_diffusion_iters: 7\n"
        "encoding_size: 64\ndistance:\n  min_dist_cat: 0\n  max_dist_cat: 15\naction:\n  min_dist_cat: 2\n"
        "  max_dist_cat: 12\nz1_dim: 6\nref_dropout: 0.2\ndatasets: {}\n"
    )
    cfg = TwoStageTrainingConfig.load_yaml(flat)
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.goal_mask_prob) == (1e-4, 8, 0.3)
    assert (cfg.train.max_dist_cat, cfg.train.min_action_distance, cfg.train.max_action_distance) == (
        15,
        2,
        12,
    )
    assert cfg.scheduler.num_train_timesteps == 7 and cfg.model.encoding_size == 64
    assert (cfg.intent.z1_dim, cfg.intent.ref_dropout) == (6, 0.2)
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 1e-4\nlearning_rate: 3\nbatchsize: 2\n")
    with pytest.raises(
        ValueError, match=r"unknown config keys in .*bad\.yaml: \['batchsize', 'learning_rate'\]"
    ):
        TwoStageTrainingConfig.load_yaml(bad)
    sectioned = tmp_path / "s.yaml"
    sectioned.write_text("intent:\n  beta: 0.01\ntrain:\n  epochs: 3\n  lrr: 1\n")
    with pytest.raises(ValueError, match=r"unknown TrainConfig keys .*\['lrr'\]"):
        TwoStageTrainingConfig.load_yaml(sectioned)
    round_trip = tmp_path / "round.yaml"
    cfg.save_yaml(round_trip)
    assert TwoStageTrainingConfig.load_yaml(round_trip) == cfg


def test_ckpt_initialises_from_a_nomad_state_dict_and_rejects_a_mismatch(tmp_path):
    from navintent.models.nomad import NoMaDPolicy

    torch.manual_seed(5)
    nomad = NoMaDPolicy(TINY.model, TINY.scheduler)
    state = {f"module.{k}": v for k, v in nomad.state_dict().items() if not k.startswith("z_proj.")}
    torch.save(state, tmp_path / "nomad.pth")  # DataParallel-style keys, no z_proj: as the released file
    trainer = Trainer(tiny_config(), MemorySet(4), None, tmp_path / "run", init_ckpt=tmp_path / "nomad.pth")
    own = trainer.model.state_dict()
    for name, value in nomad.state_dict().items():
        if not name.startswith("z_proj."):
            assert torch.equal(own[name], value), name
    fresh = Trainer(tiny_config(), MemorySet(4), None, tmp_path / "fresh").model.state_dict()
    for name in own:
        if name.startswith(("z_proj.", "encoder1.", "encoder2.")):
            assert torch.equal(own[name], fresh[name]), name
    del state["module.dist_pred_net.network.0.bias"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"missing keys \(1\): \[dist_pred_net\.network\.0\.bias\]"):
        Trainer(tiny_config(), MemorySet(4), None, tmp_path / "run2", init_ckpt=tmp_path / "bad.pth")
    # a native checkpoint of other model sizes: the error names the sizes its own config differs in
    other = tiny_config().replace(model=TINY.model.replace(encoding_size=2 * TINY.model.encoding_size))
    Trainer(other, MemorySet(4), None, tmp_path / "small", progress=False).save(0, 0)
    with pytest.raises(
        ValueError,
        match=r"carries its model config, which differs from this run's in model.encoding_size: checkpoint 64, now 32",
    ):
        Trainer(
            tiny_config(), MemorySet(4), None, tmp_path / "run3", init_ckpt=tmp_path / "small" / "latest.pt"
        )


def test_ckpt_whose_config_differs_but_whose_weights_fit_is_named(tmp_path, caplog):
    """A native checkpoint of another image size loads (the trunks do not depend on it), and the run says which
    of the checkpoint's model settings it replaces instead of changing them silently."""
    size = list(TINY.model.image_size)
    other = tiny_config().replace(model=TINY.model.replace(image_size=[2 * size[0], 2 * size[1]]))
    Trainer(other, MemorySet(4), None, tmp_path / "big", progress=False).save(0, 0)
    with caplog.at_level("WARNING", logger="navintent.training.trainer"):
        trainer = Trainer(
            tiny_config(), MemorySet(4), None, tmp_path / "run", init_ckpt=tmp_path / "big" / "latest.pt"
        )
    stored = read_checkpoint(tmp_path / "big" / "latest.pt")
    stored = stored["ema"] if stored.get("ema") is not None else stored["model"]
    own = trainer.model.state_dict()
    assert all(torch.equal(own[name], value) for name, value in stored.items())
    assert [r.getMessage() for r in caplog.records] == [
        f"--ckpt {tmp_path / 'big' / 'latest.pt'}: its weights fit this run's model, whose config differs in "
        f"model.image_size: checkpoint {[2 * size[0], 2 * size[1]]}, now {size}; training uses this run's value "
        "(give the run the checkpoint's model section to keep it)"
    ]


def test_ckpt_trained_at_another_metres_per_unit_is_named(tmp_path, caplog):
    """Initial weights trained where a normalised unit meant 0.15 m, fine-tuned on data where it means 0.3 m: the
    run says so for that dataset (names and both values), not for a dataset within 1% of the checkpoint's unit,
    and says nothing for a bare state dict (nomad.pth records no scales)."""
    sim = TrainingScale("navintent_sim", 0.0375, 4)
    Trainer(tiny_config(), MemorySet(4), None, tmp_path / "a", progress=False, scales=[sim]).save(0, 0)
    go2 = TrainingScale("go2", 0.3, 1)
    near = TrainingScale("near", 0.0376, 4)
    ckpt = tmp_path / "a" / "latest.pt"
    with caplog.at_level("WARNING", logger="navintent.training.trainer"):
        Trainer(tiny_config(), MemorySet(4), None, tmp_path / "b", init_ckpt=ckpt, scales=[go2, near])
    assert [r.getMessage() for r in caplog.records] == [
        f"--ckpt {ckpt}: a normalised unit means another distance in this run's data, go2: 0.3 m per unit (the "
        "checkpoint's: 0.15 m (navintent_sim)): the initial weights' plans start out scaled by the ratio until "
        "training relearns it"
    ]
    assert (
        scale_changes([sim], [near]) == []
        and scale_changes([], [go2]) == []
        and scale_changes([sim], []) == []
    )
    torch.save(
        Trainer(tiny_config(), MemorySet(4), None, tmp_path / "c").model.state_dict(), tmp_path / "bare.pth"
    )
    caplog.clear()
    with caplog.at_level("WARNING", logger="navintent.training.trainer"):
        Trainer(
            tiny_config(), MemorySet(4), None, tmp_path / "d", init_ckpt=tmp_path / "bare.pth", scales=[go2]
        )
    assert caplog.records == []


def test_train_flags_take_both_spellings():
    """NoMaD's underscore spelling and the hyphenated one the other commands use parse to the same values."""
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    under = parser.parse_args(["--data_dir", "D", "--batch_size", "4", "--max_steps", "7", "--no_progress"])
    hyphen = parser.parse_args(["--data-dir", "D", "--batch-size", "4", "--max-steps", "7", "--no-progress"])
    assert vars(under) == vars(hyphen)
    assert (hyphen.data_dir, hyphen.batch_size, hyphen.max_steps, hyphen.no_progress) == ("D", 4, 7, True)


# --------------------------------------------------------------------------------------------------
def test_the_typed_train_call_returns_what_the_run_wrote(tmp_path, monkeypatch):
    """``navintent.train(...)``: the result names the run's newest checkpoint and holds exactly the metrics the
    run's metrics.csv ends with, also after a resume; the old module forwards with a deprecation warning."""
    monkeypatch.setenv("NAVINTENT_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    write_synthetic_dataset(
        data / "synth", num_trajectories=3, length=14, split_folder=data / "splits" / "synth" / "train"
    )
    write_traj_names(data / "splits" / "synth" / "train", ["traj_000", "traj_001"])
    write_traj_names(data / "splits" / "synth" / "test", ["traj_002"])
    (data / "data_config.yaml").write_text("synth:\n  metric_waypoint_spacing: 0.25\n")
    config_file = tmp_path / "train.yaml"
    config_file.write_text("model:\n  image_size: [32, 32]\n")
    notes: list[str] = []
    overrides = {"batch_size": 2, "max_steps": 2, "eval_every": 2, "checkpoint_every": 1}
    config = training_config("tiny", config_file, train=overrides, notes=notes)
    assert any(line.startswith(f"note: {config_file}: the config's model sizes override") for line in notes)

    run = tmp_path / "run"
    result = navintent.train(config, run, data_dir=data, device="cpu", progress=False, notes=notes)
    assert (result.out_dir, result.step, result.epoch, result.rank) == (run, 2, 0, 0)
    assert result.checkpoint == run / "latest.pt" and result.checkpoint.is_file()
    assert result.metrics == final_metrics(run / "metrics.csv")
    assert "train/loss" in result.metrics and "eval/ade_ref_gm" in result.metrics
    assert result.describe() == f"done: 2 steps; newest checkpoint {run / 'latest.pt'}"
    assert result.seconds > 0 and result.packaged is None

    # no evaluation at step 3 (an epoch end): the eval/* values are the ones read back at the resume
    more = config.replace(train=config.train.replace(max_steps=3, eval_freq=100))
    resumed = navintent.training.train(more, run, data_dir=data, device="cpu", progress=False, resume=True)
    assert resumed.step == 3 and resumed.metrics == final_metrics(run / "metrics.csv")
    assert resumed.metrics["eval/ade_ref_gm"] == result.metrics["eval/ade_ref_gm"]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from navintent.train import evaluate_model
    assert evaluate_model is navintent.training.evaluate_model
    assert [str(w.message).split(";")[0] for w in caught] == [
        "navintent.train.evaluate_model moved to navintent.training.evaluate_model"
    ]
    assert callable(navintent.train)  # the package attribute is now the (callable) old module
