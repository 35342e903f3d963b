"""Steering a diffusion navigation policy: optimise its intent latent z2 (or its noise) against a task objective.

The typed entry point is :func:`optimize` (``from navintent.steering import optimize``), which returns an
:class:`OptimizeResult`; ``navintent optimize-z2`` is a thin layer over it. The modules, by concern:

- :mod:`~navintent.steering.config`: method names, search spaces, :class:`Z2OptimConfig`;
- :mod:`~navintent.steering.scenarios`: :class:`Scenarios` and the source descriptions (:class:`SimScenes`,
  :class:`DatasetSamples`, :class:`SampleFile`), the synthetic crossing pedestrian;
  :mod:`~navintent.steering.data_scenarios` and :mod:`~navintent.steering.sim_scenarios` build scenarios from them;
- :mod:`~navintent.steering.adapter`: :class:`DiffusionAdapter`, the differentiable problem (full sampling, fixed
  noise, realism terms, search coordinates);
- :mod:`~navintent.steering.methods`: adam, best_of_n, cem, guided, noise, z2+noise, plain, each from an explicit
  start point;
- :mod:`~navintent.steering.report` (metrics and report rows) and :mod:`~navintent.steering.plots` (pictures);
- :mod:`~navintent.steering.api`: :func:`optimize`.
"""

from __future__ import annotations

from navintent.steering.adapter import (
    DiffusionAdapter,
    LossOutput,
    NonFiniteObjectiveError,
    frozen,
    latent_effect,
)
from navintent.steering.api import OptimizeResult, optimize
from navintent.steering.config import (
    DEFAULT_OBJECTIVE,
    METHODS,
    NOISE_METHODS,
    SPACES,
    Z2_METHODS,
    Z2OptimConfig,
    parse_methods,
)
from navintent.steering.data_scenarios import load_data_sample, validate_data_sample
from navintent.steering.methods import (
    MethodResult,
    best_of_n,
    cem,
    guided_baseline,
    optimize_adam,
    optimize_noise,
    plain,
    run_methods,
)
from navintent.steering.report import evaluate_method
from navintent.steering.scenarios import (
    DatasetSamples,
    SampleFile,
    Scenarios,
    ScenarioSource,
    SimCamera,
    SimScenes,
    add_agents,
    crossing_pedestrian,
)
from navintent.steering.sim_scenarios import sim_scenarios

__all__ = [
    "DEFAULT_OBJECTIVE",
    "METHODS",
    "NOISE_METHODS",
    "SPACES",
    "Z2_METHODS",
    "DatasetSamples",
    "DiffusionAdapter",
    "LossOutput",
    "MethodResult",
    "NonFiniteObjectiveError",
    "OptimizeResult",
    "SampleFile",
    "ScenarioSource",
    "Scenarios",
    "SimCamera",
    "SimScenes",
    "Z2OptimConfig",
    "add_agents",
    "best_of_n",
    "cem",
    "crossing_pedestrian",
    "evaluate_method",
    "frozen",
    "guided_baseline",
    "latent_effect",
    "load_data_sample",
    "optimize",
    "optimize_adam",
    "optimize_noise",
    "parse_methods",
    "plain",
    "run_methods",
    "sim_scenarios",
    "validate_data_sample",
]
