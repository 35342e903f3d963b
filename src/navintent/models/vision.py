"""NoMaD's goal-masking vision encoder (visualnav-transformer's ``NoMaD_ViNT`` semantics).

Two EfficientNet-B0 trunks from ``efficientnet_pytorch`` with every BatchNorm2d swapped for
GroupNorm(C // 16, C): ``obs_encoder`` (3 channels, applied to each context frame) and
``goal_encoder`` (6 channels: the CURRENT frame stacked with the goal image). Their pooled 1280-d
features are compressed to ``encoding_size``, a sinusoidal positional encoding is added, and a
pre-norm GELU transformer encoder mixes the ``context_size + 2`` tokens. The goal mask (1 = goal
hidden) masks the goal token as a key and re-weights the average pool so the visible tokens average.

State-dict keys equal the reference's, including two things forward never uses but nomad.pth holds:
each trunk's ``_fc`` classifier head and ``sa_layer`` (the template layer nn.TransformerEncoder copies).

``obs_encoder="convnet"`` (navintent's, not NoMaD's; see :class:`ConvNetTrunk`) swaps both trunks for a small
convolutional network that trains from scratch in CPU minutes; everything after the trunks is unchanged.
"""

from __future__ import annotations

import math

import torch
from efficientnet_pytorch import EfficientNet
from torch import Tensor, nn

EFFICIENTNET_FEATURES = 1280  # width of EfficientNet-B0's pooled feature vector
OBS_ENCODERS = ("efficientnet-b0", "convnet")  # ModelConfig.obs_encoder values


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


class ConvNetTrunk(nn.Module):
    """A small trunk for CPU-sized runs: four conv layers (5x5 stride 2 to 32 channels, 3x3 stride 2 to 64,
    3x3 stride 2 to 128, 3x3 stride 1 to 128), each followed by GroupNorm(8) and SiLU, then an adaptive average
    pool to a 4 x 4 grid, flattened: ``[N, C, H, W]`` -> ``[N, 2048]`` for any image size >= 8 px.

    Why: the EfficientNet-B0 trunks (4 M parameters each) collapse to a constant output under Adam at lr >= 1e-3
    and learn slowly at 1e-4, so a demo-length CPU run never teaches the goal encoder to read its goal. This trunk
    (0.24 M parameters) keeps a coarse spatial layout (where things are in the image, which a goal comparison
    needs) instead of one global average, trains at lr 1e-3 and makes a training step about four times faster at
    32 px (measured: README "Goal conditioning"). NoMaD's checkpoints use EfficientNet-B0; this is navintent's.
    """

    FEATURES = 128 * 4 * 4

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, kernel, stride in (
            (in_channels, 32, 5, 2),
            (32, 64, 3, 2),
            (64, 128, 3, 2),
            (128, 128, 3, 1),
        ):
            layers += [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2), nn.GroupNorm(8, c_out), nn.SiLU()]
        self.layers = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())

    def forward(self, images: Tensor) -> Tensor:
        """``[N, C, H, W]`` -> ``[N, 2048]``."""
        return self.layers(images)


def build_trunk(name: str, in_channels: int) -> nn.Module:
    """The image trunk ``name`` (one of :data:`OBS_ENCODERS`) for ``in_channels`` input channels. Raises
    ``ValueError`` for another name."""
    if name == "efficientnet-b0":
        return efficientnet_b0_gn(in_channels)
    if name == "convnet":
        return ConvNetTrunk(in_channels)
    raise ValueError(f"obs_encoder must be one of {list(OBS_ENCODERS)}, got {name!r}")


def trunk_width(name: str) -> int:
    """Width of the pooled features of trunk ``name``."""
    return ConvNetTrunk.FEATURES if name == "convnet" else EFFICIENTNET_FEATURES


def _trunk_features(trunk: nn.Module, images: Tensor) -> Tensor:
    """``[N, C, H, W]`` -> pooled ``[N, F]`` features (EfficientNet: through the trunk's own pooling and dropout,
    F = 1280; :class:`ConvNetTrunk`: its forward, F = 2048)."""
    if isinstance(trunk, ConvNetTrunk):
        return trunk(images)
    feats = trunk._avg_pooling(trunk.extract_features(images)).flatten(start_dim=1)
    return trunk._dropout(feats)


class NoMaDVisionEncoder(nn.Module):
    """Observation-context + goal encoder.

    Args mirror nomad.yaml: ``context_size`` past frames (so ``context_size + 1`` observation frames),
    ``encoding_size`` token width, attention heads / layers / feed-forward factor, dropout, and ``obs_encoder``
    (the trunk of both encoders, :func:`build_trunk`).
    """

    def __init__(
        self,
        context_size: int,
        encoding_size: int,
        num_heads: int,
        num_layers: int,
        ff_dim_factor: int,
        dropout: float = 0.1,
        obs_encoder: str = "efficientnet-b0",
    ) -> None:
        super().__init__()
        self.context_size = context_size
        self.encoding_size = encoding_size
        self.num_tokens = context_size + 2
        self.obs_encoder = build_trunk(obs_encoder, 3)
        self.goal_encoder = build_trunk(obs_encoder, 6)
        features = trunk_width(obs_encoder)
        if encoding_size == features:
            self.compress_obs_enc: nn.Module = nn.Identity()
            self.compress_goal_enc: nn.Module = nn.Identity()
        else:
            self.compress_obs_enc = nn.Linear(features, encoding_size)
            self.compress_goal_enc = nn.Linear(features, encoding_size)
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
