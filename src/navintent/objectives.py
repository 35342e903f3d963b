"""Task losses and realism terms on metric robot-frame waypoints, composable with weights.

Why one module of ~600 lines: every term, the ``TERMS`` registry and the spec parser live together so that adding
a term (ARCHITECTURE.md, "Where to add") is one function and one ``TERMS`` entry in one file, and so that every
term's signature, sign and mask convention can be checked against the conventions below. The sections (helpers,
adversarial terms, realism terms, composition) are its map.

Every term has the signature ``term(waypoints [N, T, 2], ctx: ObjectiveContext, **params) -> [N]`` and
returns a per-sample value that the optimiser MINIMISES. Waypoints are metres in the robot frame at the
current pose (x forward, y left), one per future step ``dt`` seconds apart; the robot sits at the origin
at time 0 (use :func:`deltas_to_metric` to get them from the sampler's normalised deltas).

Sign convention: adversarial terms are lower when the robot is more dangerous to the other agents
(``softmin_dist`` is the soft minimum distance; ``collision_margin`` is minus the summed intrusion into
the safety radius; ``ttc`` is the soft-minimum time to collision; ``cut_ahead`` is minus the presence in
front of an agent on its path). Realism terms (``REALISM_TERMS``) are penalties, lower = more plausible.
A negative weight turns a penalty into a reward (e.g. ``deviation:-1`` pushes away from the nominal).

Objectives are written as a spec string ``"name:weight[@key=value;key=value],..."``, e.g.
``"softmin_dist:1.0,dynamics:0.1@max_speed=0.3"``; :func:`parse_objectives` turns it into a list of
:class:`ObjectiveSpec` and :class:`Objective` evaluates the weighted sum. A user term is
``"user:1.0@fn=package.module:function"``; the function gets ``(waypoints, ctx, **other_params)``.

The noise realism :func:`noise_nll` acts on the diffusion noise, not on waypoints, so it is no ``TERMS`` entry:
:mod:`navintent.optimize` adds it, weighted by ``noise_nll_weight``, for the methods that optimise the noise.

Masks: ``agents_mask`` is ``[N, K]`` or ``[N, T, K]`` (1 = valid). Distances to masked agents are left
out; a sample with no valid agent gets 0 for the agent terms (constant, no gradient).
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from navintent.actions import normalized_deltas_to_waypoints

_EPS = 1e-9


def deltas_to_metric(
    ndeltas: Tensor,
    action_min: Sequence[float],
    action_max: Sequence[float],
    metric_scale: float | Tensor,
) -> Tensor:
    """Normalised deltas ``[N, T, A]`` -> metric waypoints ``[N, T, 2]`` (robot frame, metres).

    ``metric_scale`` is ``metric_waypoint_spacing * waypoint_spacing`` (metres per spacing unit), a float
    or ``[N]``.
    """
    wp = normalized_deltas_to_waypoints(ndeltas, action_min, action_max)[..., :2]
    if isinstance(metric_scale, Tensor) and metric_scale.dim() > 0:
        metric_scale = metric_scale.to(wp).view(-1, 1, 1)
    return wp * metric_scale


@dataclass
class GridMap:
    """A 2-D grid in the robot frame: ``values [N or 1, H, W]``; cell ``[i, j]`` is centred at
    ``x = origin[0] + j * resolution``, ``y = origin[1] + i * resolution`` (metres).

    :meth:`sample` interpolates bilinearly (differentiable w.r.t. the query points); outside the grid
    it reads 0 (free / no cost).
    """

    values: Tensor
    origin: tuple[float, float] = (0.0, 0.0)
    resolution: float = 0.1

    def __post_init__(self) -> None:
        if self.values.dim() != 3:
            raise ValueError(f"GridMap.values must be [N, H, W], got shape {tuple(self.values.shape)}")
        if min(self.values.shape[1:]) < 2:
            raise ValueError(f"GridMap.values needs H, W >= 2, got shape {tuple(self.values.shape)}")
        if not self.resolution > 0:
            raise ValueError(f"GridMap.resolution must be > 0, got {self.resolution}")

    def sample(self, points: Tensor) -> Tensor:
        """``points [N, P, 2]`` metres -> values ``[N, P]``."""
        n = points.shape[0]
        values = self.values.to(points)
        if values.shape[0] == 1 and n != 1:
            values = values.expand(n, -1, -1)
        if values.shape[0] != n:
            raise ValueError(f"GridMap.values has batch {values.shape[0]}, points have batch {n}")
        h, w = values.shape[1:]
        u = (points[..., 0] - self.origin[0]) / self.resolution
        v = (points[..., 1] - self.origin[1]) / self.resolution
        grid = torch.stack([2 * u / (w - 1) - 1, 2 * v / (h - 1) - 1], dim=-1).unsqueeze(2)  # [N, P, 1, 2]
        out = F.grid_sample(
            values.unsqueeze(1), grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        return out[:, 0, :, 0]


@dataclass
class ObjectiveContext:
    """What the terms may read. Per-sample tensors have the waypoints' leading dim ``N``.

    agents: ``[N, T, K, 2]`` other agents' future positions (metres, robot frame) at the waypoint times.
    agents_mask: ``[N, K]`` or ``[N, T, K]``, 1 = valid. nominal: ``[N, T, 2]`` reference trajectory.
    agents_jacobian: ``[N, T, K, 2, T, 2]`` or None: the agents' first-order reaction to the robot's plan,
    ``d agents[n, t, k, :] / d waypoints[n, s, :]`` at ``nominal``; given, every agent term reads the agents at
    ``agents + J . (waypoints - nominal)`` (a linearised reactive prediction: the agents move as the plan does,
    to first order), and the gradient with respect to the plan includes that reaction.
    point: ``[N, 2]`` target of ``reach``/``avoid``. cost_map / obstacle_map: :class:`GridMap`.
    z2 ``[N, D2]``, z2_encoder ``[N, D2]`` (Encoder2's output), z2_mean ``[D2]`` and z2_cov ``[D2, D2]``
    (Gaussian fitted to training z2), z1 ``[N, D1]``. dt: seconds between waypoints.
    """

    agents: Tensor | None = None
    agents_mask: Tensor | None = None
    nominal: Tensor | None = None
    agents_jacobian: Tensor | None = None
    point: Tensor | None = None
    cost_map: GridMap | None = None
    obstacle_map: GridMap | None = None
    z2: Tensor | None = None
    z2_encoder: Tensor | None = None
    z2_mean: Tensor | None = None
    z2_cov: Tensor | None = None
    z1: Tensor | None = None
    dt: float = 0.25

    def need(self, name: str) -> Any:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"this objective needs ObjectiveContext.{name}, which is not given")
        return value

    PER_SAMPLE: ClassVar[tuple[str, ...]] = (
        "agents",
        "agents_mask",
        "nominal",
        "agents_jacobian",
        "point",
        "z2",
        "z2_encoder",
        "z1",
    )

    def select(self, index: Tensor) -> ObjectiveContext:
        """Rows ``index [N']`` of every per-sample field (and of per-sample maps); shared fields are kept."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in self.PER_SAMPLE:
                changes[f.name] = value[index.to(value.device)]
            elif f.name in ("cost_map", "obstacle_map") and value.values.shape[0] > 1:
                changes[f.name] = GridMap(value.values[index], value.origin, value.resolution)
        return _replace(self, **changes)

    def repeat_interleave(self, repeats: int, num_samples: int) -> ObjectiveContext:
        """Each of ``num_samples`` rows repeated ``repeats`` times consecutively (scenarios -> scenarios x draws)."""
        return self.select(torch.arange(num_samples).repeat_interleave(repeats))

    def replace(self, **changes: Any) -> ObjectiveContext:
        return _replace(self, **changes)


def _replace(ctx: ObjectiveContext, **changes: Any) -> ObjectiveContext:
    data = {f.name: getattr(ctx, f.name) for f in fields(ctx)}
    data.update(changes)
    return ObjectiveContext(**data)


# ----------------------------------------------------------------------------------------------- helpers
def _agents(waypoints: Tensor, ctx: ObjectiveContext) -> tuple[Tensor, Tensor]:
    """Agents ``[N, T, K, 2]`` (with ``agents_jacobian``: their linearised reaction to ``waypoints``) and a
    validity mask ``[N, T, K]`` (bool), shapes checked."""
    agents = ctx.need("agents").to(waypoints)
    n, t = waypoints.shape[:2]
    if agents.dim() != 4 or agents.shape[:2] != (n, t) or agents.shape[-1] != 2:
        raise ValueError(
            f"ObjectiveContext.agents must be [N={n}, T={t}, K, 2], got shape {tuple(agents.shape)}"
        )
    k = agents.shape[2]
    if ctx.agents_jacobian is not None:
        jac = ctx.agents_jacobian.to(waypoints)
        if jac.shape != (n, t, k, 2, t, 2):
            raise ValueError(
                f"ObjectiveContext.agents_jacobian must be [N={n}, T={t}, K={k}, 2, T={t}, 2], "
                f"got {tuple(jac.shape)}"
            )
        nominal = ctx.need("nominal").to(waypoints)
        if nominal.shape != waypoints.shape:
            raise ValueError(
                f"ObjectiveContext.nominal must have the waypoints' shape {tuple(waypoints.shape)} with "
                f"agents_jacobian, got {tuple(nominal.shape)}"
            )
        agents = agents + torch.einsum("ntkdsj,nsj->ntkd", jac, waypoints - nominal)
    mask = ctx.agents_mask
    if mask is None:
        valid = torch.ones(n, t, k, dtype=torch.bool, device=waypoints.device)
    else:
        mask = mask.to(waypoints.device)
        if mask.shape == (n, k):
            mask = mask.unsqueeze(1).expand(n, t, k)
        if mask.shape != (n, t, k):
            raise ValueError(
                f"ObjectiveContext.agents_mask must be [N={n}, K={k}] or [N, T={t}, K], got {tuple(mask.shape)}"
            )
        valid = mask > 0.5
    return agents, valid


def _soft_min(values: Tensor, valid: Tensor, tau: float) -> Tensor:
    """Soft minimum ``-tau * logsumexp(-v / tau)`` over all dims but the first, valid entries only; 0 if none."""
    flat_v, flat_m = values.flatten(1), valid.flatten(1)
    neg = torch.where(flat_m, -flat_v / tau, torch.full_like(flat_v, -math.inf))
    any_valid = flat_m.any(dim=1)
    neg = torch.where(any_valid.unsqueeze(1), neg, torch.zeros_like(neg))
    out = -tau * torch.logsumexp(neg, dim=1)
    return torch.where(any_valid, out, torch.zeros_like(out))


def _safe_norm(x: Tensor) -> Tensor:
    return torch.sqrt(x.pow(2).sum(-1) + _EPS)


def _velocities(points: Tensor, dt: float, start: Tensor | None) -> Tensor:
    """Finite-difference velocities ``[N, T, ..., 2]``; the first from ``start`` or else the second's."""
    if start is not None:
        return torch.diff(points, dim=1, prepend=start.unsqueeze(1)) / dt
    v = torch.diff(points, dim=1) / dt
    return torch.cat([v[:, :1], v], dim=1)


def agent_distances(waypoints: Tensor, ctx: ObjectiveContext) -> tuple[Tensor, Tensor]:
    """Robot-agent distances ``[N, T, K]`` (metres) and the validity mask ``[N, T, K]``."""
    agents, valid = _agents(waypoints, ctx)
    return _safe_norm(waypoints.unsqueeze(2) - agents), valid


# -------------------------------------------------------------------------------- adversarial terms
def softmin_dist(waypoints: Tensor, ctx: ObjectiveContext, *, tau: float = 0.1) -> Tensor:
    """Soft minimum over time and agents of the robot-agent distance (metres); ``tau`` in metres."""
    d, valid = agent_distances(waypoints, ctx)
    return _soft_min(d, valid, tau)


def collision_margin(waypoints: Tensor, ctx: ObjectiveContext, *, radius: float = 0.5) -> Tensor:
    """Minus the summed intrusion ``sum_{t,k} relu(radius - d)`` into the safety radius (metres)."""
    d, valid = agent_distances(waypoints, ctx)
    return -(F.relu(radius - d) * valid).flatten(1).sum(1)


def time_to_collision(waypoints: Tensor, ctx: ObjectiveContext, *, radius: float = 0.5) -> Tensor:
    """Constant-velocity time to collision from each waypoint, ``[N, T, K]`` seconds from now.

    At waypoint ``t`` (time ``(t + 1) dt``) relative position ``p = a - r`` and velocity ``v = v_a - v_r``
    (finite differences; the robot starts at rest at the origin, an agent's first velocity is its
    second's). The collision time is ``(t + 1) dt + tau`` with ``tau`` the first root of
    ``|p + v tau| = radius`` (0 if already inside). If the pair never comes within ``radius`` the value is
    ``horizon + (closest-approach distance - radius)``, metres read as seconds, so that the surrogate
    still pulls the pair together; ``horizon = T dt``.
    """
    agents, valid = _agents(waypoints, ctx)
    n, t = waypoints.shape[:2]
    dt = ctx.dt
    v_r = _velocities(waypoints, dt, torch.zeros_like(waypoints[:, 0]))
    v_a = _velocities(agents, dt, None) if t > 1 else torch.zeros_like(agents)
    p = agents - waypoints.unsqueeze(2)
    v = v_a - v_r.unsqueeze(2)
    a = v.pow(2).sum(-1) + _EPS
    b = 2 * (p * v).sum(-1)
    c = p.pow(2).sum(-1) - radius**2
    disc = b.pow(2) - 4 * a * c
    root = (-b - torch.sqrt(disc.clamp_min(_EPS))) / (2 * a)
    offset = dt * torch.arange(1, t + 1, dtype=waypoints.dtype, device=waypoints.device).view(1, t, 1)
    inside = c <= 0
    hits = (disc > 0) & (root >= 0)
    tau_closest = (-(p * v).sum(-1) / a).clamp_min(0)
    closest = _safe_norm(p + v * tau_closest.unsqueeze(-1))
    horizon = t * dt
    miss = horizon + (closest - radius)
    ttc = torch.where(inside, offset, torch.where(hits, offset + root, miss))
    return ttc, valid


def ttc(waypoints: Tensor, ctx: ObjectiveContext, *, radius: float = 0.5, tau: float = 0.1) -> Tensor:
    """Soft minimum (``tau`` seconds) over waypoints and agents of :func:`time_to_collision`."""
    values, valid = time_to_collision(waypoints, ctx, radius=radius)
    return _soft_min(values, valid, tau)


def cut_ahead(waypoints: Tensor, ctx: ObjectiveContext, *, sigma: float = 0.3, length: float = 2.0) -> Tensor:
    """Minus the robot's presence on an agent's path ahead of it, averaged over waypoints, summed over agents.

    With the agent's heading ``u`` (unit velocity; a standing agent has no heading and scores 0) and
    the robot's offset ``r - a`` split into ``along = (r - a).u`` and ``lateral``, the presence is
    ``sigmoid(along / sigma) * exp(-relu(along) / length) * exp(-lateral^2 / (2 sigma^2))``: high just in
    front of the agent, on its line of travel.
    """
    agents, valid = _agents(waypoints, ctx)
    v_a = _velocities(agents, ctx.dt, None) if agents.shape[1] > 1 else torch.zeros_like(agents)
    speed = _safe_norm(v_a)
    u = v_a / (speed.unsqueeze(-1) + 1e-6)
    rel = waypoints.unsqueeze(2) - agents
    along = (rel * u).sum(-1)
    lateral = rel[..., 1] * u[..., 0] - rel[..., 0] * u[..., 1]
    heading_weight = u.pow(2).sum(-1)  # 0 for a standing agent, ~1 for a moving one
    presence = (
        torch.sigmoid(along / sigma)
        * torch.exp(-F.relu(along) / length)
        * torch.exp(-lateral.pow(2) / (2 * sigma**2))
        * heading_weight
    )
    return -(presence * valid).sum(2).mean(1)


def deviation(waypoints: Tensor, ctx: ObjectiveContext) -> Tensor:
    """Mean over waypoints of the squared distance to ``ctx.nominal`` (m^2)."""
    nominal = ctx.need("nominal").to(waypoints)
    if nominal.shape != waypoints.shape:
        raise ValueError(
            f"ObjectiveContext.nominal must have the waypoints' shape {tuple(waypoints.shape)}, "
            f"got {tuple(nominal.shape)}"
        )
    return (waypoints - nominal).pow(2).sum(-1).mean(1)


def _point(waypoints: Tensor, ctx: ObjectiveContext) -> Tensor:
    point = ctx.need("point").to(waypoints)
    if point.shape != (waypoints.shape[0], 2):
        raise ValueError(
            f"ObjectiveContext.point must be [N={waypoints.shape[0]}, 2], got {tuple(point.shape)}"
        )
    return point


def reach(waypoints: Tensor, ctx: ObjectiveContext) -> Tensor:
    """Distance (metres) from the last waypoint to ``ctx.point``."""
    return _safe_norm(waypoints[:, -1] - _point(waypoints, ctx))


def avoid(waypoints: Tensor, ctx: ObjectiveContext, *, radius: float = 1.0) -> Tensor:
    """``sum_t relu(radius - |w_t - point|)^2`` (m^2): zero once every waypoint is ``radius`` away."""
    d = _safe_norm(waypoints - _point(waypoints, ctx).unsqueeze(1))
    return F.relu(radius - d).pow(2).sum(1)


def occupancy(waypoints: Tensor, ctx: ObjectiveContext) -> Tensor:
    """Mean over waypoints of ``ctx.cost_map`` read bilinearly at each waypoint."""
    return ctx.need("cost_map").sample(waypoints).mean(1)


def user(waypoints: Tensor, ctx: ObjectiveContext, *, fn: str, **params: Any) -> Tensor:
    """A user's ``package.module:function`` called as ``function(waypoints, ctx, **params) -> [N]``."""
    func = load_user_function(fn)
    out = func(waypoints, ctx, **params)
    if not isinstance(out, Tensor) or out.shape != (waypoints.shape[0],):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"user objective {fn} must return a tensor [N={waypoints.shape[0]}], got {shape}")
    return out


def load_user_function(spec: str) -> Callable[..., Tensor]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"user objective must be 'package.module:function', got {spec!r}")
    module = importlib.import_module(module_name)
    if not hasattr(module, attr):
        raise ValueError(f"user objective {spec!r}: module {module_name} has no attribute {attr!r}")
    return getattr(module, attr)


# ----------------------------------------------------------------------------------------- realism
def z2_encoder(waypoints: Tensor, ctx: ObjectiveContext) -> Tensor:
    """Squared distance of ``z2`` to Encoder2's output ``z2_encoder`` (sum over dims)."""
    z2, ref = ctx.need("z2"), ctx.need("z2_encoder")
    return (z2 - ref.to(z2)).pow(2).sum(-1)


def gaussian_nll(z: Tensor, mean: Tensor, cov: Tensor) -> Tensor:
    """Negative log-density of ``z [N, D]`` under ``N(mean [D], cov [D, D])`` (nats)."""
    mean, cov = mean.to(z), cov.to(z)
    d = z.shape[-1]
    if mean.shape != (d,) or cov.shape != (d, d):
        raise ValueError(
            f"Gaussian must have mean [{d}] and cov [{d}, {d}], got {tuple(mean.shape)}, {tuple(cov.shape)}"
        )
    chol = torch.linalg.cholesky(cov)
    sol = torch.linalg.solve_triangular(chol, (z - mean).unsqueeze(-1), upper=False).squeeze(-1)
    logdet = 2 * torch.log(torch.diagonal(chol)).sum()
    return 0.5 * sol.pow(2).sum(-1) + 0.5 * logdet + 0.5 * d * math.log(2 * math.pi)


def z2_nll(waypoints: Tensor, ctx: ObjectiveContext) -> Tensor:
    """Negative log-likelihood of ``z2`` under the Gaussian fitted to training z2 (``z2_mean``, ``z2_cov``)."""
    return gaussian_nll(ctx.need("z2"), ctx.need("z2_mean"), ctx.need("z2_cov"))


def standard_normal_nll(z: Tensor) -> Tensor:
    """Negative log-density (nats) of ``z [N, D]`` under ``N(0, I)``, ``-> [N]``."""
    return 0.5 * z.pow(2).sum(-1) + 0.5 * z.shape[-1] * math.log(2 * math.pi)


def z1_nll(waypoints: Tensor, ctx: ObjectiveContext) -> Tensor:
    """Negative log-likelihood of ``z1`` under the prior ``N(0, I)`` (:func:`standard_normal_nll`)."""
    return standard_normal_nll(ctx.need("z1"))


def noise_nll(noise: Tensor) -> Tensor:
    """Realism of diffusion noise: negative log-likelihood (nats) of its norm under N(0, I), ``[N, d] -> [N]``.

    ``noise [N, d]``: one flattened noise vector per row (``d >= 1`` entries that are i.i.d. N(0, 1) when the noise is
    drawn, e.g. :meth:`navintent.diffusion.DifferentiableSampler.noise_vector`). With ``r = ||noise||_2`` this is
    the negative log-density of the chi distribution with ``d`` degrees of freedom,
    ``p(r) = r^(d-1) exp(-r^2 / 2) / (2^(d/2 - 1) Gamma(d/2))`` (the law of the norm of a standard normal vector;
    e.g. Johnson, Kotz & Balakrishnan, *Continuous Univariate Distributions* vol. 1, ch. 18)::

        noise_nll = r^2 / 2 - (d - 1) log r + (d/2 - 1) log 2 + log Gamma(d/2)

    Why the norm and not ``0.5 ||noise||^2``: the Gaussian density is highest at 0, but in ``d`` dimensions its mass
    sits on the shell ``r ~ sqrt(d)``; penalising ``0.5 ||noise||^2`` pulls optimised noise to the origin, where
    no draw ever lands. In polar coordinates ``-log p(noise) = noise_nll(r) + log S_(d-1)`` (``S_(d-1)`` the area of
    the unit sphere, a constant): the direction of a standard normal vector is uniform and independent of ``r``,
    so every direction is equally likely and the norm carries the whole likelihood. The minimum is at
    ``r = sqrt(d - 1)``, near it the term grows like ``(r - sqrt(d - 1))^2`` (the chi's sd is about
    ``1 / sqrt(2)``). The term constrains the norm only, not correlations between entries.
    Raises ``ValueError`` for a tensor that is not ``[N, d]`` with ``d >= 1``.
    """
    if noise.dim() != 2 or noise.shape[1] < 1:
        raise ValueError(f"noise must be [N, d] with d >= 1, got shape {tuple(noise.shape)}")
    d = noise.shape[1]
    sq = noise.pow(2).sum(-1)
    log_r = 0.5 * torch.log(sq + 1e-30)
    const = (0.5 * d - 1) * math.log(2.0) + math.lgamma(0.5 * d)
    return 0.5 * sq - (d - 1) * log_r + const


def noise_block_nll(noise: Tensor, blocks: int) -> Tensor:
    """:func:`noise_nll` summed over ``blocks`` equal consecutive parts of each row: ``[N, d] -> [N]`` (nats).

    With the blocks of :meth:`navintent.diffusion.DifferentiableSampler.noise_vector` (``x_T`` and each step
    noise, ``T * A`` entries each) this is the negative log-likelihood of the per-step norms, each chi with
    ``d / blocks`` degrees of freedom and independent under N(0, I). It sees what the total-norm term cannot: a
    noise that keeps its overall norm but moves energy between denoising steps. ``blocks = 1`` is
    :func:`noise_nll`. Raises ``ValueError`` unless ``noise`` is ``[N, d]`` with ``d`` a positive multiple of
    ``blocks >= 1``.
    """
    if noise.dim() != 2 or blocks < 1 or noise.shape[1] < blocks or noise.shape[1] % blocks:
        raise ValueError(
            f"noise must be [N, d] with d a positive multiple of blocks={blocks}, got shape {tuple(noise.shape)}"
        )
    n, d = noise.shape
    return noise_nll(noise.reshape(n * blocks, d // blocks)).view(n, blocks).sum(1)


def noise_norm_z(noise: Tensor) -> Tensor:
    """Standardised squared norm ``(||noise||^2 - d) / sqrt(2 d)`` of ``noise [N, d]`` -> ``[N]``: under N(0, I)
    ``||noise||^2`` is chi-square with mean ``d`` and variance ``2 d``, so this is about N(0, 1) for drawn noise
    (|z| > 3 is rare). Raises ``ValueError`` for a tensor that is not ``[N, d]`` with ``d >= 1``."""
    if noise.dim() != 2 or noise.shape[1] < 1:
        raise ValueError(f"noise must be [N, d] with d >= 1, got shape {tuple(noise.shape)}")
    d = noise.shape[1]
    return (noise.pow(2).sum(-1) - d) / math.sqrt(2 * d)


def dynamics(
    waypoints: Tensor,
    ctx: ObjectiveContext,
    *,
    max_speed: float = 0.3,
    max_accel: float = 0.5,
    max_turn_rate: float = 0.6,
) -> Tensor:
    """Squared hinges on speed (m/s), acceleration (m/s^2) and heading change per step / dt (rad/s).

    Steps start from the origin (the robot at rest is not assumed: acceleration and turning use
    consecutive steps only). Defaults sit a little above NoMaD's robot limits (0.2 m/s, 0.4 rad/s).
    """
    dt = ctx.dt
    steps = torch.diff(waypoints, dim=1, prepend=torch.zeros_like(waypoints[:, :1]))
    speed = _safe_norm(steps) / dt
    loss = F.relu(speed - max_speed).pow(2).sum(1)
    if waypoints.shape[1] > 1:
        accel = _safe_norm(torch.diff(steps, dim=1)) / dt**2
        prev, nxt = steps[:, :-1], steps[:, 1:]
        cross = prev[..., 0] * nxt[..., 1] - prev[..., 1] * nxt[..., 0]
        dot = (prev * nxt).sum(-1)
        turn = torch.atan2(cross, dot + _EPS) / dt
        loss = (
            loss + F.relu(accel - max_accel).pow(2).sum(1) + F.relu(turn.abs() - max_turn_rate).pow(2).sum(1)
        )
    return loss


def static_collision(waypoints: Tensor, ctx: ObjectiveContext, *, substeps: int = 4) -> Tensor:
    """Mean occupancy of ``ctx.obstacle_map`` (1 = occupied) along the path from the origin through the
    waypoints, read at ``substeps`` points per segment."""
    path = torch.cat([torch.zeros_like(waypoints[:, :1]), waypoints], dim=1)
    frac = torch.arange(1, substeps + 1, dtype=waypoints.dtype, device=waypoints.device) / substeps
    pts = path[:, :-1, None] + (path[:, 1:, None] - path[:, :-1, None]) * frac.view(1, 1, -1, 1)
    return ctx.need("obstacle_map").sample(pts.flatten(1, 2)).mean(1)


TERMS: dict[str, Callable[..., Tensor]] = {
    "softmin_dist": softmin_dist,
    "collision_margin": collision_margin,
    "ttc": ttc,
    "cut_ahead": cut_ahead,
    "deviation": deviation,
    "reach": reach,
    "avoid": avoid,
    "occupancy": occupancy,
    "user": user,
    "z2_encoder": z2_encoder,
    "z2_nll": z2_nll,
    "z1_nll": z1_nll,
    "dynamics": dynamics,
    "static_collision": static_collision,
}
REALISM_TERMS: tuple[str, ...] = ("z2_encoder", "z2_nll", "z1_nll", "dynamics", "static_collision")


# --------------------------------------------------------------------------------------- composition
@dataclass(frozen=True)
class ObjectiveSpec:
    """One weighted term: ``name`` in ``TERMS``, ``weight``, keyword ``params`` of that term."""

    name: str
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in TERMS:
            raise ValueError(f"unknown objective {self.name!r}; known: {sorted(TERMS)}")
        if not math.isfinite(float(self.weight)):
            raise ValueError(f"objective {self.name} weight must be finite, got {self.weight}")
        sig = inspect.signature(TERMS[self.name])
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
        allowed = [p.name for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        unknown = sorted(set(self.params) - set(allowed))
        if unknown and not accepts_any:
            raise ValueError(f"objective {self.name} got unknown params {unknown}; it accepts {allowed}")
        missing = [
            p.name
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
            and p.default is inspect.Parameter.empty
            and p.name not in self.params
        ]
        if missing:
            raise ValueError(
                f"objective {self.name} needs params {missing} (write {self.name}:W@{missing[0]}=...)"
            )

    def __str__(self) -> str:
        params = ";".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}:{self.weight:g}" + (f"@{params}" if params else "")


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def parse_objectives(text: str) -> list[ObjectiveSpec]:
    """``"name:weight[@k=v;k=v],..."`` -> specs. Weight defaults to 1; names must not repeat."""
    specs: list[ObjectiveSpec] = []
    for chunk in (c.strip() for c in text.split(",")):
        if not chunk:
            raise ValueError(f"empty objective in {text!r}")
        head, _, param_text = chunk.partition("@")
        name, _, weight_text = head.partition(":")
        try:
            weight = float(weight_text) if weight_text else 1.0
        except ValueError as err:
            raise ValueError(f"objective {name!r}: weight must be a number, got {weight_text!r}") from err
        params = {}
        for item in filter(None, param_text.split(";")):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise ValueError(f"objective {name!r}: params must be key=value, got {item!r}")
            params[key.strip()] = _parse_value(value.strip())
        specs.append(ObjectiveSpec(name.strip(), weight, params))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"objective names must not repeat, got {names}")
    return specs


class Objective:
    """Weighted sum of terms: ``objective(waypoints [N, T, 2], ctx) -> [N]``."""

    def __init__(self, specs: Sequence[ObjectiveSpec] | str) -> None:
        self.specs = parse_objectives(specs) if isinstance(specs, str) else list(specs)
        if not self.specs:
            raise ValueError("an Objective needs at least one term")

    def terms(self, waypoints: Tensor, ctx: ObjectiveContext) -> dict[str, Tensor]:
        """Unweighted per-sample value ``[N]`` of every term, by name."""
        return {s.name: TERMS[s.name](waypoints, ctx, **s.params) for s in self.specs}

    def __call__(self, waypoints: Tensor, ctx: ObjectiveContext) -> Tensor:
        return sum(s.weight * TERMS[s.name](waypoints, ctx, **s.params) for s in self.specs)

    def __str__(self) -> str:
        return ",".join(str(s) for s in self.specs)


def min_agent_distance(waypoints: Tensor, ctx: ObjectiveContext) -> Tensor:
    """Hard minimum robot-agent distance ``[N]`` (metres; ``inf`` with no valid agent) — a metric."""
    d, valid = agent_distances(waypoints, ctx)
    return torch.where(valid, d, torch.full_like(d, math.inf)).flatten(1).min(1).values


def min_time_to_collision(waypoints: Tensor, ctx: ObjectiveContext, *, radius: float = 0.5) -> Tensor:
    """Hard minimum of :func:`time_to_collision` over waypoints and agents ``[N]`` (s) — a metric."""
    values, valid = time_to_collision(waypoints, ctx, radius=radius)
    return torch.where(valid, values, torch.full_like(values, math.inf)).flatten(1).min(1).values
