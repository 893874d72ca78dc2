"""Drive real SUMO: scenarios, one simulation per env, batched NumPy state.

Knows SUMO only, nothing of RL or the radio. See ``docs/architecture.md`` for the contract::

    scenario = resolve_scenario("convoy_6")
    sim = SumoSimulation(scenario, backend="libsumo")
    states = sim.reset(seed=0, variation=sample_variation(scenario, rng))
    states = sim.step()
    sim.close()
"""

from roadsense_marl.sim.highway import highway_scenario
from roadsense_marl.sim.registry import (
    DEFAULT_HORIZON_S,
    Scenario,
    ScenarioError,
    list_scenarios,
    load_scenario,
    resolve_scenario,
)
from roadsense_marl.sim.variation import VTYPE_RANGES, ScenarioVariation, sample_variation, write_episode_routes
from roadsense_marl.sim.simulation import SumoSimulation
from roadsense_marl.sim.states import OPTIONAL_FIELDS, LibsumoInUseError, SumoError, VehicleStates

__all__ = [
    "DEFAULT_HORIZON_S",
    "OPTIONAL_FIELDS",
    "VTYPE_RANGES",
    "LibsumoInUseError",
    "Scenario",
    "ScenarioError",
    "ScenarioVariation",
    "SumoError",
    "SumoSimulation",
    "VehicleStates",
    "highway_scenario",
    "list_scenarios",
    "load_scenario",
    "resolve_scenario",
    "sample_variation",
    "write_episode_routes",
]
