"""The training loop: :class:`Trainer` over in-memory datasets, one code path for 1 and N processes.

Exactness of a resume: a checkpoint holds the model, EMA, optimiser, LR schedule, step, the position within the
epoch and the RNG states (torch, numpy, python, CUDA) of every rank. The epoch's order comes from ``(seed, epoch)``
alone, the goal draw of :class:`navintent.data.NavDataset` from ``(seed, epoch, index)`` (its ``goal_seed``), the
per-step draws (goal mask, dropouts, z1 noise, diffusion noise, timesteps) from the restored global RNG, and
evaluation runs inside a saved-and-restored RNG state. So a run stopped after any checkpoint and resumed ends with
the same parameters, bit for bit on CPU, as an uninterrupted one with the same seed, for any ``num_workers`` (same
world size; CUDA kernels may add their own non-determinism).

Numerical guard: a non-finite loss term or gradient norm raises :class:`NonFiniteLossError` naming the step,
epoch, batch, the sample indices and which loss, before the optimiser, the EMA or any checkpoint sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from navintent.checkpoint import read_checkpoint, save_checkpoint
from navintent.config import TrainConfig, TwoStageTrainingConfig
from navintent.data.sources import set_goal_seed
from navintent.ema import EMA
from navintent.errors import NumericalStopError
from navintent.metric_scale import TrainingScale
from navintent.models.intent import TwoStageIntentModel
from navintent.models.nomad import build_noise_scheduler
from navintent.training.augmentation import augment_batch
from navintent.training.checkpoints import (
    check_resumable,
    load_initial_weights,
    publish_checkpoint,
    remove_stale,
    scale_changes,
)
from navintent.training.distributed import DistInfo, ResumableDistributedSampler, to_device
from navintent.training.evaluation import evaluate_model
from navintent.training.metrics_log import MetricsLog
from navintent.training.optim import apply_freeze, lr_factor, parameter_groups, set_train_mode, warmup_steps
from navintent.training.state import GaussianFit, capture_rng, restore_rng, seed_everything

logger = logging.getLogger(__name__)
LOSS_NAMES = ("loss", "diffusion", "distance", "kl")


class NonFiniteLossError(NumericalStopError):
    """A loss term or the gradient norm became NaN/inf; raised before the update reaches weights, EMA or disk."""


class _LossModule(nn.Module):
    """Routes :meth:`TwoStageIntentModel.compute_loss` through ``forward`` so DDP syncs its gradients."""

    def __init__(self, model: TwoStageIntentModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Tensor], noise_scheduler: Any, **kwargs: Any) -> dict[str, Tensor]:
        return self.model.compute_loss(batch, noise_scheduler, **kwargs)


@dataclass
class FitResult:
    """Where :meth:`Trainer.fit` stopped: ``step`` (updates done), ``epoch`` (``step // steps_per_epoch``), the
    last step's training scalars and the last evaluation's (empty when none ran here)."""

    step: int
    epoch: int
    last_losses: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Training loop over in-memory datasets (:func:`navintent.training.train` builds them from the data).

    ``train_set``/``test_set``: datasets of dict samples as :class:`navintent.data.NavDataset` serves them.
    ``init_ckpt``: a nomad.pth state dict or a native checkpoint to initialise from (ignored on resume).
    ``resume``: a checkpoint path to continue from exactly. ``out_dir``: where rank 0 writes.
    ``scales``: what each training dataset's unit means (:func:`navintent.data.sources.training_scales`); every
    checkpoint records them as ``training_scales`` so inference converts to metres as training did.
    ``ValueError`` when the training split is smaller than one batch per process, or the resume checkpoint does
    not fit this run (config, world size or steps per epoch differ).
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
            check_resumable(resume_ckpt, Path(resume), config, self.dist.world_size)

        # Model init is identical on every rank (same seed); per-rank streams start after it.
        seed_everything(self.tc.seed)
        self.model = TwoStageIntentModel(config.model, config.intent, config.scheduler)
        if init_ckpt is not None and resume_ckpt is None:
            initial = load_initial_weights(self.model, Path(init_ckpt))
            for diff in initial.config_diffs:
                logger.warning(
                    "--ckpt %s: its weights fit this run's model, whose config differs in %s; training uses "
                    "this run's value (give the run the checkpoint's model section to keep it)",
                    init_ckpt, diff,
                )  # fmt: skip
            for change in scale_changes(initial.training_scales, self.scales):
                logger.warning(
                    "--ckpt %s: a normalised unit means another distance in this run's data, %s: the initial "
                    "weights' plans start out scaled by the ratio until training relearns it",
                    init_ckpt, change,
                )  # fmt: skip
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
        self.schedule_steps = self.tc.schedule_steps or self.total_steps  # where the cosine reaches 0
        run_steps = min(self.total_steps, self.tc.max_steps) if self.tc.max_steps else self.total_steps
        if self.tc.scheduler == "cosine" and self.schedule_steps < run_steps:
            logger.warning(
                "train.schedule_steps=%d is below the run's %d updates: updates %d-%d run at LR 0",
                self.schedule_steps, run_steps, self.schedule_steps + 1, run_steps,
            )  # fmt: skip
        self.warmup_steps = warmup_steps(self.tc, self.steps_per_epoch)

        loss_module: nn.Module = _LossModule(self.model)
        if self.dist.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            loss_module = DistributedDataParallel(loss_module, device_ids=ids, find_unused_parameters=True)
        self.loss_module = loss_module
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        # foreach: one fused update over all tensors (the per-tensor loop dominates a CPU step otherwise).
        self.optimizer = torch.optim.AdamW(
            parameter_groups(self.model, self.tc),
            lr=self.tc.lr,
            weight_decay=self.tc.weight_decay,
            foreach=True,
        )
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(s, self.warmup_steps, self.schedule_steps, self.tc.scheduler),
        )
        self.ema = EMA(self.model, power=self.tc.ema_power, max_decay=self.tc.ema_max_decay)
        self.z2_fit = GaussianFit(config.model.z_dim)
        self.step = 0
        seed_everything(self.tc.seed * 1000 + self.dist.rank + 1)
        if resume_ckpt is not None:
            self._load_resume(resume_ckpt, Path(resume))

        self._eval_model: TwoStageIntentModel | None = None
        self.metrics_log = MetricsLog(self.out_dir, enabled=self.dist.is_main)
        self.last_losses: dict[str, float] = {}
        self.last_eval: dict[str, float] = {}

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

    # ----------------------------------------------------------------------------------- checkpoints
    def save(self, epoch: int, batch_in_epoch: int) -> Path | None:
        """Collective (every rank calls it): gathers RNG states; rank 0 writes ``step_N.pt`` + ``latest.pt`` and
        returns the ``step_N.pt`` path (None on other ranks)."""
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
            publish_checkpoint(self.out_dir, path, self.tc.keep_checkpoints)
        if self.dist.active:
            dist.barrier()
        return path

    # ----------------------------------------------------------------------------------- training
    def _check_finite(
        self, losses: dict[str, Tensor], epoch: int, batch_in_epoch: int, indices: list[int]
    ) -> None:
        values = torch.stack([losses[n].detach().float() for n in LOSS_NAMES])
        bad = (~torch.isfinite(values)).float()
        if self.dist.active:
            dist.all_reduce(bad)
        if bad.any():
            which = [n for n, b in zip(LOSS_NAMES, bad.tolist(), strict=True) if b]
            raise NonFiniteLossError(
                f"non-finite loss at step {self.step + 1} (epoch {epoch}, batch {batch_in_epoch} of the epoch, "
                f"rank {self.dist.rank} sample indices {indices}): {', '.join(which)} "
                f"(values here: {dict(zip(LOSS_NAMES, values.tolist(), strict=True))}); stopped before the optimiser "
                "step, the EMA update and any checkpoint"
            )

    def train_step(
        self, batch: dict[str, Tensor], epoch: int, batch_in_epoch: int, indices: list[int]
    ) -> dict[str, float]:
        """One update on ``batch`` (``indices``: its sample indices, for diagnostics); returns the ``train/*``
        scalars (losses, KL weight, gradient norm, LR). :class:`NonFiniteLossError` before any state changes."""
        tc = self.tc
        batch = augment_batch(to_device(batch, self.device), tc.random_shift)
        kl_weight = self.config.intent.kl_weight(self.step)
        losses = self.loss_module(
            batch,
            self.noise_scheduler,
            kl_weight=kl_weight,
            goal_mask_prob=tc.goal_mask_prob,
            alpha=tc.alpha,
            dist_rank_weight=tc.dist_rank_weight,
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
                f"{ {k: losses[k].item() for k in LOSS_NAMES} }; stopped before the "
                "optimiser step, the EMA update and any checkpoint"
            )
        lr = self.optimizer.param_groups[0]["lr"]  # this update's LR (the scheduler then moves to the next)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.ema.update(self.model)
        self.step += 1
        self.z2_fit.update(losses["z2"][losses["latent_used"]])
        scalars = {
            "train/loss": losses["loss"].item(),
            "train/diffusion": losses["diffusion"].item(),
            "train/distance": losses["distance"].item(),
            "train/distance_rank": losses["distance_rank"].item(),
            "train/kl": losses["kl"].item(),
            "train/kl_weight": kl_weight,
            "train/grad_norm": grad_norm.item(),
            "train/lr": lr,
        }
        if self.config.intent.latent_free_weight > 0:
            scalars["train/diffusion_latent_free"] = losses["diffusion_latent_free"].item()
        return scalars

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

    def fit(self) -> FitResult:
        """Train until ``epochs`` (or ``max_steps``) are done; checkpoint, log and evaluate on the way. Rank 0
        writes ``config.yaml``, the checkpoints and the metrics log into ``out_dir``."""
        tc, spe = self.tc, self.steps_per_epoch
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.config.save_yaml(self.out_dir / "config.yaml")
            remove_stale(self.out_dir)
            self.metrics_log.start(self.step)
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
                        self.metrics_log.write(scalars, self.step, epoch)
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
            self.metrics_log.close()
        return FitResult(self.step, self.step // spe, dict(self.last_losses), dict(self.last_eval))

    # ----------------------------------------------------------------------------------- evaluation
    def ema_model(self) -> TwoStageIntentModel:
        """The EMA weights in a model of this run's config on the run's device, eval mode (one model reused:
        each call copies the current EMA weights into it)."""
        if self._eval_model is None:
            self._eval_model = TwoStageIntentModel(
                self.config.model, self.config.intent, self.config.scheduler
            ).to(self.device)
        self.ema.copy_to(self._eval_model)
        return self._eval_model.eval()

    def evaluate(self, epoch: int) -> dict[str, float]:
        """Rank 0: losses and ADE/FDE (metres) on the test split with the EMA weights
        (:func:`navintent.training.evaluation.evaluate_model`), logged at the current step; others wait."""
        result: dict[str, float] = {}
        if self.dist.is_main and self.test_set is not None:
            saved = capture_rng(self.device)
            try:
                result = evaluate_model(
                    self.ema_model(),
                    self.test_set,
                    self.config,
                    device=self.device,
                    kl_weight=self.config.intent.kl_weight(self.step),
                    figure_path=self.out_dir / "viz" / f"eval_step{self.step}.png",
                    progress=self.progress,
                )
            finally:
                restore_rng(saved, self.device)
            self.metrics_log.write(result, self.step, epoch)
            self.last_eval = result
            if self.progress:
                shown = {
                    k.split("/", 1)[1]: round(v, 4) for k, v in result.items() if "ade" in k or "spread" in k
                }
                tqdm.write(f"[eval step {self.step}] {shown}")
        if self.dist.active:
            dist.barrier()
        return result
