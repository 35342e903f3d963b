"""The steering methods: each searches one :class:`navintent.steering.adapter.DiffusionAdapter` from a start point.

Every method takes an explicit start: ``start`` (z2 ``[B, z]``; None = the adapter's z2_0, Encoder2's output) and,
for the noise methods, ``start_noise`` (a :class:`navintent.diffusion.SamplerNoise` of ``B * M`` rows; None = the
adapter's fixed optimisation draws). A closed loop passes the previous plan's result there to warm-start; the
realism anchor (``z2_encoder``) stays the adapter's z2_0 either way.

- ``adam``: Adam on z2 in the search coordinates (optionally with per-scenario normalised gradients); the best z2
  seen per scenario is kept; early stopping when no scenario improved by ``min_delta`` for ``patience`` steps.
- ``best_of_n``: prior z2 samples (:meth:`DiffusionAdapter.prior_z2`) evaluated on the same fixed draws, the best
  kept.
- ``cem``: cross-entropy method over z2 (diagonal Gaussian in the search coordinates, started at the start point
  with the prior's spread).
- ``guided``: per-step guidance on the noisy sample (CTG-style, :meth:`DifferentiableSampler.guided_sample`) with
  z2 held at the start; it sweeps guidance scales (the configured ladder, then log-uniform draws inside it) and
  keeps the best per scenario.
- ``noise``: Diffusion Noise Optimization (DNO; Karunratanakul et al., "Optimizing Diffusion Noise Can Serve As
  Universal Motion Priors", CVPR 2024) as the noise-space baseline: z2 stays at the start (Encoder2's output; 0
  for a plain policy, which is NoMaD exactly since ``z_proj`` is zero-initialised) and the noise of each
  optimisation draw is optimised with Adam (``noise_lr``) through the same sampler against the same objective plus
  ``noise_nll_weight * noise_nll`` (:func:`navintent.objectives.noise_nll`: the chi negative log-likelihood of the
  noise vector's norm, which keeps the noise on the shell where N(0, I) draws lie), averaged over draws. Which
  noise (``noise_space``): ``all`` (default) = ``x_T`` and every per-step noise the sampler adds; ``x_T`` = the
  initial noise only. Decision: DNO optimises ``x_T`` of a deterministic ODE sampler, where ``x_T`` is all of the
  randomness; NoMaD samples with DDPM, which adds noise after every step but the last, so with ``x_T`` alone part
  of the sample's randomness stays out of reach and the baseline would be handicapped. ``all`` gives it every
  degree of freedom the sampler has, and the realism term then covers the whole noise the sample depends on.
  The best noise per scenario is kept; runs for the budget (>= 1 step).
- ``z2+noise``: Adam on z2 (``space`` coordinates, ``lr``) and on the noise (``noise_lr``) together, the same loss.
- ``plain``: the start z2 and the fixed draws, no steering (NoMaD sampling with the encoder's intent).

A noise-optimised result exists only for its own optimisation draws: it cannot transfer to fresh draws by
construction (on fresh draws ``noise`` IS plain sampling, and ``z2+noise`` keeps only its z2).

:func:`run_methods` runs a set of them with the baselines given the Adam run's wall-clock budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm import tqdm

from navintent.diffusion import SamplerNoise
from navintent.steering.adapter import DiffusionAdapter, NonFiniteObjectiveError, frozen
from navintent.steering.config import METHODS, NOISE_METHODS, Z2OptimConfig


@dataclass
class MethodResult:
    """One method's outcome: z2 ``[B, z]`` (the start for guided/plain/noise), guidance scale ``[B]`` (guided only),
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


def _start_z2(adapter: DiffusionAdapter, start: Tensor | None) -> Tensor:
    """The start point ``[B, z]`` (detached): ``start``, or the adapter's z2_0; a wrong shape is a ``ValueError``."""
    if start is None:
        return adapter.z2_init.detach()
    if start.shape != adapter.z2_init.shape:
        raise ValueError(f"start must have shape {tuple(adapter.z2_init.shape)}, got {tuple(start.shape)}")
    return start.detach().to(adapter.device, adapter.dtype)


def optimize_adam(
    adapter: DiffusionAdapter,
    config: Z2OptimConfig,
    *,
    start: Tensor | None = None,
    progress: bool = True,
) -> MethodResult:
    """Adam from ``start`` (``[B, z]``; None: z2_0) in ``config.space`` coordinates
    (:mod:`navintent.steering.adapter`); keeps the best z2 per scenario; early stopping with ``patience``
    (0 = off)."""
    t0 = time.perf_counter()
    z2_start = _start_z2(adapter, start)
    basis, _ = adapter.search_basis(config.space, config.prior_std)
    u = torch.zeros_like(z2_start, requires_grad=True)
    opt = torch.optim.Adam([u], lr=config.lr)
    best_loss = torch.full((adapter.num,), math.inf, device=adapter.device)
    best_z2 = z2_start.clone()
    stale = torch.zeros(adapter.num, dtype=torch.long, device=adapter.device)
    history: list[float] = []
    evaluations = 0
    with frozen(adapter.model):
        bar = tqdm(range(config.steps), desc="adam z2", disable=not progress, leave=False)
        for step in bar:
            z2 = z2_start + u @ basis.T
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
            z2 = z2_start + u @ basis.T
            loss = adapter.loss_given_z2(z2).loss
        evaluations += 1
        improved = loss < best_loss
        best_z2[improved] = z2.detach()[improved]
        best_loss = torch.where(improved, loss, best_loss)
    return MethodResult("adam", best_z2, best_loss, time.perf_counter() - t0, evaluations, history=history)


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
    *,
    start: Tensor | None = None,
) -> MethodResult:
    """Prior z2 samples evaluated in chunks of ``eval_chunk`` until ``budget_s`` seconds are spent (>= 1 chunk),
    against ``start`` (``[B, z]``; None: z2_0), which is scored first and kept unless a sample beats it."""
    t0 = time.perf_counter()
    z2_start = _start_z2(adapter, start)
    with torch.no_grad():
        best_loss = adapter.loss_many(z2_start.unsqueeze(0))[0]
    best_z2, n = z2_start.clone(), 1
    while time.perf_counter() - t0 < budget_s or n == 1:
        cands = adapter.prior_z2(config.eval_chunk, generator, config.prior_std)
        best_loss, best_z2 = _keep_best(best_loss, best_z2, adapter.loss_many(cands), cands)
        n += config.eval_chunk
    return MethodResult("best_of_n", best_z2, best_loss, time.perf_counter() - t0, n)


def cem(
    adapter: DiffusionAdapter,
    budget_s: float,
    config: Z2OptimConfig,
    generator: torch.Generator | None = None,
    *,
    start: Tensor | None = None,
) -> MethodResult:
    """Cross-entropy method: a diagonal Gaussian per scenario in ``config.space`` coordinates, started at ``start``
    (``[B, z]``; None: z2_0) with the prior's spread; refit on the elite fraction of each population; runs whole
    populations until ``budget_s`` is spent (>= 1)."""
    t0 = time.perf_counter()
    z2_start = _start_z2(adapter, start)
    pop, chunk = config.cem_population, config.eval_chunk
    n_elite = max(1, int(round(config.cem_elite_frac * pop)))
    basis, start_std = adapter.search_basis(config.space, config.prior_std)
    mean = torch.zeros_like(z2_start)
    std = start_std.expand_as(mean).clone()
    with torch.no_grad():
        best_loss = adapter.loss_many(z2_start.unsqueeze(0))[0]
    best_z2, n, history = z2_start.clone(), 1, []
    while time.perf_counter() - t0 < budget_s or n == 1:
        eps = torch.randn(pop, *mean.shape, generator=generator, device=adapter.device, dtype=adapter.dtype)
        us = mean + std * eps
        cands = z2_start + us @ basis.T
        losses = torch.cat([adapter.loss_many(cands[i : i + chunk]) for i in range(0, pop, chunk)])
        n += pop
        best_loss, best_z2 = _keep_best(best_loss, best_z2, losses, cands)
        elite_idx = losses.topk(n_elite, dim=0, largest=False).indices  # [E, B]
        elites = us.gather(0, elite_idx.unsqueeze(-1).expand(-1, -1, us.shape[-1]))
        mean = elites.mean(0)
        std = (elites.std(0, unbiased=False) if n_elite > 1 else 0.5 * std).clamp_min(1e-3)
        history.append(float(losses.min(0).values.mean()))
    return MethodResult("cem", best_z2, best_loss, time.perf_counter() - t0, n, history=history)


def guided_baseline(
    adapter: DiffusionAdapter,
    budget_s: float,
    config: Z2OptimConfig,
    generator: torch.Generator | None = None,
    *,
    start: Tensor | None = None,
) -> MethodResult:
    """Guidance-scale sweep within ``budget_s`` with z2 held at ``start`` (``[B, z]``; None: z2_0): the ladder
    first, then log-uniform scales inside its range; per scenario the scale with the lowest loss on the
    optimisation draws is kept (>= 1 run)."""
    t0 = time.perf_counter()
    z2_start = _start_z2(adapter, start)
    lo, hi = math.log(min(config.guide_scales)), math.log(max(config.guide_scales))
    best_loss = torch.full((adapter.num,), math.inf, device=adapter.device)
    best_scale = torch.zeros(adapter.num, device=adapter.device)
    runs = 0
    while time.perf_counter() - t0 < budget_s or runs == 0:
        if runs < len(config.guide_scales):
            scale = config.guide_scales[runs]
        else:
            u = float(torch.rand((), generator=generator, device=adapter.device))
            scale = math.exp(lo + (hi - lo) * u) if hi > lo else config.guide_scales[0]
        loss = adapter.guided(scale, z2=z2_start).loss
        better = loss < best_loss
        best_loss = torch.where(better, loss, best_loss)
        best_scale = torch.where(better, torch.full_like(best_scale, scale), best_scale)
        runs += 1
    return MethodResult(
        "guided",
        z2_start.clone(),
        best_loss,
        time.perf_counter() - t0,
        runs,
        guide_scale=best_scale,
    )


def plain(adapter: DiffusionAdapter, *, start: Tensor | None = None) -> MethodResult:
    """No steering: ``start`` (``[B, z]``; None: z2_0) on the fixed draws."""
    t0 = time.perf_counter()
    z2_start = _start_z2(adapter, start)
    with torch.no_grad():
        loss = adapter.loss_given_z2(z2_start).loss
    return MethodResult("plain", z2_start.clone(), loss, time.perf_counter() - t0, 1)


def optimize_noise(
    adapter: DiffusionAdapter,
    budget_s: float,
    config: Z2OptimConfig,
    *,
    with_z2: bool = False,
    start: Tensor | None = None,
    start_noise: SamplerNoise | None = None,
    progress: bool = True,
) -> MethodResult:
    """Diffusion Noise Optimization (``noise``) or z2 and noise together (``z2+noise``), for ``budget_s`` seconds.

    Adam (``config.noise_lr``) on the noise of the ``B * M`` optimisation draws, started at ``start_noise`` (None:
    the adapter's fixed draws):
    ``x_T [B*M, T, A]`` and, with ``config.noise_space == "all"``, the step noises ``[K, B*M, T, A]`` (entries of
    steps with ``sigma = 0`` get no gradient and do not count). With ``with_z2`` also Adam (``config.lr``) on z2 in
    ``config.space`` coordinates as :func:`optimize_adam` moves it, from ``start`` (``[B, z]``; None: z2_0); else
    z2 = ``start``. Loss per scenario::

        L_b = mean_m [ objective(x_0(z2_b, noise_bm)) + noise_nll_weight * noise_nll(noise_bm) ]

    with :func:`navintent.objectives.noise_nll` (nats) over ``config.noise_space``. Steps run until ``budget_s``
    seconds are spent (at least one), or ``patience`` steps without improvement of any scenario; the best noise
    (and z2) per scenario is kept, the final parameters included. Raises :class:`NonFiniteObjectiveError` when the
    objective or the gradient becomes NaN/inf (nothing is updated then).
    """
    t0 = time.perf_counter()
    name = "z2+noise" if with_z2 else "noise"
    z2_start = _start_z2(adapter, start)
    base = (adapter.noise if start_noise is None else start_noise).detach()
    b = adapter.num
    m = base.num_samples // b
    if m * b != base.num_samples:
        raise ValueError(f"start_noise has {base.num_samples} rows, not a multiple of {b} scenarios")
    x_T = base.x_T.clone().requires_grad_(True)
    steps = base.steps.clone().requires_grad_(
        config.noise_space == "all" and bool(adapter.sampler.noisy_steps)
    )
    groups = [{"params": [x_T, steps] if steps.requires_grad else [x_T], "lr": config.noise_lr}]
    u = torch.zeros_like(z2_start, requires_grad=with_z2)
    basis = torch.eye(u.shape[1], device=adapter.device, dtype=adapter.dtype)
    if with_z2:
        basis, _ = adapter.search_basis(config.space, config.prior_std)
        groups.append({"params": [u], "lr": config.lr})
    opt = torch.optim.Adam(groups)
    best_loss = torch.full((b,), math.inf, device=adapter.device, dtype=adapter.dtype)
    best_z2 = z2_start.clone()
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
        while step == 0 or time.perf_counter() - t0 < budget_s:
            z2 = z2_start + u @ basis.T
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
            z2 = z2_start + u @ basis.T
            noise = SamplerNoise(x_T.detach(), steps.detach())
            keep(loss_of(noise, z2), z2, noise, 0.0)
        evaluations += 1
    return MethodResult(
        name,
        best_z2,
        best_loss,
        time.perf_counter() - t0,
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
