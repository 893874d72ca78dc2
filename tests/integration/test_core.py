"""The array core and its views on real SUMO: slots, pluggable functions, bad input, pickling."""

from __future__ import annotations

import pickle
import shutil
import warnings

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import roadsense_marl  # noqa: F401 - registers the env ids
from roadsense_marl import parallel_env
from roadsense_marl.env.core import ConvoyCore
from roadsense_marl.env.observations import EGO_FEATURES, ObservationFunction, observation_space
from roadsense_marl.env.rewards import RewardFunction
from roadsense_marl.paths import scenarios_dir

from env_helpers import assert_traces_equal, run_episode


def flow_scenario(tmp_path, number: int = 15, period: float = 2.0):
    """A flow of short trips on convoy_3's road: vehicles leave while later ones join."""
    shutil.copy(scenarios_dir() / "convoy_3" / "convoy_3.net.xml", tmp_path / "road.net.xml")
    (tmp_path / "flow.rou.xml").write_text(
        '<routes>\n  <vType id="car" accel="2.6" decel="4.5" sigma="0" length="5" minGap="2.5"/>\n'
        '  <route id="r0" edges="road"/>\n'
        f'  <flow id="f" type="car" route="r0" begin="0" number="{number}" period="{period}" '
        'departSpeed="15" departLane="0" arrivalPos="100"/>\n</routes>\n'
    )
    cfg = tmp_path / "flow.sumocfg"
    cfg.write_text(
        '<configuration><input><net-file value="road.net.xml"/><route-files value="flow.rou.xml"/></input>'
        '<time><begin value="0"/><step-length value="0.1"/></time></configuration>'
    )
    return str(cfg)


def test_slots_are_reused_and_bounded_by_the_vehicles_present_at_once(tmp_path):
    core = ConvoyCore(scenario=flow_scenario(tmp_path), max_vehicles=6, max_steps=400, vtype_randomization=False)
    try:
        assert len(core.possible_agents) == 15 and core.n_slots == 6
        core.reset(seed=0)
        held: dict[int, list[str]] = {}
        joined, ended = [], []
        while not core.episode_over:
            for s in np.flatnonzero(core.joined):
                held.setdefault(int(s), []).append(core.agent_of_slot[s])
                joined.append(core.agent_of_slot[s])
            core.step(np.zeros(core.n_slots))
            ended += [core.agent_of_slot[s] for s in np.flatnonzero(core.terminated | core.truncated)]
            assert core.live.sum() <= 6
        assert sorted(joined) == sorted(core.possible_agents), "every vehicle was an agent once"
        assert sorted(ended) == sorted(joined), "and ended exactly once"
        assert max(len(v) for v in held.values()) >= 2, "slots were reused"
    finally:
        core.close()


def test_the_parallel_view_passes_the_pettingzoo_api_test_with_reused_slots(tmp_path):
    env = parallel_env(scenario=flow_scenario(tmp_path), max_vehicles=6, max_steps=400, vtype_randomization=False)
    try:
        parallel_api_test(env, num_cycles=400)
    finally:
        env.close()


def test_too_few_slots_is_a_clear_error_naming_max_vehicles(tmp_path):
    env = parallel_env(scenario=flow_scenario(tmp_path, period=0.5), max_vehicles=2, max_steps=100)
    try:
        env.reset(seed=0)
        with pytest.raises(RuntimeError, match="max_vehicles=2; raise max_vehicles"):
            while env.agents:
                env.step({a: 0.0 for a in env.agents})
        assert env.agents == [] and not env.sim.is_running
    finally:
        env.close()


class SpeedReward(RewardFunction):
    components = ("speed",)

    def __call__(self, view, extras):
        return view.states.speed.copy(), {"speed": view.states.speed.copy()}

    def terminal(self, view, collided):
        return np.full(len(collided), -1.0), {"speed": np.full(len(collided), -1.0)}


class EgoOnly(ObservationFunction):
    def space(self, config):
        return gym.spaces.Dict({"ego": observation_space(config.max_peers)["ego"]})

    def __call__(self, view):
        from roadsense_marl.env.observations import DeepSetObservation

        inner = getattr(self, "_inner", None)
        if inner is None or len(inner.braking_signal) != len(view.row_of_slot):
            self._inner = inner = DeepSetObservation()
            inner.reset(len(view.row_of_slot))
        obs, extras = inner(view)
        return {"ego": obs["ego"]}, extras


def test_a_custom_reward_function_replaces_the_reward_and_its_components():
    env = parallel_env(scenario="convoy_3", max_steps=20, reward_fn=SpeedReward())
    try:
        env.reset(seed=3)
        for _ in range(5):
            _, rewards, _, _, infos = env.step({a: 0.0 for a in env.agents})
            s = env.sim_states
            for a, r in rewards.items():
                assert r == pytest.approx(s.speed[s.ids.index(a)])
                assert infos[a]["reward_components"] == {"speed": r}
    finally:
        env.close()


def test_a_custom_observation_function_defines_the_spaces():
    env = parallel_env(scenario="convoy_3", max_steps=20, observation_fn=EgoOnly())
    try:
        space = env.observation_space("V001")
        assert set(space.spaces) == {"ego"}
        obs, _ = env.reset(seed=1)
        assert all(set(o) == {"ego"} and space.contains(o) for o in obs.values())
        obs, *_ = env.step({})
        assert all(space.contains(o) for o in obs.values())
    finally:
        env.close()


def test_plug_ins_of_the_wrong_type_are_refused():
    with pytest.raises(ValueError, match="reward_fn must be a RewardFunction, got function"):
        parallel_env(scenario="convoy_3", reward_fn=lambda view, extras: 0)
    with pytest.raises(ValueError, match="observation_fn must be an ObservationFunction"):
        parallel_env(scenario="convoy_3", observation_fn=object())


@pytest.mark.parametrize(
    "actions,match",
    [
        (None, "actions must be a dict {agent: action} for the live agents, got NoneType"),
        ([0.0, 0.0, 0.0], "actions must be a dict .* got list"),
        (np.zeros(3), "actions must be a dict .* got ndarray"),
        ({"V001": "0.5"}, r"action for agent 'V001' must be a real number \(or an array of one\), got '0.5' \(str\)"),
        ({"V002": 0.5 + 1j}, r"action for agent 'V002' must be a real number .* \(complex\)"),
        ({"V003": None}, r"action for agent 'V003' must be a real number .* got None \(NoneType\)"),
        ({"V001": float("nan")}, r"action for agent 'V001' is nan; it must be a finite number in \[0.0, 1.0\]"),
        ({"V001": [0.1, 0.2]}, r"action for agent 'V001' must have shape \(1,\)"),
    ],
)
def test_bad_actions_name_the_agent_and_the_expected_type_and_change_nothing(actions, match):
    env = parallel_env(scenario="convoy_3", max_steps=20)
    try:
        env.reset(seed=0)
        t = env.num_steps
        with pytest.raises(ValueError, match=match):
            env.step(actions)
        assert env.num_steps == t and env.agents == ["V001", "V002", "V003"]
        env.step({"V001": np.float32(0.3), "V002": np.int64(0), "V003": np.array([1.0])})  # NumPy numbers are fine
    finally:
        env.close()


def test_numpy_integers_are_whole_numbers_in_the_config():
    env = parallel_env(scenario="convoy_3", max_steps=np.int64(7), max_peers=np.int32(4))
    try:
        assert env.config.max_steps == 7 and type(env.config.max_steps) is int
        env.reset(seed=0)
        steps = 0
        while env.agents:
            env.step({})
            steps += 1
        assert steps == 7
    finally:
        env.close()


def test_an_env_pickled_mid_episode_refuses_to_step_with_a_clear_error():
    env = parallel_env(scenario="convoy_3", max_steps=20)
    try:
        env.reset(seed=0)
        env.step({})
        copy = pickle.loads(pickle.dumps(env))
        assert copy.agents == []
        with pytest.raises(RuntimeError, match="restored from a pickle: a running SUMO simulation cannot be pickled"):
            copy.step({"V001": 0.0})
        env.step({})  # the original goes on
    finally:
        env.close()
    copy = pickle.loads(pickle.dumps(parallel_env(scenario="convoy_3", max_steps=5, backend="traci")))
    try:
        obs, _ = copy.reset(seed=0)  # and a copy can start its own episode
        assert set(obs) == {"V001", "V002", "V003"}
    finally:
        copy.close()


def test_the_hazard_vehicle_is_always_ahead_of_the_single_ego():
    picked = set()
    for seed in range(8):
        env = gym.make("RoadSense-Convoy-v4", ego_id="V002", max_steps=60, hazard={"onset_window_s": [2.0, 2.0]}).unwrapped
        try:
            env.reset(seed=seed)
            for _ in range(30):
                *_, terminated, truncated, info = env.step(np.zeros(1, np.float32))
                if terminated or truncated:
                    break
            picked.add(info["hazard_vehicle"])
        finally:
            env.close()
    # V003 is the only vehicle that can be ahead of V002 in convoy_3 (None: no leader at the onset)
    assert "V003" in picked and picked <= {"V003", None}


def test_a_late_single_ego_gets_max_steps_counted_from_its_own_departure(tmp_path):
    env = gym.make("RoadSense-Convoy-v4", scenario=flow_scenario(tmp_path), ego_id="f.5", max_steps=20,
                   max_vehicles=8, hazard={"probability": 0.0}).unwrapped
    try:
        env.reset(seed=0)
        assert env.core.states.time_s >= 10.0, "f.5 departs at 10 s"
        steps, truncated, info = 0, False, {}
        while not truncated:
            *_, terminated, truncated, info = env.step(np.zeros(1, np.float32))
            steps += 1
            assert not terminated
        assert steps == 20 and info["reason"] == "max_steps"
    finally:
        env.close()


@pytest.mark.parametrize("old", [0, 1, 2])
def test_the_old_ids_still_build_the_current_env_and_warn(old):
    import pettingzoo

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = pettingzoo.make("parallel", f"roadsense/convoy-v{old}", scenario="convoy_3")
        single = gym.make(f"RoadSense-Convoy-v{old}")
    env.close()
    single.close()
    text = " ".join(str(w.message) for w in caught)
    assert f"'roadsense/convoy-v{old}' is deprecated" in text and f"'RoadSense-Convoy-v{old}' is deprecated" in text
    assert env.metadata["name"] == "roadsense_convoy_v4"


def test_the_env_docstring_lists_every_ego_feature_in_order():
    from roadsense_marl.env.convoy_env import RoadSenseParallelEnv

    doc = RoadSenseParallelEnv.__doc__
    table = doc[doc.index(f"``ego`` ({len(EGO_FEATURES)},)"): doc.index("``peers`` (K, 6)")]
    rows = [line for line in table.splitlines() if line.strip().startswith("|") and line.strip()[1:].strip()[:1].isdigit()]
    assert len(rows) == len(EGO_FEATURES)


def test_compiled_and_numpy_observation_and_reward_give_identical_episodes():
    from roadsense_marl.env import kernels
    from roadsense_marl.env.observations import DeepSetObservation
    from roadsense_marl.env.rewards import ConvoyReward

    if not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    traces = []
    for backend in ("numpy", "numba"):
        env = parallel_env(scenario="highway", scenario_kwargs={"n_vehicles": 20}, max_steps=150,
                           hazard={"onset_window_s": [4.0, 4.0]}, observation_fn=DeepSetObservation(backend),
                           reward_fn=ConvoyReward(backend))
        rng = np.random.default_rng(0)
        try:
            traces.append(run_episode(env, 2, policy=lambda e, o: {a: float(rng.random() * (rng.random() < 0.2))
                                                                   for a in e.agents}))
        finally:
            env.close()
    assert len(traces[0]) == 151
    assert_traces_equal(traces[0], traces[1])


def test_a_gap_in_the_traffic_does_not_end_the_episode(tmp_path):
    # three vehicles 20 s apart, each on the road for about 7 s: the road is empty twice
    env = parallel_env(scenario=flow_scenario(tmp_path, number=3, period=20.0), max_steps=600,
                       vtype_randomization=False, hazard={"probability": 0.0})
    try:
        env.reset(seed=0)
        seen, steps = set(env.agents), 0
        while env.agents:
            _, _, _, truncations, infos = env.step({})
            seen |= set(env.agents)
            steps += 1
        assert seen == {"f.0", "f.1", "f.2"}, "every vehicle of the scenario became an agent"
        assert 400 < env.num_steps < 600, "the episode ran past the gaps and ended when the traffic did"
        assert steps < env.num_steps, "SUMO steps with an empty road were run inside one env step"
        assert infos["f.2"]["reason"] == "arrived"
    finally:
        env.close()


def test_the_hazard_vehicles_action_is_ignored_from_the_onset_step_on():
    core = ConvoyCore(scenario="convoy_6", max_steps=40, hazard={"onset_window_s": [2.0, 2.0], "release_prob": 0.0})
    try:
        core.reset(seed=4)
        acted_by_step, slot = [], -1
        while not core.episode_over:
            core.step(np.zeros(core.n_slots))
            acted_by_step.append(core.acted.copy())
            slot = core.record.hazard_slot if slot < 0 else slot
        assert slot >= 0 and core.record.hazard_vehicle == core.possible_agents[slot]
        assert acted_by_step[19][slot] and not acted_by_step[20][slot], "step 20 (the onset) is already imposed"
        others = [s for s in range(core.n_slots) if s != slot]
        assert acted_by_step[20][others].all()
    finally:
        core.close()


def test_the_number_of_slots_does_not_change_the_episode():
    traces = []
    for max_vehicles in (None, 9):
        env = parallel_env(scenario="convoy_6", max_steps=80, max_vehicles=max_vehicles, hazard={"onset_window_s": [3.0, 3.0]})
        try:
            traces.append(run_episode(env, 3))
        finally:
            env.close()
    assert_traces_equal(traces[0], traces[1])


@pytest.mark.parametrize("radio, channel_on", [("measured", True), ("ideal", False)])
def test_the_step_record_carries_each_vehicles_channel_busy_ratio(radio, channel_on):
    """measured: the shared channel is on, every live vehicle hears at least its own beacons
    (1.256 ms per 100 ms at 10 Hz); ideal: the channel is off and CBR stays 0."""
    env = parallel_env(scenario="convoy_6", max_steps=30, radio=radio)
    try:
        env.reset(seed=4)
        for _ in range(10):
            env.step({a: 0.0 for a in env.agents})
        rec = env.record
        cbr = rec.cbr
        assert cbr.shape == (rec.n_slots,) and cbr.dtype == np.float64
        live = cbr[rec.slots]
        if channel_on:
            assert (live >= 0.01).all() and (live <= 1.0).all()
        else:
            assert (cbr == 0.0).all()
    finally:
        env.close()


def test_the_channel_aware_observation_adds_the_own_cbr_as_the_last_ego_column():
    from roadsense_marl.env.observations import EGO_DIM, ChannelAwareObservation

    env = parallel_env(scenario="convoy_6", max_steps=30, radio="measured", observation_fn=ChannelAwareObservation())
    try:
        space = env.observation_space("V001")
        assert space["ego"].shape == (EGO_DIM + 1,)
        env.reset(seed=4)
        for _ in range(5):
            obs, *_ = env.step({a: 0.0 for a in env.agents})
        rec = env.record
        for a, o in obs.items():
            assert space.contains(o)
            slot = int(rec.slots[rec.states.ids.index(a)])
            assert o["ego"][-1] == np.float32(rec.cbr[slot]) and o["ego"][-1] > 0.0
    finally:
        env.close()


def test_the_track_of_the_peer_ahead_is_the_true_gap_and_the_same_on_both_kernels():
    from roadsense_marl.env.observations import (EGO_DIM, EGO_INDEX, EGO_TABLE, NOMINAL_LENGTH_M, TRACK_NO_PEER_M,
                                                 DeepSetObservation)

    col = EGO_INDEX["ahead_distance"]
    runs = []
    for backend in ("numpy", "numba"):
        env = parallel_env(scenario="convoy_6", max_steps=40, radio="measured",
                           observation_fn=DeepSetObservation(backend=backend))
        try:
            space = env.observation_space("V001")
            assert space["ego"].shape == (EGO_DIM,)
            obs, _ = env.reset(seed=4)
            seen = []
            while env.agents:
                assert all(space.contains(o) for o in obs.values())
                seen.append({a: o["ego"].copy() for a, o in obs.items()})
                rec = env.record
                gaps = {a: float(rec.gap[int(rec.slots[rec.states.ids.index(a)])]) for a in obs}
                obs, *_ = env.step({a: 0.0 for a in env.agents})
            runs.append(seen)
        finally:
            env.close()
    numpy_run, numba_run = runs
    assert len(numpy_run) == len(numba_run) and all(
        a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a) for a, b in zip(numpy_run, numba_run))
    last = numpy_run[-1]
    # after 4 s the track is SUMO's true gap (+ the nominal length) to within the filtered GPS
    # noise (~3 m per message); the leading car has no peer ahead (the no-peer reading)
    d = {a: float(o[col]) * EGO_TABLE[col].scale for a, o in last.items()}
    lead = max(d, key=d.get)
    assert d[lead] == TRACK_NO_PEER_M and np.isinf(gaps[lead])
    assert all(abs(v - NOMINAL_LENGTH_M - gaps[a]) < 2.0 for a, v in d.items() if a != lead), (d, gaps)


def test_only_the_collider_pays_for_a_rear_end_crash_and_the_override_outlives_the_crash():
    """No-v2v into a never-released hazard: SUMO's record names the follower as collider; it gets the
    collision penalty, the hazard vehicle it hit gets collision_victim (0). Both leave. The hold-speed
    override does not end because the crash removed the hazard vehicle: the cars left keep their speed
    instead of accelerating away (which would reward the crash)."""
    core = ConvoyCore(scenario="convoy_6", max_steps=300, hazard={"onset_window_s": [6.0, 8.0], "release_prob": 0.0})
    try:
        core.reset(seed=2)
        crash_step, speeds = None, []
        while not core.episode_over:
            core.step(np.zeros(core.n_slots))
            if core.terminated.any():
                ended = np.flatnonzero(core.terminated)
                names = [core.agent_of_slot[s] for s in ended]
                (collider, victim), = core.record.states.collisions
                assert victim == core.record.hazard_vehicle and sorted(names) == sorted([collider, victim])
                by_name = dict(zip(names, core.reward[ended]))
                assert by_name[collider] == core.config.reward.collision and by_name[victim] == 0.0
                crash_step = core.num_steps
            elif crash_step is not None:
                speeds.append(core.record.states.speed.copy())
        assert crash_step is not None and core.hazard.crashed and len(speeds) > 100
        speeds = np.array(speeds)
        assert speeds.shape[1] >= 2 and np.abs(speeds - speeds[0]).max() < 1e-6, "the others held their speed"
    finally:
        core.close()
