"""Who is an agent and who carries a radio, on real SUMO: a hand-made mixed-traffic scenario (cars,
a truck, a bicycle, a tram and a walking person on one road) run as the env."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import roadsense_marl
from roadsense_marl.env.agents import MOTOR_VCLASSES
from roadsense_marl.sim.highway import write_straight_road

from env_helpers import assert_traces_equal, ideal_radio, run_episode, zero_actions

ROUTES = """<routes>
  <vType id="car" vClass="passenger"/>
  <vType id="lorry" vClass="truck"/>
  <vType id="bike" vClass="bicycle"/>
  <vType id="tram" vClass="tram" length="30"/>
  <route id="r" edges="road"/>
  <person id="p0" depart="0"><walk edges="road"/></person>
  <vehicle id="b0" type="bike" route="r" depart="0" departLane="0"/>
  <vehicle id="t0" type="tram" route="r" depart="0.5" departLane="1"/>
  <vehicle id="c0" type="car" route="r" depart="1" departLane="1"/>
  <vehicle id="c1" type="car" route="r" depart="2" departLane="0"/>
  <vehicle id="k0" type="lorry" route="r" depart="3" departLane="1"/>
  <flow id="f" type="car" route="r" begin="4" end="12" period="1"/>
</routes>"""
MOTOR = {"c0", "c1", "k0", *(f"f.{k}" for k in range(8))}  # the flow: 4, 5, ..., 11 s


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> str:
    """A 1 km two-lane road with the vehicles above; the bicycle departs first, the tram second."""
    d = tmp_path_factory.mktemp("mixed")
    write_straight_road(d, "n", 1000.0, 2, 30.0)
    (d / "r.rou.xml").write_text(ROUTES)
    (d / "s.sumocfg").write_text('<configuration><input><net-file value="n.net.xml"/>'
                                 '<route-files value="r.rou.xml"/></input>'
                                 '<time><step-length value="0.1"/></time></configuration>')
    return str(d / "s.sumocfg")


def _env(mixed: str, **config):
    config.setdefault("radio", ideal_radio())
    config.setdefault("hazard", {"probability": 0.0})
    config.setdefault("max_steps", 150)
    return roadsense_marl.parallel_env(scenario=mixed, **config)


def test_agents_are_the_motor_vehicles_sumo_inserts_and_the_rest_is_driven_by_sumo(mixed):
    env = _env(mixed)
    try:
        assert set(env.possible_agents) == MOTOR
        assert set(env.unwrapped.core.other_vehicles) == {"b0", "t0"}
        obs, infos = env.reset(seed=3)
        raw = env.unwrapped.core.sim.raw
        # reset waits for the first agent, not the first vehicle (the bicycle and the tram come first)
        assert env.agents == ["c0"] and {"b0", "t0"} <= set(raw.vehicle.getIDList())
        assert raw.person.getIDList() == ("p0",)  # the walking person is simulated, not an agent
        seen_agents, seen_vehicles, walked = set(env.agents), set(raw.vehicle.getIDList()), False
        while env.agents:
            env.step(zero_actions(env))
            live = set(raw.vehicle.getIDList())
            motor = {v for v in live if raw.vehicle.getVehicleClass(v) in MOTOR_VCLASSES}
            if env.agents:
                assert set(env.agents) == motor, "agents are exactly the motor vehicles on the road"
            seen_agents |= set(env.agents)
            seen_vehicles |= live
            walked |= bool(raw.person.getIDList())
            # SUMO drives the others: they are never commanded (speed -1: SUMO's own model)
            for v in live - motor:
                assert raw.vehicle.getSpeedMode(v) == 31 and not np.isnan(raw.vehicle.getSpeed(v))
        assert seen_vehicles >= {"b0", "t0"} and walked
        assert seen_agents == {v for v in seen_vehicles if v in MOTOR}
        assert env.num_steps == 150
    finally:
        env.close()


def test_an_equipped_vehicle_that_is_not_an_agent_is_heard_as_a_peer(mixed):
    env = _env(mixed, cone_half_angle_deg="off", max_peers=16)
    try:
        env.reset(seed=1)
        core = env.unwrapped.core
        heard: set[str] = set()
        other_slots: set[int] = set()
        while env.agents:
            _, _, _, _, infos = env.step(zero_actions(env))
            rec = env.unwrapped.record
            senders = rec.extra("peer_sender")
            for a in env.agents:
                heard |= set(env.visible_peers(a))
            big = senders[senders >= core.n_slots]
            other_slots |= set(big.tolist())
            assert all(rec.radio_ids[s] in ("b0", "t0") for s in big.tolist())
            assert all(info["equipped"] for info in infos.values())
            # the agents' own record holds only agents; every vehicle is in all_states
            assert set(rec.states.ids) <= MOTOR and set(rec.all_states.ids) >= set(rec.states.ids)
            if len(rec.links):
                assert np.asarray(rec.links.sender).max() < core.n_slots  # links between agents only
        assert {"b0", "t0"} <= heard, f"the bicycle and the tram broadcast as peers; heard {sorted(heard)}"
        assert other_slots and min(other_slots) >= core.n_slots
        assert core.radio.capacity == core.n_slots + 2  # agents' slots plus a pool for the two others
    finally:
        env.close()


@pytest.mark.parametrize("step_length", [0.5, 1.0])
def test_non_agents_beacon_inside_long_steps_with_their_own_interpolated_state(mixed, step_length):
    """Steps longer than the beacon period: every equipped vehicle, agent or not, sends several
    beacons per step from its own radio slot, and what agents hear of the bicycle and the tram is
    their own state interpolated to the send time (between the two SUMO states around it)."""
    env = _env(mixed, cone_half_angle_deg="off", max_peers=16, step_length=step_length, max_steps=int(15 / step_length))
    try:
        env.reset(seed=2)
        core = env.unwrapped.core
        prev, prev_x = None, None
        checked = 0
        while env.agents:
            env.step(zero_actions(env))
            rec = env.unwrapped.record
            links = rec.all_links
            big = np.asarray(links.sender) >= core.n_slots
            if prev is not None and big.any():
                # several beacons of one non-agent in one step (10 Hz beacons, steps of 0.5-1 s)
                per_sender = np.bincount(np.asarray(links.sender)[big] - core.n_slots)
                per_receiver = max(1, int(np.count_nonzero(rec.equipped)))
                assert per_sender.max() >= round(step_length * 10) * per_receiver - per_receiver
                rx = core.radio.receive(rec.time_s * 1000.0, rec.slots[rec.equipped[rec.slots]])
                for k in np.flatnonzero(rx.sender >= core.n_slots):
                    vid = rec.radio_ids[rx.sender[k]]
                    if vid not in prev or vid not in rec.all_states.ids:
                        continue
                    i0, i1 = prev.index(vid), list(rec.all_states.ids).index(vid)
                    w = (rx.timestamp_ms[k] - (rec.time_s - step_length) * 1000.0) / (step_length * 1000.0)
                    x = prev_x[i0] + w * (rec.all_states.x[i1] - prev_x[i0])
                    assert rx.payload[k, 0] == pytest.approx(x, abs=1e-6)  # ideal radio: no sensor noise
                    checked += 1
            prev, prev_x = list(rec.all_states.ids), np.array(rec.all_states.x)
        assert checked > 0, "no message of a non-agent was received"
    finally:
        env.close()


def test_penetration_zero_means_no_peers_ever(mixed):
    env = _env(mixed, penetration_rate=0.0, cone_half_angle_deg="off")
    try:
        _, infos = env.reset(seed=5)
        assert not any(i["equipped"] for i in infos.values())
        steps = 0
        while env.agents:
            obs, _, _, _, infos = env.step(zero_actions(env))
            rec = env.unwrapped.record
            assert not rec.equipped.any() and len(rec.all_links) == 0
            assert all(o["peer_mask"].sum() == 0 for o in obs.values())
            assert all(i.get("n_visible_peers", 0) == 0 and not i["equipped"] for i in infos.values())
            assert (rec.radio_slots == -1).all()
            steps += 1
        assert steps == 150
    finally:
        env.close()


def _equipped_set(env, seed: int) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(equipped vehicles of the episode, vehicles that sent, agents that received a message)."""
    env.reset(seed=seed)
    core = env.unwrapped.core
    vids = core.scenario.vehicle_ids
    equipped = frozenset(v for v, e in zip(vids, core.equipped_vehicles) if e)
    sent, received = set(), set()
    while env.agents:
        env.step(zero_actions(env))
        rec = env.unwrapped.record
        links = rec.all_links
        sent |= {rec.radio_ids[s] for s in np.asarray(links.sender).tolist()}
        received |= {rec.radio_ids[s] for s in np.asarray(links.receiver).tolist()}
        on = rec.slots
        for slot in on.tolist():  # record.equipped agrees with the episode's draw
            assert rec.equipped[slot] == (env.unwrapped.core.agent_of_slot[slot] in equipped)
    return equipped, frozenset(sent), frozenset(received)


def test_half_penetration_is_seeded_and_unequipped_vehicles_neither_send_nor_receive(mixed):
    env = _env(mixed, penetration_rate=0.5, cone_half_angle_deg="off")
    try:
        a, sent_a, recv_a = _equipped_set(env, 11)
        b, _, _ = _equipped_set(env, 11)
        c, _, _ = _equipped_set(env, 12)
    finally:
        env.close()
    assert a == b, "the same seed gives the same equipped set"
    assert a != c, "another seed gives another equipped set"
    assert 0 < len(a) < 13
    assert sent_a <= a and recv_a <= a & MOTOR
    assert sent_a and recv_a


def test_same_seed_and_actions_give_identical_mixed_episodes(mixed):
    env = _env(mixed, penetration_rate=0.5, cone_half_angle_deg="off")
    try:
        t1 = run_episode(env, seed=21)
        t2 = run_episode(env, seed=21)
    finally:
        env.close()
    assert_traces_equal(t1, t2)


def test_equipped_selector_limits_who_carries_a_radio(mixed):
    env = _env(mixed, equipped={"vclass": "tram"}, cone_half_angle_deg="off", max_peers=16)
    try:
        _, infos = env.reset(seed=2)
        heard = set()
        while env.agents:
            _, _, _, _, infos = env.step(zero_actions(env))
            assert not any(i["equipped"] for i in infos.values())  # agents are cars: none has a radio
            rec = env.unwrapped.record
            assert set(rec.radio_ids[np.asarray(rec.all_links.sender)].tolist()) <= {"t0"}
            assert len(rec.all_links) == 0  # ...so nobody receives the tram either
            for a in env.agents:
                heard |= set(env.visible_peers(a))
        assert not heard
    finally:
        env.close()


def test_agents_selector_by_vtype_and_id_with_exclude(mixed):
    env = _env(mixed, agents={"vtype": ["car", "bike"], "exclude": {"id": "f.*"}})
    try:
        assert env.possible_agents == ["b0", "c0", "c1"]
        env.reset(seed=0)
        assert env.agents == ["b0"]  # the bicycle departs first and is an agent now
    finally:
        env.close()


def test_parallel_api_test_passes_on_the_mixed_scenario(mixed):
    env = _env(mixed, penetration_rate=0.5)
    try:
        parallel_api_test(env, num_cycles=150)
    finally:
        env.close()


def test_selector_matching_no_vehicle_and_bad_penetration_are_clear_errors(mixed):
    with pytest.raises(ValueError, match=r"agents selector \{vclass: \['bus'\]\} matches no vehicle of scenario "
                                         r"'s'; its vehicles have vClasses \['bicycle', 'passenger', 'tram', "
                                         r"'truck'\] and vTypes \['bike', 'car', 'lorry', 'tram'\]"):
        _env(mixed, agents={"vclass": "bus"})
    with pytest.raises(ValueError, match=r"penetration_rate must be in \[0.0, 1.0\], got 1.5"):
        _env(mixed, penetration_rate=1.5)


@pytest.mark.parametrize("yaml_text, words", [
    ("penetration_rate: -0.1\n", ["penetration_rate", "[0.0, 1.0]"]),
    ("agents: {vclass: [bus]}\n", ["agents selector", "matches no vehicle", "passenger"]),
])
def test_cli_bad_agents_or_penetration_is_one_line(mixed, tmp_path, yaml_text, words):
    cfg = tmp_path / "env.yaml"
    cfg.write_text(yaml_text)
    res = subprocess.run([sys.executable, "-m", "roadsense_marl.cli", "evaluate", "--policy", "no-v2v",
                          "--scenario", mixed, "--config", str(cfg), "--episodes", "1", "--no-plots"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), lines


def test_scenario_records_each_vehicles_vtype_and_vclass_from_sumo(mixed):
    from roadsense_marl.sim import resolve_scenario

    sc = resolve_scenario(mixed)
    kinds = dict(zip(sc.vehicle_ids, zip(sc.vehicle_types, sc.vehicle_classes)))
    assert kinds["b0"] == ("bike", "bicycle") and kinds["t0"] == ("tram", "tram")
    assert kinds["k0"] == ("lorry", "truck") and kinds["f.7"] == ("car", "passenger")
    assert "p0" not in kinds  # persons are not vehicles


def test_distribution_typed_vehicles_are_agents_only_when_sumo_draws_a_motor_type(tmp_path):
    write_straight_road(tmp_path, "n", 1000.0, 2, 30.0)
    (tmp_path / "r.rou.xml").write_text(
        '<routes><vTypeDistribution id="mix"><vType id="car" probability="1"/>'
        '<vType id="bike" vClass="bicycle" probability="1"/></vTypeDistribution>'
        '<route id="r" edges="road"/>'
        '<flow id="f" type="mix" route="r" begin="0" end="12" period="1" departLane="free"/></routes>')
    cfg = tmp_path / "s.sumocfg"
    cfg.write_text('<configuration><input><net-file value="n.net.xml"/><route-files value="r.rou.xml"/>'
                   '</input><time><step-length value="0.1"/></time></configuration>')
    env = roadsense_marl.parallel_env(scenario=str(cfg), max_steps=150, radio=ideal_radio(),
                                      cone_half_angle_deg="off", hazard={"probability": 0.0})
    bikes_by_seed = []
    try:
        assert env.possible_agents == [f"f.{k}" for k in range(12)]  # any of them may be drawn a car
        for seed in (0, 1):
            env.reset(seed=seed)
            raw = env.unwrapped.core.sim.raw
            bikes, heard = set(), set()
            while env.agents:
                live = set(raw.vehicle.getIDList())
                bikes |= {v for v in live if raw.vehicle.getVehicleClass(v) == "bicycle"}
                assert not bikes & set(env.agents), "a vehicle SUMO drew a bicycle for is not an agent"
                assert set(env.agents) == {v for v in live if raw.vehicle.getVehicleClass(v) == "passenger"}
                env.step(zero_actions(env))
                for a in env.agents:
                    heard |= set(env.visible_peers(a))
            assert bikes and heard & bikes, "the bicycles broadcast and are heard"
            bikes_by_seed.append(bikes)
    finally:
        env.close()
    assert bikes_by_seed[0] != bikes_by_seed[1]  # SUMO draws per seed; the env follows its draw
