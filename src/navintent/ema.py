"""Exponential moving average of model weights, with NoMaD's warm-up (diffusers' old ``EMAModel(power=0.75)``).

After the ``n``-th update (n = 1, 2, ...) the decay is ``0`` for ``n = 1`` (the average starts as a copy) and
``min(max_decay, 1 - (1 + s) ** -power)`` with ``s = n - 1`` afterwards: early averages follow the weights
closely, later ones average over ~``s / power`` steps. Parameters that do not require grad (frozen groups)
and buffers are copied, not averaged, as diffusers does. The state is a plain dict of tensors plus the update
count, so a checkpoint loads it with ``weights_only=True``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    """Shadow copy of ``model``'s state dict (floating tensors averaged, the rest copied)."""

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
        """Decay used by the ``num_updates``-th update (1-based)."""
        s = num_updates - 1
        if s <= 0:
            return 0.0
        return min(self.max_decay, 1.0 - (1.0 + s) ** -self.power)

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
            torch._foreach_lerp_(averaged, current, 1.0 - decay)
        return decay

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged weights, keyed as ``model.state_dict()``."""
        return self.shadow

    def load_state_dict(self, shadow: dict[str, Tensor], num_updates: int) -> None:
        missing, unexpected = sorted(set(self.shadow) - set(shadow)), sorted(set(shadow) - set(self.shadow))
        if missing or unexpected:
            raise ValueError(
                f"EMA state does not match the model: missing {missing[:10]}, unexpected {unexpected[:10]}"
            )
        for name, value in shadow.items():
            if value.shape != self.shadow[name].shape:
                raise ValueError(
                    f"EMA tensor {name!r} has shape {tuple(value.shape)}, the model's is {tuple(self.shadow[name].shape)}"
                )
            self.shadow[name].copy_(value)
        self.num_updates = int(num_updates)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (e.g. a separate evaluation copy)."""
        model.load_state_dict(self.shadow, strict=True)
