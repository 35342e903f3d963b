"""A policy, its scenarios and an objective bound together: the differentiable problem every method searches.

Owns :class:`DiffusionAdapter` (the vision condition cached once, the noise draws fixed, the task loss of a latent
through the FULL reverse diffusion of :mod:`navintent.diffusion`, the realism terms, the z2 prior and the search
coordinates), :class:`LossOutput`, :class:`NonFiniteObjectiveError`, :func:`frozen` and :func:`latent_effect`.

Structure of one evaluation (B scenarios x M noise draws, one graph):

- the vision condition and the tokens are computed ONCE per scenario (no gradient: they do not depend on z2);
- z2 ``[B, z]`` is repeated to ``[B*M, z]``; every denoising step is ONE U-Net call over the whole batch
  (with CFG, cond and uncond rows share that call inside the policy);
- the objective is evaluated per draw on metric robot-frame waypoints and averaged over the M draws, so each
  scenario's loss depends only on its own z2 and summing over scenarios gives independent gradients.

z2_0 (the default start of every method) is Encoder2(z1, current observation) for a two-stage model, zeros for a
policy without encoders.

Search coordinates (``Z2OptimConfig.space``, :meth:`DiffusionAdapter.search_basis`). ``z2``: Adam and CEM move z2
itself. ``whitened`` (the default when the checkpoint stores ``z2_stats``): they move ``u`` with
``z2 = z2_0 + u @ (V sqrt(diag(lam)))^T``, where ``V diag(lam) V^T`` is the covariance of training z2, so one unit
of ``u`` is one data standard deviation along each principal direction. Decision, from a measured failure:
Encoder2 maps an 8-dimensional z1 (plus the observation) to a 16-dimensional z2, so the fitted covariance has
eigenvalues near 1e-4 next to ones near 1-8; Adam's per-coordinate steps in raw z2 leave that thin data subspace at
once, and a ``z2_nll`` penalty strong enough to pull them back is a cliff that stops Adam moving at all. In whitened
coordinates Adam's steps are scaled to the data, so the optimised z2 stays where training z2 lives without a
dominating penalty.

``DiffusionAdapter.loss_given_z2(z2)`` is the task loss of a latent with full sampling; it returns per-scenario
losses, the per-term values and the waypoints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor, nn

from navintent.diffusion import NOISE_SPACES, DifferentiableSampler, SamplerNoise, policy_eps_fn
from navintent.errors import NumericalStopError
from navintent.objectives import (
    REALISM_TERMS,
    TERMS,
    Objective,
    ObjectiveContext,
    deltas_to_metric,
    noise_block_nll,
    noise_nll,
    noise_norm_z,
)
from navintent.steering.config import SPACES
from navintent.steering.scenarios import Scenarios

# Below this relative effect of z2 on the denoiser's condition (see latent_effect), optimize warns.
LATENT_EFFECT_WARNING = 1e-2


class NonFiniteObjectiveError(NumericalStopError):
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

    def _sample(
        self, z2: Tensor, sid: Tensor, noise: SamplerNoise | None
    ) -> tuple[Tensor, Tensor, Tensor, int]:
        """Full sampling of latents ``z2 [len(sid), z]`` for scenarios ``sid``: waypoints (m) of every row, the
        latent and scenario of each row, and the draws per scenario ``m``."""
        noise, m = self._noise_rows(self.noise if noise is None else noise, sid)
        rows = sid.repeat_interleave(m)
        z_rows = z2.repeat_interleave(m, 0)
        eps_fn = policy_eps_fn(self.model, self.cond[rows], z_rows, lambda_cfg=self.lambda_cfg)
        return self.to_metric(self.sampler.sample(eps_fn, noise), rows), z_rows, rows, m

    def _run(self, z2: Tensor, sid: Tensor, noise: SamplerNoise | None) -> LossOutput:
        waypoints, z_rows, rows, m = self._sample(z2, sid, noise)
        return self._evaluate(waypoints, z_rows, rows, sid.shape[0], m)

    # --- public -------------------------------------------------------------------------------------
    @torch.no_grad()
    def plans(self, z2: Tensor) -> Tensor:
        """Waypoints ``[B, M, T, 2]`` (m, robot frame) that latents ``z2 [B, z_dim]`` give on the fixed draws,
        without evaluating the objective (e.g. the nominal plan a ``deviation`` term compares against)."""
        if z2.shape != self.z2_init.shape:
            raise ValueError(f"z2 must have shape {tuple(self.z2_init.shape)}, got {tuple(z2.shape)}")
        waypoints, _, _, m = self._sample(z2, self._all, None)
        return waypoints.view(self.num, m, self.horizon, -1)

    def loss_given_z2(self, z2: Tensor, *, noise: SamplerNoise | None = None) -> LossOutput:
        """Task loss of latents ``z2 [B, z_dim]`` through full sampling; differentiable in z2.

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
        """``k`` prior z2 samples per scenario ``[k, B, z]``: from the Gaussian fitted to training z2 (the
        checkpoint's ``z2_stats``), else Encoder2(z1 ~ N(0, I)), else (a plain policy) N(0, prior_std^2 I)."""
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

    def guided(
        self, scale: float | Tensor, *, noise: SamplerNoise | None = None, z2: Tensor | None = None
    ) -> LossOutput:
        """Guided sampling (CTG-style) against the objective with z2 ``[B, z]`` held fixed (None: z2_0); ``scale``
        float or ``[B]``; ``noise`` as in :meth:`loss_given_z2`."""
        noise, m = self._noise_rows(self.noise if noise is None else noise, self._all)
        rows = self._all.repeat_interleave(m)
        z_rows = (self.z2_init if z2 is None else z2).repeat_interleave(m, 0)
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


def latent_effect(model: nn.Module, cond: Tensor, z2: Tensor) -> float:
    """How much z2 moves the denoiser's condition: the mean over rows of ``|z_proj(z2) - z_proj(0)| / |cond|``
    (``cond [B, E]`` from the vision encoder, ``z2 [B, z_dim]``). 0 for a zero-initialised ``z_proj``."""
    with torch.no_grad():
        shift = model.z_proj(z2) - model.z_proj(torch.zeros_like(z2))
        return float((shift.norm(dim=-1) / cond.norm(dim=-1).clamp_min(1e-12)).mean())
