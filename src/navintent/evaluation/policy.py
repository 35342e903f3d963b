"""The closed-loop policy of one method: what it asks the model each control step, and how it is steered.

A method is two choices, each a small strategy object, instead of a switch on its name:

- where the latent comes from (:class:`LatentSource`): :class:`NoLatent` (plain NoMaD, the unconditional branch),
  :class:`PriorLatent` (z1 = the prior mean 0) or :class:`ReferenceLatent` (z1 = Encoder1's mean given the expert's
  plan as the reference); z2 = Encoder2(z1, current observation);
- how it is steered (:class:`Steering`): :class:`Unsteered`; :class:`Z2Search` (adam, best_of_n, cem: z2 re-optimised
  every ``replan_every`` steps, warm-started, held in between, or with ``EvalConfig.hold`` ``offset`` its offset
  from Encoder2's z2 held and added to each step's Encoder2 z2); :class:`GuidedSteering` (a guidance scale chosen
  every ``replan_every`` steps, guided sampling every step); :class:`NoiseSteering` (``noise`` / ``z2+noise``: the
  noise of the draws optimised, the best draw's noise executed until the next re-optimisation).

:func:`latent_source` and :func:`steering` map a method name of :data:`navintent.evaluation.config.METHODS` to them;
:class:`ClosedLoopPolicy` is the ``policy_fn`` of :func:`navintent.sim.rollout.rollout` that combines them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from navintent.actions import to_world
from navintent.checkpoint import LoadedModel
from navintent.diffusion import SamplerNoise, build_sampler, policy_eps_fn
from navintent.evaluation.config import LATENT_METHODS, METHODS, EvalConfig
from navintent.evaluation.scenes import PedestrianTracker, reference_from_plan
from navintent.objectives import Objective, deltas_to_metric, gaussian_nll, noise_nll, standard_normal_nll
from navintent.sim import to_robot_frame
from navintent.sim.rollout import Step
from navintent.steering import DiffusionAdapter, MethodResult, Scenarios, Z2OptimConfig
from navintent.steering import methods as steer_methods
from navintent.transforms import prepare_frames

# Central-difference step (m) of the target's reaction to the plan (prediction "reactive"): below the social
# force's range (``PedestrianConfig.agent_range``, 0.3 m) and on the scale of one re-optimisation's plan change,
# so a route-point switch or speed cap inside it gives a secant, not a spike (with 0.01 m forward differences
# single entries reached 34 at engaged re-optimisations).
RESPONSE_STEP_M = 0.05


# ------------------------------------------------------------------------------------------------ latent sources
class LatentSource:
    """Where z1 comes from. :meth:`latent` returns ``(z1 [1, z1_dim] or None, reference [1, H, ref_dim] or None)``
    for the current step; z2 is then Encoder2(z1, tokens)."""

    def latent(
        self, policy: ClosedLoopPolicy, tokens: Tensor, goal_mask: Tensor
    ) -> tuple[Tensor | None, Tensor | None]:
        raise NotImplementedError


class NoLatent(LatentSource):
    """No latent: plain NoMaD sampling (and the noise method on a plain checkpoint)."""

    def latent(self, policy, tokens, goal_mask):
        return None, None


class PriorLatent(LatentSource):
    """z1 = the prior mean 0."""

    def latent(self, policy, tokens, goal_mask):
        return torch.zeros(1, policy.model.z1_dim, device=policy.device), None


class ReferenceLatent(LatentSource):
    """z1 = Encoder1's mean given the expert's plan at the current pose (:func:`reference_from_plan`, spacing =
    the metric scale) as the reference."""

    def latent(self, policy, tokens, goal_mask):
        plan = reference_from_plan(
            policy.scene.path, policy.poses[-1], policy.loaded.ref_horizon, policy.metric_scale,
            policy.model.intent_config.ref_dim,
        )  # fmt: skip
        ref = torch.as_tensor(plan, dtype=torch.float32, device=policy.device)[None]
        with torch.no_grad():
            z1, _ = policy.model.posterior(tokens, goal_mask.bool(), ref, None)
        return z1, ref


def latent_source(method: str, loaded: LoadedModel) -> LatentSource:
    """``nomad``: none; ``prior``: the prior mean; every other method: the reference latent when the checkpoint
    has intent encoders, else none (only ``noise`` runs on a plain checkpoint)."""
    if method == "nomad":
        return NoLatent()
    if method == "prior":
        return PriorLatent()
    return ReferenceLatent() if loaded.is_intent else NoLatent()


# ------------------------------------------------------------------------------------------------ steering
class Steering:
    """How a method steers. :meth:`step` gets the step index, the encoded inputs and the latent, and returns the
    z2 to execute (``[1, z]`` or None) and, when the steering sampled itself, the executed waypoints ``[T, 2]``
    (m, torch) — else None and the policy samples. ``predicts_agents``: it needs the target's predicted future."""

    predicts_agents = False

    def step(
        self, policy: ClosedLoopPolicy, step: int, obs: Tensor, goal: Tensor, ref: Tensor | None,
        z1: Tensor | None, z2: Tensor | None,
    ) -> tuple[Tensor | None, Tensor | None]:  # fmt: skip
        return z2, None


class Unsteered(Steering):
    """No steering: Encoder2's z2 (or none), fresh noise every step."""


class _Reoptimising(Steering):
    """Steering that re-optimises every ``replan_every`` steps; :meth:`run` is one re-optimisation (it may set
    the policy's held noise or guidance scale), timed by :meth:`ClosedLoopPolicy.reoptimise`."""

    predicts_agents = True
    warm_start_z2 = True

    def run(self, policy: ClosedLoopPolicy, adapter: DiffusionAdapter, budget: float, start) -> MethodResult:
        raise NotImplementedError


class _HoldsZ2(_Reoptimising):
    """The z2 searches and the noise methods: at each re-optimising step re-optimise when the target is within
    ``EvalConfig.engage_distance`` (else drive the nominal until the next check), and in between execute z2 as
    ``EvalConfig.hold`` says."""

    def disengage(self, policy: ClosedLoopPolicy) -> None:
        """What to forget when the target is out of reach (nothing here; the noise methods' held noise)."""

    def replan(self, policy: ClosedLoopPolicy, adapter: DiffusionAdapter) -> None:
        policy.engaged = policy.target_in_reach(adapter)
        if policy.engaged:
            policy.reoptimise(adapter, self)
        else:  # nothing to attack within reach: the next warm start is the nominal, no offset
            self.disengage(policy)
            policy.z2_star = adapter.z2_init.detach().clone()
            policy.skipped_reoptimisations += 1
        policy.z2_offset = policy.z2_star - adapter.z2_init

    def held_z2(self, policy: ClosedLoopPolicy, z2: Tensor | None) -> Tensor | None:
        """The z2 to execute this step, given Encoder2's ``z2`` of the step."""
        if not policy.engaged:  # disengaged: Encoder2's z2 of each step, the nominal episode (either hold)
            return z2
        if policy.config.hold == "offset" and z2 is not None:
            return z2 + policy.z2_offset
        return policy.z2_star


class Z2Search(_HoldsZ2):
    """adam / best_of_n / cem: z2 re-optimised (warm-started from the previous optimum), held in between."""

    def __init__(self, run: Callable[[ClosedLoopPolicy, DiffusionAdapter, float, Any], MethodResult]) -> None:
        self._run = run

    def run(self, policy, adapter, budget, start):
        return self._run(policy, adapter, budget, start)

    def step(self, policy, step, obs, goal, ref, z1, z2):
        if step % policy.config.replan_every == 0:
            self.replan(policy, policy.adapter(obs, goal, ref, z1))
        return self.held_z2(policy, z2), None


class GuidedSteering(_Reoptimising):
    """guided: a guidance scale chosen every ``replan_every`` steps (z2 = Encoder2's), guided sampling every step;
    with ``EvalConfig.engage_distance`` the scale is 0 (plain sampling) while the target is out of reach."""

    warm_start_z2 = False

    def run(self, policy, adapter, budget, start):
        result = steer_methods.guided_baseline(
            adapter, budget, policy.opt_config, policy.search_generator, start=start
        )
        policy.guide_scale = result.guide_scale.detach()
        return result

    def step(self, policy, step, obs, goal, ref, z1, z2):
        adapter = policy.adapter(obs, goal, ref, z1)
        if step % policy.config.replan_every == 0:
            if policy.target_in_reach(adapter):
                policy.reoptimise(adapter, self)
            else:  # nothing to attack within reach: unguided sampling until the next re-optimising step
                policy.guide_scale = torch.zeros(1, device=policy.device)
                policy.skipped_reoptimisations += 1
        noise = adapter.draw_noise(1, policy.sample_generator)  # the executed draw every method shares
        policy.record_noise(noise)
        if bool((policy.guide_scale != 0).any()):
            policy.react(adapter)
        out = adapter.guided(policy.guide_scale, noise=noise)
        return z2, out.waypoints[0, 0].detach()


class NoiseSteering(_HoldsZ2):
    """noise / z2+noise: the noise of the draws (and with ``with_z2`` z2) optimised every ``replan_every`` steps,
    warm-started; the best draw's noise is executed until the next re-optimisation. ``noise`` executes Encoder2's
    z2 (z = 0 on a plain checkpoint), ``z2+noise`` the optimised one, held as ``EvalConfig.hold`` says (as adam's).
    With ``EvalConfig.engage_distance``, while the target is out of reach nothing is searched: fresh noise from the
    executed stream and Encoder2's z2 (the nominal episode), and the next search starts cold."""

    def __init__(self, with_z2: bool) -> None:
        self.with_z2 = with_z2
        self.warm_start_z2 = with_z2

    def run(self, policy, adapter, budget, start):
        result = steer_methods.optimize_noise(
            adapter, budget, policy.opt_config, with_z2=self.with_z2, start=start, start_noise=policy.noise_star,
            progress=False,
        )  # fmt: skip
        policy.noise_star = result.noise
        policy.noise_exec = policy.best_draw(adapter, result)
        return result

    def disengage(
        self, policy
    ):  # fresh noise (the nominal episode's) until the next check, then a cold start
        policy.noise_star = policy.noise_exec = None

    def step(self, policy, step, obs, goal, ref, z1, z2):
        if step % policy.config.replan_every == 0:
            self.replan(policy, policy.adapter(obs, goal, ref, z1))
        if z2 is None:  # a plain policy: the adapter's z = 0
            z2 = torch.zeros(1, policy.model.z_dim, device=policy.device)
        return (self.held_z2(policy, z2) if self.with_z2 else z2), None


STEERING: dict[str, Callable[[], Steering]] = {
    "nomad": Unsteered,
    "prior": Unsteered,
    "reference": Unsteered,
    "adam": lambda: Z2Search(
        lambda p, a, budget, start: steer_methods.optimize_adam(a, p.opt_config, start=start, progress=False)
    ),
    "best_of_n": lambda: Z2Search(
        lambda p, a, budget, start: steer_methods.best_of_n(
            a, budget, p.opt_config, p.search_generator, start=start
        )
    ),
    "cem": lambda: Z2Search(
        lambda p, a, budget, start: steer_methods.cem(
            a, budget, p.opt_config, p.search_generator, start=start
        )
    ),
    "guided": GuidedSteering,
    "noise": lambda: NoiseSteering(with_z2=False),
    "z2+noise": lambda: NoiseSteering(with_z2=True),
}


def steering(method: str) -> Steering:
    """The steering strategy of ``method`` (a fresh object: it carries no state, the policy does)."""
    return STEERING[method]()


# ------------------------------------------------------------------------------------------------ the policy
class ClosedLoopPolicy:
    """``policy_fn`` for :func:`navintent.sim.rollout.rollout` implementing one method (see
    :mod:`navintent.evaluation`): called with every :class:`navintent.sim.rollout.Step` of the episode in order
    (context frames ``[C, H, W, 3]`` uint8, goal image ``[H, W, 3]``, the robot's pose and the pedestrians), returns
    waypoints ``[T, 2]`` (m, robot frame). ``goal_masked``: the goal token is hidden (exploration; the goal image is
    then ignored). ``poses`` / ``peds``: the robot poses ``[3]`` and pedestrian positions ``[N, 2]`` (world) of the
    steps seen so far; the steering methods replay the pedestrians along them (:class:`PedestrianTracker`) to
    predict the target's future, so the policy must be given every step (a skipped step raises ``ValueError``).

    After the episode: ``z1_loglik`` / ``z2_loglik`` / ``noise_loglik`` (nats) / ``plans`` (``[T, 2]`` m) lists per
    control step, ``reoptimisations``, ``skipped_reoptimisations`` (re-optimising steps with the target out of
    ``EvalConfig.engage_distance``), ``optimisation_seconds`` (per re-optimisation). Noise methods hold
    ``noise_star`` (the optimised noise of all draws, the next warm start) and ``noise_exec`` (the best draw's,
    executed).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        method: str,
        scene,
        *,
        config: EvalConfig,
        metric_scale: float,
        target: int,
        seed: int,
        budget_s: float | None = None,
        progress: bool = False,
        goal_masked: bool = False,
    ) -> None:
        if method not in METHODS or method == "expert":
            raise ValueError(f"ClosedLoopPolicy method must be one of {list(METHODS[1:])}, got {method!r}")
        if method in LATENT_METHODS and not loaded.is_intent:
            raise ValueError(f"method {method!r} needs a two-stage intent checkpoint (Encoder1/Encoder2)")
        self.loaded, self.model, self.method, self.scene = loaded, loaded.model, method, scene
        self.config = config
        self.metric_scale, self.target = float(metric_scale), int(target)
        self.latent_source = latent_source(method, loaded)
        self.steering = steering(method)
        self.device = next(self.model.parameters()).device
        # Common random numbers: the executed samples' noise comes from ``sample_generator`` (one draw per control
        # step, seeded by ``seed`` alone), so every method of a scene executes the same noise at the same step, and
        # a steering method that never engages drives exactly the nominal episode; its searches and engagement
        # checks draw from ``search_generator`` instead, so they leave that stream untouched.
        self.sample_generator = torch.Generator(device=self.device).manual_seed(int(seed))
        search_seed = int(np.random.SeedSequence([int(seed), 1]).generate_state(1, dtype=np.uint64)[0])
        self.search_generator = torch.Generator(device=self.device).manual_seed(search_seed)
        self.sampler = build_sampler(self.model.scheduler_config, kind="ddpm", clip="hard")
        self.opt_sampler = build_sampler(self.model.scheduler_config, kind="ddpm", clip="straight_through")
        self.dt_wp = scene.config.robot.dt * loaded.waypoint_spacing
        self.opt_config = Z2OptimConfig(
            steps=config.opt_steps, lr=config.lr, draws=config.draws, lambda_cfg=config.lambda_cfg,
            dt=self.dt_wp, success_radius=config.safety_radius, noise_lr=config.noise_lr,
            noise_nll_weight=config.noise_nll_weight, noise_space=config.noise_space,
        )  # fmt: skip
        self.budget_s = budget_s
        self.progress = progress
        self.goal_masked = bool(goal_masked)
        self.tracker = PedestrianTracker(scene) if self.steering.predicts_agents else None
        self.poses: list[np.ndarray] = []
        self.peds: list[np.ndarray] = []
        self.z2_star: Tensor | None = None
        self.z2_offset: Tensor | None = None
        self.guide_scale: Tensor | None = None
        self.z1_loglik: list[float] = []
        self.z2_loglik: list[float] = []
        self.noise_loglik: list[float] = []
        self.noise_star: SamplerNoise | None = None
        self.noise_exec: SamplerNoise | None = None
        self.plans: list[np.ndarray] = []
        self.reoptimisations = 0
        self.skipped_reoptimisations = 0
        self.engaged = True  # whether the last re-optimising step re-optimised (EvalConfig.engage_distance)
        self.optimisation_seconds: list[float] = []

    # --- pieces the strategies use -------------------------------------------------------------------
    def target_in_reach(self, adapter: DiffusionAdapter) -> bool:
        """Whether to re-optimise at this step: always when ``EvalConfig.engage_distance`` is 0, else only when
        the target's predicted track passes within that many metres of the nominal plan (the mean plan of
        Encoder2's z2 over the draws; closest pair of points, any times)."""
        reach = self.config.engage_distance
        if reach <= 0:
            return True
        nominal = adapter.context.nominal  # set when the objective has a deviation term (adapter())
        nominal = (adapter.plans(adapter.z2_init).mean(1) if nominal is None else nominal)[0]  # [T, 2]
        track = adapter.scenarios.agents[0, :, 0]  # [T, 2]
        return bool(torch.cdist(nominal, track.to(nominal)).min() <= reach)

    def target_future(self, plan: Tensor | None = None) -> Tensor:
        """Target's positions ``[1, T, 1, 2]`` (m, current robot frame) at the waypoint times, predicted with the
        robot held still, or, given ``plan [T, 2]`` (m, current robot frame, waypoints ``waypoint_spacing``
        control steps apart), with the robot driving it (linear between the waypoints, from its current position;
        ``EvalConfig.prediction``)."""
        local = self._target_future(None if plan is None else plan.detach().cpu().double().numpy())
        return torch.as_tensor(local, dtype=torch.float32, device=self.device).view(1, -1, 1, 2)

    def _target_future(self, plan: np.ndarray | None) -> np.ndarray:
        """:meth:`target_future` in float64 numpy: ``plan [T, 2]`` or None -> ``[T, 2]``."""
        self.tracker.sync(self.poses, self.peds)
        t_pred, ws = self.model.config.len_traj_pred, self.loaded.waypoint_spacing
        path = None
        if plan is not None:
            knots = np.vstack([np.zeros(2), plan])  # [T + 1, 2], from the robot
            at = np.arange(t_pred * ws) / ws  # where each control step starts, in waypoints
            local = np.stack([np.interp(at, np.arange(t_pred + 1), knots[:, d]) for d in range(2)], axis=1)
            pose = torch.as_tensor(self.poses[-1], dtype=torch.float64)
            path = to_world(torch.from_numpy(local), pose[:2], pose[2]).numpy()  # [t_pred * ws, 2]
        future = self.tracker.predict(t_pred * ws, path)[ws - 1 :: ws, self.target]  # [T, 2]
        return to_robot_frame(future, self.poses[-1])

    def target_response(self, plan: Tensor, step_m: float = RESPONSE_STEP_M) -> Tensor:
        """The target's first-order reaction to the plan (``EvalConfig.prediction`` ``reactive``):
        ``J [1, T, 1, 2, T, 2]`` with ``J[0, t, 0, :, s, :] = d target_future(plan)[0, t, 0] / d plan[s]`` at ``plan
        [T, 2]`` (m, current robot frame), by central differences of ``+- step_m`` metres through the social-force
        prediction (4T extra roll-outs). Causal: row ``t`` does not depend on waypoints after ``t``, so those
        entries are exactly 0 (not computed). The model switches route points and speed caps, so near the robot
        the derivative is a secant over ``2 step_m``, not a tangent."""
        base_plan = plan.detach().cpu().double().numpy()
        t_pred = base_plan.shape[0]
        jac = np.zeros((t_pred, 2, t_pred, 2))
        for s in range(t_pred):
            for d in range(2):
                ahead, behind = base_plan.copy(), base_plan.copy()
                ahead[s, d] += step_m
                behind[s, d] -= step_m
                diff = self._target_future(ahead) - self._target_future(behind)
                jac[s:, :, s, d] = diff[s:] / (2 * step_m)
        return torch.as_tensor(jac, dtype=torch.float32, device=self.device)[None, :, None]

    def react(self, adapter: DiffusionAdapter) -> None:
        """With ``EvalConfig.prediction`` ``reactive``, give ``adapter``'s objective the target's linearised
        reaction to the plan (:meth:`target_response` at the nominal plan; ``ObjectiveContext.agents_jacobian``)
        unless it has it; a no-op for the other predictions. Called only where the objective is searched (each
        re-optimisation, and each guided tick with a non-zero scale), since the Jacobian costs 4T roll-outs of
        the pedestrians."""
        if self.config.prediction != "reactive" or adapter.context.agents_jacobian is not None:
            return
        jac = self.target_response(adapter.context.need("nominal")[0])
        adapter.context = adapter.context.replace(agents_jacobian=jac)

    def adapter(self, obs: Tensor, goal: Tensor, ref: Tensor | None, z1: Tensor | None) -> DiffusionAdapter:
        """The one-scenario steering problem of this step (``obs [1, C, 3, H, W]``, ``goal [1, 1, 3, H, W]``)
        against the target's predicted future. An objective with a ``deviation`` term compares against the
        nominal plan: the mean, over the optimisation draws, of the plan of Encoder2's z2 at this step (the
        method's own latent, unsteered), so the term keeps the steered plan near what the navigator would do."""
        sc = Scenarios(
            obs_img=obs,
            goal_img=goal,
            metric_scale=torch.tensor([self.metric_scale], device=self.device),
            goal_mask=torch.full((1,), int(self.goal_masked), dtype=torch.long, device=self.device),
            ref_traj=ref,
            ref_mask=None if ref is None else torch.ones(1, device=self.device),
            agents=self.target_future(),
            agents_mask=torch.ones(1, 1, device=self.device),
            z1=z1,
        )
        adapter = DiffusionAdapter(
            self.model, sc, Objective(self.config.objective), sampler=self.opt_sampler, draws=self.config.draws,
            lambda_cfg=self.config.lambda_cfg, dt=self.dt_wp, z2_stats=self.loaded.z2_stats,
            generator=self.search_generator, noise_space=self.config.noise_space,
        )  # fmt: skip
        nominal = None
        if self.config.prediction in ("nominal", "reactive") or any(
            spec.name == "deviation" for spec in adapter.objective.specs
        ):
            # the nominal plan: the mean over the draws of what this step's own z2 (Encoder2's) would drive
            nominal = adapter.plans(adapter.z2_init).mean(1)  # [1, T, 2]
            adapter.context = adapter.context.replace(nominal=nominal)
        if self.config.prediction in ("nominal", "reactive"):  # the target reacting to the nominal plan
            agents = self.target_future(nominal[0])
            adapter.scenarios = dataclasses.replace(adapter.scenarios, agents=agents)
            adapter.context = adapter.context.replace(agents=agents)
        return adapter

    def reoptimise(self, adapter: DiffusionAdapter, strategy: _Reoptimising) -> None:
        """One re-optimisation by ``strategy`` within ``budget_s`` (None: 1 s), warm-started from the previous
        optimum (z2 when the strategy warm-starts it, or with ``hold: offset`` this step's Encoder2 z2 plus the
        previous offset; the realism anchor stays Encoder2's output). ``optimisation_seconds`` times the search
        alone: the target's prediction and its reaction (:meth:`react`) come before the clock starts, so the
        baselines' budget (Adam's mean time) is search time for every prediction."""
        self.react(adapter)
        start = time.perf_counter()
        budget = self.budget_s if self.budget_s is not None else 1.0
        z2_start = None
        if self.z2_star is not None and strategy.warm_start_z2:
            offset = self.config.hold == "offset" and self.z2_offset is not None
            z2_start = adapter.z2_init + self.z2_offset if offset else self.z2_star.clone()
        result = strategy.run(self, adapter, budget, z2_start)
        self.z2_star = result.z2.detach()
        self.reoptimisations += 1
        self.optimisation_seconds.append(time.perf_counter() - start)

    def best_draw(self, adapter: DiffusionAdapter, result: MethodResult) -> SamplerNoise:
        """The optimised draw with the lowest loss (objective + weighted noise realism) as a one-row noise."""
        with torch.no_grad():
            per_draw = adapter.loss_given_z2(result.z2, noise=result.noise).per_draw[0]
            nll = adapter.noise_nll(result.noise, self.opt_config.noise_space)[0]
            per_draw = per_draw + self.opt_config.noise_nll_weight * nll
        k = int(per_draw.argmin())
        return SamplerNoise(result.noise.x_T[k : k + 1].clone(), result.noise.steps[:, k : k + 1].clone())

    def record_noise(self, noise: SamplerNoise) -> None:
        """Log-likelihood (nats) of the executed ``noise`` over ``noise_space``, appended to ``noise_loglik``."""
        vec = self.sampler.noise_vector(noise, self.config.noise_space)
        self.noise_loglik.append(-float(noise_nll(vec)[0]))

    def sample(self, cond: Tensor, z2: Tensor | None, noise: SamplerNoise | None = None) -> Tensor:
        """One executed sample: waypoints ``[T, 2]`` (m) from ``noise`` (None: this step's fresh draw). The
        executed stream advances by one draw every step either way, so after steps on held noise (the noise
        methods while engaged) a fresh draw is the one the nominal episode executes at the same step."""
        cfg = self.model.config
        fresh = self.sampler.draw_noise(
            (1, cfg.len_traj_pred, cfg.action_dim), generator=self.sample_generator, device=self.device
        )
        noise = fresh if noise is None else noise
        self.record_noise(noise)
        lam = self.config.lambda_cfg if z2 is not None else 0.0
        with torch.no_grad():
            x = self.sampler.sample(policy_eps_fn(self.model, cond, z2, lambda_cfg=lam), noise)
        return deltas_to_metric(x, cfg.action_min, cfg.action_max, self.metric_scale)[0]

    # --- the policy ------------------------------------------------------------------------------------
    def __call__(self, state: Step) -> np.ndarray:
        mc = self.model.config
        step = len(self.poses)
        if state.t != step:
            raise ValueError(
                f"ClosedLoopPolicy must be given every step in order: expected step {step}, got {state.t}"
            )
        self.poses.append(state.pose)
        self.peds.append(state.ped_positions)
        obs = torch.from_numpy(prepare_frames(state.context, mc.image_size))[None].to(self.device)
        goal = torch.from_numpy(prepare_frames(state.goal_image[None], mc.image_size))[None].to(self.device)
        goal_mask = torch.full((1,), int(self.goal_masked), dtype=torch.long, device=self.device)
        with torch.no_grad():
            cond, tokens = self.model.encode(obs, goal, goal_mask, return_tokens=True)
        z1, ref = self.latent_source.latent(self, tokens, goal_mask)
        z2 = None
        if z1 is not None:
            with torch.no_grad():
                z2 = self.model.z2_from_tokens(z1, tokens)
        z2, waypoints = self.steering.step(self, step, obs, goal, ref, z1, z2)
        if waypoints is None:
            waypoints = self.sample(cond, z2, self.noise_exec)
        if z1 is not None:
            self.z1_loglik.append(-float(standard_normal_nll(z1)[0]))
        if z2 is not None and self.loaded.z2_stats is not None:
            self.z2_loglik.append(-float(gaussian_nll(z2, *self.loaded.z2_stats)[0]))
        wp = waypoints.detach().cpu().double().numpy()
        self.plans.append(wp)
        return wp
