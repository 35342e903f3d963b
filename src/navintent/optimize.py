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
- ``plain``: z2_0 and the fixed draws, no steering (NoMaD sampling with the encoder's intent).

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
from navintent.diffusion import CLIP_MODES, DifferentiableSampler, SamplerNoise, build_sampler, policy_eps_fn
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
)

METHODS: tuple[str, ...] = ("adam", "best_of_n", "cem", "guided", "plain")
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
    stores z2_stats, else z2); see the module docstring.
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

    def __post_init__(self) -> None:
        for name in ("steps", "draws", "eval_draws", "cem_population", "eval_chunk"):
            check_positive_int(name, getattr(self, name))
        for name in ("patience", "inference_steps"):
            check_non_negative_int(name, getattr(self, name))
        for name in ("lr", "dt", "success_radius", "prior_std"):
            check_positive_number(name, getattr(self, name))
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
    of training z2 or None. Noise for ``draws`` per scenario comes from ``generator``.
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
    ) -> None:
        if model.training:
            raise ValueError("DiffusionAdapter needs the model in eval mode (dropout off): call model.eval()")
        self.model = model
        self.objective = objective
        self.sampler = sampler
        self.draws = int(draws)
        self.lambda_cfg = float(lambda_cfg)
        self.dt = float(dt)
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

    def realism(self, out: LossOutput, z2: Tensor) -> dict[str, Tensor]:
        """Realism terms available for these scenarios, averaged over draws ``name -> [B]``."""
        names = ["z2_encoder", "dynamics"]
        if self.z2_stats is not None:
            names.append("z2_nll")
        if self.z1 is not None:
            names.append("z1_nll")
        if self.scenarios.obstacle_map is not None:
            names.append("static_collision")
        r, m = out.waypoints.shape[:2]
        rows = self._all.repeat_interleave(m)
        ctx = self.context.select(rows).replace(z2=z2.repeat_interleave(m, 0))
        wp = out.waypoints.flatten(0, 1)
        return {n: TERMS[n](wp, ctx).view(r, m).mean(1) for n in names if n in REALISM_TERMS}


# ------------------------------------------------------------------------------------------------ methods
@dataclass
class MethodResult:
    """One method's outcome: z2 ``[B, z]`` (z2_0 for guided/plain), guidance scale ``[B]`` (guided only),
    best loss on the optimisation draws ``[B]``, seconds spent, sampler evaluations, loss history."""

    name: str
    z2: Tensor
    loss: Tensor
    seconds: float
    evaluations: int
    guide_scale: Tensor | None = None
    history: list[float] = field(default_factory=list)


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


def run_methods(
    adapter: DiffusionAdapter,
    config: Z2OptimConfig,
    methods: tuple[str, ...] = METHODS,
    *,
    budget_s: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, MethodResult]:
    """Run ``methods``; baselines get ``budget_s`` seconds each (default: the Adam run's time, or 10 s without it)."""
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
    return {k: results[k] for k in METHODS if k in results and (k in methods or k == "plain")}


@torch.no_grad()
def evaluate_method(
    adapter: DiffusionAdapter, result: MethodResult, noise: SamplerNoise | None, success_radius: float
) -> dict[str, Any]:
    """Objective, its terms, realism terms and agent metrics of one method on ``noise`` (None: the fixed draws).

    Returns tensors per scenario: ``objective [B]``, ``terms``, ``realism`` (name -> ``[B]``), ``min_distance``
    ``[B]`` (mean over draws of each draw's minimum robot-agent distance; inf without agents),
    ``attack_success_rate [B]`` (fraction of draws within ``success_radius``), ``min_ttc [B]`` (smallest
    constant-velocity time to collision over draws, waypoints and agents, s), ``waypoints [B, M, T, 2]``.
    """
    if result.name == "guided":
        out = adapter.guided(result.guide_scale, noise=noise)
    else:
        out = adapter.loss_given_z2(result.z2, noise=noise)
    b, m = out.waypoints.shape[:2]
    metrics: dict[str, Any] = {
        "objective": out.loss,
        "terms": out.terms,
        "realism": adapter.realism(out, result.z2),
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
    (z2_0, no steering), ``after`` is ``adam``. ``summary``: per method the means over scenarios (objective,
    realism terms, minimum distance, attack success rate) and the seconds spent. With ``data_range``
    (:func:`navintent.realism.data_realism_range`): ``realism_range`` in the report, per row
    ``realism_in_data_range`` (gated term -> bool) and per method ``in_data_range_rate`` (fraction of scenarios
    with every gated term inside).
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
                "objective_opt_draws": float(o["objective"][b]),
                "objective_eval_draws": float(e["objective"][b]),
                "terms_eval_draws": _scalar_dict(e["terms"], b),
                "realism_eval_draws": _scalar_dict(e["realism"], b),
                "seconds": res.seconds,
                "evaluations": res.evaluations,
                "z2_norm": float(res.z2[b].norm()),
            }
            if "min_distance" in e:
                row["min_distance_eval_draws"] = _finite_or_none(float(e["min_distance"][b]))
                row["attack_success_rate"] = float(e["attack_success_rate"][b])
                row["min_ttc_eval_draws"] = _finite_or_none(float(e["min_ttc"][b]))
            if res.guide_scale is not None:
                row["guide_scale"] = float(res.guide_scale[b])
            if data_range is not None:
                row["realism_in_data_range"] = in_data_range(row["realism_eval_draws"], data_range)
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
            "objective_eval_draws_mean": float(np.mean([r["objective_eval_draws"] for r in rows])),
            "realism_eval_draws_mean": {
                name: float(np.mean([r["realism_eval_draws"][name] for r in rows]))
                for name in rows[0]["realism_eval_draws"]
            },
            "seconds": results[method].seconds,
        }
        if data_range is not None:
            summary[method]["in_data_range_rate"] = float(
                np.mean([all(r["realism_in_data_range"].values()) for r in rows])
            )
        dists = [r.get("min_distance_eval_draws") for r in rows]
        dists = [d for d in dists if d is not None]
        if dists:
            summary[method]["min_distance_eval_draws_mean"] = float(np.mean(dists))
            summary[method]["attack_success_rate_mean"] = float(
                np.mean([r["attack_success_rate"] for r in rows])
            )
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
        help=f"comma list of {list(METHODS)} or 'all'; baselines get the Adam run's wall-clock budget",
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
            extra = f"  min-dist {row['min_distance_eval_draws_mean']:.3f} m  success {row['attack_success_rate_mean']:.2f}"
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
