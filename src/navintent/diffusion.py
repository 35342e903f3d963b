"""Differentiable reverse diffusion over a diffusers scheduler, with all noise drawn once and held fixed.

A trajectory sampled by :class:`DifferentiableSampler` is a deterministic, differentiable function of
whatever the noise predictor depends on (``latent_z``, the condition) and of the initial noise ``x_T``:
the initial noise and every per-step noise live in a :class:`SamplerNoise` drawn up front
(reparameterisation), so the same ``SamplerNoise`` always gives the same sample, and gradients flow
through every denoising step.

The posterior step is written here in torch rather than calling ``scheduler.step`` (which draws its own
noise and is not written for autograd). One step, for either scheduler::

    x0   = (x_t - sqrt(1 - abar_t) * eps) / sqrt(abar_t)          # predicted clean sample
    x0   = clip(x0)                                               # see "Clipping" below
    x_tm = c_x0 * x0 + c_xt * x_t + c_eps * eps + sigma_t * noise_k

DDPM (NoMaD's sampler): ``c_x0 = sqrt(abar_prev) beta_t / (1 - abar_t)``,
``c_xt = sqrt(alpha_t) (1 - abar_prev) / (1 - abar_t)``, ``c_eps = 0``, ``sigma_t`` from the scheduler's
``variance_type`` (``fixed_small`` by default), and no noise at ``t = 0`` — so the last step returns the
clipped ``x0``. DDIM: ``c_x0 = sqrt(abar_prev)``, ``c_xt = 0``, ``c_eps = sqrt(1 - abar_prev - sigma_t^2)``,
``sigma_t = eta * sqrt(var_t)``. The coefficients are read from the scheduler after ``set_timesteps`` and
match diffusers' ``step`` (tested against its loop with the same noise).

Clipping: NoMaD's scheduler clamps the predicted ``x0`` to ``[-r, r]`` (``clip_sample_range``, 1). Where the
clamp is active its gradient is zero, and with an untrained or saturated model many entries sit at the
bound, so gradient descent on the latent stalls. ``clip="straight_through"`` (the default for
optimisation) returns the clamped value in the forward pass but passes the gradient through as if no
clamp were there (identity Jacobian). ``clip="hard"`` is the exact clamp (zero gradient where active), and
``"none"`` skips clipping. When the scheduler's ``clip_sample`` is False no mode clips. The straight-through
gradient is a surrogate, not the true gradient: where most entries are clamped it can point uphill (measured on a
random tiny model in ``tests/test_optimize.py``: Adam rose 0.111 -> 0.370 with it, fell to 0.068 with ``"hard"``).
``optimize_adam`` keeps the best z2 seen, so a bad surrogate never returns a worse z2 than the start; if it makes
no progress on your model, try ``--clip hard``.

Optimising the noise (Diffusion Noise Optimization, Karunratanakul et al., CVPR 2024: the initial noise of an ODE
sampler optimised through the whole chain). With the noise held fixed, a sample is a deterministic, differentiable
function of the noise too: give ``x_T`` and/or ``steps`` ``requires_grad``. DNO uses a deterministic (ODE/DDIM)
sampler, where ``x_T`` is all of the randomness; NoMaD's DDPM adds fresh noise after every step but the last, so
there ``x_T`` alone is part of it. :meth:`DifferentiableSampler.noise_vector` flattens the noise a sample depends
on (``space="all"``: ``x_T`` and every step noise with ``sigma > 0``; ``"x_T"``: the initial noise only) for a
realism term such as :func:`navintent.objectives.noise_nll`.

Shapes: samples are normalised action deltas ``[N, T, A]`` (see :mod:`navintent.actions`); ``N`` is any
batch, e.g. scenarios x noise draws flattened scenario-major.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import Tensor

EpsFn = Callable[[Tensor, int], Tensor]
"""``eps_fn(x_t [N, T, A], t: int) -> eps [N, T, A]``: the noise predictor at diffusion timestep ``t``."""

ClipMode = Literal["straight_through", "hard", "none"]
CLIP_MODES: tuple[str, ...] = ("straight_through", "hard", "none")
NOISE_SPACES: tuple[str, ...] = ("all", "x_T")
"""What of a :class:`SamplerNoise` counts as the optimised noise: ``"all"`` (x_T and the used step noises) or
``"x_T"``."""


@dataclass(frozen=True)
class StepCoefficients:
    """Scalars of one reverse step (see the module docstring for the formula)."""

    timestep: int
    sqrt_abar: float
    sqrt_one_minus_abar: float
    c_x0: float
    c_xt: float
    c_eps: float
    sigma: float


@dataclass
class SamplerNoise:
    """All randomness of one reverse chain: ``x_T [N, T, A]`` and per-step noise ``steps [K, N, T, A]``.

    ``steps[k]`` is added after step ``k`` (``k = 0`` is the first, noisiest step); entries of steps whose
    ``sigma`` is 0 (DDPM's last step, DDIM with ``eta = 0``) are unused. Set ``x_T.requires_grad_()`` to
    optimise the initial noise too.
    """

    x_T: Tensor
    steps: Tensor

    def __post_init__(self) -> None:
        if self.x_T.dim() != 3:
            raise ValueError(f"SamplerNoise.x_T must be [N, T, A], got shape {tuple(self.x_T.shape)}")
        if self.steps.dim() != 4 or self.steps.shape[1:] != self.x_T.shape:
            raise ValueError(
                f"SamplerNoise.steps must be [K, *x_T.shape] = [K, {', '.join(map(str, self.x_T.shape))}], "
                f"got shape {tuple(self.steps.shape)}"
            )

    @classmethod
    def draw(
        cls,
        shape: tuple[int, int, int],
        num_steps: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> SamplerNoise:
        """Standard normal ``x_T`` of ``shape`` then ``num_steps`` step noises, in that order from ``generator``."""
        x_T = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        steps = torch.randn((num_steps, *shape), generator=generator, device=device, dtype=dtype)
        return cls(x_T=x_T, steps=steps)

    @property
    def num_samples(self) -> int:
        return self.x_T.shape[0]

    def repeat_interleave(self, repeats: int) -> SamplerNoise:
        """Each sample repeated ``repeats`` times consecutively (same noise for several conditions)."""
        return SamplerNoise(self.x_T.repeat_interleave(repeats, 0), self.steps.repeat_interleave(repeats, 1))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> SamplerNoise:
        return SamplerNoise(
            self.x_T.to(device=device, dtype=dtype), self.steps.to(device=device, dtype=dtype)
        )

    def detach(self) -> SamplerNoise:
        """Copies of ``x_T`` and ``steps`` cut from the graph (no ``requires_grad``)."""
        return SamplerNoise(self.x_T.detach().clone(), self.steps.detach().clone())


def _straight_through_clamp(x: Tensor, bound: float) -> Tensor:
    """Forward: ``clamp(x, -bound, bound)``; backward: identity."""
    return x + (x.clamp(-bound, bound) - x).detach()


def _ddpm_sigma(variance_type: str, var: float, current_beta: float) -> float:
    if variance_type in ("fixed_small", "fixed_small_log"):
        return max(var, 1e-20) ** 0.5
    if variance_type == "fixed_large":
        return current_beta**0.5
    raise ValueError(
        "DifferentiableSampler supports DDPM variance_type 'fixed_small', 'fixed_small_log' or 'fixed_large', "
        f"got {variance_type!r}"
    )


def step_coefficients(
    scheduler: DDPMScheduler | DDIMScheduler, *, eta: float = 0.0
) -> list[StepCoefficients]:
    """Per-step scalars for ``scheduler.timesteps`` (call ``set_timesteps`` first); ``eta`` is DDIM's."""
    if scheduler.num_inference_steps is None:
        raise ValueError("call scheduler.set_timesteps(...) before building the sampler")
    cfg = scheduler.config
    if cfg.prediction_type != "epsilon":
        raise ValueError(f"only prediction_type 'epsilon' is supported, got {cfg.prediction_type!r}")
    if getattr(cfg, "thresholding", False):
        raise ValueError("dynamic thresholding is not supported; got scheduler.config.thresholding=True")
    abar = scheduler.alphas_cumprod.double()
    timesteps = [int(t) for t in scheduler.timesteps]
    out = []
    for t in timesteps:
        ab_t = float(abar[t])
        if isinstance(scheduler, DDIMScheduler):
            prev_t = t - cfg.num_train_timesteps // scheduler.num_inference_steps
            ab_prev = float(abar[prev_t]) if prev_t >= 0 else float(scheduler.final_alpha_cumprod)
            var = (1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)
            sigma = eta * var**0.5
            c_x0, c_xt, c_eps = ab_prev**0.5, 0.0, max(1 - ab_prev - sigma**2, 0.0) ** 0.5
        elif isinstance(scheduler, DDPMScheduler):
            if eta != 0.0:
                raise ValueError(f"eta applies to DDIM only, got eta={eta} with a DDPMScheduler")
            prev_t = int(scheduler.previous_timestep(t))
            ab_prev = float(abar[prev_t]) if prev_t >= 0 else 1.0
            alpha_t = ab_t / ab_prev
            beta_t = 1 - alpha_t
            c_x0 = ab_prev**0.5 * beta_t / (1 - ab_t)
            c_xt = alpha_t**0.5 * (1 - ab_prev) / (1 - ab_t)
            c_eps = 0.0
            var = (1 - ab_prev) / (1 - ab_t) * beta_t
            sigma = _ddpm_sigma(cfg.variance_type, var, beta_t) if t > 0 else 0.0
        else:
            raise TypeError(
                f"scheduler must be a DDPMScheduler or DDIMScheduler, got {type(scheduler).__name__}"
            )
        out.append(StepCoefficients(t, ab_t**0.5, (1 - ab_t) ** 0.5, c_x0, c_xt, c_eps, sigma))
    return out


class DifferentiableSampler:
    """Reverse process of ``scheduler`` as a differentiable map ``(eps_fn, SamplerNoise) -> x_0 [N, T, A]``.

    ``num_inference_steps`` calls ``scheduler.set_timesteps`` (None keeps what is set, or uses
    ``num_train_timesteps`` if nothing is). ``clip`` is one of ``CLIP_MODES`` (module docstring).
    ``eta`` is DDIM's stochasticity (0 = deterministic); DDPM requires 0.
    """

    def __init__(
        self,
        scheduler: DDPMScheduler | DDIMScheduler,
        *,
        num_inference_steps: int | None = None,
        clip: ClipMode = "straight_through",
        eta: float = 0.0,
    ) -> None:
        if clip not in CLIP_MODES:
            raise ValueError(f"clip must be one of {CLIP_MODES}, got {clip!r}")
        if num_inference_steps is not None:
            scheduler.set_timesteps(num_inference_steps)
        elif scheduler.num_inference_steps is None:
            scheduler.set_timesteps(scheduler.config.num_train_timesteps)
        self.scheduler = scheduler
        self.clip: ClipMode = clip
        self.eta = float(eta)
        self.coefficients = step_coefficients(scheduler, eta=self.eta)
        self.clip_range = float(scheduler.config.clip_sample_range) if scheduler.config.clip_sample else None

    @property
    def num_steps(self) -> int:
        return len(self.coefficients)

    @property
    def timesteps(self) -> list[int]:
        return [c.timestep for c in self.coefficients]

    def draw_noise(
        self,
        shape: tuple[int, int, int],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> SamplerNoise:
        """A :class:`SamplerNoise` with one step noise per denoising step of this sampler."""
        return SamplerNoise.draw(shape, self.num_steps, generator=generator, device=device, dtype=dtype)

    @property
    def noisy_steps(self) -> list[int]:
        """Indices ``k`` of the steps that add noise (``sigma > 0``): their ``SamplerNoise.steps[k]`` matter."""
        return [k for k, c in enumerate(self.coefficients) if c.sigma > 0]

    def noise_vector(self, noise: SamplerNoise, space: str = "all") -> Tensor:
        """The noise a sample depends on, one flattened row per sample: ``[N, d]``.

        ``space="all"``: ``x_T`` then ``steps[k]`` for every ``k`` in :attr:`noisy_steps` (unused entries, e.g.
        DDPM's last step, are left out), ``d = T * A * (1 + len(noisy_steps))``; ``"x_T"``: ``d = T * A``.
        Differentiable. Raises ``ValueError`` for another ``space`` or a noise of the wrong step count.
        """
        if space not in NOISE_SPACES:
            raise ValueError(f"noise space must be one of {NOISE_SPACES}, got {space!r}")
        self._check_noise(noise)
        parts = [noise.x_T.flatten(1)]
        if space == "all":
            parts += [noise.steps[k].flatten(1) for k in self.noisy_steps]
        return torch.cat(parts, dim=1)

    def clip_x0(self, x0: Tensor) -> Tensor:
        if self.clip_range is None or self.clip == "none":
            return x0
        if self.clip == "hard":
            return x0.clamp(-self.clip_range, self.clip_range)
        return _straight_through_clamp(x0, self.clip_range)

    def predict_x0(self, x_t: Tensor, eps: Tensor, k: int) -> Tensor:
        """Clipped clean-sample prediction at step ``k`` from ``x_t`` and ``eps`` (both ``[N, T, A]``)."""
        c = self.coefficients[k]
        return self.clip_x0((x_t - c.sqrt_one_minus_abar * eps) / c.sqrt_abar)

    def step(self, x_t: Tensor, eps: Tensor, k: int, noise: Tensor) -> tuple[Tensor, Tensor]:
        """One reverse step ``k`` -> ``(x_{t-1}, x0_pred)``; ``noise [N, T, A]`` is used when ``sigma > 0``."""
        c = self.coefficients[k]
        x0 = self.predict_x0(x_t, eps, k)
        x_prev = c.c_x0 * x0
        if c.c_xt:
            x_prev = x_prev + c.c_xt * x_t
        if c.c_eps:
            x_prev = x_prev + c.c_eps * eps
        if c.sigma > 0:
            x_prev = x_prev + c.sigma * noise
        return x_prev, x0

    def _check_noise(self, noise: SamplerNoise) -> None:
        if noise.steps.shape[0] != self.num_steps:
            raise ValueError(
                f"SamplerNoise has {noise.steps.shape[0]} step noises, the sampler runs {self.num_steps} steps"
            )

    def sample(self, eps_fn: EpsFn, noise: SamplerNoise) -> Tensor:
        """Run the whole chain from ``noise.x_T``; returns ``x_0 [N, T, A]`` (normalised deltas).

        Gradients flow to everything ``eps_fn`` closes over and to ``noise.x_T`` if it requires grad.
        """
        self._check_noise(noise)
        x = noise.x_T
        for k, c in enumerate(self.coefficients):
            eps = eps_fn(x, c.timestep)
            x, _ = self.step(x, eps, k, noise.steps[k])
        return x

    def guided_sample(
        self,
        eps_fn: EpsFn,
        noise: SamplerNoise,
        loss_fn: Callable[[Tensor], Tensor],
        *,
        scale: float | Tensor,
    ) -> Tensor:
        """Per-step guided sampling on the noisy sample (CTG-style), no gradient to the condition.

        At each step the loss of the predicted clean sample, ``loss_fn(x0 [N, T, A]) -> [N]``, is
        differentiated w.r.t. ``x_t`` (through the noise predictor); the step's output is moved against
        that gradient, normalised per sample to unit RMS and scaled by ``scale * (1 - abar_t)`` (large
        while the sample is noisy, small near the end)::

            x_{t-1} <- x_{t-1} - scale * (1 - abar_t) * g / rms(g)

        ``scale`` is a float or a per-sample ``[N]`` tensor. Returns the final sample ``[N, T, A]``, detached.
        """
        self._check_noise(noise)
        x = noise.x_T.detach()
        if isinstance(scale, Tensor):
            if scale.shape != (x.shape[0],):
                raise ValueError(
                    f"guidance scale must be a float or [N={x.shape[0]}], got {tuple(scale.shape)}"
                )
            scale = scale.to(x).view(-1, *([1] * (x.dim() - 1)))
        for k, c in enumerate(self.coefficients):
            with torch.enable_grad():
                x_in = x.detach().requires_grad_(True)
                eps = eps_fn(x_in, c.timestep)
                x0 = self.predict_x0(x_in, eps, k)
                (grad,) = torch.autograd.grad(loss_fn(x0).sum(), x_in)
            x_prev, _ = self.step(x_in.detach(), eps.detach(), k, noise.steps[k])
            rms = grad.pow(2).mean(dim=tuple(range(1, grad.dim())), keepdim=True).sqrt()
            x = x_prev - scale * (1 - c.sqrt_abar**2) * grad / (rms + 1e-12)
        return x.detach()


def build_sampler(
    scheduler_config,
    *,
    kind: Literal["ddpm", "ddim"] = "ddpm",
    num_inference_steps: int | None = None,
    clip: ClipMode = "straight_through",
    eta: float = 0.0,
) -> DifferentiableSampler:
    """Sampler from a :class:`navintent.config.SchedulerConfig` (NoMaD's DDPM, or DDIM with the same betas).

    ``num_inference_steps`` defaults to ``num_train_timesteps`` (NoMaD: 10); DDIM uses diffusers'
    default ``leading`` spacing with ``set_alpha_to_one=True``.
    """
    common = dict(
        num_train_timesteps=scheduler_config.num_train_timesteps,
        beta_schedule=scheduler_config.beta_schedule,
        clip_sample=scheduler_config.clip_sample,
        prediction_type=scheduler_config.prediction_type,
    )
    if kind == "ddpm":
        scheduler = DDPMScheduler(**common)
    elif kind == "ddim":
        scheduler = DDIMScheduler(**common)
    else:
        raise ValueError(f"sampler kind must be 'ddpm' or 'ddim', got {kind!r}")
    steps = num_inference_steps or scheduler_config.num_train_timesteps
    return DifferentiableSampler(scheduler, num_inference_steps=steps, clip=clip, eta=eta)


def policy_eps_fn(
    policy,
    global_cond: Tensor,
    latent_z: Tensor | None = None,
    *,
    lambda_cfg: float = 0.0,
) -> EpsFn:
    """``eps_fn`` over a NoMaD-style policy's ``predict_noise`` with a cached condition.

    ``global_cond [N, E]`` is the vision condition computed once (expand it to the sample batch, e.g.
    ``cond.repeat_interleave(M, 0)``); ``latent_z [N, z_dim]`` or None; ``lambda_cfg > 0`` applies
    classifier-free guidance inside the policy (one U-Net call for both branches).
    """

    def eps_fn(x: Tensor, t: int) -> Tensor:
        # A float64 chain passes the timestep as a float64 tensor: the U-Net's step embedding follows the
        # timestep's dtype (an int gives float32 features, which a float64 model cannot take).
        step = torch.tensor(t, dtype=x.dtype, device=x.device) if x.dtype == torch.float64 else t
        return policy.predict_noise(x, step, global_cond, latent_z=latent_z, lambda_cfg=lambda_cfg)

    return eps_fn
