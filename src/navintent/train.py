"""``navintent train``: end-to-end training of the two-stage intent model (one CPU, one GPU, or DDP).

One code path for 1 and N processes: ``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and the run joins a
process group (NCCL on CUDA, gloo on CPU); a plain ``navintent train`` is the world of one. Every process reads
its shard through a :class:`ResumableDistributedSampler`; rank 0 alone writes checkpoints, logs and pictures.

Exactness of ``--resume``: a checkpoint holds the model, EMA, optimiser, LR schedule, step, the position within
the epoch and the RNG states (torch, numpy, python, CUDA) of every rank. The epoch's order comes from
``(seed, epoch)`` alone, the goal draw of :class:`navintent.data.NavDataset` from ``(seed, epoch, index)`` (its
``goal_seed``), the per-step draws (goal mask, dropouts, z1 noise, diffusion noise, timesteps) from the restored
global RNG, and evaluation runs inside a saved-and-restored RNG state. So a run stopped after any checkpoint and
resumed ends with the same parameters, bit for bit on CPU, as an uninterrupted one with the same seed, for any
``num_workers`` (same world size; CUDA kernels may add their own non-determinism).

Numerical guard: a non-finite loss term or gradient norm raises :class:`NonFiniteLossError` naming the step,
epoch, batch, the sample indices and which loss, before the optimiser, the EMA or any checkpoint sees it.

Files in ``--out DIR``: ``latest.pt`` (always the newest checkpoint; a hard link to the newest ``step_*.pt``),
the newest ``keep_checkpoints`` ``step_XXXXXXXX.pt``, ``config.yaml`` (the full resolved config),
``metrics.csv`` (step, epoch, name, value), ``tb/`` (TensorBoard) and ``viz/eval_stepN.png``.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from navintent.actions import normalized_deltas_to_waypoints
from navintent.checkpoint import (
    export_packaged,
    import_nomad_state_dict,
    read_checkpoint,
    save_checkpoint,
    strip_data_parallel_prefix,
)
from navintent.config import ModelConfig, TrainConfig, TwoStageTrainingConfig, preset_training_config
from navintent.data.sources import (
    DatasetSource,
    build_split,
    discover_datasets,
    nav_datasets,
    set_goal_seed,
    sources_from_specs,
    training_scales,
)
from navintent.data.spacing import spacing_report
from navintent.ema import EMA
from navintent.evaluation.goal_metrics import goal_metrics
from navintent.metric_scale import TrainingScale
from navintent.models.intent import TwoStageIntentModel
from navintent.models.nomad import build_noise_scheduler

LATEST = "latest.pt"
# Train keys that may differ between a checkpoint and a resumed run (they do not change the computation).
RESUMABLE_TRAIN_KEYS = frozenset(
    {
        "max_steps",
        "num_workers",
        "checkpoint_every",
        "keep_checkpoints",
        "print_log_freq",
        "eval_freq",
        "eval_every",
        "eval_fraction",
        "eval_max_batches",
        "eval_num_samples",
        "num_images_log",
    }
)
FREEZE_PREFIXES = {"vision": ("vision_encoder.",), "denoiser": ("noise_pred_net.", "dist_pred_net.")}
EVAL_MODES = ("ref", "prior", "none")


class NonFiniteLossError(RuntimeError):
    """A loss term or the gradient norm became NaN/inf; raised before the update reaches weights, EMA or disk."""


# --------------------------------------------------------------------------------------------------
# distributed setup
# --------------------------------------------------------------------------------------------------
@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device_arg: str) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group when ``WORLD_SIZE > 1``; pick the device (``auto`` | ``cpu`` | ``cuda``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world_size=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if device_arg not in ("auto", "cpu") and not device_arg.startswith("cuda"):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {device_arg!r}")
    if device_arg.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"--device {device_arg} requested but no CUDA GPU is available (torch.cuda.is_available() is False)"
        )
    use_cuda = device_arg.startswith("cuda") or (device_arg == "auto" and torch.cuda.is_available())
    if use_cuda:
        index = info.local_rank if device_arg in ("auto", "cuda") else int(device_arg.split(":")[1])
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if info.active and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return info, device


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (order from ``seed + epoch``) that can start part-way into an epoch.

    ``start_index`` skips that many of this rank's indices (``batches_done * batch_size``) for the current epoch;
    ``epoch_indices()`` is this rank's full order for the epoch (used to name samples in diagnostics).
    """

    def __init__(
        self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int, shuffle: bool = True
    ) -> None:
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True
        )
        self.start_index = 0

    def epoch_indices(self) -> list[int]:
        return list(super().__iter__())

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start_index :])

    def __len__(self) -> int:
        return self.num_samples - self.start_index


# --------------------------------------------------------------------------------------------------
# RNG state (weights-only serialisable)
# --------------------------------------------------------------------------------------------------
def capture_rng(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "python_version": int(py_version),
        "python_state": list(py_state),
        "python_gauss": py_gauss,
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            state["numpy_pos"],
            state["numpy_has_gauss"],
            state["numpy_gauss"],
        )
    )
    random.setstate((state["python_version"], tuple(state["python_state"]), state["python_gauss"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# --------------------------------------------------------------------------------------------------
# z2 statistics (Gaussian fit, for the optimiser's realism term)
# --------------------------------------------------------------------------------------------------
class GaussianFit:
    """Running first/second moments of z2 ``[N, z]``: plain averages for the first 100 batches, then an
    exponential average with decay 0.99 per batch (so the fit follows the recent weights), in float64."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.second = torch.zeros(dim, dim, dtype=torch.float64)
        self.batches = 0
        self.count = 0

    def update(self, z: Tensor) -> None:
        if z.shape[0] == 0:
            return
        z = z.detach().to("cpu", torch.float64)
        self.batches += 1
        self.count += z.shape[0]
        w = max(1.0 / self.batches, 0.01)
        self.mean.mul_(1 - w).add_(z.mean(0), alpha=w)
        self.second.mul_(1 - w).add_(z.T @ z / z.shape[0], alpha=w)

    def stats(self) -> dict[str, Any]:
        cov = self.second - torch.outer(self.mean, self.mean)
        cov = 0.5 * (cov + cov.T)
        return {"mean": self.mean.float(), "cov": cov.float(), "count": self.count}

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean, "second": self.second, "batches": self.batches, "count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        self.mean, self.second = state["mean"].clone(), state["second"].clone()
        self.batches, self.count = int(state["batches"]), int(state["count"])


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------
class _LossModule(nn.Module):
    """Routes :meth:`TwoStageIntentModel.compute_loss` through ``forward`` so DDP syncs its gradients."""

    def __init__(self, model: TwoStageIntentModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Tensor], noise_scheduler: Any, **kwargs: Any) -> dict[str, Tensor]:
        return self.model.compute_loss(batch, noise_scheduler, **kwargs)


def apply_freeze(model: nn.Module, groups: Sequence[str]) -> list[str]:
    """Set ``requires_grad=False`` on the named groups' parameters; returns the frozen parameter names."""
    prefixes = tuple(p for g in groups for p in FREEZE_PREFIXES[g])
    frozen = []
    for name, param in model.named_parameters():
        if prefixes and name.startswith(prefixes):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def set_train_mode(model: nn.Module, groups: Sequence[str]) -> None:
    """``model.train()``, with frozen groups in eval mode (deterministic features from a fixed backbone)."""
    model.train()
    for g in groups:
        for prefix in FREEZE_PREFIXES[g]:
            getattr(model, prefix.rstrip(".")).eval()


def lr_factor(step: int, warmup_steps: int, total_steps: int, kind: str) -> float:
    """LR multiplier for the ``step``-th update (0-based): linear warm-up, then cosine to 0 (or constant)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: checkpoint {va!r}, now {vb!r}")
    return out


# --------------------------------------------------------------------------------------------------
# the trainer
# --------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    step: int
    epoch: int
    last_losses: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Training loop over in-memory datasets (the CLI builds them from ``--data_dir``).

    ``train_set``/``test_set``: datasets of dict samples as :class:`navintent.data.NavDataset` serves them.
    ``init_ckpt``: a nomad.pth state dict or a native checkpoint to initialise from (ignored on resume).
    ``resume``: a checkpoint path to continue from exactly. ``out_dir``: where rank 0 writes.
    ``scales``: what each training dataset's unit means (:func:`navintent.data.sources.training_scales`); every
    checkpoint records them as ``training_scales`` so inference converts to metres as training did.
    """

    def __init__(
        self,
        config: TwoStageTrainingConfig,
        train_set: Dataset,
        test_set: Dataset | None,
        out_dir: str | Path,
        *,
        device: torch.device | None = None,
        dist_info: DistInfo | None = None,
        init_ckpt: str | Path | None = None,
        resume: str | Path | None = None,
        progress: bool = True,
        scales: Sequence[TrainingScale] = (),
    ) -> None:
        self.config = config
        self.scales = tuple(scales)
        self.tc: TrainConfig = config.train
        self.device = device or torch.device("cpu")
        self.dist = dist_info or DistInfo()
        self.out_dir = Path(out_dir)
        self.progress = progress and self.dist.is_main
        self.train_set, self.test_set = train_set, test_set

        resume_ckpt = read_checkpoint(resume) if resume is not None else None
        if resume_ckpt is not None:
            self._check_resume_config(resume_ckpt, Path(resume))

        # Model init is identical on every rank (same seed); per-rank streams start after it.
        seed_everything(self.tc.seed)
        self.model = TwoStageIntentModel(config.model, config.intent, config.scheduler)
        if init_ckpt is not None and resume_ckpt is None:
            self._load_init(Path(init_ckpt))
        self.frozen = apply_freeze(self.model, self.tc.freeze)
        self.model.to(self.device)
        self.noise_scheduler = build_noise_scheduler(config.scheduler)

        self.sampler = ResumableDistributedSampler(
            train_set, num_replicas=self.dist.world_size, rank=self.dist.rank, seed=self.tc.seed
        )
        self.steps_per_epoch = self.sampler.num_samples // self.tc.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"training split has {len(train_set)} samples: fewer than batch_size={self.tc.batch_size} per "
                f"process x {self.dist.world_size} process(es); lower --batch_size or add data"
            )
        self.total_steps = self.tc.epochs * self.steps_per_epoch
        if self.tc.warmup_steps:
            self.warmup_steps = self.tc.warmup_steps
        else:
            self.warmup_steps = int(self.tc.warmup_epochs * self.steps_per_epoch) if self.tc.warmup else 0
        if not self.tc.warmup:
            self.warmup_steps = 0

        loss_module: nn.Module = _LossModule(self.model)
        if self.dist.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            loss_module = DistributedDataParallel(loss_module, device_ids=ids, find_unused_parameters=True)
        self.loss_module = loss_module
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        new = tuple(self.model.NEW_MODULE_PREFIXES)
        # the vision encoder gets its own group only when its LR differs (old checkpoints resume unchanged)
        vision = FREEZE_PREFIXES["vision"] if self.tc.vision_lr_scale != 1.0 else ()
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        groups = [
            {
                "params": [
                    p for n, p in trainable if not n.startswith(new) and not (vision and n.startswith(vision))
                ]
            },
            {
                "params": [p for n, p in trainable if vision and n.startswith(vision)],
                "lr": self.tc.lr * self.tc.vision_lr_scale,
            },
            {
                "params": [p for n, p in trainable if n.startswith(new)],
                "lr": self.tc.lr * self.tc.intent_lr_scale,
            },
        ]
        # foreach: one fused update over all tensors (the per-tensor loop dominates a CPU step otherwise).
        self.optimizer = torch.optim.AdamW(
            [g for g in groups if g["params"]], lr=self.tc.lr, weight_decay=self.tc.weight_decay, foreach=True
        )
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(s, self.warmup_steps, self.total_steps, self.tc.scheduler),
        )
        self.ema = EMA(self.model, power=self.tc.ema_power, max_decay=self.tc.ema_max_decay)
        self.z2_fit = GaussianFit(config.model.z_dim)
        self.step = 0
        seed_everything(self.tc.seed * 1000 + self.dist.rank + 1)
        if resume_ckpt is not None:
            self._load_resume(resume_ckpt, Path(resume))

        self._eval_model: TwoStageIntentModel | None = None
        self._writer = None
        self._csv_path = self.out_dir / "metrics.csv"
        self.last_losses: dict[str, float] = {}
        self.last_eval: dict[str, float] = {}

    # ----------------------------------------------------------------------------------- init / resume
    def _load_init(self, path: Path) -> None:
        """nomad.pth (bare state dict) or native checkpoint (its EMA weights if stored) -> strict import that
        keeps modules the file lacks (``NEW_MODULE_PREFIXES``) at their initialisation."""
        try:
            ckpt = read_checkpoint(path)
        except ValueError as err:
            if "not a native navintent checkpoint" not in str(err):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
                raise ValueError(
                    f"--ckpt {path} is neither a native checkpoint nor a state dict of tensors"
                ) from err
            import_nomad_state_dict(self.model, strip_data_parallel_prefix(state), source=str(path))
            return
        state = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
        import_nomad_state_dict(self.model, state, source=f"{path} (native)")

    def _check_resume_config(self, ckpt: dict[str, Any], path: Path) -> None:
        ts = ckpt.get("train_state")
        if not isinstance(ts, dict):
            raise ValueError(
                f"{path} has no 'train_state': it is not a training checkpoint and cannot be resumed"
            )
        saved = dict(ts["config"])
        now = self.config.to_dict()
        for key in RESUMABLE_TRAIN_KEYS:
            saved["train"].pop(key, None)
            now["train"].pop(key, None)
        diffs = _config_diff(saved, now)
        if diffs:
            raise ValueError(
                f"--resume {path}: the config differs from the checkpoint's in settings that change the run: "
                + "; ".join(diffs)
            )
        if int(ts["world_size"]) != self.dist.world_size:
            raise ValueError(
                f"--resume {path}: saved with {ts['world_size']} process(es), now {self.dist.world_size}; an exact "
                "resume needs the same world size"
            )

    def _load_resume(self, ckpt: dict[str, Any], path: Path) -> None:
        ts = ckpt["train_state"]
        self.model.load_state_dict(ckpt["model"], strict=True)
        self.ema.load_state_dict(ckpt["ema"], ts["ema_updates"])
        self.optimizer.load_state_dict(ts["optimizer"])
        self.lr_scheduler.load_state_dict(ts["lr_scheduler"])
        self.step = int(ts["step"])
        if int(ts["steps_per_epoch"]) != self.steps_per_epoch:
            raise ValueError(
                f"--resume {path}: {ts['steps_per_epoch']} steps per epoch when saved, {self.steps_per_epoch} now "
                "(the training split or batch size changed)"
            )
        self.z2_fit.load(ts["z2_fit"])
        restore_rng(ts["rng"][self.dist.rank], self.device)

    # ----------------------------------------------------------------------------------- logging
    def _log(self, scalars: dict[str, float], epoch: int) -> None:
        if not self.dist.is_main or not scalars:
            return
        if self._writer is not None:
            for name, value in scalars.items():
                self._writer.add_scalar(name, value, self.step)
        new = not self._csv_path.exists()
        with self._csv_path.open("a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(["step", "epoch", "name", "value"])
            for name, value in scalars.items():
                w.writerow([self.step, epoch, name, f"{value:.8g}"])

    def _truncate_csv(self) -> None:
        """On resume, drop rows logged after the checkpoint's step (they will be logged again)."""
        if not self.dist.is_main or not self._csv_path.exists():
            return
        with self._csv_path.open(newline="") as fh:
            rows = list(csv.reader(fh))
        keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= self.step]
        tmp = self._csv_path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as fh:
            csv.writer(fh).writerows(keep)
        os.replace(tmp, self._csv_path)

    # ----------------------------------------------------------------------------------- checkpoints
    def save(self, epoch: int, batch_in_epoch: int) -> Path | None:
        """Collective (every rank calls it): gathers RNG states; rank 0 writes ``step_N.pt`` + ``latest.pt``."""
        rng = capture_rng(self.device)
        rngs = [rng]
        if self.dist.active:
            rngs = [None] * self.dist.world_size
            dist.all_gather_object(rngs, rng)
        path = None
        if self.dist.is_main:
            train_state = {
                "step": self.step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "steps_per_epoch": self.steps_per_epoch,
                "world_size": self.dist.world_size,
                "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.lr_scheduler.state_dict(),
                "ema_updates": self.ema.num_updates,
                "rng": rngs,
                "z2_fit": self.z2_fit.state(),
                "config": self.config.to_dict(),
            }
            path = self.out_dir / f"step_{self.step:08d}.pt"
            save_checkpoint(
                path,
                self.model,
                ema_state=self.ema.state_dict(),
                scheduler_config=self.config.scheduler,
                extra={
                    "train_state": train_state,
                    "z2_stats": self.z2_fit.stats(),
                    "training_scales": [s.to_dict() for s in self.scales],
                },
            )
            link = self.out_dir / f".{LATEST}.{os.getpid()}.link"
            link.unlink(missing_ok=True)
            os.link(path, link)
            os.replace(link, self.out_dir / LATEST)
            old = sorted(self.out_dir.glob("step_*.pt"))[: -self.tc.keep_checkpoints]
            for p in old:
                p.unlink()
        if self.dist.active:
            dist.barrier()
        return path

    # ----------------------------------------------------------------------------------- training
    def _check_finite(
        self, losses: dict[str, Tensor], epoch: int, batch_in_epoch: int, indices: list[int]
    ) -> None:
        names = ("loss", "diffusion", "distance", "kl")
        values = torch.stack([losses[n].detach().float() for n in names])
        bad = (~torch.isfinite(values)).float()
        if self.dist.active:
            dist.all_reduce(bad)
        if bad.any():
            which = [n for n, b in zip(names, bad.tolist(), strict=True) if b]
            raise NonFiniteLossError(
                f"non-finite loss at step {self.step + 1} (epoch {epoch}, batch {batch_in_epoch} of the epoch, "
                f"rank {self.dist.rank} sample indices {indices}): {', '.join(which)} "
                f"(values here: {dict(zip(names, values.tolist(), strict=True))}); stopped before the optimiser "
                "step, the EMA update and any checkpoint"
            )

    def train_step(
        self, batch: dict[str, Tensor], epoch: int, batch_in_epoch: int, indices: list[int]
    ) -> dict:
        tc = self.tc
        batch = _to_device(batch, self.device)
        kl_weight = self.config.intent.kl_weight(self.step)
        losses = self.loss_module(
            batch,
            self.noise_scheduler,
            kl_weight=kl_weight,
            goal_mask_prob=tc.goal_mask_prob,
            alpha=tc.alpha,
        )
        self._check_finite(losses, epoch, batch_in_epoch, indices)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        max_norm = tc.max_norm if tc.clipping else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        if not torch.isfinite(grad_norm):
            raise NonFiniteLossError(
                f"non-finite gradient norm ({grad_norm.item()}) at step {self.step + 1} (epoch {epoch}, batch "
                f"{batch_in_epoch} of the epoch, rank {self.dist.rank} sample indices {indices}) with finite losses "
                f"{ {k: losses[k].item() for k in ('loss', 'diffusion', 'distance', 'kl')} }; stopped before the "
                "optimiser step, the EMA update and any checkpoint"
            )
        self.optimizer.step()
        self.lr_scheduler.step()
        self.ema.update(self.model)
        self.step += 1
        self.z2_fit.update(losses["z2"][losses["latent_used"]])
        return {
            "train/loss": losses["loss"].item(),
            "train/diffusion": losses["diffusion"].item(),
            "train/distance": losses["distance"].item(),
            "train/kl": losses["kl"].item(),
            "train/kl_weight": kl_weight,
            "train/grad_norm": grad_norm.item(),
            "train/lr": self.optimizer.param_groups[0]["lr"],
        }

    def _loader(self, epoch: int) -> DataLoader:
        tc = self.tc
        self.sampler.set_epoch(epoch)
        set_goal_seed(self.train_set, tc.seed * 100_003 + epoch)
        generator = torch.Generator()
        generator.manual_seed(tc.seed * 7_919 + epoch * 104_729 + self.dist.rank)
        return DataLoader(
            self.train_set,
            batch_size=tc.batch_size,
            sampler=self.sampler,
            num_workers=tc.num_workers,
            drop_last=True,
            generator=generator,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def fit(self) -> TrainResult:
        """Train until ``epochs`` (or ``max_steps``) are done; checkpoint, log and evaluate on the way."""
        tc, spe = self.tc, self.steps_per_epoch
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.config.save_yaml(self.out_dir / "config.yaml")
            self._truncate_csv()
            # leftovers of a run killed while writing (the finished files are intact: writes are atomic)
            for stale in [*self.out_dir.glob(".step_*.pt.*.tmp"), *self.out_dir.glob(f".{LATEST}.*.link")]:
                stale.unlink(missing_ok=True)
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=self.step)
        stop_at = min(self.total_steps, tc.max_steps) if tc.max_steps else self.total_steps
        bar = tqdm(
            total=stop_at, initial=self.step, desc="train", disable=not self.progress, dynamic_ncols=True
        )
        epoch = self.step // spe
        try:
            while self.step < stop_at:
                epoch, done = divmod(self.step, spe)
                loader = self._loader(epoch)
                self.sampler.start_index = done * tc.batch_size
                order = self.sampler.epoch_indices()
                set_train_mode(self.model, tc.freeze)
                for i, batch in enumerate(loader, start=done):
                    idx = order[i * tc.batch_size : (i + 1) * tc.batch_size]
                    scalars = self.train_step(batch, epoch, i, idx)
                    self.last_losses = scalars
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{scalars['train/loss']:.4f}")
                    if self.step % tc.print_log_freq == 0:
                        self._log(scalars, epoch)
                    if self.step % spe == 0:  # the epoch is complete: checkpoint at its end, then evaluate
                        self.save(epoch + 1, 0)
                        if (epoch + 1) % tc.eval_freq == 0:
                            self.evaluate(epoch)
                    else:
                        if tc.eval_every and self.step % tc.eval_every == 0:
                            self.evaluate(epoch)
                        if (
                            tc.checkpoint_every and self.step % tc.checkpoint_every == 0
                        ) or self.step == stop_at:
                            self.save(epoch, i + 1)
                    if self.step >= stop_at:
                        break
                set_train_mode(self.model, tc.freeze)
        finally:
            bar.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        return TrainResult(self.step, self.step // spe, dict(self.last_losses), dict(self.last_eval))

    # ----------------------------------------------------------------------------------- evaluation
    def _ema_model(self) -> TwoStageIntentModel:
        if self._eval_model is None:
            self._eval_model = TwoStageIntentModel(
                self.config.model, self.config.intent, self.config.scheduler
            ).to(self.device)
        self.ema.copy_to(self._eval_model)
        return self._eval_model.eval()

    def evaluate(self, epoch: int) -> dict[str, float]:
        """Rank 0: losses and ADE/FDE (metres) on the test split with the EMA weights; others wait."""
        result: dict[str, float] = {}
        if self.dist.is_main and self.test_set is not None:
            saved = capture_rng(self.device)
            try:
                result = evaluate_model(
                    self._ema_model(),
                    self.test_set,
                    self.config,
                    device=self.device,
                    kl_weight=self.config.intent.kl_weight(self.step),
                    figure_path=self.out_dir / "viz" / f"eval_step{self.step}.png",
                    progress=self.progress,
                )
            finally:
                restore_rng(saved, self.device)
            self._log(result, epoch)
            self.last_eval = result
            if self.progress:
                shown = {
                    k.split("/", 1)[1]: round(v, 4) for k, v in result.items() if "ade" in k or "spread" in k
                }
                tqdm.write(f"[eval step {self.step}] {shown}")
        if self.dist.active:
            dist.barrier()
        return result


@torch.no_grad()
def evaluate_model(
    model: TwoStageIntentModel,
    dataset: Dataset,
    config: TwoStageTrainingConfig,
    *,
    device: torch.device,
    kl_weight: float = 0.0,
    figure_path: Path | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Losses and sample quality of ``model`` (eval mode) on ``dataset``; deterministic given ``config.train.seed``.

    Losses (``eval/loss_*``): diffusion with z1 from the reference, without reference (null token) and without
    latent; distance; KL. Sampling, for the goal masked (``gm``) and visible (``gv``): ``ade_*``/``fde_*`` are the
    mean over samples of the average/final displacement to the ground truth (metres), ``minade_*`` the best of
    the samples, for z1 from Encoder1 with the reference (``ref``), z1 = prior mean (``prior``) and no latent
    (``none``); ``spread_*`` is the mean distance (metres) of the samples to their own mean, per waypoint, i.e.
    how much trajectories vary with z1 fixed. Only samples with ``action_mask = 1`` count. The conditions are
    paired: within a batch each one sees the same random draws (diffusion noise, timesteps, goal masks).
    Goal conditioning (``train.eval_goal_observations`` random observations; definitions in
    :mod:`navintent.evaluation.goal_metrics`): ``dist_spearman``, ``dist_mae`` (waypoint steps),
    ``goal_sensitivity``, ``goal_mask_sensitivity`` and their displacements in metres.
    """
    tc, mc = config.train, config.model
    set_goal_seed(dataset, tc.seed)
    loader = DataLoader(dataset, batch_size=tc.batch_size, shuffle=False, num_workers=tc.num_workers)
    n_batches = min(tc.eval_max_batches, max(1, int(len(loader) * tc.eval_fraction)))
    gen = torch.Generator(device=device)
    gen.manual_seed(tc.seed)
    scheduler = build_noise_scheduler(config.scheduler)
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}

    def add(name: str, value: float, weight: float) -> None:
        sums[name] = sums.get(name, 0.0) + value * weight
        counts[name] = counts.get(name, 0.0) + weight

    figure_rows: dict[str, Any] | None = None
    batches = iter(loader)
    for b in tqdm(range(n_batches), desc="eval", leave=False, disable=not progress):
        try:
            batch = _to_device(next(batches), device)
        except StopIteration:
            break
        bsz = batch["obs_img"].shape[0]
        common = dict(kl_weight=kl_weight, goal_mask_prob=tc.goal_mask_prob, alpha=tc.alpha, generator=gen)
        for tag, ref_p, lat_p in (("ref", 0.0, 0.0), ("noref", 1.0, 0.0), ("nolatent", 0.0, 1.0)):
            gen.manual_seed(tc.seed * 1_000_003 + b)  # paired: every condition sees the same draws
            losses = model.compute_loss(batch, scheduler, ref_dropout=ref_p, latent_dropout=lat_p, **common)
            add(f"eval/loss_diffusion_{tag}", losses["diffusion"].item(), bsz)
            if tag == "ref":
                add("eval/loss_distance", losses["distance"].item(), bsz)
                add("eval/loss_kl", losses["kl"].item(), bsz)
        mask = batch["action_mask"] > 0.5
        n_valid = float(mask.sum())
        if n_valid == 0:
            continue
        scale = batch["metric_scale"].to(torch.float32)[:, None, None]
        gt = batch["actions"][..., :2] * scale  # [B, T, 2] metres
        for gtag, gval in (("gm", 1), ("gv", 0)):
            goal_mask = torch.full((bsz,), gval, dtype=torch.long, device=device)
            cond, tokens = model.encode(batch["obs_img"], batch["goal_img"], goal_mask, return_tokens=True)
            for mode in EVAL_MODES:
                gen.manual_seed(tc.seed * 1_000_003 + b)  # paired: the same initial and step noise per mode
                x, _ = model.sample_from_tokens(
                    cond,
                    tokens,
                    goal_mask,
                    mode=mode,
                    ref_traj=batch.get("ref_traj"),
                    ref_mask=batch.get("ref_mask"),
                    num_samples=tc.eval_num_samples,
                    scheduler=scheduler,
                    generator=gen,
                )
                way = normalized_deltas_to_waypoints(x, mc.action_min, mc.action_max)[..., :2]
                way = way * scale[:, None]  # [B, S, T, 2] metres
                err = (way - gt[:, None]).norm(dim=-1)  # [B, S, T]
                ade, fde = err.mean(-1), err[..., -1]  # [B, S]
                spread = (way - way.mean(1, keepdim=True)).norm(dim=-1).mean((1, 2))  # [B]
                for name, per_row in (
                    (f"eval/ade_{mode}_{gtag}", ade.mean(1)),
                    (f"eval/minade_{mode}_{gtag}", ade.min(1).values),
                    (f"eval/fde_{mode}_{gtag}", fde.mean(1)),
                    (f"eval/spread_{mode}_{gtag}", spread),
                ):
                    add(name, float(per_row[mask].mean()), n_valid)
                if figure_rows is None and gtag == "gm":
                    figure_rows = {"obs": batch["obs_img"], "gt": gt, "mask": mask}
                if figure_rows is not None and gtag == "gm" and "samples_" + mode not in figure_rows:
                    figure_rows["samples_" + mode] = way
    result = {k: sums[k] / counts[k] for k in sums if counts[k] > 0}
    if tc.eval_goal_observations > 0:
        goal = goal_metrics(
            model,
            dataset,
            device=device,
            observations=tc.eval_goal_observations,
            seed=tc.seed,
            scheduler=scheduler,
        )
        result.update(goal.as_scalars("eval/"))
    if figure_path is not None and figure_rows is not None and tc.num_images_log > 0:
        save_trajectory_figure(figure_rows, figure_path, mc.context_size, tc.num_images_log)
    return result


def final_metrics(csv_path: Path) -> dict[str, float]:
    """The newest value of every metric name in a run's ``metrics.csv`` (columns ``step``, ``epoch``, ``name``,
    ``value``, as :class:`Trainer` writes it), sorted by name."""
    last: dict[str, tuple[int, float]] = {}
    with Path(csv_path).open() as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            if row["name"] not in last or step >= last[row["name"]][0]:
                last[row["name"]] = (step, float(row["value"]))
    return {k: v for k, (_, v) in sorted(last.items())}


def save_trajectory_figure(rows: dict[str, Any], path: Path, context_size: int, max_rows: int) -> None:
    """Current observation (left) beside the sampled trajectories, top-down in the robot frame (right):
    ground truth black, samples per condition coloured (goal masked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    n = min(max_rows, rows["obs"].shape[0])
    fig, axes = plt.subplots(n, 2, figsize=(7, 3.2 * n), squeeze=False)
    colors = {"ref": "tab:green", "prior": "tab:blue", "none": "tab:orange"}
    for r in range(n):
        cur = rows["obs"][r, 3 * context_size : 3 * context_size + 3].cpu() * std + mean
        axes[r, 0].imshow(cur.clamp(0, 1).permute(1, 2, 0).numpy())
        axes[r, 0].set_axis_off()
        axes[r, 0].set_title("current observation" + ("" if rows["mask"][r] else " (action_mask 0)"))
        ax = axes[r, 1]
        for mode, color in colors.items():
            samples = rows.get("samples_" + mode)
            if samples is None:
                continue
            for s in range(samples.shape[1]):
                w = samples[r, s].cpu()
                ax.plot(-w[:, 1], w[:, 0], color=color, alpha=0.5, lw=1, label=mode if s == 0 else None)
        g = rows["gt"][r].cpu()
        ax.plot(-g[:, 1], g[:, 0], "k-o", ms=2, lw=2, label="ground truth")
        ax.plot([0], [0], "r^", ms=8)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("-y (m, right)")
        ax.set_ylabel("x (m, forward)")
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
# CLI flag -> TrainConfig field (flags left at None keep the config's value).
_TRAIN_FLAGS = (
    "batch_size",
    "epochs",
    "max_steps",
    "lr",
    "num_workers",
    "seed",
    "checkpoint_every",
    "eval_every",
)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """train's flags in NoMaD's underscore spelling (``--data_dir``), each also as the hyphenated spelling the
    other navintent commands use (``--data-dir``)."""
    parser.add_argument(
        "--data_dir",
        "--data-dir",
        default=None,
        help="data root with splits (DIR/<name>/, DIR/splits/<name>/{train,test}); without it, the --config's "
        "datasets: block (NoMaD's form) names the data",
    )
    parser.add_argument(
        "--ckpt", default=None, help="initialise from a nomad.pth state dict or a native checkpoint"
    )
    parser.add_argument(
        "--out", default="runs/two_stage", help="output folder (checkpoints, logs); default %(default)s"
    )
    parser.add_argument(
        "--config",
        default=None,
        help="YAML config: sectioned (model/scheduler/intent/train) or flat nomad.yaml",
    )
    parser.add_argument(
        "--preset", choices=("tiny", "demo", "nomad"), default=None, help="base sizes (default nomad)"
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const=LATEST,
        default=None,
        metavar="CKPT",
        help="continue exactly from CKPT (default: OUT/latest.pt)",
    )
    parser.add_argument(
        "--freeze", nargs="+", choices=TrainConfig.FREEZE_GROUPS, default=None, help="keep these fixed"
    )
    parser.add_argument("--batch_size", "--batch-size", type=int, default=None, help="per process")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument(
        "--max_steps",
        "--max-steps",
        type=int,
        default=None,
        help="stop after this many updates (0 = no limit)",
    )
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--num_workers", "--num-workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--checkpoint_every",
        "--checkpoint-every",
        type=int,
        default=None,
        help="steps between checkpoints (0 = epoch ends)",
    )
    parser.add_argument(
        "--eval_every",
        "--eval-every",
        type=int,
        default=None,
        help="steps between evaluations (0 = epoch ends)",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default %(default)s)")
    parser.add_argument(
        "--export_packaged",
        "--export-packaged",
        default=None,
        metavar="PATH",
        help="also write the seed's packaged format (EMA weights)",
    )
    parser.add_argument("--no_progress", "--no-progress", action="store_true", help="no progress bars")


def resolve_config(
    args: argparse.Namespace, resume_path: Path | None, notes: list[str] | None = None
) -> TwoStageTrainingConfig:
    """Base (the checkpoint's config on resume, else ``--preset``, default nomad) <- ``--config`` <- flags.
    ``notes`` collects what the config file's reader says (NoMaD keys ignored and why, values derived)."""
    if resume_path is not None and args.preset is None and args.config is None:
        saved = read_checkpoint(resume_path).get("train_state", {}).get("config")
        if saved is None:
            raise ValueError(f"--resume {resume_path} has no train_state: not a training checkpoint")
        config = TwoStageTrainingConfig.from_dict(saved, where=str(resume_path))
    else:
        config = preset_training_config(args.preset or "nomad")
    if args.config is not None:
        before = config
        config = TwoStageTrainingConfig.load_yaml(args.config, base=config, notes=notes)
        if args.preset is not None and notes is not None:
            changed = [
                f"{name}.{key} {old!r} -> {new!r}"
                for name in ("model", "scheduler")
                for key, old in getattr(before, name).to_dict().items()
                if (new := getattr(config, name).to_dict()[key]) != old
            ]
            if changed:
                notes.append(
                    f"the config's model sizes override --preset {args.preset}: " + ", ".join(changed)
                )
    changes = {name: getattr(args, name) for name in _TRAIN_FLAGS if getattr(args, name) is not None}
    if args.freeze is not None:
        changes["freeze"] = tuple(args.freeze)
    if changes:
        config = config.replace(
            train=TrainConfig.from_dict({**config.train.to_dict(), **changes}, where="command line")
        )
    return config


def training_sources(
    data_dir: str | Path | None, config: TwoStageTrainingConfig
) -> tuple[TwoStageTrainingConfig, list[DatasetSource], str, list[str]]:
    """Where training data comes from: ``--data_dir`` (a data root, :func:`navintent.data.sources.discover_datasets`)
    or else the config's ``datasets:`` block (NoMaD's form). When both are given the command line wins, the block is
    dropped from the config (so checkpoints record what was used) and a note says so.

    Returns ``(config, sources, where, notes)``; ``where`` names the data in messages. ``ValueError`` when neither
    is given."""
    notes: list[str] = []
    if data_dir is not None:
        if config.datasets:
            names = ", ".join(spec.name for spec in config.datasets)
            notes.append(
                f"note: --data_dir {data_dir} given, so the config's datasets: block ({names}) was not used"
            )
            config = config.replace(datasets=())
        return config, discover_datasets(data_dir), f"--data_dir {data_dir}", notes
    if not config.datasets:
        raise ValueError(
            "no training data: pass --data_dir DIR, or a --config whose datasets: block names the data"
        )
    return config, sources_from_specs(config.datasets), "the config's datasets: block", notes


def spacing_warnings(train_set: Dataset, model_config: ModelConfig) -> list[str]:
    """One warning per training dataset whose configured ``metric_waypoint_spacing`` does not fit its poses
    (:func:`navintent.data.spacing.spacing_report`: the measured metres per frame and the share of normalised
    deltas outside the action range or squeezed into a tenth of it). Datasets trained in metres
    (``normalize: false``) have no spacing to check."""
    out = []
    for ds in nav_datasets(train_set):
        if not ds.normalize:
            continue
        report = spacing_report(
            ds.trajectories,
            ds.metric_waypoint_spacing,
            dataset=ds.dataset_name,
            source=ds.metric_waypoint_spacing_source,
            waypoint_spacing=ds.waypoint_spacing,
            len_traj_pred=ds.len_traj_pred,
            context_size=ds.context_size,
            end_slack=ds.end_slack,
            action_min=model_config.action_min,
            action_max=model_config.action_max,
        )
        if (warning := report.warning()) is not None:
            out.append(f"warning: {warning}")
    return out


def run_train(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    resume_path = None
    if args.resume is not None:
        resume_path = out_dir / LATEST if args.resume == LATEST else Path(args.resume)
        if not resume_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {resume_path}")
    config_notes: list[str] = []
    config = resolve_config(args, resume_path, config_notes)
    config, sources, where, notes = training_sources(args.data_dir, config)
    notes = [f"note: {args.config}: {line}" for line in config_notes] + notes
    info, device = init_distributed(args.device)
    try:
        progress = info.is_main and not args.no_progress
        train_set = build_split(sources, "train", config.model, config.train, progress=progress)
        if train_set is None:
            why = "; ".join(str(src.split_problem("train")) for src in sources)
            raise ValueError(f"{where}: no dataset has a non-empty train split ({why})")
        test_set = build_split(sources, "test", config.model, config.train, progress=progress)
        if test_set is None:
            notes.append(f"note: {where} has no test split; evaluation is skipped")
        scales = training_scales(train_set)
        if info.is_main:
            notes += spacing_warnings(train_set, config.model)
            for line in notes:
                print(line, file=sys.stderr)
            for scale in scales:
                print(
                    f"dataset {scale.dataset}: {scale.metres_per_unit:.4g} m per normalised unit "
                    f"(metric_waypoint_spacing {scale.metric_waypoint_spacing:.4g} m x waypoint_spacing "
                    f"{scale.waypoint_spacing}{'' if scale.normalize else '; normalize: false, so metres'})",
                    file=sys.stderr,
                )
        trainer = Trainer(
            config,
            train_set,
            test_set,
            out_dir,
            device=device,
            dist_info=info,
            init_ckpt=args.ckpt,
            resume=resume_path,
            progress=progress,
            scales=scales,
        )
        try:
            result = trainer.fit()
        except NonFiniteLossError as err:
            print(f"error: {err}", file=sys.stderr)
            return 3
        if info.is_main:
            print(f"done: {result.step} steps; newest checkpoint {out_dir / LATEST}")
            if args.export_packaged:
                path = export_packaged(args.export_packaged, trainer._ema_model().cpu(), config.scheduler)
                print(f"packaged (EMA weights, pickled; loading needs trust): {path}")
    finally:
        if info.active and dist.is_initialized():
            dist.destroy_process_group()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the two-stage intent model (NoMaD + Encoder1/Encoder2); torchrun for several processes",
        description=__doc__.split("\n\n")[0],
    )
    add_train_arguments(parser)
    parser.set_defaults(func=run_train)
