"""What a closed-loop evaluation runs: the method names, the held-out seed base and :class:`EvalConfig` with its
validation (every field checked in ``__post_init__``; errors name the field and value).

Method sets: :data:`METHODS` in report order; :data:`LATENT_METHODS` need a two-stage intent checkpoint;
:data:`STEERING_METHODS` re-optimise every ``replan_every`` control steps; :data:`NOISE_STEERING` optimise the
diffusion noise; :data:`NOMINAL` is the method attack success is judged against. :data:`DYNAMICS_LIMITS` are the
planned-trajectory limits of the dynamics-violation metric (m/s, m/s^2, rad/s) for the built-in world's robot
(:func:`dynamics_limits` for another).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from navintent.config import (
    ConfigBase,
    check_non_negative_int,
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
)
from navintent.evaluation.tasks import TASKS
from navintent.sim.config import RobotConfig
from navintent.steering.config import DEFAULT_OBJECTIVE

EVAL_SEED_BASE = 1_000_000
METHODS: tuple[str, ...] = (
    "expert", "nomad", "prior", "reference", "adam", "best_of_n", "cem", "guided", "noise", "z2+noise",
)  # fmt: skip
LATENT_METHODS: tuple[str, ...] = ("prior", "reference", "adam", "best_of_n", "cem", "guided", "z2+noise")
STEERING_METHODS: tuple[str, ...] = ("adam", "best_of_n", "cem", "guided", "noise", "z2+noise")
NOISE_STEERING: tuple[str, ...] = ("noise", "z2+noise")
NOMINAL = "reference"
# What adam / best_of_n / cem / z2+noise execute between re-optimisations: the optimised z2 itself, or Encoder2's
# z2 of the current step plus the optimised offset (z2* - Encoder2's z2 at the re-optimisation), see EvalConfig.hold.
HOLDS: tuple[str, ...] = ("z2", "offset")
# Held-out scene sets: "mixed" draws the world's default scenes (pedestrians cross the plan with probability 0.6,
# else wander); "crossing" makes every pedestrian a crosser timed to meet the robot (see evaluation_scenes).
SCENARIOS: tuple[str, ...] = ("mixed", "crossing")
# How the steering methods predict the target: the social-force model rolled forward with the robot held still,
# with the robot driving the nominal plan, or that plus the target's linearised reaction to the searched plan
# (see EvalConfig.prediction).
PREDICTIONS: tuple[str, ...] = ("still", "nominal", "reactive")


def dynamics_limits(robot: RobotConfig) -> dict[str, float]:
    """The dynamics-violation metric's limits for a plan driven by ``robot``: 1.5x its speed limit (m/s), 1.5x its
    turn-rate limit (rad/s) and 2.5x its speed limit per second as acceleration (m/s^2), keyword arguments of
    :func:`navintent.objectives.dynamics`. For NoMaD's robot limits (0.2 m/s, 0.4 rad/s, the built-in world's
    robot) that is ``{"max_speed": 0.3, "max_accel": 0.5, "max_turn_rate": 0.6}`` (:data:`DYNAMICS_LIMITS`), the
    objective's own defaults; a world with a faster robot scales them."""
    return {
        "max_speed": round(1.5 * robot.max_v, 9),
        "max_accel": round(2.5 * robot.max_v, 9),
        "max_turn_rate": round(1.5 * robot.max_w, 9),
    }


DYNAMICS_LIMITS = dynamics_limits(RobotConfig())


@dataclass
class EvalConfig(ConfigBase):
    """Settings of ``navintent evaluate`` (flags carry the same names with dashes).

    scenes / seed: held-out scenes. step_factor / min_steps / max_episode_steps: an episode may last
    ``min(max_episode_steps, max(min_steps, step_factor * expert steps))`` control steps. replan_every / opt_steps / lr / draws / objective: z2 re-optimisation (see the
    :mod:`navintent.evaluation` docstring). budget_s: seconds per baseline re-optimisation (0 = Adam's mean in the scene). safety_radius:
    attack success distance (m, centre to centre). metric_scale: metres per normalised unit (0 = resolved by
    :func:`navintent.metric_scale.resolve_metric_scale` from the checkpoint: its training data's scale, else NoMaD's
    deployment rule ``max_v / frame_rate``). waypoint_index: the waypoint the
    follower tracks (NoMaD: 2). max_plots: scenes that get a trajectory plot. noise_lr / noise_nll_weight /
    noise_space: the noise methods' Adam learning rate, noise realism weight and optimised noise
    (:class:`navintent.steering.Z2OptimConfig`). task: ``navigate`` (NoMaD's topological-map loop over a map the
    expert records without pedestrians, a node every ``map_every`` frames, 0 = :func:`map_every_frames`;
    localisation ``radius`` and ``close_threshold`` as NoMaD's navigate.py; ``stop_when_closest``: declare the goal
    as soon as the goal node is the closest one, NoMaD navigate.py's rule, instead of also requiring its distance
    below ``close_threshold``, :class:`navintent.deploy.TopomapNavigator`), ``explore`` (goal masked, ``explore_steps`` steps) or
    ``goal-image`` (one goal image of the final pose); see :mod:`navintent.evaluation.tasks`. hold: what adam /
    best_of_n / cem / z2+noise execute between re-optimisations: ``z2`` the optimised z2 as it is (held for
    ``replan_every`` steps while the observation moves on), ``offset`` Encoder2's z2 of the current step plus the optimised offset
    from Encoder2's z2 at the re-optimisation (the navigator keeps adapting to what it sees; the next
    re-optimisation starts from the current Encoder2 z2 plus that offset). engage_distance (m, 0 = always): every
    steering method re-optimises only when the target's predicted track passes within this distance of the
    nominal plan, and otherwise drives Encoder2's z2 of each step (no offset, whatever ``hold``; guided: scale 0;
    noise / z2+noise: fresh noise), the nominal episode, until the next re-optimising step. scenario: the
    held-out scene set, ``mixed`` (the world's default scenes) or ``crossing`` (the same seeds drawn with every pedestrian a crosser of the expert's
    plan, timed to meet the robot there, where a free crossing line exists; scenes with no crosser skipped; more
    interactions per episode for steering comparisons), see :func:`navintent.evaluation.scenes.evaluation_scenes`. prediction: the target's
    future the steering methods aim at, the social-force model rolled forward with the robot ``still`` at its
    pose or driving the ``nominal`` plan (the pedestrians' reaction to the robot's expected motion included,
    :meth:`navintent.sim.World.predict_agents`), or ``reactive``: ``nominal`` plus the target's first-order
    reaction to the plan being searched (``ObjectiveContext.agents_jacobian`` from
    :meth:`navintent.evaluation.policy.ClosedLoopPolicy.target_response`, central differences through the
    social-force model at the nominal plan, 4T extra roll-outs per re-optimisation and per guided tick with a
    non-zero scale), so a plan that drives at the target also sees it step away. Invalid values raise
    ``ValueError`` naming field and value.
    """

    scenes: int = 8
    seed: int = 0
    methods: tuple[str, ...] = METHODS
    step_factor: float = 2.0
    min_steps: int = 60
    max_episode_steps: int = 400
    replan_every: int = 8
    opt_steps: int = 10
    lr: float = 0.05
    draws: int = 4
    objective: str = DEFAULT_OBJECTIVE
    budget_s: float = 0.0
    safety_radius: float = 0.5
    lambda_cfg: float = 0.0
    metric_scale: float = 0.0
    waypoint_index: int = 2
    max_plots: int = 4
    noise_lr: float = 0.05
    noise_nll_weight: float = 0.03
    noise_space: str = "all"
    task: str = "navigate"
    map_every: int = 0
    radius: int = 4
    close_threshold: float = 3.0
    stop_when_closest: bool = False
    explore_steps: int = 200
    hold: str = "z2"
    engage_distance: float = 0.0
    scenario: str = "mixed"
    prediction: str = "still"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {self.task!r}")
        for name in (
            "scenes", "replan_every", "opt_steps", "draws", "min_steps", "max_episode_steps", "explore_steps",
        ):  # fmt: skip
            check_positive_int(name, getattr(self, name))
        check_non_negative_int("map_every", self.map_every)
        check_non_negative_int("radius", self.radius)
        check_positive_number("close_threshold", self.close_threshold)
        if not isinstance(self.stop_when_closest, bool):
            raise ValueError(f"stop_when_closest must be true or false, got {self.stop_when_closest!r}")
        for name in ("seed", "waypoint_index", "max_plots"):
            check_non_negative_int(name, getattr(self, name))
        for name in ("step_factor", "lr", "safety_radius", "noise_lr"):
            check_positive_number(name, getattr(self, name))
        for name in ("budget_s", "lambda_cfg", "metric_scale", "noise_nll_weight", "engage_distance"):
            check_non_negative_number(name, getattr(self, name))
        if self.hold not in HOLDS:
            raise ValueError(f"hold must be one of {list(HOLDS)}, got {self.hold!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {list(PREDICTIONS)}, got {self.prediction!r}")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {list(SCENARIOS)}, got {self.scenario!r}")
        if self.noise_space not in ("all", "x_T"):
            raise ValueError(f"noise_space must be 'all' or 'x_T', got {self.noise_space!r}")
        self.methods = tuple(self.methods)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(
                f"methods must be a non-empty subset of {list(METHODS)}, got {list(self.methods)}"
            )


# EvalConfig fields that only some methods or one task read (field -> the methods or tasks that read it); a field
# set away from its default where nothing reads it is reported by inactive_settings. Fields every run reads are
# not listed. opt_steps and lr also set best-of-N's / CEM's / guided's / the noise methods' budget (Adam's mean
# time, budget_s 0), but only in a run with adam, which reads them itself.
HOLD_METHODS: tuple[str, ...] = ("adam", "best_of_n", "cem", "z2+noise")
BUDGETED_METHODS: tuple[str, ...] = ("best_of_n", "cem", "guided", "noise", "z2+noise")
METHOD_SCOPED_FIELDS: dict[str, tuple[str, ...]] = {
    "hold": HOLD_METHODS,
    "engage_distance": STEERING_METHODS,
    "prediction": STEERING_METHODS,
    "replan_every": STEERING_METHODS,
    "objective": STEERING_METHODS,
    "draws": STEERING_METHODS,
    "opt_steps": ("adam",),
    "lr": ("adam", "z2+noise"),
    "budget_s": BUDGETED_METHODS,
    "noise_lr": NOISE_STEERING,
    "noise_nll_weight": NOISE_STEERING,
    "lambda_cfg": (*LATENT_METHODS, "noise"),  # classifier-free guidance needs a z
}
TASK_SCOPED_FIELDS: dict[str, tuple[str, ...]] = {
    "map_every": ("navigate",),
    "radius": ("navigate",),
    "close_threshold": ("navigate",),
    "stop_when_closest": ("navigate",),
    "step_factor": ("navigate", "goal-image"),
    "min_steps": ("navigate", "goal-image"),
    "max_episode_steps": ("navigate", "goal-image"),
    "explore_steps": ("explore",),
}


def inactive_settings(config: EvalConfig, methods: tuple[str, ...] | None = None) -> list[str]:
    """One sentence per :class:`EvalConfig` field set away from its default that no method of ``methods`` (None:
    ``config.methods``) or not ``config.task`` reads (:data:`METHOD_SCOPED_FIELDS`, :data:`TASK_SCOPED_FIELDS`),
    e.g. ``"prediction = 'reactive' has no effect: only adam, best_of_n, ... read it, this run has ['reference']"``.
    :func:`navintent.evaluation.api.evaluate` logs them as warnings, so no setting is dropped without a word."""
    methods = tuple(config.methods if methods is None else methods)
    defaults = {f.name: f.default for f in dataclasses.fields(EvalConfig)}
    notes = []
    for name, readers in METHOD_SCOPED_FIELDS.items():
        value = getattr(config, name)
        if value != defaults[name] and not set(readers) & set(methods):
            notes.append(
                f"{name} = {value!r} has no effect: only {', '.join(readers)} read it, this run has {list(methods)}"
            )
    for name, tasks in TASK_SCOPED_FIELDS.items():
        value = getattr(config, name)
        if value != defaults[name] and config.task not in tasks:
            notes.append(
                f"{name} = {value!r} has no effect: only the {' / '.join(tasks)} task reads it, this run's task "
                f"is {config.task!r}"
            )
    return notes


# NoMaD's map: one node per second at 4 Hz = 4 frames, for a model trained at spacing 1
NODE_SPACING_UNITS = 4


def map_every_frames(config: EvalConfig, waypoint_spacing: int) -> int:
    """Frames between map nodes: ``config.map_every``, or when that is 0, ``NODE_SPACING_UNITS`` (4) times the
    checkpoint's training ``waypoint_spacing``, so consecutive nodes are 4 of the distance head's steps apart as in
    NoMaD's deployment (``create_topomap.py`` keeps a frame per second at 4 Hz; NoMaD trains at spacing 1). Its
    ``close_threshold`` 3 then lies below one node gap. Measured with the demo recipe (spacing 4), 8 held-out
    scenes: a node every 4 frames (1 distance step apart) 25% goals with the reference latent, every 16 frames 50%
    (README "Goal conditioning")."""
    return config.map_every or NODE_SPACING_UNITS * int(waypoint_spacing)
