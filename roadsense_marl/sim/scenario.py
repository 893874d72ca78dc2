"""Compatibility module: the scenario code now lives in modules with one job each.

* :mod:`roadsense_marl.sim.registry`: :class:`Scenario`, names and paths, config reading;
* :mod:`roadsense_marl.sim.vehicles`: the vehicle set, asked from SUMO;
* :mod:`roadsense_marl.sim.variation`: per-episode vType perturbation and dropped vehicles;
* :mod:`roadsense_marl.sim.highway`: the generated ``highway`` scenario;
* :mod:`roadsense_marl.sim.install`: SUMO binaries, their environment, the cache folder.

Old imports (``from roadsense_marl.sim.scenario import resolve_scenario, cache_root``) keep working.
"""

from roadsense_marl.sim.highway import highway_scenario, write_straight_road
from roadsense_marl.sim.install import cache_root, sumo_binary, sumo_env
from roadsense_marl.sim.registry import (
    DEFAULT_HORIZON_S,
    DEFAULT_STEP_LENGTH,
    Scenario,
    ScenarioError,
    list_scenarios,
    load_scenario,
    resolve_scenario,
)
from roadsense_marl.sim.variation import VTYPE_RANGES, ScenarioVariation, sample_variation, write_episode_routes

__all__ = [
    "DEFAULT_HORIZON_S",
    "DEFAULT_STEP_LENGTH",
    "Scenario",
    "ScenarioError",
    "ScenarioVariation",
    "VTYPE_RANGES",
    "cache_root",
    "highway_scenario",
    "list_scenarios",
    "load_scenario",
    "resolve_scenario",
    "sample_variation",
    "sumo_binary",
    "sumo_env",
    "write_episode_routes",
    "write_straight_road",
]
