"""NoMaD's goal-masking vision encoder (visualnav-transformer's ``NoMaD_ViNT`` semantics).

Two EfficientNet-B0 trunks from ``efficientnet_pytorch`` with every BatchNorm2d swapped for
GroupNorm(C // 16, C): ``obs_encoder`` (3 channels, applied to each context frame) and
``goal_encoder`` (6 channels: the CURRENT frame stacked with the goal image). Their pooled 1280-d
features are compressed to ``encoding_size``, a sinusoidal positional encoding is added, and a
pre-norm GELU transformer encoder mixes the ``context_size + 2`` tokens. The goal mask (1 = goal
hidden) masks the goal token as a key and re-weights the average pool so the visible tokens average.

State-dict keys equal the reference's, including two things forward never uses but nomad.pth holds:
each trunk's ``_fc`` classifier head and ``sa_layer`` (the template layer nn.TransformerEncoder copies).
"""

from __future__ import annotations

import math

import torch
from efficientnet_pytorch import EfficientNet
from torch import Tensor, nn

EFFICIENTNET_FEATURES = 1280  # width of EfficientNet-B0's pooled feature vector


def batchnorm_to_groupnorm(module: nn.Module, channels_per_group: int = 16) -> nn.Module:
    """Replace every ``nn.BatchNorm2d(C)`` below ``module`` with ``nn.GroupNorm(C // channels_per_group, C)``, in place."""
    targets = [name for name, m in module.named_modules() if isinstance(m, nn.BatchNorm2d)]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        old = getattr(parent, child)
        setattr(parent, child, nn.GroupNorm(old.num_features // channels_per_group, old.num_features))
    return module


def efficientnet_b0_gn(in_channels: int) -> EfficientNet:
    """EfficientNet-B0 (random init, head kept for key compatibility) with GroupNorm instead of BatchNorm."""
    net = EfficientNet.from_name("efficientnet-b0", in_channels=in_channels)
    return batchnorm_to_groupnorm(net)


class SinusoidalTokenEncoding(nn.Module):
    """Adds the fixed sin/cos table ``pos_enc [1, max_len, dim]`` (a persistent buffer, as in nomad.pth)."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        table = torch.zeros(max_len, dim)
        table[:, 0::2] = torch.sin(position * freq)
        table[:, 1::2] = torch.cos(position * freq)
        self.register_buffer("pos_enc", table.unsqueeze(0))

    def forward(self, tokens: Tensor) -> Tensor:
        """``[B, L, dim]`` -> same shape, with ``pos_enc[:, :L]`` added."""
        return tokens + self.pos_enc[:, : tokens.shape[1]]


def _trunk_features(trunk: EfficientNet, images: Tensor) -> Tensor:
    """``[N, C, H, W]`` -> pooled ``[N, 1280]`` features, through the trunk's own pooling and dropout."""
    feats = trunk._avg_pooling(trunk.extract_features(images)).flatten(start_dim=1)
    return trunk._dropout(feats)


class NoMaDVisionEncoder(nn.Module):
    """Observation-context + goal encoder.

    Args mirror nomad.yaml: ``context_size`` past frames (so ``context_size + 1`` observation frames),
    ``encoding_size`` token width, attention heads / layers / feed-forward factor, and dropout.
    """

    def __init__(
        self,
        context_size: int,
        encoding_size: int,
        num_heads: int,
        num_layers: int,
        ff_dim_factor: int,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.context_size = context_size
        self.encoding_size = encoding_size
        self.num_tokens = context_size + 2
        self.obs_encoder = efficientnet_b0_gn(3)
        self.goal_encoder = efficientnet_b0_gn(6)
        if encoding_size == EFFICIENTNET_FEATURES:
            self.compress_obs_enc: nn.Module = nn.Identity()
            self.compress_goal_enc: nn.Module = nn.Identity()
        else:
            self.compress_obs_enc = nn.Linear(EFFICIENTNET_FEATURES, encoding_size)
            self.compress_goal_enc = nn.Linear(EFFICIENTNET_FEATURES, encoding_size)
        self.positional_encoding = SinusoidalTokenEncoding(encoding_size, self.num_tokens)
        # ``sa_layer`` is only the template nn.TransformerEncoder deep-copies; kept because nomad.pth holds it.
        self.sa_layer = nn.TransformerEncoderLayer(
            d_model=encoding_size,
            nhead=num_heads,
            dim_feedforward=ff_dim_factor * encoding_size,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.sa_encoder = nn.TransformerEncoder(
            self.sa_layer, num_layers=num_layers, enable_nested_tensor=False
        )
        # Row 0: goal visible (nothing masked). Row 1: goal token masked, pool re-weighted over the visible ones.
        key_masks = torch.zeros(2, self.num_tokens, dtype=torch.bool)
        key_masks[1, -1] = True
        pool_weights = (~key_masks).float()
        pool_weights[1] *= self.num_tokens / (self.num_tokens - 1)
        self.register_buffer("_key_masks", key_masks, persistent=False)
        self.register_buffer("_pool_weights", pool_weights, persistent=False)

    def forward(
        self,
        obs_img: Tensor,
        goal_img: Tensor,
        goal_mask: Tensor | None = None,
        return_tokens: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Encode observations and goal.

        Args:
            obs_img: ``[B, 3 * (context_size + 1), H, W]``, oldest frame first, current frame last.
            goal_img: ``[B, 3, H, W]``.
            goal_mask: ``[B]`` long/bool, 1 = goal hidden; ``None`` means all zeros (goal visible).
            return_tokens: also return the transformer outputs of this same pass.

        Returns:
            cond ``[B, E]``, or ``(cond, tokens [B, context_size + 2, E])``; tokens 0..context_size are the
            observation frames (oldest first), the last one is the goal token.
        """
        batch = obs_img.shape[0]
        frames = self.context_size + 1
        if obs_img.shape[1] != 3 * frames:
            raise ValueError(
                f"obs_img must have 3 * (context_size + 1) = {3 * frames} channels, got shape {tuple(obs_img.shape)}"
            )
        if goal_img.shape[0] != batch or goal_img.shape[1] != 3:
            raise ValueError(f"goal_img must have shape [{batch}, 3, H, W], got {tuple(goal_img.shape)}")
        if goal_mask is None:
            goal_mask = torch.zeros(batch, dtype=torch.long, device=obs_img.device)
        elif goal_mask.shape != (batch,):
            raise ValueError(f"goal_mask must have shape [{batch}], got {tuple(goal_mask.shape)}")
        mask_rows = goal_mask.to(device=obs_img.device, dtype=torch.long)
        if ((mask_rows != 0) & (mask_rows != 1)).any():
            raise ValueError(
                f"goal_mask values must be 0 (goal visible) or 1 (goal masked), got {goal_mask.tolist()}"
            )

        current_and_goal = torch.cat([obs_img[:, 3 * self.context_size :], goal_img], dim=1)
        goal_token = self.compress_goal_enc(_trunk_features(self.goal_encoder, current_and_goal))
        # Frame-major stacking: all batch items of frame 0, then frame 1, ... (as the reference does).
        per_frame = torch.cat(torch.split(obs_img, 3, dim=1), dim=0)
        obs_tokens = self.compress_obs_enc(_trunk_features(self.obs_encoder, per_frame))
        obs_tokens = obs_tokens.reshape(frames, batch, self.encoding_size).transpose(0, 1)
        tokens = torch.cat([obs_tokens, goal_token.unsqueeze(1)], dim=1)
        tokens = self.positional_encoding(tokens)
        tokens = self.sa_encoder(tokens, src_key_padding_mask=self._key_masks[mask_rows])
        cond = (tokens * self._pool_weights[mask_rows].unsqueeze(-1)).mean(dim=1)
        if return_tokens:
            return cond, tokens
        return cond
