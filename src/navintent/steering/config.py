"""What one z2 optimisation run is told: the method names, the search spaces and :class:`Z2OptimConfig`.

Owns the settings only (names, defaults, validation); nothing here touches a model or a tensor. Every invalid value
raises ``ValueError`` naming the field and the value (``"steps must be a positive int, got 0"``).
"""

from __future__ import annotations

from dataclasses import dataclass

from navintent.config import (
    ConfigBase,
    check_non_negative_int,
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
)
from navintent.diffusion import CLIP_MODES, NOISE_SPACES

METHODS: tuple[str, ...] = ("adam", "best_of_n", "cem", "guided", "noise", "z2+noise", "plain")
# Methods that move z2 (a policy whose latent does nothing makes them return their start).
Z2_METHODS: tuple[str, ...] = ("adam", "best_of_n", "cem", "z2+noise")
NOISE_METHODS: tuple[str, ...] = ("noise", "z2+noise")
"""Methods that optimise the diffusion noise: their result exists on the optimisation draws only."""
SPACES: tuple[str, ...] = ("auto", "whitened", "z2")
# The objective of ``optimize-z2`` and of closed-loop steering when none is given (navintent.objectives spec).
DEFAULT_OBJECTIVE = "softmin_dist:1.0,dynamics:0.1,z2_encoder:0.01"


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
    stores z2_stats, else z2); see :mod:`navintent.steering.adapter`. noise_lr: Adam's learning rate on the noise
    (``noise``, ``z2+noise``; noise entries are N(0, 1) units). noise_nll_weight: weight of
    :func:`navintent.objectives.noise_nll` (nats) in those methods' loss. noise_space: ``all`` | ``x_T``, the noise
    they optimise and the noise realism measures (:mod:`navintent.steering.methods`). ``normalize_grad`` applies to
    ``adam`` only. eval_chunk: candidates per batched evaluation (best-of-N, CEM).
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


def parse_methods(text: str, known: tuple[str, ...] = METHODS, *, flag: str = "--method") -> tuple[str, ...]:
    """``"all"`` -> ``known``; ``"adam, cem"`` -> ``("adam", "cem")`` (order as written). An empty list or a name
    outside ``known`` raises ``ValueError`` naming ``flag`` and the unknown names."""
    if text == "all":
        return known
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise ValueError(f"{flag}: unknown {unknown or text!r}; choose from {list(known)} or 'all'")
    return names
