"""NoMaD policy with a latent intent ``z`` and classifier-free guidance.

``NoMaDPolicy`` holds NoMaD's three networks under nomad.pth's names (``vision_encoder``,
``noise_pred_net``, ``dist_pred_net``) plus ``z_proj: Linear(z_dim, encoding_size)``, zero-initialised,
so that an imported NoMaD behaves exactly as NoMaD until ``z_proj`` is trained. Guidance follows
Ho & Salimans: ``eps = eps(c, z) + w * (eps(c, z) - eps(c, none))``; for ``w > 0`` both branches go
through ONE batched U-Net call.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from diffusers import DDPMScheduler
from torch import Tensor, nn

from navintent.config import ModelConfig, SchedulerConfig
from navintent.models.unet1d import ConditionalUnet1D
from navintent.models.vision import NoMaDVisionEncoder


def build_noise_scheduler(config: SchedulerConfig) -> DDPMScheduler:
    """diffusers ``DDPMScheduler`` from a :class:`SchedulerConfig` (defaults: NoMaD's 10-step cosine schedule)."""
    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        clip_sample=config.clip_sample,
        prediction_type=config.prediction_type,
    )


class DistanceHead(nn.Module):
    """NoMaD's ``DenseNetwork``: ``[B, E]`` -> ``[B, 1]`` temporal distance (E -> E/4 -> E/16 -> 1, ReLU)."""

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        if embedding_dim < 16:
            raise ValueError(f"distance head needs embedding_dim >= 16, got {embedding_dim}")
        self.embedding_dim = embedding_dim
        self.network = nn.Sequential(
            nn.Linear(embedding_dim, embedding_dim // 4),
            nn.ReLU(),
            nn.Linear(embedding_dim // 4, embedding_dim // 16),
            nn.ReLU(),
            nn.Linear(embedding_dim // 16, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x.reshape(-1, self.embedding_dim))


class NoMaDPolicy(nn.Module):
    """NoMaD (vision encoder, conditional U-Net, distance head) + latent intent projection.

    ``scheduler_config`` is not part of the state dict; it rides along so :meth:`sample` and checkpoints
    know the diffusion schedule (default: NoMaD's).
    """

    # State-dict prefixes that nomad.pth does not have: the importer leaves these at their initialisation.
    NEW_MODULE_PREFIXES: ClassVar[tuple[str, ...]] = ("z_proj.",)

    def __init__(self, config: ModelConfig, scheduler_config: SchedulerConfig | None = None) -> None:
        super().__init__()
        self.config = config
        self.scheduler_config = scheduler_config if scheduler_config is not None else SchedulerConfig()
        self.z_dim = config.z_dim
        self.vision_encoder = NoMaDVisionEncoder(
            context_size=config.context_size,
            encoding_size=config.encoding_size,
            num_heads=config.mha_num_attention_heads,
            num_layers=config.mha_num_attention_layers,
            ff_dim_factor=config.mha_ff_dim_factor,
            dropout=config.mha_dropout,
            obs_encoder=config.obs_encoder,
        )
        self.noise_pred_net = ConditionalUnet1D(
            input_dim=config.action_dim,
            global_cond_dim=config.encoding_size,
            diffusion_step_embed_dim=config.diffusion_step_embed_dim,
            down_dims=tuple(config.down_dims),
            kernel_size=config.kernel_size,
            n_groups=config.n_groups,
            cond_predict_scale=config.cond_predict_scale,
        )
        self.dist_pred_net = DistanceHead(config.encoding_size)
        self.z_proj = nn.Linear(config.z_dim, config.encoding_size)
        nn.init.zeros_(self.z_proj.weight)
        nn.init.zeros_(self.z_proj.bias)

    # --- explicit methods -------------------------------------------------------------------------
    def encode(
        self,
        obs_img: Tensor,
        goal_img: Tensor,
        goal_mask: Tensor | None = None,
        return_tokens: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``obs_img [B, 3(C+1), H, W]``, ``goal_img [B, 3, H, W]``, ``goal_mask [B]`` (1 = hidden; None = zeros)
        -> ``cond [B, E]`` or ``(cond, tokens [B, C + 2, E])`` from the same pass (see NoMaDVisionEncoder)."""
        return self.vision_encoder(obs_img, goal_img, goal_mask=goal_mask, return_tokens=return_tokens)

    def condition(self, global_cond: Tensor, latent_z: Tensor | None) -> Tensor:
        """Conditioned global condition ``[B, E]``: ``global_cond + z_proj(latent_z)`` (unchanged if ``latent_z`` is None)."""
        if latent_z is None:
            return global_cond
        if latent_z.shape != (global_cond.shape[0], self.z_dim):
            raise ValueError(
                f"latent_z must have shape [{global_cond.shape[0]}, {self.z_dim}], got {tuple(latent_z.shape)}"
            )
        return global_cond + self.z_proj(latent_z)

    def predict_noise(
        self,
        sample: Tensor,
        timestep: Tensor | int,
        global_cond: Tensor,
        latent_z: Tensor | None = None,
        lambda_cfg: float = 0.0,
    ) -> Tensor:
        """Predicted noise ``[B, T, A]`` for noisy normalised deltas ``sample [B, T, A]`` at ``timestep``.

        ``timestep``: int, 0-dim tensor or ``[B]`` tensor. ``global_cond [B, E]`` from :meth:`encode`.
        ``lambda_cfg = w >= 0``: 0 -> the conditional prediction (one U-Net pass over B); w > 0 with a latent ->
        ``eps_c + w (eps_c - eps_u)`` from one U-Net pass over 2B (cond rows first). Without a latent both
        branches are the same input, so the guided value equals ``eps_c`` and one pass over B is made.
        """
        lambda_cfg = float(lambda_cfg)
        if lambda_cfg < 0:
            raise ValueError(f"lambda_cfg must be >= 0, got {lambda_cfg}")
        cond = self.condition(global_cond, latent_z)
        if lambda_cfg == 0.0 or latent_z is None:
            return self.noise_pred_net(sample, timestep, cond)
        batch = sample.shape[0]
        if torch.is_tensor(timestep) and timestep.ndim == 1:
            timestep = torch.cat([timestep, timestep])
        eps = self.noise_pred_net(
            torch.cat([sample, sample]), timestep, torch.cat([cond, global_cond.expand_as(cond)])
        )
        eps_c, eps_u = eps[:batch], eps[batch:]
        return eps_c + lambda_cfg * (eps_c - eps_u)

    def predict_distance(self, obsgoal_cond: Tensor) -> Tensor:
        """``[B, E]`` condition (goal visible) -> ``[B, 1]`` predicted temporal distance."""
        return self.dist_pred_net(obsgoal_cond)

    @torch.no_grad()
    def sample(
        self,
        obs_img: Tensor,
        goal_img: Tensor,
        goal_mask: Tensor | None = None,
        num_samples: int = 8,
        latent_z: Tensor | None = None,
        lambda_cfg: float = 0.0,
        scheduler: DDPMScheduler | None = None,
        num_inference_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Reverse diffusion as NoMaD's deployment runs it; returns normalised deltas ``[B, num_samples, T, A]``.

        The condition is encoded once per item and repeated ``num_samples`` times; ``x_T ~ N(0, I)`` and the DDPM
        step noise come from ``generator``. ``latent_z``: ``[B, z_dim]`` (shared by an item's samples) or
        ``[B * num_samples, z_dim]``. ``scheduler`` defaults to one built from ``self.scheduler_config``;
        ``num_inference_steps`` defaults to its ``num_train_timesteps``. Convert to metres with
        ``navintent.actions.normalized_deltas_to_waypoints`` and the dataset's spacing.
        """
        return self.sample_from_condition(
            self.encode(obs_img, goal_img, goal_mask),
            num_samples=num_samples,
            latent_z=latent_z,
            lambda_cfg=lambda_cfg,
            scheduler=scheduler,
            num_inference_steps=num_inference_steps,
            generator=generator,
        )

    @torch.no_grad()
    def sample_from_condition(
        self,
        cond: Tensor,
        num_samples: int = 8,
        latent_z: Tensor | None = None,
        lambda_cfg: float = 0.0,
        scheduler: DDPMScheduler | None = None,
        num_inference_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """:meth:`sample` from an existing vision condition ``cond [B, E]``: the diffusers reverse loop, returning
        normalised deltas ``[B, num_samples, T, A]`` (``latent_z`` as in :meth:`sample`)."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        scheduler = scheduler if scheduler is not None else build_noise_scheduler(self.scheduler_config)
        scheduler.set_timesteps(num_inference_steps or scheduler.config.num_train_timesteps)
        batch = cond.shape[0]
        cond = cond.repeat_interleave(num_samples, dim=0)
        if latent_z is not None and latent_z.shape[0] == batch and num_samples > 1:
            latent_z = latent_z.repeat_interleave(num_samples, dim=0)
        shape = (batch * num_samples, self.config.len_traj_pred, self.config.action_dim)
        x = torch.randn(shape, generator=generator, device=cond.device, dtype=cond.dtype)
        for t in scheduler.timesteps:
            eps = self.predict_noise(x, t, cond, latent_z=latent_z, lambda_cfg=lambda_cfg)
            x = scheduler.step(eps, t, x, generator=generator).prev_sample
        return x.reshape(batch, num_samples, *shape[1:])

    # --- the original prototype's string dispatch -------------------------------------------------
    def forward(self, func_name: str, **kwargs: Any) -> Tensor:
        """``policy("vision_encoder", obs_img=, goal_img=, input_goal_mask=)``,
        ``policy("noise_pred_net", sample=, timestep=, global_cond=, latent_z=, lambda_cfg=)``,
        ``policy("dist_pred_net", obsgoal_cond=)`` — thin layer over the explicit methods."""
        if func_name == "vision_encoder":
            return self.encode(kwargs["obs_img"], kwargs["goal_img"], goal_mask=kwargs.get("input_goal_mask"))
        if func_name == "noise_pred_net":
            return self.predict_noise(
                kwargs["sample"],
                kwargs["timestep"],
                kwargs["global_cond"],
                latent_z=kwargs.get("latent_z"),
                lambda_cfg=kwargs.get("lambda_cfg", 0.0),
            )
        if func_name == "dist_pred_net":
            return self.predict_distance(kwargs["obsgoal_cond"])
        raise ValueError(
            f"unknown function {func_name!r}; expected 'vision_encoder', 'noise_pred_net' or 'dist_pred_net'"
        )
