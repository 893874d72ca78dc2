"""Real SUMO scenarios run as the env: every ``.sumocfg`` shipped in the ``eclipse-sumo`` wheel,
and small hand-made files for each way SUMO defines vehicles that the project used to get wrong.

Each wheel scenario runs for 30 s of simulated time or 300 steps, whichever is shorter; the
vehicles SUMO inserts (read from SUMO itself every step) must all be in the scenario's vehicle
set, the motor vehicles among them (vClass asked from SUMO) must be exactly the possible agents,
and the env's agents must join and leave exactly when SUMO's motor vehicles do. Scenarios with
bicycles (``fkk_in``), persons (``DRT``, ``hiking``) and trains (``rail*``) are included.
"""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import roadsense_marl
from roadsense_marl.env.agents import MOTOR_VCLASSES
from roadsense_marl.sim import ScenarioError, resolve_scenario
from roadsense_marl.sim.highway import write_straight_road
from roadsense_marl.sim.install import sumo_binary, sumo_env
from roadsense_marl.sim.vehicles import _sumo_time

import sumo

from env_helpers import seen_peers

WHEEL = Path(sumo.SUMO_HOME)
WHEEL_SCENARIOS = sorted(WHEEL.rglob("*.sumocfg"))
EPISODE_S = 30.0
HORIZON_S = 40.0  # the episode plus the env's warm-up steps before the first vehicle
MAX_SLOTS = 128  # more than any wheel scenario has at once in its first 30 s (A10KW: 88)


def _plain_sumo(cfg: Path, out: Path) -> tuple[int, str, int]:
    """Plain ``sumo`` on the file for the episode's 30 s, as a user would run it: (exit code,
    its error lines, vehicles it inserted)."""
    begin = ET.parse(cfg).getroot().find(".//begin")
    begin_s = _sumo_time(begin.get("value") if begin is not None else None, 0.0)
    stats = out / "stats.xml"
    proc = subprocess.run([str(sumo_binary("sumo")), "-c", str(cfg), "--no-step-log", "true",
                           "--end", repr(begin_s + EPISODE_S), "--statistic-output", str(stats)],
                          env=sumo_env(), capture_output=True, text=True, timeout=300, cwd=cfg.parent)
    errors = " ".join(ln for ln in proc.stderr.splitlines() if ln.startswith("Error"))
    inserted = int(ET.parse(stats).getroot().find("vehicles").get("inserted")) if proc.returncode == 0 else 0
    return proc.returncode, errors, inserted


def _episode_steps(scenario) -> int:
    return min(300, int(round(EPISODE_S / scenario.default_step_length)))


def run_as_env(cfg: Path | str, backend: str = "libsumo", steps: int | None = None, **config):
    """Run ``cfg`` as the env with zero actions, checking every step against SUMO's own lists.

    Agents are SUMO's motor vehicles (``config["agents"]`` unset) or every vehicle
    (``agents={"vclass": "*"}``); each vehicle's vClass is asked from the running SUMO.
    Returns (scenario, every id SUMO inserted, most agents alive at once, steps run).
    """
    scenario = resolve_scenario(cfg, horizon_s=HORIZON_S)
    steps = _episode_steps(scenario) if steps is None else steps
    everyone = config.get("agents") == {"vclass": "*"}
    env = roadsense_marl.parallel_env(
        scenario=str(cfg), scenario_kwargs={"horizon_s": HORIZON_S}, backend=backend, max_steps=steps,
        max_vehicles=min(MAX_SLOTS, len(scenario.vehicle_ids)), **config)
    vclass: dict[str, str] = {}

    def agents_among(ids: set[str]) -> set[str]:
        for v in ids - vclass.keys():
            vclass[v] = raw.vehicle.getVehicleClass(v)
        return {v for v in ids if everyone or vclass[v] in MOTOR_VCLASSES}

    try:
        env.reset(seed=0)
        raw = env.unwrapped.core.sim.raw
        possible = set(env.possible_agents)
        known = set(scenario.vehicle_ids)
        assert possible | set(env.unwrapped.core.other_vehicles) == known
        inserted = set(raw.vehicle.getIDList())
        assert set(env.agents) == agents_among(inserted)
        most, n = len(env.agents), 0
        while env.agents and n < steps:
            before = set(env.agents)
            _, _, terms, truncs, _ = env.step({a: np.zeros(1, np.float32) for a in env.agents})
            n += 1
            departed = set(raw.simulation.getDepartedIDList())
            live = set(raw.vehicle.getIDList())
            inserted |= departed
            assert departed <= known, f"SUMO inserted {sorted(departed - known)} not in the vehicle set"
            assert agents_among(departed) <= possible, "a motor vehicle SUMO inserted is not a possible agent"
            if env.agents:  # the last step truncates everyone
                assert set(env.agents) == agents_among(live), f"step {n}: agents differ from SUMO's motor vehicles"
                assert set(env.agents) - before <= departed  # joins are SUMO departures
            for gone in before - set(env.agents):  # leaves are reported in that step's dicts
                assert terms.get(gone) or truncs.get(gone), f"{gone} left without termination or truncation"
            most = max(most, len(env.agents))
        return scenario, inserted, most, n
    finally:
        env.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("cfg", WHEEL_SCENARIOS, ids=[str(p.relative_to(WHEEL)) for p in WHEEL_SCENARIOS])
def test_wheel_scenario_runs_as_the_env_on_libsumo(cfg, tmp_path):
    code, errors, plain_inserted = _plain_sumo(cfg, tmp_path)
    if code != 0:  # e.g. bs3d: an option only sumo-gui with OSG knows; the env says what SUMO said
        assert errors
        with pytest.raises(ScenarioError, match=re.escape(errors.split(" Error")[0])):
            resolve_scenario(cfg, horizon_s=HORIZON_S)
        return
    if plain_inserted == 0:
        with pytest.raises(ScenarioError, match="inserts no vehicle"):  # hiking: one person, no vehicle
            resolve_scenario(cfg, horizon_s=HORIZON_S)
        return
    scenario = resolve_scenario(cfg, horizon_s=HORIZON_S)
    config = {}
    if not set(scenario.vehicle_classes) & set(MOTOR_VCLASSES):  # rail*: trains only
        with pytest.raises(ValueError, match=r"agents selector the default \(road motor vehicles\) matches no "
                                             r"vehicle .* vClasses \['rail'\]"):
            roadsense_marl.parallel_env(scenario=str(cfg), scenario_kwargs={"horizon_s": HORIZON_S})
        config = {"agents": {"vclass": "*"}}  # every vehicle an agent: the trains run as the env
    scenario, inserted, most, steps = run_as_env(cfg, **config)
    assert inserted and inserted <= set(scenario.vehicle_ids)
    assert steps == _episode_steps(scenario) and most <= MAX_SLOTS


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["game/cross.sumocfg", "game/A10KW.sumocfg", "game/ramp.sumocfg"])
def test_wheel_scenario_runs_as_the_env_on_traci(name):
    scenario, inserted, _, steps = run_as_env(WHEEL / "tools" / name, backend="traci")
    assert inserted <= set(scenario.vehicle_ids) and steps == _episode_steps(scenario)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["game/cross.sumocfg", "game/square.sumocfg", "game/fkk_in.sumocfg"])  # fkk_in: bicycles
def test_parallel_api_test_passes_on_wheel_scenarios(name):
    cfg = WHEEL / "tools" / name
    scenario = resolve_scenario(cfg, horizon_s=HORIZON_S)
    env = roadsense_marl.parallel_env(scenario=str(cfg), scenario_kwargs={"horizon_s": HORIZON_S}, max_steps=100,
                                      max_vehicles=min(MAX_SLOTS, len(scenario.vehicle_ids)))
    try:
        parallel_api_test(env, num_cycles=100)
    finally:
        env.close()


# --------------------------------------------------------------------------- hand-made files


def _scenario(tmp_path: Path, routes: str | None = None, additional: str | None = None, step: float = 0.1) -> Path:
    """A 1 km two-lane road ``road`` with the given route and additional file contents."""
    write_straight_road(tmp_path, "n", 1000.0, 2, 30.0)
    inputs = ['<net-file value="n.net.xml"/>']
    if routes is not None:
        (tmp_path / "r.rou.xml").write_text(routes)
        inputs.append('<route-files value="r.rou.xml"/>')
    if additional is not None:
        (tmp_path / "a.add.xml").write_text(additional)
        inputs.append('<additional-files value="a.add.xml"/>')
    cfg = tmp_path / "s.sumocfg"
    cfg.write_text(f"<configuration><input>{''.join(inputs)}</input>"
                   f'<time><step-length value="{step}"/></time></configuration>')
    return cfg


def _run_ids(cfg: Path, steps: int, backend: str = "libsumo", **config) -> set[str]:
    _, inserted, _, _ = run_as_env(cfg, backend=backend, steps=steps, **config)
    return inserted


def test_flow_period_not_dividing_its_window_has_every_vehicle_sumo_inserts(tmp_path):
    # period 3 over [0, 10): SUMO departs at 0, 3, 6, 9 (the old parser said 3);
    # vehsPerHour 1000 (period 3.6) over [0, 10): 0, 3.6, 7.2.
    cfg = _scenario(tmp_path, '<routes><route id="r" edges="road"/>'
                    '<flow id="f" route="r" begin="0" end="10" period="3" departLane="0"/>'
                    '<flow id="h" route="r" begin="0" end="10" vehsPerHour="1000" departLane="1"/></routes>')
    expected = {"f.0", "f.1", "f.2", "f.3", "h.0", "h.1", "h.2"}
    assert set(resolve_scenario(cfg, horizon_s=HORIZON_S).vehicle_ids) == expected
    assert _run_ids(cfg, steps=150) == expected


def test_number_flow_rounds_like_sumo(tmp_path):
    cfg = _scenario(tmp_path, '<routes><route id="r" edges="road"/>'
                    '<flow id="n" route="r" begin="0" end="10" number="4"/></routes>')
    assert resolve_scenario(cfg, horizon_s=HORIZON_S).vehicle_ids == ("n.0", "n.1", "n.2", "n.3")


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_flow_beginning_later_without_end_and_edge_data_output_run(backend, tmp_path):
    cfg = _scenario(tmp_path, '<routes><route id="r" edges="road"/>'
                    '<flow id="late" route="r" begin="2" period="3"/></routes>',
                    '<additional><edgeData id="ed" file="edgedata.out.xml" period="5"/></additional>')
    # 2, 5, 8, ... within the 40 s horizon
    assert resolve_scenario(cfg, horizon_s=HORIZON_S).vehicle_ids == tuple(f"late.{k}" for k in range(13))
    # reset warms up to the first vehicle (2 s), then 100 steps of 0.1 s: departures 2, 5, 8, 11 s
    assert _run_ids(cfg, steps=100, backend=backend) == {"late.0", "late.1", "late.2", "late.3"}
    assert (tmp_path / "edgedata.out.xml").is_file()  # the user's output is kept


DISTRIBUTION = ('<routes><vTypeDistribution id="{name}">'
                '<vType id="small" length="4" decel="7.5" tau="2.0" probability="1"/>'
                '<vType id="large" length="9" decel="7.5" tau="2.0" probability="1"/></vTypeDistribution>'
                '<route id="r" edges="road"/>{use}</routes>')


@pytest.mark.parametrize("name, use", [
    ("DEFAULT_VEHTYPE", '<flow id="f" route="r" begin="0" end="10" period="2"/>'),
    ("mix", '<flow id="f" type="mix" route="r" begin="0" end="10" period="2"/>'),
])
def test_vtype_distribution_members_are_perturbed_each_episode(name, use, tmp_path):
    cfg = _scenario(tmp_path, DISTRIBUTION.format(name=name, use=use))
    scenario = resolve_scenario(cfg, horizon_s=HORIZON_S)
    assert scenario.vtype_ids == ("large", "small")  # the members; no second DEFAULT_VEHTYPE
    env = roadsense_marl.parallel_env(scenario=str(cfg), scenario_kwargs={"horizon_s": HORIZON_S}, max_steps=20)
    try:
        values = []
        for seed in (0, 1):
            env.reset(seed=seed)
            raw = env.unwrapped.core.sim.raw
            values.append([(raw.vehicletype.getDecel(t), raw.vehicletype.getTau(t)) for t in ("small", "large")])
    finally:
        env.close()
    decel_tau = np.array(values)  # episode, member, (decel, tau)
    assert np.all((decel_tau[..., 0] >= 3.5) & (decel_tau[..., 0] <= 5.5))  # file says 7.5
    assert np.all((decel_tau[..., 1] >= 0.5) & (decel_tau[..., 1] <= 1.5))  # file says 2.0
    assert not np.array_equal(decel_tau[0], decel_tau[1])  # a new draw per episode
    assert decel_tau[0, 0, 0] != decel_tau[0, 1, 0]  # each member on its own


def test_vehicles_in_additional_files_only_are_agents(tmp_path):
    cfg = _scenario(tmp_path, None, '<additional><route id="r" edges="road"/>'
                    '<vehicle id="a1" route="r" depart="0" departLane="0"/>'
                    '<vehicle id="a2" route="r" depart="1" departLane="1"/></additional>')
    assert resolve_scenario(cfg, horizon_s=HORIZON_S).vehicle_ids == ("a1", "a2")
    assert _run_ids(cfg, steps=30) == {"a1", "a2"}


def test_vehicles_split_between_route_and_additional_files_are_all_agents(tmp_path):
    cfg = _scenario(tmp_path, '<routes><vehicle id="r1" route="r" depart="0.5" departLane="1"/></routes>',
                    '<additional><route id="r" edges="road"/>'
                    '<vehicle id="a1" route="r" depart="0" departLane="0"/>'
                    '<flow id="af" route="r" begin="1" end="4" period="2" departLane="0"/></additional>')
    expected = ("a1", "r1", "af.0", "af.1")
    assert resolve_scenario(cfg, horizon_s=HORIZON_S).vehicle_ids == expected
    assert _run_ids(cfg, steps=40) == set(expected)


def test_flow_to_90000_s_is_bounded_by_the_horizon(tmp_path):
    cfg = _scenario(tmp_path, '<routes><route id="r" edges="road"/>'
                    '<flow id="long" route="r" begin="0" end="90000" period="15"/></routes>')
    assert resolve_scenario(cfg, horizon_s=60.0).vehicle_ids == ("long.0", "long.1", "long.2", "long.3", "long.4")


def test_probability_flow_bound_covers_every_seed(tmp_path):
    cfg = _scenario(tmp_path, '<routes><route id="r" edges="road"/>'
                    '<flow id="p" route="r" begin="0" end="5" probability="0.5" departLane="free"/></routes>',
                    step=0.5)
    scenario = resolve_scenario(cfg, horizon_s=HORIZON_S)
    assert scenario.vehicle_ids == tuple(f"p.{k}" for k in range(11))  # one per step of [0, 5]
    for seed in (0, 1, 2):  # whatever SUMO draws is inside the bound
        env = roadsense_marl.parallel_env(scenario=str(cfg), scenario_kwargs={"horizon_s": HORIZON_S}, max_steps=12)
        try:
            env.reset(seed=seed)
            seen = set(env.agents)
            while env.agents:
                env.step({a: np.zeros(1, np.float32) for a in env.agents})
                seen |= set(env.agents)
        finally:
            env.close()
        assert seen <= set(scenario.vehicle_ids)


def test_sumo_args_conflicting_with_the_env_name_both(tmp_path):
    with pytest.raises(ValueError, match=r"--time-to-teleport 300 conflicts with the env's --time-to-teleport -1"):
        roadsense_marl.parallel_env(scenario="convoy_3", sumo_args=["--time-to-teleport", "300"])


def test_config_options_the_env_owns_are_overridden_and_the_rest_kept(tmp_path):
    # The config asks for teleporting after 1 s and a 10 s end; the env's --time-to-teleport -1
    # wins (a stopped car stays), the user's end is kept (SUMO stops there).
    cfg = _scenario(tmp_path, '<routes><route id="r" edges="road"/>'
                    '<vehicle id="a" route="r" depart="0"/></routes>')
    text = cfg.read_text().replace("<time>", '<time><end value="10"/>').replace(
        "</configuration>", '<processing><time-to-teleport value="1"/></processing></configuration>')
    cfg.write_text(text)
    scenario = resolve_scenario(cfg)
    assert scenario.horizon_s == 10.0
    env = roadsense_marl.parallel_env(scenario=str(cfg), max_steps=50)
    try:
        env.reset(seed=0)
        raw = env.unwrapped.core.sim.raw
        assert float(raw.simulation.getOption("time-to-teleport")) == -1.0
        assert float(raw.simulation.getOption("end")) == 10.0
    finally:
        env.close()


@pytest.mark.parametrize("step", [0.5, 1.0])
def test_step_length_of_half_or_one_second_shows_peers(step, tmp_path):
    # The table row "step_length=0.5 or 1.0: no agent ever sees a peer" (a message was first
    # observed one step after it was sent, as old as the 500 ms staleness limit). Beacons now go at
    # their own times inside a step: every agent sees every other within radio range.
    cfg = _scenario(tmp_path, '<routes><route id="r" edges="road"/>'
                    '<flow id="f" route="r" begin="0" end="6" period="1" departSpeed="10" departLane="0"/></routes>',
                    step=step)
    env = roadsense_marl.parallel_env(scenario=str(cfg), max_time_s=15.0, radio="measured", cone_half_angle_deg="off",
                                      hazard={"probability": 0.0})
    try:
        core = env.unwrapped.core
        assert core.step_length == step and core.max_steps == round(15.0 / step)
        env.reset(seed=0)
        pairs = visible = 0
        while env.agents:
            env.step({a: np.zeros(1, np.float32) for a in env.agents})
            rec = core.record
            s = rec.states
            xy = np.stack([s.x, s.y], axis=1)
            in_range = np.linalg.norm(xy[:, None] - xy[None], axis=2) < 30.0  # well inside the 50 m range
            np.fill_diagonal(in_range, False)
            # a vehicle SUMO inserted in this step first beacons at its insertion time, seen from the next step
            in_range[:, rec.joined[rec.slots]] = False
            seen = seen_peers(rec)
            pairs += int(in_range.sum())
            visible += int((seen & in_range).sum())
    finally:
        env.close()
    assert pairs > 20 and visible / pairs > 0.9, f"{visible}/{pairs} peers within 30 m visible"
