"""Conditional 1-D U-Net denoiser with FiLM conditioning (diffusion_policy's ``ConditionalUnet1D``).

Parameter names and shapes equal diffusion_policy's so NoMaD's ``noise_pred_net.*`` keys load
strictly. Only the global condition is supported (NoMaD has no local condition, so there is no
``local_cond_encoder``). Two properties of the reference are kept on purpose because published
weights depend on them: the final ``Conv1dBlock`` always uses 8 groups whatever ``n_groups`` is, and
every up stage ends with an ``Upsample1d`` (there is one up stage fewer than down stages).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalStepEmbedding(nn.Module):
    """Diffusion step ``[N]`` -> ``[N, dim]``: ``[sin(t * f), cos(t * f)]`` with ``f_i = 10000^(-i / (dim/2 - 1))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"step embedding dim must be even and >= 4, got {dim}")
        self.dim = dim

    def forward(self, steps: Tensor) -> Tensor:
        half = self.dim // 2
        scale = math.log(10000) / (half - 1)
        freq = torch.exp(torch.arange(half, device=steps.device) * -scale)
        angles = steps[:, None] * freq[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Conv1dBlock(nn.Module):
    """Conv1d (same padding) -> GroupNorm -> Mish on ``[N, C, T]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int = 8) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_channels),
            nn.Mish(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class Downsample1d(nn.Module):
    """Stride-2 convolution: ``[N, C, T]`` -> ``[N, C, ceil(T / 2)]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample1d(nn.Module):
    """Stride-2 transposed convolution: ``[N, C, T]`` -> ``[N, C, 2T]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose1d(dim, dim, 4, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _AddTimeAxis(nn.Module):
    """``[N, C]`` -> ``[N, C, 1]`` (parameter-free; stands where the reference has an einops Rearrange)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(-1)


class ConditionalResidualBlock1D(nn.Module):
    """Two Conv1dBlocks with FiLM from the condition between them, plus a residual path.

    ``cond_predict_scale=False``: the condition adds a per-channel bias; ``True``: per-channel scale and bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_dim: int,
        kernel_size: int = 3,
        n_groups: int = 8,
        cond_predict_scale: bool = False,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                Conv1dBlock(in_channels, out_channels, kernel_size, n_groups=n_groups),
                Conv1dBlock(out_channels, out_channels, kernel_size, n_groups=n_groups),
            ]
        )
        self.out_channels = out_channels
        self.cond_predict_scale = cond_predict_scale
        film_channels = 2 * out_channels if cond_predict_scale else out_channels
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, film_channels), _AddTimeAxis())
        self.residual_conv = (
            nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """``x [N, C_in, T]``, ``cond [N, cond_dim]`` -> ``[N, C_out, T]``."""
        out = self.blocks[0](x)
        film = self.cond_encoder(cond)
        if self.cond_predict_scale:
            film = film.reshape(film.shape[0], 2, self.out_channels, 1)
            out = film[:, 0] * out + film[:, 1]
        else:
            out = out + film
        out = self.blocks[1](out)
        return out + self.residual_conv(x)


class ConditionalUnet1D(nn.Module):
    """Denoiser ``eps(sample [N, T, input_dim], t, global_cond [N, G]) -> [N, T, input_dim]``.

    ``T`` must be divisible by ``2 ** (len(down_dims) - 1)``.
    """

    def __init__(
        self,
        input_dim: int,
        global_cond_dim: int,
        diffusion_step_embed_dim: int = 256,
        down_dims: tuple[int, ...] = (256, 512, 1024),
        kernel_size: int = 3,
        n_groups: int = 8,
        cond_predict_scale: bool = False,
    ) -> None:
        super().__init__()
        dims = [input_dim, *down_dims]
        stages = list(zip(dims[:-1], dims[1:], strict=True))
        dsed = diffusion_step_embed_dim
        cond_dim = dsed + global_cond_dim
        self.num_downsamples = len(down_dims) - 1

        def block(cin: int, cout: int) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(
                cin,
                cout,
                cond_dim,
                kernel_size=kernel_size,
                n_groups=n_groups,
                cond_predict_scale=cond_predict_scale,
            )

        self.diffusion_step_encoder = nn.Sequential(
            SinusoidalStepEmbedding(dsed), nn.Linear(dsed, 4 * dsed), nn.Mish(), nn.Linear(4 * dsed, dsed)
        )
        self.mid_modules = nn.ModuleList([block(dims[-1], dims[-1]), block(dims[-1], dims[-1])])
        self.down_modules = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        block(cin, cout),
                        block(cout, cout),
                        Downsample1d(cout) if i < len(stages) - 1 else nn.Identity(),
                    ]
                )
                for i, (cin, cout) in enumerate(stages)
            ]
        )
        self.up_modules = nn.ModuleList(
            [
                nn.ModuleList([block(2 * cout, cin), block(cin, cin), Upsample1d(cin)])
                for cin, cout in reversed(stages[1:])
            ]
        )
        self.final_conv = nn.Sequential(
            Conv1dBlock(down_dims[0], down_dims[0], kernel_size=kernel_size),
            nn.Conv1d(down_dims[0], input_dim, 1),
        )

    def forward(self, sample: Tensor, timestep: Tensor | int | float, global_cond: Tensor) -> Tensor:
        """``sample [N, T, A]``; ``timestep`` int, 0-dim or ``[N]`` tensor; ``global_cond [N, G]`` -> ``[N, T, A]``."""
        n, horizon = sample.shape[0], sample.shape[1]
        if horizon % (2**self.num_downsamples):
            raise ValueError(
                f"sample horizon must be divisible by {2**self.num_downsamples} for this U-Net, got shape {tuple(sample.shape)}"
            )
        steps = timestep
        if not torch.is_tensor(steps):
            steps = torch.tensor([steps], dtype=torch.long, device=sample.device)
        elif steps.ndim == 0:
            steps = steps[None].to(sample.device)
        steps = steps.expand(n)
        cond = torch.cat([self.diffusion_step_encoder(steps), global_cond], dim=-1)

        x = sample.transpose(1, 2)
        skips = []
        for res1, res2, down in self.down_modules:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = down(x)
        for mid in self.mid_modules:
            x = mid(x, cond)
        for res1, res2, up in self.up_modules:
            x = torch.cat([x, skips.pop()], dim=1)
            x = up(res2(res1(x, cond), cond))
        return self.final_conv(x).transpose(1, 2)
