"""Closed-loop evaluation in the built-in world (``navintent evaluate``) and the latent experiments
(``navintent experiment diversity|perturb``).

What ``evaluate`` runs. ``K`` held-out scenes (:func:`~navintent.evaluation.scenes.evaluation_scenes`: scene seeds ``EVAL_SEED_BASE + 1000 *
seed + i``, small integers, while ``navintent make-data`` draws 32-bit ``SeedSequence`` hashes; scenes without a
pedestrian are skipped, so every scene has a target). In each scene every method drives the robot closed loop with
:func:`navintent.sim.rollout.rollout` (NoMaD's deployment: re-sample every control step, execute waypoint 2 through
the PD follower):

- ``expert``: the privileged A* expert (a reference row, not a policy);
- ``nomad``: plain NoMaD sampling, no latent (the unconditional branch);
- ``prior``: z1 = the prior mean 0 -> Encoder2(z1, current observation) -> z2, every step;
- ``reference``: z1 = Encoder1's mean given the expert's planned path as the reference (see
  :func:`~navintent.evaluation.scenes.reference_from_plan`) -> Encoder2 -> z2, every step. This is the NOMINAL of the steering methods;
- ``adam`` / ``best_of_n`` / ``cem`` / ``guided``: z1 as ``reference``; every ``replan_every`` control steps z2 is
  re-optimised (:mod:`navintent.steering`, objective ``objective``, default: approach the TARGET pedestrian) against
  the target pedestrian's predicted future (the social-force model rolled forward from the exact pedestrian state
  of the episode with the robot held still, or with ``prediction: nominal`` driving the nominal plan,
  :meth:`navintent.sim.world.World.predict_agents`; ``prediction: reactive`` adds the target's linearised reaction
  to the searched plan, ``ObjectiveContext.agents_jacobian``). Adam runs
  ``opt_steps`` steps warm-started from the previous optimum; best-of-N and CEM (also warm-started) and the guidance
  scale sweep get the same wall-clock budget per re-optimisation as Adam's mean in that scene (``budget_s`` = 0; 1 s
  when Adam is not evaluated) or ``budget_s`` seconds. Between re-optimisations z2 is held; ``guided`` re-runs guided sampling every step with the
  scale it chose. Executed trajectories are fresh samples (new noise each step), NoMaD's DDPM with its hard clip;
- ``noise`` (Diffusion Noise Optimization, :func:`navintent.steering.optimize_noise`): z2 = Encoder2's output as
  in ``reference`` every step (no latent for a plain NoMaD checkpoint: z = 0, which is NoMaD exactly), and every
  ``replan_every`` steps the noise of ``draws`` draws is optimised (warm-started from the previous optimum) at the
  same budget as the baselines; ``z2+noise`` optimises z2 and the noise together. A noise-optimised result exists
  only for its own noise, so between re-optimisations these two execute samples from the HELD noise of the best
  draw (lowest loss of the last re-optimisation) with the current observation, instead of fresh noise;
  ``z2+noise`` holds z2 as ``hold`` says. With ``engage_distance`` every steering method re-optimises only when
  the target is within reach and otherwise drives the nominal (Encoder2's z2, fresh noise, guidance scale 0).

The target pedestrian of a scene is the one whose robot-free walk (see below) passes closest to the expert's plan
within its first ``TARGET_HORIZON_STEPS`` (400) steps, whatever the episode length.

Common random numbers: every method's executed samples draw their noise from one stream per scene (seeded by the
scene, one draw per control step), and the searches, their engagement checks and the guidance draws from another,
so at every step every method executes the same noise; a steering method that never re-optimises drives exactly
the nominal episode, and paired differences come from the steering, not from another draw of the sampling noise.

Metrics per episode (aggregated per method in :func:`~navintent.evaluation.metrics.aggregate`):

- goal reached (within ``goal_radius``), success (reached, no collision), static collision (any blocked step),
  pedestrian collision (any contact onset), steps to goal (reached episodes only), seconds per scenario (wall clock
  of the whole episode, optimisation included);
- target minimum distance (centre to centre, m); attack success: the target came inside ``safety_radius`` while the
  nominal (``reference``) episode of the same scene did not — the rate's denominator is the scenes whose nominal
  stayed outside;
- interaction intensity ("make others yield"), against the SAME scene replayed with pedestrians that
  ignore the robot (``robot_strength = 0``, all else equal; :func:`~navintent.evaluation.scenes.free_walk`): ``deviation`` = the largest
  displacement (m) of a pedestrian from where it would have been at the same time without the robot (detours and
  delays both show), and ``speed deficit`` = the mean over pedestrians and steps (where the free walk moves) of
  ``max(0, 1 - |v| / |v_free|)`` — how much they slowed down (:func:`~navintent.evaluation.metrics.interaction_intensity`);
- z1 log-likelihood under the prior N(0, I) and z2 log-likelihood under the Gaussian fitted to training z2 (the
  checkpoint's ``z2_stats``), nats, averaged over the control steps (None where a method has no latent or the
  checkpoint has no statistics); noise log-likelihood: minus :func:`navintent.objectives.noise_nll` (the chi
  log-density of the norm of the noise the executed sample came from, over ``noise_space``), nats, averaged over
  the control steps (fresh N(0, I) noise for every method but the noise-optimising ones);
- dynamics-limit violations: fraction of control steps whose planned trajectory breaks the limits of
  :func:`navintent.objectives.dynamics` (speed 0.3 m/s, acceleration 0.5 m/s^2, turn rate 0.6 rad/s: a little above
  the robot's 0.2 m/s, 0.4 rad/s, as in the optimiser's realism term). The executed commands are always within the
  robot's limits (the follower clips them).

Outputs in ``--out-dir``: ``metrics.json`` (config, per-method summary, per-episode rows), ``results.md`` (the
table), ``closed_loop_<scene>.png`` (top-down per method) and ``summary.png``.

``navintent experiment diversity``: at the moment before an interaction in held-out scenes (the observation of
:func:`navintent.steering.sim_scenarios`), the spread of sampled trajectories when z1 is held fixed (noise only), when
z1 varies with the noise fixed, when both vary, and with no latent. ``navintent experiment perturb``: z1 = Encoder1's
mean + sigma * N(0, I) for increasing sigma; the fraction of trajectories still executable = collision-free on the
scene's occupancy map (robot disc) and within the dynamics limits above. Each writes JSON, a Markdown table and plots.

The package, by concern (the typed entry point is :func:`evaluate`, ``from navintent.evaluation import evaluate``,
returning an :class:`EvaluateResult`; ``navintent evaluate`` / ``navintent experiment`` are thin layers over it in
:mod:`navintent.commands.evaluate`):

- :mod:`~navintent.evaluation.config`: method names and :class:`EvalConfig`;
- :mod:`~navintent.evaluation.scenes`: held-out scenes, the robot-free walk, the target, the expert's reference;
- :mod:`~navintent.evaluation.policy`: :class:`ClosedLoopPolicy` from a latent source and a steering strategy;
- :mod:`~navintent.evaluation.closed_loop`: episodes, scenes, worker processes and ``torchrun`` ranks;
- :mod:`~navintent.evaluation.metrics`, :mod:`~navintent.evaluation.statistics`: episode and method numbers;
- :mod:`~navintent.evaluation.report`: tables, ``metrics.json``, ``results.md``, plots;
- :mod:`~navintent.evaluation.experiments`: ``diversity`` and ``perturb``;
- :mod:`~navintent.evaluation.tasks`: the navigate / explore tasks and their metrics;
  :mod:`~navintent.evaluation.goal_metrics`: the training evaluation's goal-conditioning metrics;
- :mod:`~navintent.evaluation.api`: :func:`evaluate`.

The public names below load on first use (module ``__getattr__``): training imports
:mod:`navintent.evaluation.goal_metrics`, and importing this package must not pull the simulator (MuJoCo) into it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module of this package that defines it
_EXPORTS: dict[str, str] = {
    "EVAL_SEED_BASE": "config",
    "METHODS": "config",
    "LATENT_METHODS": "config",
    "STEERING_METHODS": "config",
    "NOISE_STEERING": "config",
    "NOMINAL": "config",
    "DYNAMICS_LIMITS": "config",
    "dynamics_limits": "config",
    "EvalConfig": "config",
    "interaction_intensity": "metrics",
    "attack_success": "metrics",
    "dynamics_violations": "metrics",
    "aggregate": "metrics",
    "TASK_MEANS": "metrics",
    "CLOSED_LOOP_METRICS": "metrics",
    "closed_loop_statistics": "metrics",
    "paired_steering_comparisons": "metrics",
    "TABLE_COLUMNS": "report",
    "TASK_COLUMNS": "report",
    "markdown_table": "report",
    "ci_table": "report",
    "write_json": "report",
    "evaluation_scenes": "scenes",
    "free_walk": "scenes",
    "target_pedestrian": "scenes",
    "reference_from_plan": "scenes",
    "PedestrianTracker": "scenes",
    "ClosedLoopPolicy": "policy",
    "Episode": "closed_loop",
    "SceneResult": "closed_loop",
    "run_episode": "closed_loop",
    "evaluate_scene": "closed_loop",
    "resolve_methods": "closed_loop",
    "torch_threads": "closed_loop",
    "trajectory_spread": "experiments",
    "executable": "experiments",
    "run_diversity": "experiments",
    "run_perturb": "experiments",
    "EvaluateResult": "api",
    "evaluate": "api",
}

if TYPE_CHECKING:
    from navintent.evaluation.api import EvaluateResult, evaluate
    from navintent.evaluation.closed_loop import (
        Episode,
        SceneResult,
        evaluate_scene,
        resolve_methods,
        run_episode,
        torch_threads,
    )
    from navintent.evaluation.config import (
        DYNAMICS_LIMITS,
        EVAL_SEED_BASE,
        LATENT_METHODS,
        METHODS,
        NOISE_STEERING,
        NOMINAL,
        STEERING_METHODS,
        EvalConfig,
        dynamics_limits,
    )
    from navintent.evaluation.experiments import executable, run_diversity, run_perturb, trajectory_spread
    from navintent.evaluation.metrics import (
        CLOSED_LOOP_METRICS,
        TASK_MEANS,
        aggregate,
        attack_success,
        closed_loop_statistics,
        dynamics_violations,
        interaction_intensity,
        paired_steering_comparisons,
    )
    from navintent.evaluation.policy import ClosedLoopPolicy
    from navintent.evaluation.report import TABLE_COLUMNS, TASK_COLUMNS, ci_table, markdown_table, write_json
    from navintent.evaluation.scenes import (
        PedestrianTracker,
        evaluation_scenes,
        free_walk,
        reference_from_plan,
        target_pedestrian,
    )

__all__ = [
    "CLOSED_LOOP_METRICS",
    "ClosedLoopPolicy",
    "DYNAMICS_LIMITS",
    "EVAL_SEED_BASE",
    "Episode",
    "EvalConfig",
    "EvaluateResult",
    "LATENT_METHODS",
    "METHODS",
    "NOISE_STEERING",
    "NOMINAL",
    "PedestrianTracker",
    "STEERING_METHODS",
    "SceneResult",
    "TABLE_COLUMNS",
    "TASK_COLUMNS",
    "TASK_MEANS",
    "aggregate",
    "attack_success",
    "ci_table",
    "closed_loop_statistics",
    "dynamics_limits",
    "dynamics_violations",
    "evaluate",
    "evaluate_scene",
    "evaluation_scenes",
    "executable",
    "free_walk",
    "interaction_intensity",
    "markdown_table",
    "paired_steering_comparisons",
    "reference_from_plan",
    "resolve_methods",
    "run_diversity",
    "run_episode",
    "run_perturb",
    "target_pedestrian",
    "torch_threads",
    "trajectory_spread",
    "write_json",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'navintent.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"navintent.evaluation.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
