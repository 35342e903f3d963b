"""Exponential moving average of model weights, with NoMaD's warm-up (diffusers 0.11.1 ``EMAModel``).

Convention (diffusers 0.11.1 ``EMAModel``, the version NoMaD pins; read from public copies of its source):
the counter ``optimization_step`` starts at 0; each ``step()`` first computes ``decay =
get_decay(optimization_step)`` and only then increments the counter, where ``get_decay(k)`` takes
``s = max(0, k - update_after_step - 1)`` and returns 0 if ``s <= 0``, else
``clamp(1 - (1 + s / inv_gamma) ** -power, min_value, max_value)``. NoMaD uses ``update_after_step = 0``,
``inv_gamma = 1``, ``min_value = 0``, ``max_value = 0.9999``, ``power = 0.75``.

So the ``n``-th update (n = 1, 2, ...) uses decay ``0`` for ``n <= 2`` (the first two updates copy the
weights) and ``min(max_decay, 1 - (n - 1) ** -power)`` afterwards; the average is ``ema * decay + w * (1 -
decay)``, computed as diffusers does (``mul_`` then ``add_`` with ``alpha = 1 - decay``). Example: a scalar
weight 0 when the EMA is created, set to 1, 2, 3, 4, 5 before five updates, averages to 3.8436 (power 0.75).
Parameters that do not require grad (frozen groups) and buffers are copied, not averaged, as diffusers does.
The state is a plain dict of tensors plus the update count ``num_updates``, so a checkpoint loads it with
``weights_only=True``, and a run resumed from it continues the same sequence exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    """Shadow copy of ``model``'s state dict (floating trainable tensors averaged, the rest copied).

    ``power`` > 0 and ``max_decay`` in [0, 1] (NoMaD: 0.75 and 0.9999) raise ``ValueError`` otherwise.
    ``num_updates`` counts the updates folded in so far (diffusers' ``optimization_step``).
    """

    def __init__(self, model: nn.Module, power: float = 0.75, max_decay: float = 0.9999) -> None:
        if power <= 0:
            raise ValueError(f"power must be > 0, got {power}")
        if not 0.0 <= max_decay <= 1.0:
            raise ValueError(f"max_decay must be in [0, 1], got {max_decay}")
        self.power = float(power)
        self.max_decay = float(max_decay)
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def decay(self, num_updates: int) -> float:
        """Decay used by the ``num_updates``-th update (1-based): diffusers 0.11.1's
        ``get_decay(num_updates - 1)``, i.e. 0 for the first two updates, then
        ``min(max_decay, 1 - (num_updates - 1) ** -power)``."""
        step = max(0, num_updates - 2)
        if step <= 0:
            return 0.0
        return min(self.max_decay, 1.0 - (1.0 + step) ** -self.power)

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """Fold ``model``'s current weights in; returns the decay used."""
        self.num_updates += 1
        decay = self.decay(self.num_updates)
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        averaged, current = [], []
        for name, value in model.state_dict().items():
            shadow = self.shadow[name]
            if name in trainable and value.is_floating_point():
                averaged.append(shadow)
                current.append(value.detach())
            else:
                shadow.copy_(value)
        if averaged:
            torch._foreach_mul_(averaged, decay)
            torch._foreach_add_(averaged, current, alpha=1.0 - decay)
        return decay

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged weights, keyed as ``model.state_dict()``."""
        return self.shadow

    def load_state_dict(self, shadow: dict[str, Tensor], num_updates: int) -> None:
        """Restore a saved shadow and its update count (exact: the next update continues the same sequence).

        Raises ``ValueError`` naming the keys or the tensor when the saved state does not match the model."""
        missing, unexpected = sorted(set(self.shadow) - set(shadow)), sorted(set(shadow) - set(self.shadow))
        if missing or unexpected:
            raise ValueError(
                f"EMA state does not match the model: missing {missing[:10]}, unexpected {unexpected[:10]}"
            )
        for name, value in shadow.items():
            if value.shape != self.shadow[name].shape:
                raise ValueError(
                    f"EMA tensor {name!r} has shape {tuple(value.shape)}, the model's is "
                    f"{tuple(self.shadow[name].shape)}"
                )
            self.shadow[name].copy_(value)
        self.num_updates = int(num_updates)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (e.g. a separate evaluation copy)."""
        model.load_state_dict(self.shadow, strict=True)
