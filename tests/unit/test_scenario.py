"""Scenarios and per-episode variation: shipped files match the specification, names and paths
resolve or fail clearly, variation is seeded, within range and a pure function of its inputs."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from roadsense_marl.sim import (
    VTYPE_RANGES,
    ScenarioError,
    ScenarioVariation,
    list_scenarios,
    resolve_scenario,
    sample_variation,
    write_episode_routes,
)


def _routes(scenario):
    root = ET.parse(scenario.route_files[0]).getroot()
    vtypes = {el.get("id"): el.attrib for el in root.iter("vType")}
    vehicles = {el.get("id"): el.attrib for el in root.iter("vehicle")}
    return vtypes, vehicles


def _lanes(scenario):
    return list(ET.parse(scenario.net_file).getroot().iter("lane"))


def test_list_scenarios_names_shipped_and_generated():
    assert {"convoy_3", "convoy_6", "highway"} <= set(list_scenarios())


def test_convoy_3_matches_the_original_base_case():
    sc = resolve_scenario("convoy_3")
    assert sc.vehicle_ids == ("V001", "V002", "V003")
    assert sc.ego_id == "V001"
    assert sc.default_step_length == pytest.approx(0.1)
    vtypes, vehicles = _routes(sc)
    assert {v: float(a["departPos"]) for v, a in vehicles.items()} == {"V001": 0.0, "V002": 30.0, "V003": 60.0}
    assert {float(a["departSpeed"]) for a in vehicles.values()} == {15.0}
    assert {a["depart"] for a in vehicles.values()} == {"0.00"}
    (car,) = vtypes.values()
    assert {k: float(car[k]) for k in ("accel", "decel", "sigma", "tau", "length")} == {
        "accel": 2.6, "decel": 4.5, "sigma": 0.5, "tau": 1.0, "length": 5.0}
    lanes = _lanes(sc)
    assert len(lanes) == 2 and all(float(ln.get("length")) >= 2000 for ln in lanes)


def test_convoy_6_matches_the_recorded_convoy_layout():
    sc = resolve_scenario("convoy_6")
    assert sc.vehicle_ids == tuple(f"V00{i}" for i in range(1, 7))
    assert sc.ego_id == "V001"
    vtypes, vehicles = _routes(sc)
    assert [float(vehicles[v]["departPos"]) for v in sc.vehicle_ids] == [0, 25, 50, 75, 100, 125]
    assert {float(a["departSpeed"]) for a in vehicles.values()} == {2.0}
    (car,) = vtypes.values()
    assert {k: float(car[k]) for k in ("accel", "decel", "sigma", "tau")} == {
        "accel": 2.6, "decel": 5.0, "sigma": 0.0, "tau": 1.0}
    (lane,) = _lanes(sc)
    assert float(lane.get("length")) == pytest.approx(785.0)
    assert float(lane.get("speed")) == pytest.approx(13.89)


def test_unknown_scenario_name_lists_the_available_ones():
    with pytest.raises(ScenarioError, match=r"unknown scenario 'convoy_99'.*convoy_3, convoy_6, highway"):
        resolve_scenario("convoy_99")


def test_missing_sumocfg_path_is_named_and_lists_scenarios(tmp_path):
    missing = tmp_path / "nothere.sumocfg"
    with pytest.raises(ScenarioError, match=r"nothere\.sumocfg.*does not exist.*convoy_3"):
        resolve_scenario(str(missing))


def test_malformed_sumocfg_names_the_file(tmp_path):
    cfg = tmp_path / "bad.sumocfg"
    cfg.write_text("<configuration><input>")
    with pytest.raises(ScenarioError, match=r"bad\.sumocfg.*not valid XML"):
        resolve_scenario(cfg)


def test_sumocfg_pointing_at_a_missing_route_file_names_it(tmp_path):
    sc = resolve_scenario("convoy_6")
    cfg = tmp_path / "x.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{sc.net_file}"/>'
                   '<route-files value="gone.rou.xml"/></input></configuration>')
    with pytest.raises(ScenarioError, match=r"gone\.rou\.xml.*does not exist"):
        resolve_scenario(cfg)


def test_parameters_for_an_unparameterised_scenario_are_refused():
    with pytest.raises(ScenarioError, match=r"takes no parameter\(s\) \['n_vehicles'\]; valid: horizon_s, step_length"):
        resolve_scenario("convoy_6", n_vehicles=3)


def _custom(tmp_path, routes, name="f", extra_input="", time="", **kwargs):
    sc = resolve_scenario("convoy_6")
    (tmp_path / f"{name}.rou.xml").write_text(routes)
    cfg = tmp_path / f"{name}.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{sc.net_file}"/>'
                   f'<route-files value="{name}.rou.xml"/>{extra_input}</input><time>{time}</time></configuration>')
    return resolve_scenario(cfg, **kwargs)


def test_flows_are_expanded_in_sumo_insertion_order(tmp_path):
    custom = _custom(tmp_path, '<routes><route id="r" edges="road"/>'
                     '<flow id="f" route="r" begin="0" end="10" period="2"/>'
                     '<flow id="g" route="r" begin="1" number="2" end="5"/>'
                     '<vehicle id="solo" route="r" depart="3"/></routes>')
    # f: 0,2,4,6,8; g: 1,3; solo: 3 (SUMO inserts individual vehicles before flow ones at a tie)
    assert custom.vehicle_ids == ("f.0", "g.0", "f.1", "solo", "g.1", "f.2", "f.3", "f.4")
    assert custom.droppable_ids == ("solo",)
    assert custom.vtype_ids == ("DEFAULT_VEHTYPE",)
    assert custom.name == "f" and custom.ego_id is None


def test_unsorted_route_file_gives_what_sumo_inserts(tmp_path):
    # SUMO ignores definitions that depart before one already read ("should be sorted by
    # departure time, ignoring 'f'"); the env has the same vehicles as plain sumo.
    custom = _custom(tmp_path, '<routes><route id="r" edges="road"/>'
                     '<vehicle id="solo" route="r" depart="3"/>'
                     '<flow id="f" route="r" begin="0" end="10" period="2"/></routes>')
    assert custom.vehicle_ids == ("solo",)


def test_probability_flow_gets_one_id_per_step_as_its_upper_bound(tmp_path):
    # SUMO inserts at most one vehicle of a probability flow per step, so p.0 .. p.(n-1) with n
    # the flow's steps within the horizon bounds every seed's draw; SUMO's own draw is inside.
    sc = resolve_scenario("convoy_6")
    (tmp_path / "p.rou.xml").write_text(
        '<routes><route id="r" edges="road"/><flow id="p" route="r" begin="0" end="10" probability="0.1"/></routes>')
    cfg = tmp_path / "p.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{sc.net_file}"/>'
                   '<route-files value="p.rou.xml"/></input><time><step-length value="0.5"/></time></configuration>')
    custom = resolve_scenario(cfg)
    assert set(custom.vehicle_ids) == {f"p.{k}" for k in range(21)}  # steps 0, 0.5, ..., 10


def test_variation_is_deterministic_per_seed_and_within_ranges():
    sc = resolve_scenario("convoy_6")
    a = sample_variation(sc, np.random.default_rng(7), drop_peer_prob=0.3)
    b = sample_variation(sc, np.random.default_rng(7), drop_peer_prob=0.3)
    c = sample_variation(sc, np.random.default_rng(8), drop_peer_prob=0.3)
    assert a == b and a != c
    for vt in sc.vtype_ids:
        attrs = a.attrs_for(vt)
        assert set(attrs) == set(VTYPE_RANGES)
        for name, (lo, hi) in VTYPE_RANGES.items():
            assert lo <= attrs[name] <= hi


def test_variation_values_cover_the_ranges_over_many_seeds():
    sc = resolve_scenario("convoy_3")
    draws = np.array([[v for _, v in sample_variation(sc, np.random.default_rng(s)).vtype_attrs[0][1]]
                      for s in range(400)])
    names = sorted(VTYPE_RANGES)
    for k, name in enumerate(names):
        lo, hi = VTYPE_RANGES[name]
        assert draws[:, k].min() < lo + 0.05 * (hi - lo) and draws[:, k].max() > hi - 0.05 * (hi - lo)


def test_drop_peers_never_drops_the_ego():
    sc = resolve_scenario("convoy_6")
    all_dropped = sample_variation(sc, np.random.default_rng(0), drop_peer_prob=1.0)
    assert set(all_dropped.dropped) == set(sc.vehicle_ids) - {"V001"}
    none_dropped = sample_variation(sc, np.random.default_rng(0), drop_peer_prob=0.0)
    assert none_dropped.dropped == ()
    # The vType draws do not depend on the drop probability.
    assert all_dropped.vtype_attrs == none_dropped.vtype_attrs


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_drop_probability_outside_unit_interval_is_refused(p):
    with pytest.raises(ValueError, match="drop_peer_prob"):
        sample_variation(resolve_scenario("convoy_3"), np.random.default_rng(0), drop_peer_prob=p)


def test_episode_routes_are_a_pure_function_of_scenario_and_variation(tmp_path):
    sc = resolve_scenario("convoy_6")
    var = sample_variation(sc, np.random.default_rng(3), drop_peer_prob=0.5)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (pa,) = write_episode_routes(sc, var, tmp_path / "a")
    (pb,) = write_episode_routes(sc, var, tmp_path / "b")
    assert pa.read_bytes() == pb.read_bytes()
    root = ET.parse(pa).getroot()
    (car,) = root.iter("vType")
    for name, value in var.attrs_for("car").items():
        assert float(car.get(name)) == value
    kept = {el.get("id") for el in root.iter("vehicle")}
    assert kept == set(sc.vehicle_ids) - set(var.dropped)
    assert "V001" in kept
    # The shipped file is untouched.
    assert float(_routes(sc)[0]["car"]["decel"]) == 5.0


def test_variation_for_another_scenario_is_refused(tmp_path):
    var = sample_variation(resolve_scenario("convoy_3"), np.random.default_rng(0))
    with pytest.raises(ValueError, match="sampled for scenario 'convoy_3'"):
        write_episode_routes(resolve_scenario("convoy_6"), var, tmp_path)


def test_dropping_the_ego_by_hand_is_refused(tmp_path):
    sc = resolve_scenario("convoy_3")
    var = ScenarioVariation("convoy_3", (), dropped=("V001",))
    with pytest.raises(ValueError, match="cannot be dropped"):
        write_episode_routes(sc, var, tmp_path)


def test_highway_files_are_deterministic_and_cached(tmp_path):
    kwargs = dict(n_vehicles=9, lanes=2, length_m=500.0, spacing_m=30.0, depart_interval_s=1.5)
    a = resolve_scenario("highway", cache_dir=tmp_path / "a", **kwargs)
    b = resolve_scenario("highway", cache_dir=tmp_path / "b", **kwargs)
    for fa, fb in ((a.sumocfg, b.sumocfg), (a.net_file, b.net_file), (a.route_files[0], b.route_files[0])):
        assert fa.read_bytes() == fb.read_bytes()
    stamp = a.net_file.stat().st_mtime_ns
    again = resolve_scenario("highway", cache_dir=tmp_path / "a", **kwargs)
    assert again == a and again.net_file.stat().st_mtime_ns == stamp
    other = resolve_scenario("highway", cache_dir=tmp_path / "a", **{**kwargs, "lanes": 3})
    assert other.sumocfg.parent != a.sumocfg.parent
    assert a.vehicle_ids == tuple(f"H{i:03d}" for i in range(9)) and a.ego_id is None
    assert len(_lanes(a)) == 2 and len(_lanes(other)) == 3
    _, vehicles = _routes(a)
    departs = sorted(float(v["depart"]) for v in vehicles.values())
    assert departs[:5] == [0.0] * 5 and departs[5:] == [1.5, 3.0, 4.5, 6.0]


@pytest.mark.parametrize(
    "bad, match",
    [({"n_vehicles": 0}, "n_vehicles"), ({"lanes": 0}, "lanes"), ({"spacing_m": 2.0}, "spacing_m"),
     ({"n_vehicles": 200, "n_initial": 200, "length_m": 300.0}, "too short"), ({"n_initial": 99}, "n_initial")],
)
def test_invalid_highway_parameters_are_named(bad, match, tmp_path):
    with pytest.raises(ScenarioError, match=match):
        resolve_scenario("highway", cache_dir=tmp_path, **bad)


@pytest.mark.parametrize("bad", [0, -5, float("nan"), "soon"])
def test_invalid_horizon_is_named(bad):
    with pytest.raises(ScenarioError, match=r"horizon_s must be a positive number of seconds, got"):
        resolve_scenario("convoy_3", horizon_s=bad)


def test_vehicle_set_is_cached_per_file_version(tmp_path, monkeypatch):
    monkeypatch.setenv("ROADSENSE_MARL_CACHE", str(tmp_path / "cache"))
    resolve_scenario("convoy_6")  # _custom takes its network: one cached set
    first = _custom(tmp_path, '<routes><route id="r" edges="road"/>'
                    '<flow id="f" route="r" begin="0" end="4" period="2"/></routes>')
    cached = list((tmp_path / "cache" / "vehicle-sets").glob("*.json"))
    assert first.vehicle_ids == ("f.0", "f.1") and len(cached) == 2  # departures 0 and 2: SUMO ends a flow before its end
    (tmp_path / "f.rou.xml").write_text('<routes><route id="r" edges="road"/>'
                                        '<flow id="g" route="r" begin="0" end="4" period="2"/></routes>')
    os.utime(tmp_path / "f.rou.xml", ns=(1, 1))  # a new version even within the clock's resolution
    again = resolve_scenario(tmp_path / "f.sumocfg")
    assert again.vehicle_ids[0] == "g.0"
    assert len(list((tmp_path / "cache" / "vehicle-sets").glob("*.json"))) == 3
