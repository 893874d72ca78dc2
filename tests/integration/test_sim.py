"""SumoSimulation on real SUMO, both backends: lifecycle, resets, batched reads, commands,
collisions, departures and arrivals, variation, and that no SUMO process outlives it."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest

from roadsense_marl.sim import (
    LibsumoInUseError,
    ScenarioError,
    SumoError,
    SumoSimulation,
    VehicleStates,
    resolve_scenario,
    sample_variation,
)

from sim_helpers import BACKENDS, process_alive, running, wait_gone


@pytest.mark.parametrize("backend", BACKENDS)
def test_start_step_load_close(backend):
    sim = SumoSimulation("convoy_6", backend=backend, extra_fields=("lane_index", "lane_pos"))
    assert not sim.is_running and sim.pid is None  # construction starts nothing
    try:
        first = sim.reset(seed=1)
        assert sim.is_running
        assert first.time_s == 0.0 and first.ids == ()  # vehicles enter during the first step
        states = sim.step()
        assert states.time_s == pytest.approx(0.1)
        assert states.ids == tuple(f"V00{i}" for i in range(1, 7))
        assert states.departed == states.ids
        np.testing.assert_allclose(states.lane_pos, [0, 25, 50, 75, 100, 125])
        np.testing.assert_allclose(states.speed, 2.0)
        np.testing.assert_allclose(states.heading_deg, 90.0)  # road runs towards +x: east
        np.testing.assert_array_equal(states.lane_index, 0)
        np.testing.assert_array_equal(states.leader, [1, 2, 3, 4, 5, -1])
        np.testing.assert_allclose(states.gap, [20, 20, 20, 20, 20, np.inf])  # bumper to bumper
        np.testing.assert_allclose(states.length, 5.0)
        for _ in range(9):
            states = sim.step()
        assert states.time_s == pytest.approx(1.0) and states.departed == ()
        assert np.all(states.speed > 2.0)
        pid = sim.pid
        again = sim.reset(seed=2)  # load() on the live simulation
        assert again.time_s == 0.0 and again.ids == ()
        assert sim.pid == pid  # same process: reset does not restart SUMO
        assert sim.step().ids == states.ids
    finally:
        sim.close()
    sim.close()  # idempotent
    assert not sim.is_running
    with pytest.raises(SumoError, match="before reset"):
        sim.step()


def test_50_traci_resets_use_one_process_and_leave_none_behind():
    sim = SumoSimulation("convoy_6", backend="traci")
    try:
        sim.reset(seed=0)
        pid = sim.pid
        for seed in range(50):
            sim.reset(seed=seed)
            assert sim.step().n == 6
            assert sim.pid == pid
        assert process_alive(pid)
    finally:
        sim.close()
    assert wait_gone(pid)


def test_20_traci_simulations_started_and_closed_leave_no_process():
    pids = []
    for seed in range(20):
        with running("convoy_3", backend="traci") as sim:
            sim.reset(seed=seed)
            pids.append(sim.pid)
    assert all(wait_gone(p) for p in pids)


def test_50_libsumo_resets_keep_working():
    with running("convoy_6", backend="libsumo") as sim:
        for seed in range(50):
            assert sim.reset(seed=seed).ids == ()
            assert sim.step().n == 6


def test_second_libsumo_simulation_is_refused_and_the_first_keeps_working():
    with running("convoy_3", backend="libsumo") as first:
        first.reset(seed=0)
        before = first.step()
        second = SumoSimulation("convoy_6", backend="libsumo")
        with pytest.raises(LibsumoInUseError, match=r"backend='traci'.*one process per env"):
            second.reset(seed=0)
        assert not second.is_running
        after = first.step()
        assert after.ids == ("V001", "V002", "V003")  # still convoy_3, not replaced by convoy_6
        assert after.time_s == pytest.approx(before.time_s + 0.1)
    # Once the first is closed, libsumo is free again.
    with running("convoy_6", backend="libsumo") as third:
        third.reset(seed=0)
        assert third.step().n == 6


def test_libsumo_started_outside_this_library_is_detected():
    import libsumo

    sc = resolve_scenario("convoy_3")
    libsumo.start(["sumo", "-c", str(sc.sumocfg), "--no-step-log", "true"])
    try:
        with running(sc, backend="libsumo") as sim, pytest.raises(LibsumoInUseError):
            sim.reset(seed=0)
    finally:
        libsumo.close()


def test_several_traci_simulations_in_one_process_are_independent():
    with running("convoy_3", backend="traci") as a, running("convoy_6", backend="traci") as b:
        a.reset(seed=0)
        b.reset(seed=0)
        assert a.pid != b.pid
        for _ in range(5):
            sa, sb = a.step(), b.step()
        assert sa.ids == ("V001", "V002", "V003") and sb.n == 6
        np.testing.assert_allclose(sb.speed[0], 2.0 + 4 * 0.1 * 2.6, atol=1e-6)  # sigma 0: full accel


@pytest.mark.parametrize("backend", BACKENDS)
def test_simulation_pickles_before_reset_and_copies_start_fresh(backend):
    sim = SumoSimulation("convoy_3", backend=backend)
    copy = pickle.loads(pickle.dumps(sim))
    assert copy.scenario == sim.scenario and not copy.is_running
    try:
        sim.reset(seed=0)
        # A running simulation pickles to an unstarted copy (the live SUMO stays with the original).
        clone = pickle.loads(pickle.dumps(sim))
        assert not clone.is_running and sim.is_running
    finally:
        sim.close()
    with running(copy.scenario, backend=backend) as fresh:
        fresh.reset(seed=0)
        assert fresh.step().n == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_state_equals_per_vehicle_getters(backend):
    sc = resolve_scenario("highway", n_vehicles=12, lanes=3, length_m=600.0)
    with running(sc, backend=backend, extra_fields=("lane_pos", "lane_index")) as sim:
        sim.reset(seed=3)
        for _ in range(40):
            states = sim.step()
        assert states.n >= 6
        assert states.lane_index.dtype == np.int32 and states.lane_pos.dtype == np.float64
        v = sim.raw.vehicle
        assert set(states.ids) == set(v.getIDList())
        for i, vid in enumerate(states.ids):
            x, y = v.getPosition(vid)
            assert (states.x[i], states.y[i]) == (x, y)
            assert states.speed[i] == v.getSpeed(vid)
            assert states.accel[i] == v.getAcceleration(vid)
            assert states.heading_deg[i] == v.getAngle(vid)
            assert states.lane_index[i] == v.getLaneIndex(vid)
            assert states.lane_pos[i] == v.getLanePosition(vid)
            assert states.length[i] == v.getLength(vid)
            leader = v.getLeader(vid, 200.0)
            if leader and leader[0]:
                assert states.ids[states.leader[i]] == leader[0]
                assert states.gap[i] == pytest.approx(leader[1] + v.getMinGap(vid))
            else:
                assert states.leader[i] == -1 and states.gap[i] == np.inf
        assert np.any(states.leader >= 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lane_fields_are_read_only_when_requested(backend):
    with running("convoy_3", backend=backend) as sim:
        sim.reset(seed=0)
        states = sim.step()
        assert states.n == 3 and states.extras == {}
        assert not hasattr(states, "lane_pos")
        with pytest.raises(AttributeError, match=r"lane_index was not read.*extra_fields=\('lane_index',\)"):
            states.lane_index
    with running("convoy_3", backend=backend, extra_fields=("lane_pos",)) as sim:
        sim.reset(seed=0)
        states = sim.step()
        np.testing.assert_allclose(states.lane_pos, [0, 30, 60])
        assert set(states.extras) == {"lane_pos"} and not hasattr(states, "lane_index")


def test_empty_states_carry_only_the_requested_fields():
    empty = VehicleStates.empty(2.0, extra_fields=("lane_pos",))
    assert empty.n == 0 and empty.time_s == 2.0 and empty.leader.dtype == np.int64
    assert empty.lane_pos.shape == (0,) and not hasattr(empty, "lane_index")


def test_unknown_extra_field_is_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown extra_fields \['lane'\].*lane_index, lane_pos"):
        SumoSimulation("convoy_3", extra_fields=("lane",))
    with pytest.raises(TypeError, match="extra_fields must be a sequence of field names"):
        SumoSimulation("convoy_3", extra_fields="lane_pos")


@pytest.mark.parametrize("backend", BACKENDS)
def test_forced_rear_end_collision_is_reported_and_not_as_arrival(backend):
    with running("convoy_6", backend=backend) as sim:
        sim.reset(seed=0)
        sim.step()
        # Speed mode 0 disables SUMO's safe-speed checks; holding 13.89 m/s drives V001 into V002.
        sim.set_speed_modes(["V001"], [0])
        sim.set_speeds(["V001"], [13.89])
        collided, arrived, t = (), (), None
        for _ in range(60):
            states = sim.step()
            arrived += states.arrived
            if states.collided:
                collided, t = states.collided, states.time_s
                break
        assert set(collided) == {"V001", "V002"}, "collider and victim are both reported"
        # SUMO's collision record says who ran into whom: V001 (behind) is the collider
        assert states.collisions == (("V001", "V002"),)
        assert states.colliders == ("V001",) and states.victims == ("V002",)
        assert not set(collided) & set(arrived) and "V001" not in states.arrived
        assert "V001" not in states.ids and "V002" not in states.ids  # removed by SUMO
        assert t is not None and t < 4.0
        assert sim.step().collided == ()  # reported once


@pytest.mark.parametrize("backend", BACKENDS)
def test_release_to_car_following_and_slow_down(backend):
    with running("convoy_6", backend=backend) as sim:
        sim.reset(seed=0)
        sim.step()
        sim.set_speeds(["V006"], [1.0])  # reached within SUMO's deceleration limit
        for _ in range(5):
            s = sim.step()
        assert s.speed[s.index("V006")] == pytest.approx(1.0)
        sim.set_speeds(["V006"], [-5.0])  # any negative speed releases it
        for _ in range(5):
            s = sim.step()
        assert s.speed[s.index("V006")] > 2.0
        start = s.speed[s.index("V006")]
        sim.slow_down(["V006"], [0.0], [1.0])  # linearly to 0 within 1 s, then car-following again
        speeds = []
        for _ in range(14):
            s = sim.step()
            speeds.append(s.speed[s.index("V006")])
        assert speeds[4] == pytest.approx(start / 2, abs=0.5)
        assert min(speeds) == pytest.approx(0.0, abs=1e-6) and speeds[-1] > 0
        with pytest.raises(SumoError, match="NOPE.*still running"):
            sim.set_speeds(["NOPE"], [1.0])
        assert sim.is_running and sim.step().n == 6
        with pytest.raises(ValueError, match="2 ids but 1 speeds"):
            sim.set_speeds(["V001", "V002"], [1.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_highway_reports_departures_and_arrivals(backend, tmp_path):
    sc = resolve_scenario("highway", n_vehicles=8, lanes=2, length_m=300.0, n_initial=4,
                          depart_interval_s=1.0, cache_dir=tmp_path)
    departed_at: dict[str, float] = {}
    arrived: list[str] = []
    with running(sc, backend=backend) as sim:
        sim.reset(seed=0)
        for _ in range(400):
            s = sim.step()
            for vid in s.departed:
                assert vid not in departed_at
                departed_at[vid] = s.time_s
                assert vid in s.ids
            arrived += s.arrived
            assert not set(s.arrived) & set(s.ids)
            if len(arrived) == sc.n_vehicles:
                break
    assert set(departed_at) == set(sc.vehicle_ids)
    assert sorted(arrived) == sorted(sc.vehicle_ids) and len(arrived) == len(set(arrived))
    joined_late = [v for v, t in departed_at.items() if t > 0.5]
    assert len(joined_late) == 4  # staggered: they join while others are already driving


@pytest.mark.parametrize("spacing_m", [10.0, 20.0, 50.0])
def test_highway_initial_vehicles_are_all_on_the_road_after_the_first_step(spacing_m, tmp_path):
    sc = resolve_scenario("highway", n_vehicles=30, lanes=2, spacing_m=spacing_m, cache_dir=tmp_path)
    with running(sc) as sim:
        sim.reset(seed=0, variation=sample_variation(sc, np.random.default_rng(0)))
        states = sim.step()
        assert states.n == sc.params["n_initial"] == 15
        assert states.collided == ()


@pytest.mark.parametrize("backend", BACKENDS)
def test_variation_is_applied_and_deterministic_per_seed(backend):
    sc = resolve_scenario("convoy_3")  # sigma > 0: SUMO's own randomness matters too
    var = sample_variation(sc, np.random.default_rng(11), drop_peer_prob=0.0)

    def trajectory(sim, seed, variation):
        sim.reset(seed=seed, variation=variation)
        return np.array([sim.step().speed for _ in range(60)])

    with running(sc, backend=backend) as sim:
        a = trajectory(sim, 5, var)
        decel = sim.raw.vehicle.getDecel("V001")
        tau = sim.raw.vehicle.getTau("V001")
        b = trajectory(sim, 5, var)
        c = trajectory(sim, 6, var)
        d = trajectory(sim, 5, None)
    assert decel == pytest.approx(var.attrs_for("car")["decel"])
    assert tau == pytest.approx(var.attrs_for("car")["tau"])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, d)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropped_peers_never_enter(backend):
    sc = resolve_scenario("convoy_6")
    var = sample_variation(sc, np.random.default_rng(0), drop_peer_prob=1.0)
    with running(sc, backend=backend) as sim:
        sim.reset(seed=0, variation=var)
        assert sim.step().ids == ("V001",)
        sim.reset(seed=0)  # the next episode without variation has everyone back
        assert sim.step().n == 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_exception_inside_step_closes_sumo(backend, monkeypatch):
    sim = SumoSimulation("convoy_6", backend=backend)
    try:
        sim.reset(seed=0)
        sim.step()
        pid = sim.pid
        backend_obj = sim._runtime.backend
        read = "read" if backend == "libsumo" else "_read"

        def broken(*args, **kwargs):
            raise RuntimeError("injected read failure")

        monkeypatch.setattr(backend_obj, read, broken)
        with pytest.raises(SumoError, match=r"step failed.*convoy_6.*injected read failure"):
            sim.step()
        assert not sim.is_running
        if pid is not None:
            assert wait_gone(pid)
        sim.close()
        sim.close()
        monkeypatch.undo()
        # The same object starts a new SUMO on the next reset (libsumo was released too).
        sim.reset(seed=0)
        assert sim.step().n == 6
    finally:
        sim.close()


def test_garbage_collecting_a_started_traci_simulation_kills_its_process():
    sim = SumoSimulation("convoy_3", backend="traci")
    sim.reset(seed=0)
    sim.step()
    pid = sim.pid
    assert process_alive(pid)
    del sim
    gc.collect()
    assert wait_gone(pid)


def test_garbage_collecting_a_started_libsumo_simulation_frees_libsumo():
    sim = SumoSimulation("convoy_3", backend="libsumo")
    sim.reset(seed=0)
    del sim
    gc.collect()
    with running("convoy_6", backend="libsumo") as other:
        other.reset(seed=0)
        assert other.step().n == 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_broken_network_gives_sumo_error_naming_the_file(backend, tmp_path):
    # SUMO 1.28 segfaults on this; under libsumo that must not take the test process with it.
    (tmp_path / "b.net.xml").write_text("<net></net>\n")
    (tmp_path / "b.rou.xml").write_text('<routes><vehicle id="a" depart="0"><route edges="road"/></vehicle></routes>')
    cfg = tmp_path / "b.sumocfg"
    cfg.write_text('<configuration><input><net-file value="b.net.xml"/><route-files value="b.rou.xml"/>'
                   "</input></configuration>")
    # The vehicle set is asked from the real sumo binary first, so the crash is reported (in a
    # subprocess) before any simulation object exists, whatever the backend.
    with pytest.raises(ScenarioError, match=r"b\.sumocfg.*crashed"):
        SumoSimulation(str(cfg), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_route_error_quotes_sumos_message(backend, tmp_path):
    sc = resolve_scenario("convoy_6")
    (tmp_path / "r.rou.xml").write_text(
        '<routes><vehicle id="a" depart="0"><route edges="no_such_edge"/></vehicle></routes>')
    cfg = tmp_path / "r.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{sc.net_file}"/>'
                   '<route-files value="r.rou.xml"/></input></configuration>')
    with pytest.raises(ScenarioError, match=r"r\.sumocfg[\s\S]*no_such_edge"):
        SumoSimulation(str(cfg), backend=backend)


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match="unknown SUMO backend 'libtraci'.*libsumo, traci"):
        SumoSimulation("convoy_3", backend="libtraci")
    with pytest.raises(ValueError, match="gui=True needs backend='traci'"):
        SumoSimulation("convoy_3", gui=True)
    with pytest.raises(ValueError, match="step_length"):
        SumoSimulation("convoy_3", step_length=0)
    with pytest.raises(ValueError, match="seed"):
        SumoSimulation("convoy_3").reset(seed=-1)
