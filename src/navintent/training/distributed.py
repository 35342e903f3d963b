"""Processes and devices of a training run.

One code path for 1 and N processes: ``torchrun`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and the run joins a
process group (NCCL on CUDA, gloo on CPU); a plain ``navintent train`` is the world of one. Every process reads
its shard through a :class:`ResumableDistributedSampler`; rank 0 alone writes checkpoints, logs and pictures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler


@dataclass
class DistInfo:
    """This process's place in the ``torchrun`` world (the defaults: a world of one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, logs and pictures."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one process (gradients and checks are synchronised)."""
        return self.world_size > 1


def init_distributed(device_arg: str) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group when ``WORLD_SIZE > 1``; pick the device (``auto`` | ``cpu`` | ``cuda`` |
    ``cuda:N``; ``auto`` and ``cuda`` take ``LOCAL_RANK``'s GPU). ``ValueError`` for another string or a CUDA
    request without a GPU."""
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
        """This rank's sample indices for the current epoch, in order, ``start_index`` ignored."""
        return list(super().__iter__())

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start_index :])

    def __len__(self) -> int:
        return self.num_samples - self.start_index


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """The batch with every tensor on ``device`` (non-blocking); other values unchanged."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
