"""The PettingZoo ParallelEnv on real SUMO (libsumo and traci)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, render_test

import roadsense_marl
from roadsense_marl import parallel_env

from env_helpers import assert_traces_equal, braking_policy, ideal_radio, run_episode, zero_actions

HIGHWAY = {"scenario": "highway", "scenario_kwargs": {"n_vehicles": 12, "lanes": 2, "length_m": 600.0}}


@pytest.mark.parametrize(
    "kwargs",
    [{"scenario": "convoy_3"}, {"scenario": "convoy_6"}, HIGHWAY],
    ids=["convoy_3", "convoy_6", "highway"],
)
def test_parallel_api_test_passes(kwargs):
    env = parallel_env(max_steps=200, hazard={"onset_window_s": [2.0, 4.0]}, **kwargs)
    try:
        parallel_api_test(env, num_cycles=300)
    finally:
        env.close()


def test_aec_view_passes_api_and_render_tests():
    aec = roadsense_marl.env(scenario="convoy_3", max_steps=60, render_mode="rgb_array")
    try:
        api_test(aec, num_cycles=60)
    finally:
        aec.close()

    def env_fn(render_mode=None):
        if render_mode == "human" and not os.environ.get("DISPLAY"):
            # The window needs a display; without one, "human" is exercised as "no rendering" (render() -> None).
            return roadsense_marl.env(scenario="convoy_3", max_steps=40, backend="traci")
        return roadsense_marl.env(scenario="convoy_3", max_steps=40, render_mode=render_mode, backend="traci")

    render_test(env_fn)


def test_registered_with_pettingzoo():
    import pettingzoo

    env = pettingzoo.make("parallel", "roadsense/convoy-v4", scenario="convoy_3", max_steps=5)
    try:
        env.reset(seed=0)
        assert set(env.agents) == {"V001", "V002", "V003"}
    finally:
        env.close()


def test_spaces_are_cached_and_metadata_complete():
    env = parallel_env(scenario="convoy_6")
    try:
        assert env.observation_space("V001") is env.observation_space("V006")
        assert env.action_space("V002") is env.action_space("V002")
        assert {"name", "render_modes", "render_fps", "is_parallelizable"} <= env.metadata.keys()
        assert env.possible_agents == [f"V00{i}" for i in range(1, 7)]
    finally:
        env.close()


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_whole_episode_is_bit_identical_for_the_same_seed(backend):
    kwargs = dict(scenario="convoy_6", backend=backend, max_steps=120, hazard={"onset_window_s": [3.0, 5.0]})
    rng = np.random.default_rng(7)
    scripted = rng.random((120, 6)).astype(np.float32)

    def policy(env, obs):
        return {a: scripted[env.num_steps, env.possible_agents.index(a)][None] * 0.3 for a in env.agents}

    env = parallel_env(**kwargs)
    try:
        t1 = run_episode(env, seed=11, policy=policy)
        t2 = run_episode(env, seed=11, policy=policy)  # same env, reset again
        t3 = run_episode(env, seed=12, policy=policy)
    finally:
        env.close()
    assert_traces_equal(t1, t2)
    env2 = parallel_env(**kwargs)  # a fresh env gives the same episode too
    try:
        t4 = run_episode(env2, seed=11, policy=policy)
    finally:
        env2.close()
    assert_traces_equal(t1, t4)
    different = any(
        not np.array_equal(a[0][k]["peers"], b[0][k]["peers"])
        for a, b in zip(t1, t3)
        for k in a[0].keys() & b[0].keys()
    )
    assert different, "a different seed should give a different episode"


def test_peers_equal_senders_true_state_at_send_time():
    """Causality through the env: every visible peer is its sender's TRUE state at its send time
    now - age (interpolated between the two SUMO states around it: beacons go at their own times
    inside a step), and it is the newest message that can have arrived: with a fixed 250 ms latency,
    no loss and 100 ms beacons every visible message is 250 to 350 ms old."""
    latency = 250.0  # 2.5 steps
    env = parallel_env(
        scenario="convoy_6",
        radio=ideal_radio(latency_ms=latency),
        domain_randomization=False,
        cone_half_angle_deg="off",
        max_peers=8,
        max_steps=150,
        hazard={"onset_window_s": [4.0, 4.0]},
    )
    history: dict[int, dict[str, tuple]] = {}
    checked = 0
    try:
        obs, _ = env.reset(seed=3)
        for _ in range(150):
            s = env.sim_states
            t_ms = int(round(s.time_s * 1000.0))
            history[t_ms] = {v: (s.x[i], s.y[i], s.speed[i], s.heading_deg[i], s.accel[i]) for i, v in enumerate(s.ids)}
            for agent, o in obs.items():
                if agent not in s.ids:
                    continue
                i = s.ids.index(agent)
                h = np.radians(s.heading_deg[i])
                senders = env.visible_peers(agent)
                assert len(senders) == int(o["peer_mask"].sum())
                for row, sender in zip(o["peers"], senders):
                    age = float(row[5]) * 500.0
                    assert latency - 1e-3 <= age < latency + 100.0 + 1e-3, f"{agent} sees {sender} {age} ms old"
                    sent = t_ms - age
                    if abs(sent - round(sent)) < 1e-3 and round(sent) in history:  # sent at a SUMO step
                        true = history[round(sent)][sender]
                    else:  # interpolated between the SUMO states around the send time
                        before = int(np.floor(sent / 100.0)) * 100
                        w = (sent - before) / 100.0
                        a0, a1 = np.array(history[before][sender]), np.array(history[before + 100][sender])
                        true = a0 + w * (a1 - a0)
                    fwd, left = row[0] * 100.0, row[1] * 100.0
                    px = s.x[i] + fwd * np.sin(h) - left * np.cos(h)
                    py = s.y[i] + fwd * np.cos(h) + left * np.sin(h)
                    assert np.hypot(true[0] - px, true[1] - py) < 1e-2
                    assert row[2] * 30.0 + s.speed[i] == pytest.approx(true[2], abs=1e-3)
                    assert row[4] * 10.0 == pytest.approx(true[4], abs=1e-4)
                    checked += 1
            if not env.agents:
                break
            obs, *_ = env.step(zero_actions(env))
    finally:
        env.close()
    assert checked > 100


def test_no_brake_followers_crash_and_braking_followers_do_not():
    common = dict(
        scenario="convoy_6",
        max_steps=300,
        radio="ideal",
        domain_randomization=False,
        vtype_randomization=False,
        hazard={"onset_window_s": [12.0, 12.0], "decel_range": [9.0, 9.0], "duration_range": [1.5, 1.5], "release_prob": 0.0},
    )
    env = parallel_env(**common)
    try:
        crashes_idle = _collisions(run_episode(env, seed=5))
        crashes_braking = _collisions(run_episode(env, seed=5, policy=braking_policy()))
    finally:
        env.close()
    assert crashes_idle, "followers that never brake must hit the braking vehicle"
    assert not crashes_braking, f"followers that brake on the V2V warning crashed: {crashes_braking}"


def _collisions(trace) -> set[str]:
    return {a for _, _, terms, _, infos in trace[1:] for a, t in terms.items() if t and infos[a]["reason"] == "collision"}


def test_join_and_leave_bookkeeping_on_highway():
    env = parallel_env(max_steps=2000, hazard={"probability": 0.0}, **HIGHWAY)
    seen_gone: set[str] = set()
    joined_mid = 0
    try:
        obs, infos = env.reset(seed=1)
        assert set(obs) == set(infos) == set(env.agents)
        while env.agents:
            before = set(env.agents)
            obs, rew, terms, truncs, infos = env.step(zero_actions(env))
            after = set(env.agents)
            keys = set(obs)
            assert keys == set(rew) == set(terms) == set(truncs) == set(infos)
            assert before <= keys, "every agent that acted is in every dict"
            new = keys - before
            joined_mid += len(new)
            assert not (new & seen_gone), f"agents revived: {new & seen_gone}"
            assert new <= after or all(terms[a] or truncs[a] for a in new)
            for a in keys:
                if terms[a] or truncs[a]:
                    assert a not in after
                    seen_gone.add(a)
                    if truncs[a]:
                        assert infos[a]["TimeLimit.truncated"] is True
                    assert infos[a].get("reason") in {"arrived", "collision", "max_steps"}
                else:
                    assert a in after
    finally:
        env.close()
    assert joined_mid > 0, "the highway scenario must insert vehicles mid-episode"
    assert seen_gone == set(env.possible_agents)


def test_max_steps_truncates_every_live_agent():
    env = parallel_env(scenario="convoy_6", max_steps=10)
    try:
        env.reset(seed=0)
        for _ in range(10):
            live = list(env.agents)
            _, _, terms, truncs, infos = env.step(zero_actions(env))
        assert env.agents == []
        assert all(truncs[a] and infos[a]["TimeLimit.truncated"] and infos[a]["reason"] == "max_steps" for a in live)
    finally:
        env.close()


def test_bad_actions_and_unknown_agents_raise_clear_errors():
    env = parallel_env(scenario="convoy_3")
    try:
        env.reset(seed=0)
        with pytest.raises(ValueError, match="unknown agent 'V999'"):
            env.step({"V999": np.zeros(1)})
        with pytest.raises(ValueError, match="'V001'.*NaN|'V001'.*nan"):
            env.step({"V001": np.array([np.nan])})
        with pytest.raises(ValueError, match=r"'V002'.*shape \(1,\)"):
            env.step({"V002": np.zeros(3)})
        with pytest.raises(ValueError, match="unknown agent 'nope'"):
            env.observation_space("nope")
        # Nothing was lost: the episode continues and out-of-range actions are clipped.
        env.step({"V001": np.array([5.0]), "V002": np.array([-3.0])})
    finally:
        env.close()


def test_unknown_config_key_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown env config key 'max_peerz'"):
        parallel_env(scenario="convoy_3", max_peerz=3)


def test_env_pickles_before_reset():
    import pickle

    env = parallel_env(scenario="convoy_3")
    clone = pickle.loads(pickle.dumps(env))
    try:
        clone.reset(seed=0)
        assert clone.agents
    finally:
        clone.close()
        env.close()


def test_render_rgb_array_frame():
    env = parallel_env(scenario="convoy_3", render_mode="rgb_array")
    try:
        env.reset(seed=0)
        env.step(zero_actions(env))
        frame = env.render()
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) >= 3  # background, road, cars (and links)
    finally:
        env.close()


def test_sumo_gui_needs_traci():
    with pytest.raises(ValueError, match="sumo_gui=True.*backend='traci'"):
        parallel_env(scenario="convoy_3", sumo_gui=True)


@pytest.mark.skipif(bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")), reason="a display exists")
def test_human_render_without_display_is_a_clear_error():
    with pytest.raises(ValueError, match="no display"):
        parallel_env(scenario="convoy_3", render_mode="human")


def test_sumo_dying_mid_episode_is_a_clear_error_and_leaves_nothing_running():
    import signal

    from roadsense_marl.sim import SumoError

    env = parallel_env(scenario="convoy_6", backend="traci", max_steps=100)
    try:
        env.reset(seed=0)
        env.step(zero_actions(env))
        pid = env.sim.pid
        os.kill(pid, signal.SIGKILL)  # fault injection: SUMO dies under the env
        with pytest.raises(SumoError) as err:
            for _ in range(5):
                env.step(zero_actions(env))
        assert "SUMO" in str(err.value)
        assert env.agents == []  # the episode is over, not half-alive
        obs, _ = env.reset(seed=1)  # and the env recovers with a fresh SUMO on the next reset
        assert obs and env.sim.pid != pid
    finally:
        env.close()


def test_traffic_recovers_after_a_released_hazard():
    env = parallel_env(
        scenario="convoy_6", max_steps=400, radio="ideal", domain_randomization=False, vtype_randomization=False,
        hazard={"onset_window_s": [15.0, 15.0], "decel_range": [6.0, 6.0], "duration_range": [1.0, 1.0],
                "release_prob": 1.0, "release_after_range": [2.0, 2.0]},
    )
    policy = braking_policy()
    speeds = {}
    try:
        obs, _ = env.reset(seed=5)
        while env.agents:
            obs, *_ = env.step(policy(env, obs))
            speeds[env.num_steps] = float(np.mean(env.sim_states.speed)) if env.sim_states.ids else 0.0
        release = env.core.hazard.plan.release_step
    finally:
        env.close()
    slowest = min(speeds[t] for t in range(release - 5, release + 5))
    assert max(speeds[t] for t in range(release + 5, 400) if t in speeds) > slowest + 2.0, (
        "after the hazard vehicle is released the override ends and the convoy accelerates again"
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"scenario": "highway", "scenario_kwargs": {"bogus": 1}}, r"unknown highway parameter\(s\) \['bogus'\]; valid: n_vehicles"),
        ({"scenario": "highway", "scenario_kwargs": {"n_vehicles": "ten"}}, "bad highway parameters"),
        ({"scenario": "convoy_3", "radio": "nonexistent"}, "radio 'nonexistent' is neither a radio profile"),
        ({"scenario": "nope"}, "unknown scenario 'nope'; available scenarios: convoy_3, convoy_6, highway"),
    ],
)
def test_bad_scenario_and_radio_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        parallel_env(**kwargs)


@pytest.mark.parametrize("seed", [1.5, "a", -1, True])
def test_bad_reset_seed_is_named(seed):
    env = parallel_env(scenario="convoy_3")
    try:
        with pytest.raises(ValueError, match="seed must be a non-negative whole number"):
            env.reset(seed=seed)
    finally:
        env.close()
