"""z2 optimisation through the full differentiable sampler, sampling-based baselines, and ``navintent optimize-z2``.

The seed's inference done for real: z1 is fixed, z2 (the denoiser's ``latent_z``) is optimised by gradient
descent on a task objective evaluated on trajectories sampled by the FULL reverse diffusion
(:mod:`navintent.diffusion`), with the initial and per-step noise held fixed.

Structure of one optimisation step (B scenarios x M noise draws, one graph):

- the vision condition and the tokens are computed ONCE per scenario (no gradient: they do not depend on z2);
- z2 ``[B, z]`` is repeated to ``[B*M, z]``; every denoising step is ONE U-Net call over the whole batch
  (with CFG, cond and uncond rows share that call inside the policy);
- the objective is evaluated per draw on metric robot-frame waypoints and averaged over the M draws, so each
  scenario's loss depends only on its own z2 and summing over scenarios gives independent gradients.

Methods (all start from z2_0 = Encoder2(z1, current observation), or zeros for a policy without encoders):

- ``adam``: Adam on z2 (optionally with per-scenario normalised gradients); the best z2 seen per scenario is
  kept; early stopping when no scenario improved by ``min_delta`` for ``patience`` steps.
- ``best_of_n``: prior z2 samples evaluated on the same fixed draws, the best kept. "Prior" = the Gaussian fitted
  to training z2 stored in the checkpoint (``z2_stats``); without it Encoder2(z1 ~ N(0, I)); for a plain policy
  N(0, prior_std^2 I).
- ``cem``: cross-entropy method over z2 (diagonal Gaussian in the search coordinates, started at z2_0 with the
  prior's spread).

Search coordinates (``Z2OptimConfig.space``). ``z2``: Adam and CEM move z2 itself. ``whitened`` (the default
when the checkpoint stores ``z2_stats``): they move ``u`` with ``z2 = z2_0 + u @ (V sqrt(diag(lam)))^T``, where
``V diag(lam) V^T`` is the covariance of training z2, so one unit of ``u`` is one data standard deviation along
each principal direction. Decision, from a measured failure: Encoder2 maps an 8-dimensional z1 (plus the
observation) to a 16-dimensional z2, so the fitted covariance has eigenvalues near 1e-4 next to ones near 1-8;
Adam's per-coordinate steps in raw z2 leave that thin data subspace at once, and a ``z2_nll`` penalty strong
enough to pull them back is a cliff that stops Adam moving at all. In whitened coordinates Adam's steps are
scaled to the data, so the optimised z2 stays where training z2 lives without a dominating penalty.
- ``guided``: per-step guidance on the noisy sample (CTG-style, :meth:`DifferentiableSampler.guided_sample`) with
  z2 = z2_0; it sweeps guidance scales (the configured ladder, then log-uniform draws inside it) and keeps the
  best per scenario.
- ``noise``: Diffusion Noise Optimization (DNO; Karunratanakul et al., "Optimizing Diffusion Noise Can Serve As
  Universal Motion Priors", CVPR 2024) as the noise-space baseline: z2 stays z2_0 (Encoder2's output; 0 for a
  plain policy, which is NoMaD exactly since ``z_proj`` is zero-initialised) and the noise of each optimisation
  draw is optimised with Adam (``noise_lr``) through the same sampler against the same objective plus
  ``noise_nll_weight * noise_nll`` (:func:`navintent.objectives.noise_nll`: the chi negative log-likelihood of the
  noise vector's norm, which keeps the noise on the shell where N(0, I) draws lie), averaged over draws. Which
  noise (``noise_space``): ``all`` (default) = ``x_T`` and every per-step noise the sampler adds; ``x_T`` = the
  initial noise only. Decision: DNO optimises ``x_T`` of a deterministic ODE sampler, where ``x_T`` is all of the
  randomness; NoMaD samples with DDPM, which adds noise after every step but the last, so with ``x_T`` alone part
  of the sample's randomness stays out of reach and the baseline would be handicapped. ``all`` gives it every
  degree of freedom the sampler has, and the realism term then covers the whole noise the sample depends on.
  The best noise per scenario is kept; runs for the budget (>= 1 step).
- ``z2+noise``: Adam on z2 (``space`` coordinates, ``lr``) and on the noise (``noise_lr``) together, the same loss.
- ``plain``: z2_0 and the fixed draws, no steering (NoMaD sampling with the encoder's intent).

A noise-optimised result exists only for its own optimisation draws: it cannot transfer to fresh draws by
construction (on fresh draws ``noise`` IS plain sampling, and ``z2+noise`` keeps only its z2). Compare noise
methods on the optimisation draws (``*_opt_draws`` in the report) and z2 methods on both.

Baselines get the same wall-clock budget as the measured Adam run. Every method is then evaluated on the
optimisation draws AND on fresh draws never seen during optimisation (``eval_draws``), so overfitting z2 to the
fixed noise shows.

``DiffusionAdapter.loss_given_z2(z2)`` keeps the seed's meaning (the task loss of a latent), now with full
sampling; it returns per-scenario losses, the per-term values and the waypoints.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from navintent.checkpoint import load_inference_model
from navintent.cli import float_at_least, float_in, int_at_least
from navintent.config import (
    ConfigBase,
    check_non_negative_int,
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
)
from navintent.data.sources import data_dir_scales
from navintent.diffusion import (
    CLIP_MODES,
    NOISE_SPACES,
    DifferentiableSampler,
    SamplerNoise,
    build_sampler,
    policy_eps_fn,
)
from navintent.metric_scale import MetricScale, add_metric_scale_arguments, metric_scale_for_command
from navintent.objectives import (
    REALISM_TERMS,
    TERMS,
    GridMap,
    Objective,
    ObjectiveContext,
    deltas_to_metric,
    min_agent_distance,
    min_time_to_collision,
    noise_block_nll,
    noise_nll,
    noise_norm_z,
)

METHODS: tuple[str, ...] = ("adam", "best_of_n", "cem", "guided", "noise", "z2+noise", "plain")
# Methods that move z2 (a policy whose latent does nothing makes them return their start).
Z2_METHODS: tuple[str, ...] = ("adam", "best_of_n", "cem", "z2+noise")
NOISE_METHODS: tuple[str, ...] = ("noise", "z2+noise")
"""Methods that optimise the diffusion noise: their result exists on the optimisation draws only."""
SPACES: tuple[str, ...] = ("auto", "whitened", "z2")
DEFAULT_OBJECTIVE = "softmin_dist:1.0,dynamics:0.1,z2_encoder:0.01"


# ------------------------------------------------------------------------------------------------ config
@dataclass
class Z2OptimConfig(ConfigBase):
    """Settings of one optimisation run (CLI flags carry the same names with dashes).

    steps/lr/normalize_grad/patience/min_delta: Adam. draws: noise draws M per scenario during optimisation;
    eval_draws: fresh draws for the final evaluation. sampler ``ddpm`` | ``ddim``, inference_steps (0 = the
    scheduler's training steps), clip (see :mod:`navintent.diffusion`), eta (DDIM), lambda_cfg (CFG weight).
    dt: seconds between waypoints. success_radius: a draw is an attack success when the robot comes within
    this distance (m, centre to centre) of an agent. cem_population / cem_elite_frac: CEM. guide_scales: the
    ladder the guided baseline tries first. prior_std: std of the z2 prior when the checkpoint has no stats.
    space: search coordinates of Adam and CEM, ``whitened`` | ``z2`` | ``auto`` (whitened when the checkpoint
    stores z2_stats, else z2); see the module docstring. noise_lr: Adam's learning rate on the noise (``noise``,
    ``z2+noise``; noise entries are N(0, 1) units). noise_nll_weight: weight of
    :func:`navintent.objectives.noise_nll` (nats) in those methods' loss. noise_space: ``all`` | ``x_T``, the noise
    they optimise and the noise realism measures (module docstring). ``normalize_grad`` applies to ``adam`` only.
    Every invalid value raises ``ValueError`` naming the field and the value.
    """

    steps: int = 100
    lr: float = 1e-2
    normalize_grad: bool = False
    patience: int = 0
    min_delta: float = 1e-4
    draws: int = 8
    eval_draws: int = 16
    sampler: str = "ddpm"
    inference_steps: int = 0
    clip: str = "straight_through"
    eta: float = 0.0
    lambda_cfg: float = 0.0
    dt: float = 0.25
    success_radius: float = 0.5
    cem_population: int = 16
    cem_elite_frac: float = 0.25
    guide_scales: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
    prior_std: float = 1.0
    eval_chunk: int = 4
    space: str = "auto"
    noise_lr: float = 0.05
    noise_nll_weight: float = 0.03
    noise_space: str = "all"

    def __post_init__(self) -> None:
        for name in ("steps", "draws", "eval_draws", "cem_population", "eval_chunk"):
            check_positive_int(name, getattr(self, name))
        for name in ("patience", "inference_steps"):
            check_non_negative_int(name, getattr(self, name))
        for name in ("lr", "dt", "success_radius", "prior_std", "noise_lr"):
            check_positive_number(name, getattr(self, name))
        check_non_negative_number("noise_nll_weight", self.noise_nll_weight)
        if self.noise_space not in NOISE_SPACES:
            raise ValueError(f"noise_space must be one of {NOISE_SPACES}, got {self.noise_space!r}")
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        if self.sampler not in ("ddpm", "ddim"):
            raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {self.sampler!r}")
        if self.clip not in CLIP_MODES:
            raise ValueError(f"clip must be one of {CLIP_MODES}, got {self.clip!r}")
        if self.lambda_cfg < 0:
            raise ValueError(f"lambda_cfg must be >= 0, got {self.lambda_cfg}")
        if not 0 < self.cem_elite_frac <= 1:
            raise ValueError(f"cem_elite_frac must be in (0, 1], got {self.cem_elite_frac}")
        self.guide_scales = tuple(float(s) for s in self.guide_scales)
        if not self.guide_scales or any(s <= 0 for s in self.guide_scales):
            raise ValueError(f"guide_scales must be positive numbers, got {self.guide_scales}")


# ------------------------------------------------------------------------------------------------ scenarios
@dataclass
class Scenarios:
    """B scenarios to attack. Images as the dataset serves them (ImageNet-normalised float32).

    obs_img ``[B, 3(C+1), H, W]``, goal_img ``[B, 3, H, W]``, goal_mask ``[B]`` (1 = goal hidden) or None,
    ref_traj ``[B, T_ref, D]`` + ref_mask ``[B]`` or None (z1 then from Encoder1 with/without the reference),
    agents ``[B, T, K, 2]`` metres in the robot frame at the waypoint times + agents_mask ``[B, K]``,
    metric_scale ``[B]`` metres per spacing unit, z1 ``[B, z1_dim]`` (None: Encoder1's mean),
    obstacle_map: optional :class:`GridMap` (1 = occupied) for the static-collision realism term.
    """

    obs_img: Tensor
    goal_img: Tensor
    metric_scale: Tensor
    goal_mask: Tensor | None = None
    ref_traj: Tensor | None = None
    ref_mask: Tensor | None = None
    agents: Tensor | None = None
    agents_mask: Tensor | None = None
    z1: Tensor | None = None
    obstacle_map: GridMap | None = None
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        b = self.obs_img.shape[0]
        if not self.names:
            self.names = [f"scenario_{i}" for i in range(b)]
        if self.metric_scale.shape != (b,):
            raise ValueError(f"Scenarios.metric_scale must be [B={b}], got {tuple(self.metric_scale.shape)}")

    @property
    def num(self) -> int:
        return self.obs_img.shape[0]

    def to(self, device: torch.device | str) -> Scenarios:
        def move(v):
            return v.to(device) if isinstance(v, Tensor) else v

        grid = self.obstacle_map
        if grid is not None:
            grid = GridMap(grid.values.to(device), grid.origin, grid.resolution)
        return Scenarios(
            **{
                k: move(getattr(self, k))
                for k in self.__dataclass_fields__
                if k not in ("obstacle_map", "names")
            },
            obstacle_map=grid,
            names=list(self.names),
        )


class NonFiniteObjectiveError(RuntimeError):
    """The objective (or its gradient w.r.t. z2) became NaN/inf; names the scenario(s), the terms and the step."""


class LossOutput(NamedTuple):
    """``loss [R]`` (objective averaged over draws), ``terms`` name -> ``[R]`` (unweighted, averaged over draws),
    ``waypoints [R, M, T, 2]`` metres robot frame, ``per_draw [R, M]`` objective per draw."""

    loss: Tensor
    terms: dict[str, Tensor]
    waypoints: Tensor
    per_draw: Tensor


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Parameters temporarily ``requires_grad=False`` (backward then computes input gradients only)."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        model.requires_grad_(False)
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)


# ------------------------------------------------------------------------------------------------ adapter
class DiffusionAdapter:
    """A policy + scenarios + objective bound together, with the vision condition cached and the noise fixed.

    ``model``: a :class:`navintent.models.intent.TwoStageIntentModel` (z1 from Encoder1 or given, z2_0 from
    Encoder2) or any NoMaD-style policy (``encode``/``predict_noise``; z2_0 = 0). ``z2_stats``: ``(mean, cov)``
    of training z2 or None. Noise for ``draws`` per scenario comes from ``generator``. ``noise_space``: the noise
    whose realism :meth:`realism` reports (``all`` | ``x_T``, see :meth:`DifferentiableSampler.noise_vector`).
    """

    def __init__(
        self,
        model: nn.Module,
        scenarios: Scenarios,
        objective: Objective,
        *,
        sampler: DifferentiableSampler,
        draws: int = 8,
        lambda_cfg: float = 0.0,
        dt: float = 0.25,
        z2_stats: tuple[Tensor, Tensor] | None = None,
        generator: torch.Generator | None = None,
        noise_space: str = "all",
    ) -> None:
        if model.training:
            raise ValueError("DiffusionAdapter needs the model in eval mode (dropout off): call model.eval()")
        self.model = model
        self.objective = objective
        self.sampler = sampler
        self.draws = int(draws)
        self.lambda_cfg = float(lambda_cfg)
        self.dt = float(dt)
        if noise_space not in NOISE_SPACES:
            raise ValueError(f"noise_space must be one of {NOISE_SPACES}, got {noise_space!r}")
        self.noise_space = noise_space
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.scenarios = scenarios.to(self.device)
        sc = self.scenarios
        cfg = model.config
        self.horizon, self.action_dim = cfg.len_traj_pred, cfg.action_dim
        self.action_min, self.action_max = cfg.action_min, cfg.action_max
        self.num = sc.num
        with torch.no_grad():
            self.cond, self.tokens = model.encode(sc.obs_img, sc.goal_img, sc.goal_mask, return_tokens=True)
            self.is_intent = hasattr(model, "z2_from_tokens") and hasattr(model, "posterior")
            self.z1: Tensor | None = None
            if self.is_intent:
                if sc.z1 is not None:
                    if sc.z1.shape != (self.num, model.z1_dim):
                        raise ValueError(
                            f"Scenarios.z1 must be [{self.num}, {model.z1_dim}], got {tuple(sc.z1.shape)}"
                        )
                    self.z1 = sc.z1.to(self.dtype)
                else:
                    present = None if sc.ref_traj is None or sc.ref_mask is None else sc.ref_mask > 0.5
                    goal_mask = None if sc.goal_mask is None else sc.goal_mask > 0.5
                    self.z1, _ = model.posterior(self.tokens, goal_mask, sc.ref_traj, present)
                self.z2_init = model.z2_from_tokens(self.z1, self.tokens)
            else:
                self.z2_init = torch.zeros(self.num, model.z_dim, device=self.device, dtype=self.dtype)
        self.z2_stats = (
            None if z2_stats is None else (z2_stats[0].to(self.device), z2_stats[1].to(self.device))
        )
        self.noise = self.draw_noise(self.draws, generator)
        self.context = ObjectiveContext(
            agents=sc.agents,
            agents_mask=sc.agents_mask,
            obstacle_map=sc.obstacle_map,
            z2_encoder=self.z2_init,
            z2_mean=None if self.z2_stats is None else self.z2_stats[0],
            z2_cov=None if self.z2_stats is None else self.z2_stats[1],
            z1=self.z1,
            dt=self.dt,
        )
        self._all = torch.arange(self.num, device=self.device)

    # --- noise and rows ---------------------------------------------------------------------------
    def draw_noise(self, draws: int, generator: torch.Generator | None = None) -> SamplerNoise:
        """Fixed noise for ``draws`` per scenario: rows scenario-major (``b * draws + m``)."""
        return self.sampler.draw_noise(
            (self.num * draws, self.horizon, self.action_dim),
            generator=generator,
            device=self.device,
            dtype=self.dtype,
        )

    def _noise_rows(self, noise: SamplerNoise, sid: Tensor) -> tuple[SamplerNoise, int]:
        m = noise.num_samples // self.num
        if m * self.num != noise.num_samples:
            raise ValueError(f"noise has {noise.num_samples} rows, not a multiple of {self.num} scenarios")
        if torch.equal(sid, self._all):
            return noise, m
        x_T = noise.x_T.view(self.num, m, *noise.x_T.shape[1:])[sid].flatten(0, 1)
        steps = noise.steps.view(noise.steps.shape[0], self.num, m, *noise.x_T.shape[1:])[:, sid].flatten(
            1, 2
        )
        return SamplerNoise(x_T, steps), m

    def to_metric(self, ndeltas: Tensor, rows: Tensor) -> Tensor:
        """``[R*M, T, A]`` normalised deltas -> metres ``[R*M, T, 2]`` with each row's scenario scale."""
        return deltas_to_metric(ndeltas, self.action_min, self.action_max, self.scenarios.metric_scale[rows])

    def _evaluate(self, wp: Tensor, z2_rows: Tensor, rows: Tensor, r: int, m: int) -> LossOutput:
        ctx = self.context.select(rows).replace(z2=z2_rows)
        terms = self.objective.terms(wp, ctx)
        per = sum(s.weight * terms[s.name] for s in self.objective.specs).view(r, m)
        self._check_finite(per, terms, rows.view(r, m)[:, 0], m)
        mean_terms = {k: v.view(r, m).mean(1) for k, v in terms.items()}
        return LossOutput(per.mean(1), mean_terms, wp.view(r, m, *wp.shape[1:]), per)

    def _check_finite(self, per: Tensor, terms: dict[str, Tensor], sid: Tensor, m: int) -> None:
        """Raise :class:`NonFiniteObjectiveError` naming every scenario whose objective is NaN/inf on some draw
        (``per [R, M]``, ``sid [R]`` scenario ids), with the offending terms and how many draws."""
        bad_rows = ~torch.isfinite(per.detach()).all(1)
        if not bool(bad_rows.any()):
            return
        lines = []
        for row in torch.nonzero(bad_rows).flatten().tolist()[:10]:
            i = int(sid[row])
            bad_terms = {
                name: v.detach().view(-1, m)[row][~torch.isfinite(v.detach().view(-1, m)[row])].tolist()[:3]
                for name, v in terms.items()
                if not bool(torch.isfinite(v.detach().view(-1, m)[row]).all())
            }
            draws = int((~torch.isfinite(per.detach()[row])).sum())
            lines.append(
                f"scenario {i} ({self.scenarios.names[i]!r}): {draws} of {m} draws non-finite; terms "
                f"{bad_terms or '(terms finite: the weighted sum overflowed)'}"
            )
        raise NonFiniteObjectiveError(
            "objective is NaN/inf for "
            + "; ".join(lines)
            + " (check the scenario's inputs: agents, maps, z1)"
        )

    def _run(self, z2: Tensor, sid: Tensor, noise: SamplerNoise | None) -> LossOutput:
        noise, m = self._noise_rows(self.noise if noise is None else noise, sid)
        rows = sid.repeat_interleave(m)
        z_rows = z2.repeat_interleave(m, 0)
        eps_fn = policy_eps_fn(self.model, self.cond[rows], z_rows, lambda_cfg=self.lambda_cfg)
        x = self.sampler.sample(eps_fn, noise)
        return self._evaluate(self.to_metric(x, rows), z_rows, rows, sid.shape[0], m)

    # --- public -------------------------------------------------------------------------------------
    def loss_given_z2(self, z2: Tensor, *, noise: SamplerNoise | None = None) -> LossOutput:
        """Task loss of latents ``z2 [B, z_dim]`` through full sampling (seed's meaning); differentiable in z2.

        ``noise``: the fixed optimisation draws by default, or another :class:`SamplerNoise` with ``B * M'`` rows.
        Backpropagate ``out.loss.sum()`` (scenarios are independent).
        """
        if z2.shape != self.z2_init.shape:
            raise ValueError(f"z2 must have shape {tuple(self.z2_init.shape)}, got {tuple(z2.shape)}")
        return self._run(z2, self._all, noise)

    @torch.no_grad()
    def loss_many(self, z2s: Tensor) -> Tensor:
        """Losses ``[k, B]`` of ``k`` candidate latents per scenario ``z2s [k, B, z]`` on the fixed draws, one batch."""
        k = z2s.shape[0]
        sid = self._all.repeat(k)
        return self._run(z2s.flatten(0, 1), sid, None).loss.view(k, self.num)

    def prior_z2(self, k: int, generator: torch.Generator | None = None, prior_std: float = 1.0) -> Tensor:
        """``k`` prior z2 samples per scenario ``[k, B, z]`` (see the module docstring for "prior")."""
        shape = (k, self.num, self.z2_init.shape[1])
        if self.z2_stats is not None:
            mean, cov = self.z2_stats
            eps = torch.randn(shape, generator=generator, device=self.device, dtype=self.dtype)
            return mean + eps @ torch.linalg.cholesky(cov).T
        if self.is_intent:
            z1 = torch.randn(
                k, self.num, self.model.z1_dim, generator=generator, device=self.device, dtype=self.dtype
            )
            with torch.no_grad():
                tokens = self.tokens.repeat(k, 1, 1)
                return self.model.z2_from_tokens(z1.flatten(0, 1), tokens).view(shape)
        return prior_std * torch.randn(shape, generator=generator, device=self.device, dtype=self.dtype)

    def prior_std(self, fallback: float) -> Tensor:
        """Per-dimension std ``[z]`` of the z2 prior (fitted stats, else ``fallback``)."""
        if self.z2_stats is not None:
            return torch.diagonal(self.z2_stats[1]).sqrt()
        return torch.full((self.z2_init.shape[1],), float(fallback), device=self.device, dtype=self.dtype)

    def guided(self, scale: float | Tensor, *, noise: SamplerNoise | None = None) -> LossOutput:
        """Guided sampling (CTG-style) with z2 = z2_0 against the objective; ``scale`` float or ``[B]``."""
        noise, m = self._noise_rows(self.noise if noise is None else noise, self._all)
        rows = self._all.repeat_interleave(m)
        z_rows = self.z2_init.repeat_interleave(m, 0)
        ctx = self.context.select(rows).replace(z2=z_rows)
        eps_fn = policy_eps_fn(self.model, self.cond[rows], z_rows, lambda_cfg=self.lambda_cfg)

        def loss_fn(x0: Tensor) -> Tensor:
            return self.objective(self.to_metric(x0, rows), ctx)

        if isinstance(scale, Tensor):
            scale = scale.to(self.device, self.dtype).repeat_interleave(m)
        x = self.sampler.guided_sample(eps_fn, noise, loss_fn, scale=scale)
        with torch.no_grad():
            return self._evaluate(self.to_metric(x, rows), z_rows, rows, self.num, m)

    def resolve_space(self, space: str) -> str:
        """``auto`` -> ``whitened`` with z2_stats, else ``z2``; ``whitened`` without z2_stats is an error."""
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        if space == "auto":
            return "whitened" if self.z2_stats is not None else "z2"
        if space == "whitened" and self.z2_stats is None:
            raise ValueError(
                "space 'whitened' needs the checkpoint's z2_stats (written by navintent train); this model has "
                "none: use space 'z2'"
            )
        return space

    def search_basis(self, space: str, prior_std: float) -> tuple[Tensor, Tensor]:
        """``(basis [z, z], start_std [z])`` of the search coordinates: ``z2 = z2_0 + u @ basis.T`` and the
        spread CEM starts with in ``u``. whitened: ``V sqrt(diag(lam))`` of the z2 covariance and ones; z2: the
        identity and the prior's per-dimension std."""
        space = self.resolve_space(space)
        if space == "whitened":
            lam, vec = torch.linalg.eigh(self.z2_stats[1].double())
            basis = (vec * lam.clamp_min(0).sqrt()).to(self.dtype)
            return basis, torch.ones(basis.shape[0], device=self.device, dtype=self.dtype)
        eye = torch.eye(self.z2_init.shape[1], device=self.device, dtype=self.dtype)
        return eye, self.prior_std(prior_std)

    def noise_nll(self, noise: SamplerNoise, space: str | None = None) -> Tensor:
        """:func:`navintent.objectives.noise_nll` of each draw's noise over ``space`` (None: ``noise_space``),
        ``[B * M]`` rows -> ``[B, M]`` (nats; rows scenario-major). Differentiable in the noise."""
        m = noise.num_samples // self.num
        if m * self.num != noise.num_samples:
            raise ValueError(f"noise has {noise.num_samples} rows, not a multiple of {self.num} scenarios")
        vec = self.sampler.noise_vector(noise, self.noise_space if space is None else space)
        return noise_nll(vec).view(self.num, m)

    def realism(self, out: LossOutput, z2: Tensor, noise: SamplerNoise | None = None) -> dict[str, Tensor]:
        """Realism terms available for these scenarios, averaged over draws ``name -> [B]``.

        Besides the waypoint and latent terms: ``noise_nll`` (:func:`navintent.objectives.noise_nll`, nats, the
        norm of the whole noise vector), ``noise_norm_z`` (:func:`navintent.objectives.noise_norm_z`) and
        ``noise_step_nll`` (:func:`navintent.objectives.noise_block_nll` over ``x_T`` and each step noise, nats:
        the per-step norms) of the noise the samples came from (``noise``, ``B * M`` rows; None: the fixed
        optimisation draws), over ``noise_space``.
        """
        noise = self.noise if noise is None else noise
        vec = self.sampler.noise_vector(noise, self.noise_space)
        r, m = out.waypoints.shape[:2]
        if vec.shape[0] != r * m:
            raise ValueError(f"noise has {vec.shape[0]} rows, the samples {r} x {m}")
        per_block = self.horizon * self.action_dim
        extra = {
            "noise_nll": noise_nll(vec).view(r, m).mean(1),
            "noise_norm_z": noise_norm_z(vec).view(r, m).mean(1),
            "noise_step_nll": noise_block_nll(vec, vec.shape[1] // per_block).view(r, m).mean(1),
        }
        names = ["z2_encoder", "dynamics"]
        if self.z2_stats is not None:
            names.append("z2_nll")
        if self.z1 is not None:
            names.append("z1_nll")
        if self.scenarios.obstacle_map is not None:
            names.append("static_collision")
        rows = self._all.repeat_interleave(m)
        ctx = self.context.select(rows).replace(z2=z2.repeat_interleave(m, 0))
        wp = out.waypoints.flatten(0, 1)
        terms = {n: TERMS[n](wp, ctx).view(r, m).mean(1) for n in names if n in REALISM_TERMS}
        return {**terms, **extra}


# ------------------------------------------------------------------------------------------------ methods
@dataclass
class MethodResult:
    """One method's outcome: z2 ``[B, z]`` (z2_0 for guided/plain/noise), guidance scale ``[B]`` (guided only),
    best loss on the optimisation draws ``[B]`` (for the noise methods including the weighted noise realism),
    seconds spent, sampler evaluations, loss history, and the optimised noise of the ``B * M`` optimisation draws
    (``noise`` and ``z2+noise`` only; None: the method samples from the adapter's fixed draws)."""

    name: str
    z2: Tensor
    loss: Tensor
    seconds: float
    evaluations: int
    guide_scale: Tensor | None = None
    history: list[float] = field(default_factory=list)
    noise: SamplerNoise | None = None


def optimize_adam(adapter: DiffusionAdapter, config: Z2OptimConfig, *, progress: bool = True) -> MethodResult:
    """Adam from z2_0 in ``config.space`` coordinates (module docstring); keeps the best z2 per scenario; early
    stopping with ``patience`` (0 = off)."""
    start = time.perf_counter()
    basis, _ = adapter.search_basis(config.space, config.prior_std)
    u = torch.zeros_like(adapter.z2_init, requires_grad=True)
    opt = torch.optim.Adam([u], lr=config.lr)
    best_loss = torch.full((adapter.num,), math.inf, device=adapter.device)
    best_z2 = adapter.z2_init.detach().clone()
    stale = torch.zeros(adapter.num, dtype=torch.long, device=adapter.device)
    history: list[float] = []
    evaluations = 0
    with frozen(adapter.model):
        bar = tqdm(range(config.steps), desc="adam z2", disable=not progress, leave=False)
        for step in bar:
            z2 = adapter.z2_init + u @ basis.T
            try:
                out = adapter.loss_given_z2(z2)
            except NonFiniteObjectiveError as err:
                raise NonFiniteObjectiveError(f"adam step {step}: {err}; stopped, z2 not updated") from None
            evaluations += 1
            loss = out.loss.detach()
            improved = loss < best_loss - config.min_delta
            best_z2[improved] = z2.detach()[improved]
            best_loss = torch.where(improved, loss, best_loss)
            stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
            history.append(float(loss.mean()))
            bar.set_postfix(loss=f"{history[-1]:.4f}")
            if config.patience and bool((stale >= config.patience).all()):
                break
            opt.zero_grad(set_to_none=True)
            out.loss.sum().backward()
            bad = ~torch.isfinite(u.grad).all(1)
            if bool(bad.any()):
                ids = torch.nonzero(bad).flatten().tolist()
                raise NonFiniteObjectiveError(
                    f"adam step {step}: the gradient w.r.t. z2 is NaN/inf for scenario(s) "
                    f"{[(i, adapter.scenarios.names[i]) for i in ids[:10]]} with finite objective values "
                    f"{[float(out.loss.detach()[i]) for i in ids[:10]]}; stopped before the Adam update"
                )
            if config.normalize_grad:
                u.grad /= u.grad.norm(dim=1, keepdim=True) + 1e-12
            opt.step()
        with torch.no_grad():
            z2 = adapter.z2_init + u @ basis.T
            loss = adapter.loss_given_z2(z2).loss
        evaluations += 1
        improved = loss < best_loss
        best_z2[improved] = z2.detach()[improved]
        best_loss = torch.where(improved, loss, best_loss)
    return MethodResult("adam", best_z2, best_loss, time.perf_counter() - start, evaluations, history=history)


def _keep_best(best_loss: Tensor, best_z2: Tensor, losses: Tensor, cands: Tensor) -> tuple[Tensor, Tensor]:
    """Update per-scenario best from ``losses [k, B]`` of ``cands [k, B, z]``."""
    val, idx = losses.min(0)
    better = val < best_loss
    chosen = cands[idx, torch.arange(cands.shape[1], device=cands.device)]
    return torch.where(better, val, best_loss), torch.where(better.unsqueeze(1), chosen, best_z2)


def best_of_n(
    adapter: DiffusionAdapter,
    budget_s: float,
    config: Z2OptimConfig,
    generator: torch.Generator | None = None,
) -> MethodResult:
    """Prior z2 samples evaluated in chunks of ``eval_chunk`` until ``budget_s`` seconds are spent (>= 1 chunk)."""
    start = time.perf_counter()
    with torch.no_grad():
        best_loss = adapter.loss_many(adapter.z2_init.unsqueeze(0))[0]
    best_z2, n = adapter.z2_init.clone(), 1
    while time.perf_counter() - start < budget_s or n == 1:
        cands = adapter.prior_z2(config.eval_chunk, generator, config.prior_std)
        best_loss, best_z2 = _keep_best(best_loss, best_z2, adapter.loss_many(cands), cands)
        n += config.eval_chunk
    return MethodResult("best_of_n", best_z2, best_loss, time.perf_counter() - start, n)


def cem(
    adapter: DiffusionAdapter,
    budget_s: float,
    config: Z2OptimConfig,
    generator: torch.Generator | None = None,
) -> MethodResult:
    """Cross-entropy method: a diagonal Gaussian per scenario in ``config.space`` coordinates, started at z2_0
    with the prior's spread; refit on the elite fraction of each population; runs whole populations until
    ``budget_s`` is spent (>= 1)."""
    start = time.perf_counter()
    pop, chunk = config.cem_population, config.eval_chunk
    n_elite = max(1, int(round(config.cem_elite_frac * pop)))
    basis, start_std = adapter.search_basis(config.space, config.prior_std)
    mean = torch.zeros_like(adapter.z2_init)
    std = start_std.expand_as(mean).clone()
    with torch.no_grad():
        best_loss = adapter.loss_many(adapter.z2_init.unsqueeze(0))[0]
    best_z2, n, history = adapter.z2_init.clone(), 1, []
    while time.perf_counter() - start < budget_s or n == 1:
        eps = torch.randn(pop, *mean.shape, generator=generator, device=adapter.device, dtype=adapter.dtype)
        us = mean + std * eps
        cands = adapter.z2_init + us @ basis.T
        losses = torch.cat([adapter.loss_many(cands[i : i + chunk]) for i in range(0, pop, chunk)])
        n += pop
        best_loss, best_z2 = _keep_best(best_loss, best_z2, losses, cands)
        elite_idx = losses.topk(n_elite, dim=0, largest=False).indices  # [E, B]
        elites = us.gather(0, elite_idx.unsqueeze(-1).expand(-1, -1, us.shape[-1]))
        mean = elites.mean(0)
        std = (elites.std(0, unbiased=False) if n_elite > 1 else 0.5 * std).clamp_min(1e-3)
        history.append(float(losses.min(0).values.mean()))
    return MethodResult("cem", best_z2, best_loss, time.perf_counter() - start, n, history=history)


def guided_baseline(
    adapter: DiffusionAdapter,
    budget_s: float,
    config: Z2OptimConfig,
    generator: torch.Generator | None = None,
) -> MethodResult:
    """Guidance-scale sweep within ``budget_s``: the ladder first, then log-uniform scales inside its range;
    per scenario the scale with the lowest loss on the optimisation draws is kept (>= 1 run)."""
    start = time.perf_counter()
    lo, hi = math.log(min(config.guide_scales)), math.log(max(config.guide_scales))
    best_loss = torch.full((adapter.num,), math.inf, device=adapter.device)
    best_scale = torch.zeros(adapter.num, device=adapter.device)
    runs = 0
    while time.perf_counter() - start < budget_s or runs == 0:
        if runs < len(config.guide_scales):
            scale = config.guide_scales[runs]
        else:
            u = float(torch.rand((), generator=generator, device=adapter.device))
            scale = math.exp(lo + (hi - lo) * u) if hi > lo else config.guide_scales[0]
        loss = adapter.guided(scale).loss
        better = loss < best_loss
        best_loss = torch.where(better, loss, best_loss)
        best_scale = torch.where(better, torch.full_like(best_scale, scale), best_scale)
        runs += 1
    return MethodResult(
        "guided",
        adapter.z2_init.clone(),
        best_loss,
        time.perf_counter() - start,
        runs,
        guide_scale=best_scale,
    )


def plain(adapter: DiffusionAdapter) -> MethodResult:
    """No steering: z2_0 on the fixed draws."""
    start = time.perf_counter()
    with torch.no_grad():
        loss = adapter.loss_given_z2(adapter.z2_init).loss
    return MethodResult("plain", adapter.z2_init.clone(), loss, time.perf_counter() - start, 1)


def optimize_noise(
    adapter: DiffusionAdapter,
    budget_s: float,
    config: Z2OptimConfig,
    *,
    with_z2: bool = False,
    progress: bool = True,
) -> MethodResult:
    """Diffusion Noise Optimization (``noise``) or z2 and noise together (``z2+noise``), for ``budget_s`` seconds.

    Adam (``config.noise_lr``) on the noise of the ``B * M`` fixed optimisation draws, started at those draws:
    ``x_T [B*M, T, A]`` and, with ``config.noise_space == "all"``, the step noises ``[K, B*M, T, A]`` (entries of
    steps with ``sigma = 0`` get no gradient and do not count). With ``with_z2`` also Adam (``config.lr``) on z2 in
    ``config.space`` coordinates as :func:`optimize_adam` moves it; else z2 = z2_0. Loss per scenario::

        L_b = mean_m [ objective(x_0(z2_b, noise_bm)) + noise_nll_weight * noise_nll(noise_bm) ]

    with :func:`navintent.objectives.noise_nll` (nats) over ``config.noise_space``. Steps run until ``budget_s``
    seconds are spent (at least one), or ``patience`` steps without improvement of any scenario; the best noise
    (and z2) per scenario is kept, the final parameters included. Raises :class:`NonFiniteObjectiveError` when the
    objective or the gradient becomes NaN/inf (nothing is updated then).
    """
    start = time.perf_counter()
    name = "z2+noise" if with_z2 else "noise"
    b, m = adapter.num, adapter.draws
    base = adapter.noise.detach()
    x_T = base.x_T.clone().requires_grad_(True)
    steps = base.steps.clone().requires_grad_(
        config.noise_space == "all" and bool(adapter.sampler.noisy_steps)
    )
    groups = [{"params": [x_T, steps] if steps.requires_grad else [x_T], "lr": config.noise_lr}]
    u = torch.zeros_like(adapter.z2_init, requires_grad=with_z2)
    basis = torch.eye(u.shape[1], device=adapter.device, dtype=adapter.dtype)
    if with_z2:
        basis, _ = adapter.search_basis(config.space, config.prior_std)
        groups.append({"params": [u], "lr": config.lr})
    opt = torch.optim.Adam(groups)
    best_loss = torch.full((b,), math.inf, device=adapter.device, dtype=adapter.dtype)
    best_z2 = adapter.z2_init.detach().clone()
    best = base.detach()
    stale = torch.zeros(b, dtype=torch.long, device=adapter.device)
    history: list[float] = []
    evaluations = 0

    def loss_of(noise: SamplerNoise, z2: Tensor) -> Tensor:
        out = adapter.loss_given_z2(z2, noise=noise)
        return out.loss + config.noise_nll_weight * adapter.noise_nll(noise, config.noise_space).mean(1)

    def keep(loss: Tensor, z2: Tensor, noise: SamplerNoise, margin: float) -> Tensor:
        nonlocal best_loss
        improved = loss < best_loss - margin
        best_z2[improved] = z2.detach()[improved]
        rows = improved.repeat_interleave(m)
        best.x_T[rows] = noise.x_T.detach()[rows]
        best.steps[:, rows] = noise.steps.detach()[:, rows]
        best_loss = torch.where(improved, loss, best_loss)
        return improved

    with frozen(adapter.model):
        bar = tqdm(desc=f"adam {name}", disable=not progress, leave=False)
        step = 0
        while step == 0 or time.perf_counter() - start < budget_s:
            z2 = adapter.z2_init + u @ basis.T
            noise = SamplerNoise(x_T, steps)
            try:
                loss = loss_of(noise, z2)
            except NonFiniteObjectiveError as err:
                raise NonFiniteObjectiveError(
                    f"{name} step {step}: {err}; stopped, nothing updated"
                ) from None
            evaluations += 1
            improved = keep(loss.detach(), z2, noise, config.min_delta)
            stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
            history.append(float(loss.detach().mean()))
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]:.4f}")
            step += 1
            if config.patience and bool((stale >= config.patience).all()):
                break
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            grads = [x_T.grad.flatten(1)]
            if steps.requires_grad:
                grads.append(steps.grad.transpose(0, 1).flatten(1))
            if with_z2:
                grads.append(u.grad.repeat_interleave(m, 0))
            bad = ~torch.isfinite(torch.cat(grads, 1)).view(b, -1).all(1)
            if bool(bad.any()):
                ids = torch.nonzero(bad).flatten().tolist()
                raise NonFiniteObjectiveError(
                    f"{name} step {step - 1}: the gradient w.r.t. the noise/z2 is NaN/inf for scenario(s) "
                    f"{[(i, adapter.scenarios.names[i]) for i in ids[:10]]}; stopped before the Adam update"
                )
            opt.step()
        bar.close()
        with torch.no_grad():
            z2 = adapter.z2_init + u @ basis.T
            noise = SamplerNoise(x_T.detach(), steps.detach())
            keep(loss_of(noise, z2), z2, noise, 0.0)
        evaluations += 1
    return MethodResult(
        name,
        best_z2,
        best_loss,
        time.perf_counter() - start,
        evaluations,
        history=history,
        noise=best,
    )


def run_methods(
    adapter: DiffusionAdapter,
    config: Z2OptimConfig,
    methods: tuple[str, ...] = METHODS,
    *,
    budget_s: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, MethodResult]:
    """Run ``methods``; baselines (``best_of_n``, ``cem``, ``guided``, ``noise``, ``z2+noise``) get ``budget_s`` seconds
    each (default: the Adam run's time, or 10 s without it). ``plain`` always runs. Raises ``ValueError`` for an
    unknown method."""
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {list(METHODS)}")
    with frozen(adapter.model):
        results: dict[str, MethodResult] = {"plain": plain(adapter)}
        if "adam" in methods:
            results["adam"] = optimize_adam(adapter, config, progress=progress)
            budget_s = results["adam"].seconds if budget_s is None else budget_s
        budget_s = 10.0 if budget_s is None else budget_s
        baselines = {"best_of_n": best_of_n, "cem": cem, "guided": guided_baseline}
        for offset, (name, fn) in enumerate(baselines.items()):
            if name in methods:
                gen = torch.Generator(device=adapter.device).manual_seed(seed + 1000 + offset)
                results[name] = fn(adapter, budget_s, config, gen)
        for name in NOISE_METHODS:
            if name in methods:
                results[name] = optimize_noise(
                    adapter, budget_s, config, with_z2=name == "z2+noise", progress=progress
                )
    return {k: results[k] for k in METHODS if k in results and (k in methods or k == "plain")}


@torch.no_grad()
def evaluate_method(
    adapter: DiffusionAdapter, result: MethodResult, noise: SamplerNoise | None, success_radius: float
) -> dict[str, Any]:
    """Objective, its terms, realism terms and agent metrics of one method on ``noise`` (None: the fixed draws).

    ``noise`` None: the optimisation draws as the method left them (a noise method's optimised noise, else the
    adapter's fixed draws). Given ``noise`` (fresh draws): every method samples from it, so a noise method's own
    optimised noise plays no part (``noise`` is then plain sampling; ``z2+noise`` keeps its z2).
    Returns tensors per scenario: ``objective [B]``, ``terms``, ``realism`` (name -> ``[B]``), ``min_distance``
    ``[B]`` (mean over draws of each draw's minimum robot-agent distance; inf without agents),
    ``attack_success_rate [B]`` (fraction of draws within ``success_radius``), ``min_ttc [B]`` (smallest
    constant-velocity time to collision over draws, waypoints and agents, s), ``waypoints [B, M, T, 2]``.
    """
    if noise is None:
        noise = adapter.noise if result.noise is None else result.noise
    if result.name == "guided":
        out = adapter.guided(result.guide_scale, noise=noise)
    else:
        out = adapter.loss_given_z2(result.z2, noise=noise)
    b, m = out.waypoints.shape[:2]
    metrics: dict[str, Any] = {
        "objective": out.loss,
        "terms": out.terms,
        "realism": adapter.realism(out, result.z2, noise),
        "waypoints": out.waypoints,
    }
    if adapter.context.agents is not None:
        rows = adapter._all.repeat_interleave(m)
        dmin = min_agent_distance(out.waypoints.flatten(0, 1), adapter.context.select(rows)).view(b, m)
        finite = torch.isfinite(dmin)
        metrics["min_distance"] = torch.where(finite, dmin, torch.zeros_like(dmin)).sum(1) / finite.sum(
            1
        ).clamp_min(1)
        metrics["min_distance"] = torch.where(
            finite.any(1), metrics["min_distance"], torch.full_like(dmin[:, 0], math.inf)
        )
        metrics["attack_success_rate"] = (dmin < success_radius).float().mean(1)
        ttc = min_time_to_collision(out.waypoints.flatten(0, 1), adapter.context.select(rows)).view(b, m)
        metrics["min_ttc"] = ttc.min(1).values
    return metrics


# ------------------------------------------------------------------------------------------------ data sample
_SAMPLE_FIELDS = {
    # name: (required, dtype kind, rank)
    "obs_img": (True, "float", 4),
    "goal_img": (True, "float", 4),
    "goal_mask": (False, "intbool", 1),
    "ref_traj": (False, "float", 3),
    "ref_mask": (False, "number", 1),
    "agents": (False, "float", 4),
    "agents_mask": (False, "number", 2),
    "metric_scale": (False, "float", 1),
    "z1": (False, "float", 2),
    # the seed's other batch fields: checked for shape/finiteness, not used
    "actions": (False, "float", 3),
    "distance": (False, "number", 1),
    "goal_pos": (False, "float", 2),
    "dataset_idx": (False, "intbool", 1),
    "action_mask": (False, "number", 1),
    "goal_is_negative": (False, "number", 1),
}


def _dtype_ok(t: Tensor, kind: str) -> bool:
    if kind == "float":
        return t.dtype.is_floating_point
    if kind == "intbool":
        return t.dtype == torch.bool or (not t.dtype.is_floating_point and not t.dtype.is_complex)
    return not t.dtype.is_complex


def validate_data_sample(
    sample: Any, model_config, *, z1_dim: int | None = None, where: str = "data sample"
) -> dict[str, Tensor]:
    """Check a ``--data_sample`` dict against the model: keys, dtypes, ranks, batch size, shapes, finiteness.

    Every error is a ``ValueError`` naming ``where`` and the field. Returns the dict (tensors, unchanged).
    """
    if not isinstance(sample, dict):
        raise ValueError(f"{where}: must be a dict of tensors, got {type(sample).__name__}")
    unknown = sorted(set(sample) - set(_SAMPLE_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; known: {sorted(_SAMPLE_FIELDS)}")
    for name, (required, kind, rank) in _SAMPLE_FIELDS.items():
        if name not in sample:
            if required:
                raise ValueError(f"{where}: missing required field '{name}'")
            continue
        t = sample[name]
        if not isinstance(t, Tensor):
            raise ValueError(f"{where}: field '{name}' must be a tensor, got {type(t).__name__}")
        if not _dtype_ok(t, kind):
            raise ValueError(f"{where}: field '{name}' must have a {kind} dtype, got {t.dtype}")
        if t.dim() != rank:
            raise ValueError(f"{where}: field '{name}' must have {rank} dims, got shape {tuple(t.shape)}")
        if t.dtype.is_floating_point and not torch.isfinite(t).all():
            raise ValueError(f"{where}: field '{name}' holds non-finite values")
    b = sample["obs_img"].shape[0]
    if b < 1:
        raise ValueError(f"{where}: field 'obs_img' has an empty batch")
    for name, t in sample.items():
        if t.shape[0] != b:
            raise ValueError(f"{where}: field '{name}' has batch {t.shape[0]}, obs_img has {b}")
    w, h = model_config.image_size
    expected = {
        "obs_img": (b, 3 * (model_config.context_size + 1), h, w),
        "goal_img": (b, 3, h, w),
    }
    for name, shape in expected.items():
        if tuple(sample[name].shape) != shape:
            raise ValueError(
                f"{where}: field '{name}' must have shape {list(shape)} for this model, got {list(sample[name].shape)}"
            )
    if "agents" in sample:
        a = sample["agents"]
        if a.shape[1] != model_config.len_traj_pred or a.shape[3] != 2:
            raise ValueError(
                f"{where}: field 'agents' must be [B, T={model_config.len_traj_pred}, K, 2], got {list(a.shape)}"
            )
        if "agents_mask" in sample and sample["agents_mask"].shape != (b, a.shape[2]):
            raise ValueError(
                f"{where}: field 'agents_mask' must be [B, K] = {[b, a.shape[2]]}, got {list(sample['agents_mask'].shape)}"
            )
    elif "agents_mask" in sample:
        raise ValueError(f"{where}: field 'agents_mask' is given without 'agents'")
    if "metric_scale" in sample and not bool((sample["metric_scale"] > 0).all()):
        raise ValueError(f"{where}: field 'metric_scale' must be > 0")
    if "ref_mask" in sample and "ref_traj" not in sample:
        raise ValueError(f"{where}: field 'ref_mask' is given without 'ref_traj'")
    if "z1" in sample and z1_dim is not None and sample["z1"].shape[1] != z1_dim:
        raise ValueError(f"{where}: field 'z1' must be [B, {z1_dim}], got {list(sample['z1'].shape)}")
    return sample


def scenarios_from_sample(
    sample: dict[str, Tensor], metric_scale: float | None, *, fallback: float | None = None
) -> Scenarios:
    """Validated sample -> :class:`Scenarios`. Agents come in spacing units (as the dataset serves them) and are
    converted to metres with ``metric_scale`` (the argument if given, else the sample's field, else ``fallback``;
    ``ValueError`` when none is there)."""
    b = sample["obs_img"].shape[0]
    if metric_scale is not None:
        scale = torch.full((b,), float(metric_scale))
    elif "metric_scale" in sample:
        scale = sample["metric_scale"].float()
    elif fallback is not None:
        scale = torch.full((b,), float(fallback))
    else:
        raise ValueError(
            "data sample has no field 'metric_scale' (metres per spacing unit); pass --metric-scale"
        )
    agents = sample.get("agents")
    if agents is not None:
        agents = agents.float() * scale.view(-1, 1, 1, 1)
    mask = sample.get("agents_mask")
    return Scenarios(
        obs_img=sample["obs_img"].float(),
        goal_img=sample["goal_img"].float(),
        metric_scale=scale,
        goal_mask=sample.get("goal_mask"),
        ref_traj=None if sample.get("ref_traj") is None else sample["ref_traj"].float(),
        ref_mask=None if sample.get("ref_mask") is None else sample["ref_mask"].float(),
        agents=agents,
        agents_mask=None if mask is None else mask.float(),
        z1=None if sample.get("z1") is None else sample["z1"].float(),
    )


def load_data_sample(
    path: str | Path,
    model_config,
    *,
    z1_dim: int | None,
    metric_scale: float | None,
    fallback_scale: Callable[[], MetricScale] | None = None,
) -> Scenarios:
    """Read a ``.pt`` batch with ``torch.load(weights_only=True)``, validate it, and build :class:`Scenarios`.

    Metres per unit: ``metric_scale`` if given, else the sample's ``metric_scale`` field (the data being read),
    else ``fallback_scale()`` (e.g. the checkpoint's training scale), else ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--data_sample file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            raise ValueError(
                f"--data_sample {path} holds pickled Python objects, not only tensors and plain data; loading "
                "it could run code from the file, so it was refused (nothing in it was executed)"
            ) from None
        raise ValueError(f"--data_sample {path} is not a readable torch file (pickle/zip): {err}") from err
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"--data_sample {path} is truncated or corrupt (pickle/zip): {err}") from err
    sample = validate_data_sample(obj, model_config, z1_dim=z1_dim, where=str(path))
    fallback = None
    if metric_scale is None and "metric_scale" not in sample and fallback_scale is not None:
        fallback = fallback_scale().metres_per_unit
    elif metric_scale is None and "metric_scale" in sample:
        print(f"metric scale from {path}'s metric_scale field (the data being read)", file=sys.stderr)
    return scenarios_from_sample(sample, metric_scale, fallback=fallback)


# ------------------------------------------------------------------------------------------------ scenario sources
def dataset_scenarios(
    data_dir: str | Path,
    indices: list[int],
    model_config,
    *,
    split: str = "test",
    seed: int = 0,
    metric_scale: float | None = None,
    waypoint_spacing: int = 1,
    ref_horizon: int = 0,
) -> Scenarios:
    """Samples ``indices`` of ``split`` of a ``--dataset`` folder (layout of ``navintent train --data_dir``),
    goals drawn deterministically from ``seed``. ``waypoint_spacing`` and ``ref_horizon`` must be the
    checkpoint's training values (:class:`navintent.checkpoint.LoadedModel` carries them)."""
    from torch.utils.data import default_collate

    from navintent.data.sources import load_inference_split

    dataset = load_inference_split(
        data_dir,
        split,
        model_config,
        waypoint_spacing=waypoint_spacing,
        ref_horizon=ref_horizon,
        goal_seed=seed,
        what="--dataset",
    )
    bad = [i for i in indices if not 0 <= i < len(dataset)]
    if bad:
        raise ValueError(
            f"--index {bad} out of range: the '{split}' split of {data_dir} has {len(dataset)} samples"
        )
    batch = default_collate([dataset[i] for i in indices])
    sample = validate_data_sample(dict(batch), model_config, where=f"{data_dir} [{split}]")
    sc = scenarios_from_sample(sample, metric_scale)
    sc.names = [f"{split}_{i}" for i in indices]
    return sc


def crossing_pedestrian(num: int, len_traj_pred: int, dt: float, ahead_m: float, speed_mps: float) -> Tensor:
    """Tracks ``[num, len_traj_pred, 1, 2]`` (metres, robot frame at the current pose, x forward, y left) of one
    synthetic pedestrian crossing the robot's path: it walks along ``x = ahead_m`` from the right to the left at
    ``speed_mps`` and is on the robot's axis (y = 0) at the middle waypoint time, i.e. waypoint ``k`` (1-based,
    ``k * dt`` seconds ahead) is at ``y = speed_mps * dt * (k - (len_traj_pred + 1) / 2)``. For steering on data
    that has no other agents (``optimize-z2 --dataset ... --crossing-pedestrian AHEAD SPEED``)."""
    check_positive_int("len_traj_pred", len_traj_pred)
    check_positive_number("dt", dt)
    check_positive_number("ahead_m", ahead_m)
    check_non_negative_number("speed_mps", speed_mps)
    k = torch.arange(1, len_traj_pred + 1, dtype=torch.float32)
    y = speed_mps * dt * (k - (len_traj_pred + 1) / 2)
    track = torch.stack([torch.full_like(y, float(ahead_m)), y], dim=-1)  # [T, 2]
    return track.view(1, len_traj_pred, 1, 2).expand(num, -1, -1, -1).clone()


def add_agents(scenarios: Scenarios, tracks: Tensor) -> Scenarios:
    """``scenarios`` with ``tracks [B, T, K, 2]`` (metres, robot frame) appended to its agents (mask 1)."""
    b, t = scenarios.num, tracks.shape[1]
    if tracks.dim() != 4 or tracks.shape[0] != b or tracks.shape[-1] != 2:
        raise ValueError(f"agent tracks must be [B={b}, T, K, 2], got {tuple(tracks.shape)}")
    mask = torch.ones(b, tracks.shape[2])
    if scenarios.agents is not None:
        if scenarios.agents.shape[1] != t:
            raise ValueError(
                f"agent tracks have T={t} waypoints, the scenarios' agents {scenarios.agents.shape[1]}"
            )
        old_mask = (
            scenarios.agents_mask
            if scenarios.agents_mask is not None
            else torch.ones(b, scenarios.agents.shape[2])
        )
        tracks = torch.cat([scenarios.agents, tracks.to(scenarios.agents)], dim=2)
        mask = torch.cat([old_mask, mask.to(old_mask)], dim=1)
    return dataclasses.replace(scenarios, agents=tracks, agents_mask=mask)


@dataclass
class SimCamera:
    """What :func:`project_waypoints` needs to draw on an observation: the source camera and the crop/resize."""

    hfov_deg: float
    height: float
    source_size: tuple[int, int]
    crop: tuple[int, int, int, int]


def _sim_obstacle_map(
    static, pose: np.ndarray, half: float = 3.0, resolution: float = 0.1, radius: float = 0.2
):
    """Occupancy ``[1, H, W]`` in the robot frame at ``pose``: 1 where the robot disc would touch a wall/obstacle."""
    n = int(round(2 * half / resolution)) + 1
    xs = -half + resolution * np.arange(n)
    gx, gy = np.meshgrid(xs, xs, indexing="xy")  # row i <-> y, column j <-> x
    local = np.stack([gx.ravel(), gy.ravel()], axis=1)
    c, s = np.cos(pose[2]), np.sin(pose[2])
    world = local @ np.array([[c, s], [-s, c]]) + pose[:2]
    occ = (static.clearance(world) < radius).astype(np.float32).reshape(n, n)
    return GridMap(torch.from_numpy(occ).unsqueeze(0), origin=(-half, -half), resolution=resolution)


def sim_scenarios(
    model_config,
    num: int,
    seed: int,
    *,
    metric_scale: float,
    waypoint_spacing: int = 1,
    max_steps: int = 240,
    require_pedestrians: bool = False,
) -> tuple[Scenarios, SimCamera]:
    """Built-in scenarios from the MuJoCo world: scene seeds ``seed, seed + 1, ...``; with
    ``require_pedestrians`` scenes without pedestrians are skipped until ``num`` are found (at most ``20 * num``
    seeds tried). Scene seeds are disjoint from the recorder's, whose seeds are hashed.

    The expert drives each scene; the scenario is the step where a pedestrian's true future (over the
    prediction horizon, only points at least 0.2 m ahead of the robot) comes closest to the robot's current
    position while still >= 0.6 m away (the moment before an interaction in front), or step
    ``context_size * waypoint_spacing`` if no such step exists. Frames are ``waypoint_spacing`` control
    steps apart, as in the dataset a checkpoint trained on: context frames are the rendered camera at the
    previous ``context_size + 1`` frames, the goal image the camera at the goal; agents are the pedestrians'
    positions at the ``len_traj_pred`` waypoint times in the robot frame (metres). ``metric_scale``: metres per
    normalised unit, as :func:`navintent.metric_scale.resolve_metric_scale` gives it for the checkpoint. The
    obstacle map feeds the static-collision term.
    """
    from PIL import Image

    from navintent.data.cache import crop_box, normalize_frames
    from navintent.sim import generate_scene, to_robot_frame
    from navintent.sim.render import SceneRenderer
    from navintent.sim.rollout import run_expert

    check_positive_int("waypoint_spacing", waypoint_spacing)
    check_positive_number("metric_scale", metric_scale)
    ws = waypoint_spacing
    c, t_pred = model_config.context_size, model_config.len_traj_pred
    wp_steps = ws * np.arange(1, t_pred + 1)  # control steps from now to each waypoint
    obs, goals, agents, masks, scales, maps, names = [], [], [], [], [], [], []
    camera = None
    scene_seed = seed
    while len(obs) < num:
        if scene_seed - seed >= 20 * num:
            raise ValueError(
                f"only {len(obs)} of {num} scenes with pedestrians among sim seeds {seed}..{scene_seed - 1}"
            )
        scene = generate_scene(scene_seed)
        scene_seed += 1
        if require_pedestrians and not scene.num_pedestrians:
            continue
        run = run_expert(scene, max_steps=max_steps)
        poses, peds = run.poses, run.agents  # [S+1, 3], [S+1, N, 2]
        scale = float(metric_scale)
        last = len(poses) - 1
        t_best = min(c * ws, last)
        if scene.num_pedestrians and last > c * ws:
            best = math.inf
            for t in range(c * ws, last):
                fut = peds[np.minimum(t + wp_steps, last)]
                local = to_robot_frame(fut.reshape(-1, 2), poses[t])
                ahead = local[local[:, 0] > 0.2]
                d = np.linalg.norm(ahead, axis=-1).min() if len(ahead) else math.inf
                if 0.6 <= d < best:
                    best, t_best = d, t
        future = peds[np.minimum(t_best + wp_steps, last)]  # [T, N, 2]
        width, height = scene.config.camera.image_size
        box = crop_box(width, height)
        frames = []
        with SceneRenderer(scene) as renderer:
            for k in range(t_best - c * ws, t_best + 1, ws):
                k = max(k, 0)
                frames.append(renderer.render(poses[k], peds[k]))
            goal = renderer.goal_image()

        def prep(images: list[np.ndarray], box=box) -> Tensor:
            out = [
                np.asarray(
                    Image.fromarray(im).crop(box).resize(tuple(model_config.image_size), Image.BICUBIC)
                )
                for im in images
            ]
            return torch.from_numpy(normalize_frames(np.stack(out)))

        obs.append(prep(frames))
        goals.append(prep([goal]))
        n_ped = scene.num_pedestrians
        local = (
            to_robot_frame(future.reshape(-1, 2), poses[t_best]).reshape(t_pred, n_ped, 2) if n_ped else None
        )
        agents.append(local)
        masks.append(n_ped)
        scales.append(scale)
        maps.append(_sim_obstacle_map(scene.static, poses[t_best], radius=scene.config.robot.radius))
        names.append(f"sim_seed{scene_seed - 1}_t{t_best}")
        camera = SimCamera(scene.config.camera.hfov_deg, scene.config.camera.height, (width, height), box)
    k_max = max(max(masks), 1)
    agent_t = torch.zeros(num, t_pred, k_max, 2)
    agent_m = torch.zeros(num, k_max)
    for i, (a, n) in enumerate(zip(agents, masks, strict=True)):
        if n:
            agent_t[i, :, :n] = torch.from_numpy(a).float()
            agent_m[i, :n] = 1.0
    grid = GridMap(torch.cat([m.values for m in maps]), maps[0].origin, maps[0].resolution)
    sc = Scenarios(
        obs_img=torch.stack(obs),
        goal_img=torch.stack(goals),
        metric_scale=torch.tensor(scales, dtype=torch.float32),
        agents=agent_t,
        agents_mask=agent_m,
        obstacle_map=grid,
        names=names,
    )
    return sc, camera


# ------------------------------------------------------------------------------------------------ outputs
def _unnormalize(img: Tensor) -> np.ndarray:
    """ImageNet-normalised ``[3, H, W]`` -> uint8 ``[H, W, 3]``."""
    from navintent.data.cache import IMAGENET_MEAN, IMAGENET_STD

    x = img.detach().cpu().numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def project_waypoints(waypoints: np.ndarray, camera: SimCamera, image_size: tuple[int, int]) -> np.ndarray:
    """Robot-frame ground points ``[N, 2]`` (m) -> pixels ``[M, 2]`` on the (cropped, resized) observation,
    for the points at least 5 cm ahead. Pinhole camera at ``camera.height`` looking forward."""
    ahead = waypoints[waypoints[:, 0] > 0.05]
    sw, sh = camera.source_size
    f = (sw / 2) / math.tan(math.radians(camera.hfov_deg) / 2)
    u = sw / 2 - f * ahead[:, 1] / ahead[:, 0]
    v = sh / 2 + f * camera.height / ahead[:, 0]
    left, top, right, bottom = camera.crop
    w, h = image_size
    return np.stack([(u - left) * w / (right - left), (v - top) * h / (bottom - top)], axis=1)


_COLORS = {
    "plain": "0.45",
    "adam": "tab:red",
    "best_of_n": "tab:blue",
    "cem": "tab:green",
    "guided": "tab:purple",
    "noise": "tab:brown",
    "z2+noise": "tab:pink",
}


def plot_scenario(
    path: Path,
    name: str,
    trajectories: dict[str, np.ndarray],
    agents: np.ndarray | None,
    agents_mask: np.ndarray | None,
    observation: np.ndarray,
    camera: SimCamera,
) -> None:
    """Top-down view (robot frame, x forward up, y left to the left) and the waypoints on the observation.

    ``trajectories``: method -> ``[M, T, 2]`` metres; ``agents [T, K, 2]``; ``observation [H, W, 3]`` uint8.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_img) = plt.subplots(1, 2, figsize=(10, 5))
    if agents is not None:
        for k in range(agents.shape[1]):
            if agents_mask is not None and agents_mask[k] < 0.5:
                continue
            ax.plot(-agents[:, k, 1], agents[:, k, 0], "-", color="orange", lw=2)
            ax.plot(-agents[-1, k, 1], agents[-1, k, 0], "o", color="orange", ms=8)
    for method, traj in trajectories.items():
        color = _COLORS.get(method, "k")
        for m in range(traj.shape[0]):
            pts = np.vstack([np.zeros((1, 2)), traj[m]])
            ax.plot(
                -pts[:, 1], pts[:, 0], "-", color=color, lw=1, alpha=0.5, label=method if m == 0 else None
            )
    ax.plot(0, 0, "ks", ms=7)
    ax.set_aspect("equal")
    ax.set_xlabel("-y (m, right)")
    ax.set_ylabel("x (m, forward)")
    ax.set_title(f"{name}: top-down (orange: agents)")
    ax.legend(fontsize=7, loc="best")
    h, w = observation.shape[:2]
    ax_img.imshow(observation)
    for method, traj in trajectories.items():
        for m in range(traj.shape[0]):
            px = project_waypoints(traj[m], camera, (w, h))
            if len(px):
                ax_img.plot(px[:, 0], px[:, 1], ".-", color=_COLORS.get(method, "k"), lw=1, ms=3, alpha=0.7)
    ax_img.set_xlim(0, w)
    ax_img.set_ylim(h, 0)
    ax_img.set_title("waypoints on the current observation")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _scalar_dict(values: dict[str, Tensor], b: int) -> dict[str, float]:
    return {k: float(v[b]) for k, v in values.items()}


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def build_report(
    adapter: DiffusionAdapter,
    results: dict[str, MethodResult],
    on_opt: dict[str, dict[str, Any]],
    on_eval: dict[str, dict[str, Any]],
    meta: dict[str, Any],
    data_range: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """report.json content: per scenario and method, before (= plain) and after values, attack success, seconds.

    ``attack_success_rate``: fraction of the fresh evaluation draws whose trajectory comes within
    ``success_radius`` of an agent; ``attack_success``: that rate is at least 0.5. ``before`` is ``plain``
    (z2_0, no steering), ``after`` is ``adam``. The same metrics on the optimisation draws carry ``_opt_draws``
    (``min_distance_opt_draws``, ``attack_success_rate_opt_draws``, ``realism_opt_draws``): the only draws a noise
    method's result exists for (``optimises_noise``: True for :data:`NOISE_METHODS`; on fresh draws ``noise`` is
    plain sampling by construction). Realism includes ``noise_nll`` / ``noise_norm_z`` of the noise sampled from.
    ``summary``: per method the means over scenarios (objective, realism terms, minimum distance, attack success
    rate; on fresh draws and ``*_opt_draws_mean`` on the optimisation draws) and the seconds spent. With
    ``data_range`` (:func:`navintent.realism.data_realism_range`): ``realism_range`` in the report, per row
    ``realism_in_data_range`` (gated term -> bool; ``realism_in_data_range_opt_draws`` likewise) and per method
    ``in_data_range_rate`` (fraction of scenarios with every gated term inside; ``in_data_range_rate_opt_draws``).
    """
    from navintent.realism import in_data_range

    scenarios = []
    for b, name in enumerate(adapter.scenarios.names):
        entry: dict[str, Any] = {
            "name": name,
            "metric_scale": float(adapter.scenarios.metric_scale[b]),
            "methods": {},
        }
        for method, res in results.items():
            e, o = on_eval[method], on_opt[method]
            row = {
                "optimises_noise": method in NOISE_METHODS,
                "objective_opt_draws": float(o["objective"][b]),
                "objective_eval_draws": float(e["objective"][b]),
                "terms_eval_draws": _scalar_dict(e["terms"], b),
                "realism_eval_draws": _scalar_dict(e["realism"], b),
                "realism_opt_draws": _scalar_dict(o["realism"], b),
                "seconds": res.seconds,
                "evaluations": res.evaluations,
                "z2_norm": float(res.z2[b].norm()),
            }
            if "min_distance" in e:
                row["min_distance_eval_draws"] = _finite_or_none(float(e["min_distance"][b]))
                row["attack_success_rate"] = float(e["attack_success_rate"][b])
                row["min_ttc_eval_draws"] = _finite_or_none(float(e["min_ttc"][b]))
                row["min_distance_opt_draws"] = _finite_or_none(float(o["min_distance"][b]))
                row["attack_success_rate_opt_draws"] = float(o["attack_success_rate"][b])
            if res.guide_scale is not None:
                row["guide_scale"] = float(res.guide_scale[b])
            if data_range is not None:
                row["realism_in_data_range"] = in_data_range(row["realism_eval_draws"], data_range)
                row["realism_in_data_range_opt_draws"] = in_data_range(row["realism_opt_draws"], data_range)
            entry["methods"][method] = row
        before = entry["methods"]["plain"]
        for row in entry["methods"].values():
            row["objective_change_eval_draws"] = row["objective_eval_draws"] - before["objective_eval_draws"]
            if "attack_success_rate" in row:
                row["attack_success"] = row["attack_success_rate"] >= 0.5
        entry["before"] = before
        entry["after"] = entry["methods"].get("adam", before)
        scenarios.append(entry)
    summary = {}
    for method in results:
        rows = [s["methods"][method] for s in scenarios]
        summary[method] = {
            "optimises_noise": method in NOISE_METHODS,
            "objective_eval_draws_mean": float(np.mean([r["objective_eval_draws"] for r in rows])),
            "objective_opt_draws_mean": float(np.mean([r["objective_opt_draws"] for r in rows])),
            "realism_eval_draws_mean": {
                name: float(np.mean([r["realism_eval_draws"][name] for r in rows]))
                for name in rows[0]["realism_eval_draws"]
            },
            "realism_opt_draws_mean": {
                name: float(np.mean([r["realism_opt_draws"][name] for r in rows]))
                for name in rows[0]["realism_opt_draws"]
            },
            "seconds": results[method].seconds,
        }
        if data_range is not None:
            for suffix in ("", "_opt_draws"):
                summary[method][f"in_data_range_rate{suffix}"] = float(
                    np.mean([all(r[f"realism_in_data_range{suffix}"].values()) for r in rows])
                )
        for draws, dist_key, rate_key in (
            ("eval", "min_distance_eval_draws", "attack_success_rate"),
            ("opt", "min_distance_opt_draws", "attack_success_rate_opt_draws"),
        ):
            dists = [r.get(dist_key) for r in rows]
            dists = [d for d in dists if d is not None]
            if dists:
                summary[method][f"{dist_key}_mean"] = float(np.mean(dists))
                key = "attack_success_rate_mean" if draws == "eval" else "attack_success_rate_opt_draws_mean"
                summary[method][key] = float(np.mean([r[rate_key] for r in rows]))
    extra = {} if data_range is None else {"realism_range": data_range}
    return {**meta, **extra, "summary": summary, "scenarios": scenarios}


# ------------------------------------------------------------------------------------------------ CLI
def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ckpt", required=True, help="checkpoint: native navintent .pt, or packaged with --trust-checkpoint"
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--data_sample",
        "--data-sample",
        dest="data_sample",
        default=None,
        help=".pt dict with the seed's batch fields (obs_img, goal_img, ... [agents, agents_mask, metric_scale, z1])",
    )
    src.add_argument(
        "--dataset",
        default=None,
        help="data root (layout of `navintent train --data_dir`) or a config YAML whose datasets: block names the data",
    )
    p.add_argument(
        "--index", type=int_at_least(0), nargs="+", default=[0], help="sample indices of --dataset's split"
    )
    p.add_argument("--split", default="test", help="split of --dataset (default test)")
    p.add_argument(
        "--crossing-pedestrian",
        nargs=2,
        type=float_at_least(0.0),
        metavar=("AHEAD_M", "SPEED_MPS"),
        default=None,
        help="add a synthetic pedestrian to --dataset / --data_sample scenarios: it crosses the robot's path "
        "AHEAD_M metres ahead, right to left at SPEED_MPS, on the axis at mid-horizon (for data without agents)",
    )
    p.add_argument(
        "--num-scenarios",
        type=int_at_least(1),
        default=1,
        help="built-in sim scenarios (scenes with pedestrians, from sim seed --seed on) when no data is given",
    )
    p.add_argument("--steps", type=int, default=100, help="Adam steps on z2")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    p.add_argument(
        "--objective", default=DEFAULT_OBJECTIVE, help="'name:weight[@k=v;...],...' (navintent.objectives)"
    )
    p.add_argument(
        "--method",
        default="adam",
        help=f"comma list of {list(METHODS)} or 'all'; baselines get the Adam run's wall-clock budget "
        "(noise / z2+noise optimise the diffusion noise: their result exists on the optimisation draws only)",
    )
    p.add_argument(
        "--budget",
        type=float_at_least(0.0),
        default=None,
        help="seconds per baseline (default: Adam's time; 10 s without adam)",
    )
    p.add_argument(
        "--out-dir", default=".", help="output folder (z2_optimized.pt, report.json, trajectories.pt, PNGs)"
    )
    p.add_argument("--draws", type=int, default=8, help="noise draws per scenario during optimisation")
    p.add_argument("--eval-draws", type=int, default=16, help="fresh noise draws for the final evaluation")
    p.add_argument("--seed", type=int, default=0, help="noise, prior z1 and sim scene seed")
    p.add_argument(
        "--trust-checkpoint", action="store_true", help="allow unpickling a packaged checkpoint (runs code)"
    )
    p.add_argument("--lambda-cfg", type=float, default=0.0, help="classifier-free guidance weight")
    p.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm")
    p.add_argument("--inference-steps", type=int, default=0, help="denoising steps (0 = the scheduler's)")
    p.add_argument("--clip", choices=CLIP_MODES, default="straight_through")
    p.add_argument(
        "--space",
        choices=SPACES,
        default="auto",
        help="search coordinates of adam/cem: whitened by the training z2 covariance, or raw z2 "
        "(auto: whitened when the checkpoint has z2_stats)",
    )
    p.add_argument(
        "--dt",
        type=float_at_least(0.0, strict=True),
        default=None,
        help="seconds between waypoints for the dynamics terms (default 0.25 x the checkpoint's waypoint_spacing)",
    )
    p.add_argument(
        "--normalize-grad", action="store_true", help="per-scenario unit-norm gradient before Adam"
    )
    p.add_argument(
        "--patience", type=int, default=0, help="early stopping after N steps without improvement (0 = off)"
    )
    p.add_argument("--cem-population", type=int, default=16, help="CEM candidates per iteration")
    add_noise_arguments(p)
    p.add_argument(
        "--guide-scales",
        type=float,
        nargs="+",
        default=list(Z2OptimConfig.guide_scales),
        help="guidance scales the guided baseline tries first",
    )
    p.add_argument("--success-radius", type=float, default=0.5, help="attack success distance (m)")
    add_metric_scale_arguments(p)
    p.add_argument(
        "--z1",
        choices=("data", "prior"),
        default=None,
        help="z1 source: Encoder1 mean on the data (default with data) or a prior sample (default without)",
    )
    p.add_argument(
        "--camera-hfov",
        type=float_in(0.0, 179.0, low_open=True),
        default=100.0,
        help="horizontal fov (deg) for drawing on data images",
    )
    p.add_argument(
        "--camera-height",
        type=float_at_least(0.0, strict=True),
        default=0.45,
        help="camera height (m) for drawing on data images",
    )
    p.add_argument(
        "--realism-data",
        default=None,
        metavar="DATA",
        help="the checkpoint's training data (data root or config with datasets:): measure the realism range on its test split (navintent.realism) "
        "and flag each method's z2_nll and dynamics against it in report.json",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--no-plots", action="store_true")


def add_noise_arguments(p: argparse.ArgumentParser) -> None:
    """``--noise-lr``, ``--noise-nll-weight``, ``--noise-space`` (the noise methods' settings, defaults of
    :class:`Z2OptimConfig`), shared by ``optimize-z2`` and ``evaluate``."""
    p.add_argument(
        "--noise-lr",
        type=float_at_least(0.0, strict=True),
        default=Z2OptimConfig.noise_lr,
        help="Adam learning rate on the diffusion noise (methods noise, z2+noise; N(0, 1) units)",
    )
    p.add_argument(
        "--noise-nll-weight",
        type=float_at_least(0.0),
        default=Z2OptimConfig.noise_nll_weight,
        help="weight of the noise realism term noise_nll (chi NLL of the noise norm, nats) in the noise methods' loss",
    )
    p.add_argument(
        "--noise-space",
        choices=NOISE_SPACES,
        default=Z2OptimConfig.noise_space,
        help="noise the noise methods optimise and the noise realism measures: all (x_T and every step noise) or x_T",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "optimize-z2",
        help="optimise z2 through the full diffusion sampler against a task objective (+ baselines)",
        description=__doc__.split("\n\n")[0],
    )
    _add_arguments(p)
    p.set_defaults(func=run_cli)


def _methods(text: str) -> tuple[str, ...]:
    if text == "all":
        return METHODS
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = sorted(set(names) - set(METHODS))
    if unknown or not names:
        raise ValueError(f"--method: unknown {unknown or text!r}; choose from {list(METHODS)} or 'all'")
    return names


# Below this relative effect of z2 on the denoiser's condition (see latent_effect), optimize-z2 warns.
LATENT_EFFECT_WARNING = 1e-2


def latent_effect(model: nn.Module, cond: Tensor, z2: Tensor) -> float:
    """How much z2 moves the denoiser's condition: the mean over rows of ``|z_proj(z2) - z_proj(0)| / |cond|``
    (``cond [B, E]`` from the vision encoder, ``z2 [B, z_dim]``). 0 for a zero-initialised ``z_proj``."""
    with torch.no_grad():
        shift = model.z_proj(z2) - model.z_proj(torch.zeros_like(z2))
        return float((shift.norm(dim=-1) / cond.norm(dim=-1).clamp_min(1e-12)).mean())


def run_cli(args: argparse.Namespace) -> int:
    methods = _methods(args.method)
    config = Z2OptimConfig(
        steps=args.steps,
        lr=args.lr,
        normalize_grad=args.normalize_grad,
        patience=args.patience,
        draws=args.draws,
        eval_draws=args.eval_draws,
        sampler=args.sampler,
        inference_steps=args.inference_steps,
        clip=args.clip,
        space=args.space,
        lambda_cfg=args.lambda_cfg,
        success_radius=args.success_radius,
        cem_population=args.cem_population,
        guide_scales=tuple(args.guide_scales),
        noise_lr=args.noise_lr,
        noise_nll_weight=args.noise_nll_weight,
        noise_space=args.noise_space,
    )
    objective = Objective(args.objective)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    torch.manual_seed(args.seed)
    loaded = load_inference_model(args.ckpt, trust_checkpoint=args.trust_checkpoint, device=device)
    model, stats = loaded.model, loaded.z2_stats
    if config.space == "whitened" and stats is None:
        raise ValueError(
            f"--space whitened needs the checkpoint's z2_stats (written by navintent train); {args.ckpt} has "
            "none: use --space z2 or auto"
        )
    config = config.replace(dt=loaded.waypoint_dt if args.dt is None else args.dt)
    data_range = None
    if args.realism_data is not None:
        from navintent.realism import data_realism_range

        if not Path(args.realism_data).exists():
            raise FileNotFoundError(f"--realism-data {args.realism_data} does not exist")
        data_range = data_realism_range(loaded, args.realism_data, seed=args.seed, what="--realism-data")
    mc = model.config
    z1_dim = getattr(model, "z1_dim", None)
    if args.data_sample is not None:
        scenarios = load_data_sample(
            args.data_sample,
            mc,
            z1_dim=z1_dim,
            metric_scale=metric_scale_for_command(args).metres_per_unit if args.metric_scale else None,
            fallback_scale=lambda: metric_scale_for_command(args, checkpoint=loaded.training_scales),
        )
        camera = SimCamera(args.camera_hfov, args.camera_height, tuple(mc.image_size), (0, 0, *mc.image_size))
        default_z1 = "data"
    elif args.dataset is not None:
        data_scales = data_dir_scales(args.dataset, loaded.waypoint_spacing, what="--dataset")
        scale = metric_scale_for_command(args, checkpoint=loaded.training_scales, data=data_scales)
        scenarios = dataset_scenarios(
            args.dataset,
            args.index,
            mc,
            split=args.split,
            seed=args.seed,
            metric_scale=scale.metres_per_unit,
            waypoint_spacing=loaded.waypoint_spacing,
            ref_horizon=loaded.ref_horizon,
        )
        camera = SimCamera(args.camera_hfov, args.camera_height, tuple(mc.image_size), (0, 0, *mc.image_size))
        default_z1 = "data"
    else:
        scale = metric_scale_for_command(args, checkpoint=loaded.training_scales)
        scenarios, camera = sim_scenarios(
            mc,
            args.num_scenarios,
            args.seed,
            waypoint_spacing=loaded.waypoint_spacing,
            metric_scale=scale.metres_per_unit,
            require_pedestrians=True,
        )
        default_z1 = "prior"
    if args.crossing_pedestrian is not None:
        if args.dataset is None and args.data_sample is None:
            raise ValueError(
                "--crossing-pedestrian adds a pedestrian to --dataset or --data_sample scenarios; the built-in "
                "sim scenarios have their own"
            )
        ahead, speed = args.crossing_pedestrian
        tracks = crossing_pedestrian(scenarios.num, mc.len_traj_pred, config.dt, ahead, speed)
        scenarios = add_agents(scenarios, tracks)
    z1_mode = args.z1 or default_z1
    if z1_dim is not None and scenarios.z1 is None and z1_mode == "prior":
        gen = torch.Generator().manual_seed(args.seed)
        scenarios.z1 = torch.randn(scenarios.num, z1_dim, generator=gen)
    sampler = build_sampler(
        model.scheduler_config,
        kind=config.sampler,
        num_inference_steps=config.inference_steps or None,
        clip=config.clip,
        eta=config.eta,
    )
    gen = torch.Generator(device=device).manual_seed(args.seed)
    adapter = DiffusionAdapter(
        model,
        scenarios,
        objective,
        sampler=sampler,
        draws=config.draws,
        lambda_cfg=config.lambda_cfg,
        dt=config.dt,
        z2_stats=stats,
        generator=gen,
        noise_space=config.noise_space,
    )
    effect = latent_effect(model, adapter.cond, adapter.z2_init)
    if effect < LATENT_EFFECT_WARNING and any(m in Z2_METHODS for m in methods):
        print(
            f"warning: z2 barely changes this policy: z_proj(z2) moves the denoiser's condition by {100 * effect:.2g}% "
            f"of its norm (max |z_proj weight| {float(model.z_proj.weight.abs().max()):.3g}); steering z2 cannot move "
            "its samples, so the z2 methods will return their start. Train longer (the latent path learns from zero).",
            file=sys.stderr,
        )
    try:
        results = run_methods(adapter, config, methods, budget_s=args.budget, seed=args.seed)
        eval_noise = adapter.draw_noise(
            config.eval_draws, torch.Generator(device=device).manual_seed(args.seed + 1)
        )
        on_opt = {k: evaluate_method(adapter, r, None, config.success_radius) for k, r in results.items()}
        on_eval = {
            k: evaluate_method(adapter, r, eval_noise, config.success_radius) for k, r in results.items()
        }
    except NonFiniteObjectiveError as err:  # nothing written: a report of NaNs would mislead
        print(f"navintent optimize-z2: error: {err}", file=sys.stderr)
        return 3

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    z2_final = results["adam"].z2 if "adam" in results else adapter.z2_init
    torch.save(z2_final.detach().cpu(), out / "z2_optimized.pt")
    trajectories: dict[str, Any] = {
        ("nominal" if k == "plain" else "optimized" if k == "adam" else k): v["waypoints"].cpu()
        for k, v in on_opt.items()
    }
    trajectories["eval"] = {k: v["waypoints"].cpu() for k, v in on_eval.items()}
    trajectories["z2"] = {k: r.z2.detach().cpu() for k, r in results.items()}
    trajectories["optimized_noise"] = {
        k: {"x_T": r.noise.x_T.cpu(), "steps": r.noise.steps.cpu()}
        for k, r in results.items()
        if r.noise is not None
    }
    trajectories["agents"] = None if scenarios.agents is None else scenarios.agents.cpu()
    trajectories["agents_mask"] = None if scenarios.agents_mask is None else scenarios.agents_mask.cpu()
    trajectories["names"] = list(scenarios.names)
    torch.save(trajectories, out / "trajectories.pt")
    meta = {
        "arguments": {k: v for k, v in vars(args).items() if k != "func"},
        "ckpt": str(args.ckpt),
        "objective": str(objective),
        "methods": list(results),
        "config": config.to_dict(),
        "z1": z1_mode,
        "z2_stats": stats is not None,
        "space": adapter.resolve_space(config.space),
        "waypoint_spacing": loaded.waypoint_spacing,
        "device": str(device),
    }
    report = build_report(adapter, results, on_opt, on_eval, meta, data_range)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    if not args.no_plots:
        for b, name in enumerate(scenarios.names):
            trajs = {k: v["waypoints"][b].cpu().numpy() for k, v in on_opt.items()}
            plot_scenario(
                out / f"{name}.png",
                name,
                trajs,
                None if scenarios.agents is None else scenarios.agents[b].cpu().numpy(),
                None if scenarios.agents_mask is None else scenarios.agents_mask[b].cpu().numpy(),
                _unnormalize(scenarios.obs_img[b, -3:]),
                camera,
            )
    for method, row in report["summary"].items():
        extra = ""
        if "min_distance_eval_draws_mean" in row:
            extra = (
                f"  min-dist {row['min_distance_opt_draws_mean']:.3f} m / success "
                f"{row['attack_success_rate_opt_draws_mean']:.2f} on the optimisation draws, "
                f"{row['min_distance_eval_draws_mean']:.3f} m / {row['attack_success_rate_mean']:.2f} on fresh ones"
                + (" (plain sampling there by construction)" if method == "noise" else "")
            )
        if "in_data_range_rate" in row:
            extra += f"  realism in data range {100 * row['in_data_range_rate']:.0f}%"
        print(
            f"{method:>10}: objective {row['objective_eval_draws_mean']:.4f}{extra}  ({row['seconds']:.1f} s)"
        )
    print(
        f"wrote {out / 'z2_optimized.pt'}, report.json, trajectories.pt"
        + ("" if args.no_plots else ", PNG plots")
    )
    return 0
