"""Numerical guards: a NaN/inf loss or gradient stops training (naming step, batch, samples and which loss) before
the update reaches the weights, the EMA or a checkpoint, also mid-run; an optimisation whose objective or gradient
turns NaN stops and names the scenario.

Already covered (not repeated): a NaN diffusion loss at the very first step leaves weights/EMA untouched and writes
no checkpoint (tests/test_train.py::test_nan_loss_stops_with_a_diagnostic_before_ema_or_checkpoint).
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch.utils.data import Dataset

from navintent.checkpoint import read_checkpoint
from navintent.config import (
    IntentConfig,
    SchedulerConfig,
    TrainConfig,
    preset_model_config,
    preset_training_config,
)
from navintent.diffusion import build_sampler
from navintent.models.intent import TwoStageIntentModel
from navintent.objectives import Objective
from navintent.steering import (
    DiffusionAdapter,
    NonFiniteObjectiveError,
    Scenarios,
    Z2OptimConfig,
    optimize_adam,
)
from navintent.training import NonFiniteLossError, Trainer

TINY = preset_training_config("tiny")
TINY = TINY.replace(model=TINY.model.replace(image_size=(32, 32)))


class Samples(Dataset):
    """Deterministic finite dict samples with the tiny preset's shapes."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        mc = TINY.model
        w, h = mc.image_size
        actions = torch.cumsum(torch.rand(mc.len_traj_pred, 2, generator=g) + torch.tensor([0.5, -0.5]), 0)
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


def _snapshot(trainer: Trainer) -> tuple[dict, dict, int, bytes]:
    return (
        {k: v.clone() for k, v in trainer.model.state_dict().items()},
        {k: v.clone() for k, v in trainer.ema.state_dict().items()},
        trainer.ema.num_updates,
        (trainer.out_dir / "latest.pt").read_bytes(),
    )


def _assert_unchanged(trainer: Trainer, snap) -> None:
    model, ema, updates, latest = snap
    assert all(torch.equal(v, model[k]) for k, v in trainer.model.state_dict().items())
    assert all(torch.equal(v, ema[k]) for k, v in trainer.ema.state_dict().items())
    assert trainer.ema.num_updates == updates and trainer.step == 2
    assert (trainer.out_dir / "latest.pt").read_bytes() == latest
    assert sorted(p.name for p in trainer.out_dir.glob("step_*.pt")) == [
        "step_00000001.pt",
        "step_00000002.pt",
    ]


def test_mid_run_nan_kl_and_nan_gradient_stop_before_weights_ema_and_checkpoint(tmp_path, monkeypatch):
    train = TrainConfig.from_dict(
        {**TINY.train.to_dict(), "batch_size": 2, "checkpoint_every": 1, "max_steps": 2}
    )
    trainer = Trainer(TINY.replace(train=train), Samples(), None, tmp_path, progress=False)
    trainer.fit()  # two good steps, two checkpoints
    snap = _snapshot(trainer)
    trainer.tc = trainer.tc.replace(max_steps=4)

    real = TwoStageIntentModel.compute_loss

    def nan_kl(self, *args, **kwargs):
        losses = real(self, *args, **kwargs)
        return {**losses, "kl": losses["kl"] * float("nan")}

    monkeypatch.setattr(TwoStageIntentModel, "compute_loss", nan_kl)
    with pytest.raises(
        NonFiniteLossError,
        match=r"step 3 \(epoch 0, batch 2 of the epoch, .*sample indices \[\d, \d\]\): kl \(",
    ):
        trainer.fit()
    _assert_unchanged(trainer, snap)

    monkeypatch.setattr(TwoStageIntentModel, "compute_loss", real)
    param = trainer.model.noise_pred_net.final_conv[1].weight
    hook = param.register_hook(lambda grad: grad * float("inf"))
    try:
        with pytest.raises(
            NonFiniteLossError, match=r"non-finite gradient norm .* at step 3 .*finite losses"
        ):
            trainer.fit()
    finally:
        hook.remove()
    _assert_unchanged(trainer, snap)
    assert read_checkpoint(tmp_path / "latest.pt")["train_state"]["step"] == 2


# ------------------------------------------------------------------------------------------------ optimisation
B, T, H = 2, 8, 32


def _adapter(objective: str, agents: torch.Tensor) -> DiffusionAdapter:
    torch.manual_seed(0)
    model = TwoStageIntentModel(
        preset_model_config("tiny").replace(image_size=(H, H)), IntentConfig(z1_dim=4, enc2_hidden=16)
    ).eval()
    torch.nn.init.normal_(model.z_proj.weight, std=0.5)
    g = torch.Generator().manual_seed(1)
    scenarios = Scenarios(
        obs_img=torch.randn(B, 12, H, H, generator=g),
        goal_img=torch.randn(B, 3, H, H, generator=g),
        metric_scale=torch.tensor([0.1, 0.2]),
        agents=agents,
        agents_mask=torch.ones(B, 1),
        names=["hallway", "crossing"],
    )
    return DiffusionAdapter(
        model,
        scenarios,
        Objective(objective),
        sampler=build_sampler(SchedulerConfig(num_train_timesteps=5)),
        draws=2,
        generator=torch.Generator().manual_seed(2),
    )


def _agents() -> torch.Tensor:
    line = torch.stack([torch.linspace(0.2, 1.0, T), torch.linspace(0.6, -0.2, T)], -1)
    return line.view(1, T, 1, 2).repeat(B, 1, 1, 1)


def test_nan_objective_names_the_scenario_and_term():
    agents = _agents()
    agents[1, 3, 0, 0] = float("nan")  # the 'crossing' scenario's agent track is corrupt
    adapter = _adapter("softmin_dist:1.0@tau=0.3,z2_encoder:0.1", agents)
    with pytest.raises(NonFiniteObjectiveError) as err:
        optimize_adam(adapter, Z2OptimConfig(steps=3), progress=False)
    msg = str(err.value)
    assert msg.startswith("adam step 0: objective is NaN/inf for scenario 1 ('crossing'): 2 of 2 draws")
    assert "softmin_dist" in msg and "z2_encoder" not in msg and "hallway" not in msg


def _sqrt_of_zero_for_second_scenario(waypoints, ctx):
    """Finite value (0) everywhere, NaN gradient (d sqrt/dx at 0 times 0) for the second half of the rows."""
    zero = (waypoints * 0).sum((1, 2))
    half = waypoints.shape[0] // 2
    return torch.cat([zero[:half], torch.sqrt(zero[half:])])


def test_nan_gradient_names_the_scenario_before_the_update(monkeypatch):
    module = types.ModuleType("navintent_reliability_obj")
    module.fn = _sqrt_of_zero_for_second_scenario
    monkeypatch.setitem(sys.modules, module.__name__, module)
    adapter = _adapter("softmin_dist:1.0@tau=0.3,user:1@fn=navintent_reliability_obj:fn", _agents())
    with pytest.raises(
        NonFiniteObjectiveError,
        match=r"adam step 0: the gradient w\.r\.t\. z2 is NaN/inf for scenario\(s\) \[\(1, 'crossing'\)\]",
    ):
        optimize_adam(adapter, Z2OptimConfig(steps=3), progress=False)
