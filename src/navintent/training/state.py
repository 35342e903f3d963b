"""What a checkpoint must hold besides weights for an exact resume: the RNG states and the z2 Gaussian fit.

RNG states are stored as tensors and plain Python values, so checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import Tensor


def capture_rng(device: torch.device) -> dict[str, Any]:
    """The global RNG states of torch, numpy and Python (and ``device``'s CUDA generator when it is a GPU) in a
    weights-only serialisable dict; :func:`restore_rng` puts them back."""
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
    """Set the global RNGs to a :func:`capture_rng` state (the CUDA one only when ``device`` is a GPU and the
    state has it)."""
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
    """Seed torch, numpy (``seed mod 2**32``) and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


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
        """Add one batch ``z [N, dim]`` (any device and dtype; an empty batch is skipped)."""
        if z.shape[0] == 0:
            return
        z = z.detach().to("cpu", torch.float64)
        self.batches += 1
        self.count += z.shape[0]
        w = max(1.0 / self.batches, 0.01)
        self.mean.mul_(1 - w).add_(z.mean(0), alpha=w)
        self.second.mul_(1 - w).add_(z.T @ z / z.shape[0], alpha=w)

    def stats(self) -> dict[str, Any]:
        """``{"mean": [dim], "cov": [dim, dim] (symmetrised), "count": rows seen}``, float32 tensors: the
        checkpoint's ``z2_stats``."""
        cov = self.second - torch.outer(self.mean, self.mean)
        cov = 0.5 * (cov + cov.T)
        return {"mean": self.mean.float(), "cov": cov.float(), "count": self.count}

    def state(self) -> dict[str, Any]:
        """The running sums (float64), for :meth:`load` on resume."""
        return {"mean": self.mean, "second": self.second, "batches": self.batches, "count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state` dict."""
        self.mean, self.second = state["mean"].clone(), state["second"].clone()
        self.batches, self.count = int(state["batches"]), int(state["count"])
