"""Two-stage latent intent on top of NoMaD: Encoder1 -> q(z1), Encoder2 -> z2 = the denoiser's ``latent_z``.

Why one module of ~550 lines: Encoder1, Encoder2, the loss and the sampling paths are one model whose decisions
below depend on each other (the null-reference token and the masks of Encoder1, the zero-initialised ``z_proj``
that Encoder2's output meets, latent dropout inside the loss); reading the decisions beside the code that makes
them is the point of this file. About a fifth of it is docstrings (shapes, decisions).

One vision pass feeds everything: :meth:`NoMaDPolicy.encode` with ``return_tokens=True`` gives the pooled
condition ``c [B, E]`` and the per-frame tokens ``[B, C + 2, E]`` (observation frames oldest first, the current
frame at index ``C = context_size``, the goal token last). Encoder1 reads those tokens and the reference
trajectory; Encoder2 reads z1 and the current-frame token. No encoder owns an image backbone.

Decisions (where the design documents are silent):

- Encoder1 is a small pre-norm transformer over ``[query, obs tokens, goal, null-reference, reference steps]``;
  key-padding masks hide the goal token when the goal is masked, the reference steps for reference-free samples
  and the learned null-reference token for samples with a reference. The query's output gives ``(mu, logvar)``;
  ``mu`` comes from a default-initialised linear head, ``logvar`` from a zero-weight head whose bias starts at
  ``INIT_LOGVAR`` (sigma ~ 0.14), so z1 carries the reference from the first step. (A zero-initialised head with
  sigma = 1 meets the zero-initialised ``z_proj`` in a saddle where neither receives a gradient: on sim data the
  KL stayed at ~1e-4 nats and ref-informed z1 was no better than the prior mean.) ``logvar`` is clamped to
  [-8, 8].
- Encoder2 is an MLP on ``[z1, LayerNorm(current-frame token)]``.
- Latent dropout never calls the U-Net twice: dropped samples get exactly ``global_cond`` (the ``latent_z=None``
  branch), the others ``global_cond + z_proj(z2)``, selected per sample with ``torch.where``. Only
  ``IntentConfig.latent_free_weight > 0`` adds a second U-Net call: every sample's ``global_cond`` alone, same
  noisy actions and timestep.
- Loss (per sample first, then masks): ``alpha * distance + (1 - alpha) * (diffusion + w * diffusion_latent_free)
  + beta(step) * KL'`` (``w = IntentConfig.latent_free_weight``, 0 by default; ``diffusion_latent_free`` the same
  eps MSE of that second call) where
  diffusion is the eps MSE averaged over ``[T, A]`` and masked by ``action_mask`` (sum / max(mask sum, 1)),
  distance the squared error of the distance head on goal-visible samples (same normalisation), and KL the
  closed-form ``KL(N(mu, sigma^2) || N(0, I))`` summed over z1's dims and averaged over the batch; ``KL'`` is
  that KL, or with ``IntentConfig.free_bits > 0`` the sum over dims of ``max(free_bits, batch-mean KL_d)``.
  ``dist_rank_weight > 0`` (navintent's, not NoMaD's) adds ``dist_rank_weight * rank`` with ``rank`` the
  pairwise ranking loss of :func:`pairwise_rank_loss` over the batch's goal-visible samples.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import torch
from diffusers import DDPMScheduler
from torch import Tensor, nn

from navintent.actions import waypoints_to_normalized_deltas
from navintent.config import IntentConfig, ModelConfig, SchedulerConfig
from navintent.models.nomad import NoMaDPolicy

LOGVAR_RANGE = (-8.0, 8.0)
INIT_LOGVAR = -4.0
SAMPLE_MODES = ("ref", "prior", "none")


def _sinusoid(length: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``[length, dim]`` sinusoidal position table (Vaswani et al.)."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device, dtype=torch.float32)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table.to(dtype)


class Encoder1(nn.Module):
    """(vision tokens, goal mask, reference) -> q(z1) = N(mu, diag(exp(logvar))).

    Args: ``encoding_size`` E (the vision tokens' width), ``num_heads``, ``num_layers``, ``ff_dim_factor``,
    ``dropout`` of the transformer; ``z1_dim``; ``ref_dim`` D of the reference; ``ref_scale`` divides it.
    """

    def __init__(
        self,
        encoding_size: int,
        num_heads: int,
        num_layers: int,
        ff_dim_factor: int,
        dropout: float,
        z1_dim: int,
        ref_dim: int,
        ref_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.encoding_size = encoding_size
        self.z1_dim = z1_dim
        self.ref_dim = ref_dim
        self.ref_scale = float(ref_scale)
        self.query = nn.Parameter(torch.randn(1, 1, encoding_size) * 0.02)
        self.null_ref = nn.Parameter(torch.randn(1, 1, encoding_size) * 0.02)
        # Type embeddings: 0 observation frame, 1 goal, 2 reference step.
        self.type_embed = nn.Parameter(torch.zeros(3, encoding_size))
        self.ref_embed = nn.Sequential(
            nn.Linear(ref_dim, encoding_size), nn.GELU(), nn.Linear(encoding_size, encoding_size)
        )
        layer = nn.TransformerEncoderLayer(
            d_model=encoding_size,
            nhead=num_heads,
            dim_feedforward=ff_dim_factor * encoding_size,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(encoding_size)
        self.head = nn.Linear(encoding_size, 2 * z1_dim)
        with torch.no_grad():
            self.head.weight[z1_dim:].zero_()
            self.head.bias[:z1_dim].zero_()
            self.head.bias[z1_dim:].fill_(INIT_LOGVAR)

    def forward(
        self,
        tokens: Tensor,
        goal_mask: Tensor | None = None,
        ref_traj: Tensor | None = None,
        ref_present: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``tokens [B, C + 2, E]`` (goal token last), ``goal_mask [B]`` (1 = hidden; None = visible),
        ``ref_traj [B, T_ref, D]`` (spacing units) or None (all reference-free), ``ref_present [B]`` bool
        (None = all present when ``ref_traj`` is given) -> ``(mu [B, z1_dim], logvar [B, z1_dim])``."""
        if tokens.ndim != 3 or tokens.shape[-1] != self.encoding_size:
            raise ValueError(
                f"tokens must have shape [B, C + 2, {self.encoding_size}], got {tuple(tokens.shape)}"
            )
        batch, device = tokens.shape[0], tokens.device
        goal_hidden = torch.zeros(batch, dtype=torch.bool, device=device)
        if goal_mask is not None:
            if goal_mask.shape != (batch,):
                raise ValueError(f"goal_mask must have shape [{batch}], got {tuple(goal_mask.shape)}")
            goal_hidden = goal_mask.to(device=device).bool()
        if ref_traj is None:
            ref_tokens = tokens.new_zeros(batch, 0, self.encoding_size)
            ref_present = torch.zeros(batch, dtype=torch.bool, device=device)
        else:
            if ref_traj.ndim != 3 or ref_traj.shape[0] != batch or ref_traj.shape[-1] != self.ref_dim:
                raise ValueError(
                    f"ref_traj must have shape [{batch}, T_ref, {self.ref_dim}], got {tuple(ref_traj.shape)}"
                )
            if ref_present is None:
                ref_present = torch.ones(batch, dtype=torch.bool, device=device)
            elif ref_present.shape != (batch,):
                raise ValueError(f"ref_present must have shape [{batch}], got {tuple(ref_present.shape)}")
            ref_present = ref_present.to(device=device).bool()
            ref = ref_traj.to(tokens.dtype) / self.ref_scale
            # Reference-free rows are zeroed so a non-finite placeholder there cannot leak through the masking.
            ref = torch.where(ref_present[:, None, None], ref, torch.zeros_like(ref))
            steps = ref.shape[1]
            ref_tokens = (
                self.ref_embed(ref)
                + self.type_embed[2]
                + _sinusoid(steps, self.encoding_size, device, tokens.dtype)
            )
        obs = tokens[:, :-1] + self.type_embed[0]
        goal = tokens[:, -1:] + self.type_embed[1]
        seq = torch.cat(
            [
                self.query.expand(batch, -1, -1),
                obs,
                goal,
                self.null_ref.expand(batch, -1, -1),
                ref_tokens,
            ],
            dim=1,
        )
        n_obs, n_ref = obs.shape[1], ref_tokens.shape[1]
        pad = torch.cat(
            [
                torch.zeros(batch, 1 + n_obs, dtype=torch.bool, device=device),
                goal_hidden.unsqueeze(1),
                ref_present.unsqueeze(1),
                (~ref_present).unsqueeze(1).expand(batch, n_ref),
            ],
            dim=1,
        )
        out = self.transformer(seq, src_key_padding_mask=pad)
        mu, logvar = self.head(self.norm(out[:, 0])).chunk(2, dim=-1)
        return mu, logvar.clamp(*LOGVAR_RANGE)


class Encoder2(nn.Module):
    """(z1 ``[B, z1_dim]``, current-frame token ``[B, E]``) -> z2 ``[B, z2_dim]``, deterministic.

    ``z2 = skip(z1) + MLP([z1, LayerNorm(token)])`` with ``skip`` a (semi-)orthogonal linear map at init, so z2
    varies with z1 at z1's own scale from the first step (the gradient reaching ``z_proj`` is proportional to
    that variation; without the skip it started ~20x smaller).
    """

    def __init__(self, z1_dim: int, encoding_size: int, hidden: int, z2_dim: int) -> None:
        super().__init__()
        self.z1_dim = z1_dim
        self.encoding_size = encoding_size
        self.obs_norm = nn.LayerNorm(encoding_size)
        self.net = nn.Sequential(
            nn.Linear(z1_dim + encoding_size, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, z2_dim),
        )
        self.skip = nn.Linear(z1_dim, z2_dim, bias=False)
        nn.init.orthogonal_(self.skip.weight)

    def forward(self, z1: Tensor, obs_token: Tensor) -> Tensor:
        if z1.ndim != 2 or z1.shape[1] != self.z1_dim:
            raise ValueError(f"z1 must have shape [B, {self.z1_dim}], got {tuple(z1.shape)}")
        if obs_token.shape != (z1.shape[0], self.encoding_size):
            raise ValueError(
                f"obs_token must have shape [{z1.shape[0]}, {self.encoding_size}], got {tuple(obs_token.shape)}"
            )
        return self.skip(z1) + self.net(torch.cat([z1, self.obs_norm(obs_token)], dim=-1))


class Stage1Output(NamedTuple):
    """``z1`` (the mean, or a reparameterised sample), ``mu`` and ``logvar``, each ``[B, z1_dim]``."""

    z1: Tensor
    mu: Tensor
    logvar: Tensor


def kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """Per-sample ``KL(N(mu, exp(logvar)) || N(0, I))`` summed over the last dim: ``[B, d]`` -> ``[B]``."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def draw_training_masks(
    has_ref: Tensor,
    goal_mask_prob: float,
    ref_dropout: float,
    latent_dropout: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample training choices for ``has_ref [B]`` (bool): ``(goal_mask, ref_used, latent_used)``, bool ``[B]``.

    ``goal_mask`` ~ Bernoulli(goal_mask_prob) (1 = goal hidden); ``ref_used`` = has_ref and not dropped
    (drop ~ Bernoulli(ref_dropout)); ``latent_used`` ~ Bernoulli(1 - latent_dropout). Three uniform draws, in
    this order, from ``generator`` (None: the global RNG) on ``has_ref``'s device.
    """
    size, device = has_ref.shape[0], has_ref.device
    goal_mask = torch.rand(size, generator=generator, device=device) < goal_mask_prob
    ref_used = has_ref.bool() & (torch.rand(size, generator=generator, device=device) >= ref_dropout)
    latent_used = torch.rand(size, generator=generator, device=device) >= latent_dropout
    return goal_mask, ref_used, latent_used


def masked_mean(per_sample: Tensor, mask: Tensor) -> Tensor:
    """``sum(per_sample * mask) / max(sum(mask), 1)`` over ``[B]``; 0 when the mask is empty."""
    mask = mask.to(per_sample.dtype)
    return (per_sample * mask).sum() / mask.sum().clamp(min=1.0)


def pairwise_rank_loss(prediction: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """RankNet's pairwise logistic loss (Burges et al., ICML 2005) over the masked samples of a batch.

    For every ordered pair ``(i, j)`` of samples with ``mask`` true and ``target[i] < target[j]``:
    ``softplus(prediction[i] - prediction[j])``, i.e. ``-log sigmoid`` of the margin by which ``j`` is predicted
    farther than ``i`` (in the prediction's units, here waypoint steps). Mean over those pairs; 0 when there are
    none. Pairs with equal targets do not count. ``prediction``, ``target``: ``[B]``; ``mask``: bool ``[B]``.
    Only the order of the targets matters, which is what the distance head's Spearman correlation measures.
    """
    pairs = mask[:, None] & mask[None, :] & (target[:, None] < target[None, :])
    margins = prediction[None, :] - prediction[:, None]  # [i, j]: prediction[j] - prediction[i]
    per_pair = nn.functional.softplus(-margins)
    return masked_mean(per_pair.flatten(), pairs.flatten())


class TwoStageIntentModel(NoMaDPolicy):
    """NoMaD + Encoder1 + Encoder2: the full trainable two-stage model.

    State-dict keys are NoMaD's (``vision_encoder.*``, ``noise_pred_net.*``, ``dist_pred_net.*``), ``z_proj.*``,
    ``encoder1.*`` and ``encoder2.*``; a nomad.pth import keeps the last three at their initialisation, so the
    model then samples exactly as NoMaD does.
    """

    NEW_MODULE_PREFIXES: ClassVar[tuple[str, ...]] = NoMaDPolicy.NEW_MODULE_PREFIXES + (
        "encoder1.",
        "encoder2.",
    )

    def __init__(
        self,
        config: ModelConfig,
        intent_config: IntentConfig | None = None,
        scheduler_config: SchedulerConfig | None = None,
    ) -> None:
        super().__init__(config, scheduler_config=scheduler_config)
        self.intent_config = intent_config if intent_config is not None else IntentConfig()
        ic = self.intent_config
        self.z1_dim = ic.z1_dim
        self.encoder1 = Encoder1(
            encoding_size=config.encoding_size,
            num_heads=config.mha_num_attention_heads,
            num_layers=ic.enc1_layers,
            ff_dim_factor=config.mha_ff_dim_factor,
            dropout=config.mha_dropout,
            z1_dim=ic.z1_dim,
            ref_dim=ic.ref_dim,
            ref_scale=ic.ref_scale,
        )
        self.encoder2 = Encoder2(ic.z1_dim, config.encoding_size, ic.enc2_hidden, config.z_dim)

    def config_sections(self) -> dict[str, Any]:
        """``{"model", "scheduler", "intent"}`` as plain dicts (what a checkpoint stores)."""
        return {
            "model": self.config.to_dict(),
            "scheduler": self.scheduler_config.to_dict(),
            "intent": self.intent_config.to_dict(),
        }

    # --- pieces on tokens of the one vision pass --------------------------------------------------
    def current_token(self, tokens: Tensor) -> Tensor:
        """Current-frame token ``[B, E]`` (index ``context_size``) of ``tokens [B, C + 2, E]``."""
        return tokens[:, self.config.context_size]

    def posterior(
        self,
        tokens: Tensor,
        goal_mask: Tensor | None,
        ref_traj: Tensor | None,
        ref_present: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """q(z1) parameters ``(mu, logvar)`` ``[B, z1_dim]``; see :class:`Encoder1`."""
        return self.encoder1(tokens, goal_mask, ref_traj, ref_present)

    def z2_from_tokens(self, z1: Tensor, tokens: Tensor) -> Tensor:
        """z2 ``[B, z_dim]`` from z1 and the current-frame token of ``tokens``."""
        return self.encoder2(z1, self.current_token(tokens))

    # --- training ---------------------------------------------------------------------------------
    def compute_loss(
        self,
        batch: dict[str, Tensor],
        noise_scheduler: DDPMScheduler,
        *,
        kl_weight: float,
        goal_mask_prob: float = 0.5,
        alpha: float = 1e-4,
        dist_rank_weight: float = 0.0,
        ref_dropout: float | None = None,
        latent_dropout: float | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """One training step's losses on a batch (see the module docstring for the formula).

        ``batch``: obs_img, goal_img, actions ``[B, T, A]`` (spacing units, local frame), distance ``[B]``,
        action_mask ``[B]``; optional ref_traj ``[B, T_ref, D]`` + ref_mask ``[B]`` (absent: reference-free).
        ``ref_dropout``/``latent_dropout`` default to the intent config's. All random draws (goal mask, dropouts,
        z1 noise, diffusion noise and timesteps) use ``generator`` (None: the global RNG) in a fixed order.

        Returns scalars ``loss`` (with grad), ``diffusion``, ``diffusion_latent_free`` (0 unless
        ``latent_free_weight`` > 0), ``distance``, ``distance_rank`` (:func:`pairwise_rank_loss`, computed
        whatever ``dist_rank_weight``), ``kl`` (the true KL), ``kl_penalty``
        (the KL term the loss uses, see ``free_bits``), ``kl_weight`` and per-sample ``goal_mask``, ``ref_used``, ``latent_used`` (bool ``[B]``) and ``z2`` ``[B, z_dim]`` (detached).
        """
        ic = self.intent_config
        ref_dropout = ic.ref_dropout if ref_dropout is None else ref_dropout
        latent_dropout = ic.latent_dropout if latent_dropout is None else latent_dropout
        obs_img, goal_img = batch["obs_img"], batch["goal_img"]
        device, batch_size = obs_img.device, obs_img.shape[0]
        actions = batch["actions"].to(device)
        expected = (batch_size, self.config.len_traj_pred, self.config.action_dim)
        if tuple(actions.shape) != expected:
            raise ValueError(
                f"batch['actions'] must have shape [{batch_size}, {self.config.len_traj_pred}, "
                f"{self.config.action_dim}], got {tuple(actions.shape)}"
            )
        action_mask = batch["action_mask"].to(device=device, dtype=actions.dtype)
        ref_traj = batch.get("ref_traj")
        ref_traj = None if ref_traj is None else ref_traj.to(device)
        distance = batch["distance"].to(device=device, dtype=actions.dtype)

        if ref_traj is not None and "ref_mask" in batch:
            has_ref = batch["ref_mask"].to(device) > 0.5
        else:
            has_ref = torch.full((batch_size,), ref_traj is not None, dtype=torch.bool, device=device)
        goal_mask, ref_used, latent_used = draw_training_masks(
            has_ref, goal_mask_prob, ref_dropout, latent_dropout, generator=generator
        )

        cond, tokens = self.encode(obs_img, goal_img, goal_mask.long(), return_tokens=True)
        mu, logvar = self.posterior(tokens, goal_mask, ref_traj, ref_used)
        eps_z = torch.randn(mu.shape, generator=generator, device=device, dtype=mu.dtype)
        z1 = mu + (0.5 * logvar).exp() * eps_z
        z2 = self.z2_from_tokens(z1, tokens)
        denoiser_cond = torch.where(latent_used.unsqueeze(1), cond + self.z_proj(z2), cond)

        naction = waypoints_to_normalized_deltas(actions, self.config.action_min, self.config.action_max)
        noise = torch.randn(naction.shape, generator=generator, device=device, dtype=naction.dtype)
        timesteps = torch.randint(
            0, noise_scheduler.config.num_train_timesteps, (batch_size,), generator=generator, device=device
        )
        noisy = noise_scheduler.add_noise(naction, noise, timesteps)
        eps_pred = self.noise_pred_net(noisy, timesteps, denoiser_cond)
        diffusion = masked_mean((eps_pred - noise).square().flatten(1).mean(dim=1), action_mask)
        diffusion_latent_free = torch.zeros((), device=device, dtype=diffusion.dtype)
        if ic.latent_free_weight > 0:  # NoMaD's branch on every sample (IntentConfig.latent_free_weight)
            eps_free = self.noise_pred_net(noisy, timesteps, cond)
            diffusion_latent_free = masked_mean(
                (eps_free - noise).square().flatten(1).mean(dim=1), action_mask
            )

        dist_pred = self.predict_distance(cond).squeeze(-1)
        dist = masked_mean((dist_pred - distance).square(), ~goal_mask)
        dist_rank = pairwise_rank_loss(dist_pred, distance, ~goal_mask)
        kl = kl_to_standard_normal(mu, logvar).mean()
        kl_penalty = kl
        if ic.free_bits > 0:
            per_dim = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).mean(dim=0)  # [z1_dim]
            kl_penalty = per_dim.clamp(min=ic.free_bits).sum()
        denoising = diffusion + ic.latent_free_weight * diffusion_latent_free
        loss = (
            alpha * dist + dist_rank_weight * dist_rank + (1.0 - alpha) * denoising + kl_weight * kl_penalty
        )
        return {
            "loss": loss,
            "diffusion": diffusion,
            "diffusion_latent_free": diffusion_latent_free,
            "distance": dist,
            "distance_rank": dist_rank,
            "kl": kl,
            "kl_penalty": kl_penalty,
            "kl_weight": torch.tensor(float(kl_weight)),
            "goal_mask": goal_mask,
            "ref_used": ref_used,
            "latent_used": latent_used,
            "z2": z2.detach(),
        }

    # --- the original prototype's helpers ---------------------------------------------------------
    def encode_stage1(
        self,
        obs_img: Tensor,
        goal_img: Tensor,
        ref_traj: Tensor | None,
        ref_mask: Tensor | None = None,
        goal_mask: Tensor | None = None,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> Stage1Output:
        """High-level intent: (obs history ``[B, 3(C+1), H, W]``, goal ``[B, 3, H, W]``, ``ref_traj [B, T, D]`` or
        None) -> ``Stage1Output(z1, mu, logvar)``; ``z1`` is ``mu`` unless ``sample`` (reparameterised draw).
        ``ref_mask [B]`` marks rows that have a reference (None: all, if ``ref_traj`` is given)."""
        _, tokens = self.encode(obs_img, goal_img, goal_mask, return_tokens=True)
        present = None if ref_mask is None else ref_mask > 0.5
        mu, logvar = self.posterior(tokens, goal_mask, ref_traj, present)
        z1 = mu
        if sample:
            z1 = mu + (0.5 * logvar).exp() * torch.randn(
                mu.shape, generator=generator, device=mu.device, dtype=mu.dtype
            )
        return Stage1Output(z1, mu, logvar)

    def context_from_current(self, cur_obs_img: Tensor) -> Tensor:
        """``[B, 3(C+1), H, W]`` passes through; a single frame ``[B, 3, H, W]`` is repeated ``C + 1`` times
        (a still context: the best stand-in when only the current observation is known)."""
        frames = self.config.context_size + 1
        if cur_obs_img.ndim != 4 or cur_obs_img.shape[1] not in (3, 3 * frames):
            raise ValueError(
                f"cur_obs_img must have shape [B, 3, H, W] or [B, {3 * frames}, H, W], got {tuple(cur_obs_img.shape)}"
            )
        if cur_obs_img.shape[1] == 3:
            return cur_obs_img.repeat(1, frames, 1, 1)
        return cur_obs_img

    def encode_stage2(self, z1: Tensor, cur_obs_img: Tensor, goal_img: Tensor | None = None) -> Tensor:
        """Low-level intent: (z1 ``[B, z1_dim]``, current observation) -> z2 ``[B, z_dim]``.

        ``cur_obs_img``: the context ``[B, 3(C+1), H, W]`` or the current frame alone (see
        :meth:`context_from_current`). ``goal_img`` None: the goal token is masked (a zero image stands in)."""
        obs = self.context_from_current(cur_obs_img)
        if goal_img is None:
            goal_img = torch.zeros_like(obs[:, :3])
            goal_mask = torch.ones(obs.shape[0], dtype=torch.long, device=obs.device)
        else:
            goal_mask = torch.zeros(obs.shape[0], dtype=torch.long, device=obs.device)
        _, tokens = self.encode(obs, goal_img, goal_mask, return_tokens=True)
        return self.z2_from_tokens(z1, tokens)

    # --- sampling for evaluation -------------------------------------------------------------------
    @torch.no_grad()
    def sample_intent(
        self,
        obs_img: Tensor,
        goal_img: Tensor,
        goal_mask: Tensor | None = None,
        *,
        mode: str = "ref",
        ref_traj: Tensor | None = None,
        ref_mask: Tensor | None = None,
        num_samples: int = 8,
        lambda_cfg: float = 0.0,
        scheduler: DDPMScheduler | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Sample trajectories with one vision pass; returns ``(ndeltas [B, S, T, A], z2 [B, z_dim] | None)``.

        ``mode``: ``"ref"`` z1 = Encoder1's mean with the reference (rows without one use the null token),
        ``"prior"`` z1 = 0 (the prior mean), ``"none"`` no latent (the unconditional branch). With z1 fixed
        the S samples differ only by the diffusion noise from ``generator``.
        """
        cond, tokens = self.encode(obs_img, goal_img, goal_mask, return_tokens=True)
        return self.sample_from_tokens(
            cond,
            tokens,
            goal_mask,
            mode=mode,
            ref_traj=ref_traj,
            ref_mask=ref_mask,
            num_samples=num_samples,
            lambda_cfg=lambda_cfg,
            scheduler=scheduler,
            generator=generator,
        )

    @torch.no_grad()
    def sample_from_tokens(
        self,
        cond: Tensor,
        tokens: Tensor,
        goal_mask: Tensor | None = None,
        *,
        mode: str = "ref",
        ref_traj: Tensor | None = None,
        ref_mask: Tensor | None = None,
        num_samples: int = 8,
        lambda_cfg: float = 0.0,
        scheduler: DDPMScheduler | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """:meth:`sample_intent` from an existing vision pass (``cond [B, E]``, ``tokens [B, C + 2, E]``)."""
        if mode not in SAMPLE_MODES:
            raise ValueError(f"mode must be one of {SAMPLE_MODES}, got {mode!r}")
        batch = cond.shape[0]
        z2 = None
        if mode != "none":
            if mode == "ref":
                present = None if ref_mask is None or ref_traj is None else ref_mask.to(cond.device) > 0.5
                z1, _ = self.posterior(tokens, goal_mask, ref_traj, present)
            else:
                z1 = cond.new_zeros(batch, self.z1_dim)
            z2 = self.z2_from_tokens(z1, tokens)
        ndeltas = self.sample_from_condition(
            cond,
            num_samples=num_samples,
            latent_z=z2,
            lambda_cfg=lambda_cfg,
            scheduler=scheduler,
            generator=generator,
        )
        return ndeltas, z2


def init_z1_from_dataset(batch: dict[str, Tensor], model: TwoStageIntentModel) -> Tensor:
    """The original prototype's helper: z1 ``[B, z1_dim]`` = Encoder1's posterior mean for a dataset batch.

    Uses ``batch["ref_traj"]``/``batch["ref_mask"]`` when present (else reference-free) and ``batch["goal_mask"]``
    when present (else the goal is visible). Runs without gradients in the model's current mode.
    """
    device = next(model.parameters()).device
    ref = batch.get("ref_traj")
    with torch.no_grad():
        out = model.encode_stage1(
            batch["obs_img"].to(device),
            batch["goal_img"].to(device),
            None if ref is None else ref.to(device),
            ref_mask=None if batch.get("ref_mask") is None else batch["ref_mask"].to(device),
            goal_mask=None if batch.get("goal_mask") is None else batch["goal_mask"].to(device),
        )
    return out.z1


def build_intent_model(sections: dict[str, Any]) -> TwoStageIntentModel:
    """``navintent.models.build_model`` hook for configs with an ``intent`` section."""
    from navintent.models import model_config_from_sections, scheduler_config_from_sections

    intent = sections["intent"]
    if isinstance(intent, dict):
        intent = IntentConfig.from_dict(intent, where="config section 'intent'")
    elif not isinstance(intent, IntentConfig):
        raise ValueError(
            f"config section 'intent' must be a dict or IntentConfig, got {type(intent).__name__}"
        )
    return TwoStageIntentModel(
        model_config_from_sections(sections), intent, scheduler_config_from_sections(sections)
    )
