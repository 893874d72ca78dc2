"""RoadSense-Convoy-v4: the single-ego Gymnasium view over the same core."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import roadsense_marl  # noqa: F401 - registers RoadSense-Convoy-v4


def test_gymnasium_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("RoadSense-Convoy-v4", max_steps=50)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_sb3_env_checker_passes():
    from stable_baselines3.common.env_checker import check_env

    env = gym.make("RoadSense-Convoy-v4", max_steps=50).unwrapped
    try:
        check_env(env, warn=True)
    finally:
        env.close()


def test_ego_sees_what_the_same_agent_sees_in_the_parallel_env():
    """A view, not a copy: with every other vehicle left to SUMO in both, the ego's episode is identical."""
    from roadsense_marl import parallel_env

    kwargs = dict(scenario="convoy_3", backend="traci", max_steps=80, hazard={"onset_window_s": [3.0, 3.0]})
    single = gym.make("RoadSense-Convoy-v4", **kwargs).unwrapped
    multi = parallel_env(**kwargs)
    multi.controlled = frozenset({"V001"})
    try:
        o1, _ = single.reset(seed=4)
        o2, _ = multi.reset(seed=4)
        np.testing.assert_array_equal(o1["peers"], o2["V001"]["peers"])
        for t in range(80):
            a = np.array([0.3 if t % 7 == 0 else 0.0], dtype=np.float32)
            o1, r1, te1, tr1, _ = single.step(a)
            o2, r2, te2, tr2, _ = multi.step({"V001": a})
            np.testing.assert_array_equal(o1["ego"], o2["V001"]["ego"])
            np.testing.assert_array_equal(o1["peers"], o2["V001"]["peers"])
            assert r1 == r2["V001"]
            if te1 or tr1:
                break
    finally:
        single.close()
        multi.close()


def test_other_vehicles_are_driven_by_sumo_not_by_the_override():
    env = gym.make("RoadSense-Convoy-v4", max_steps=200, hazard={"onset_window_s": [5.0, 5.0], "decel_range": [9, 9]}).unwrapped
    commanded: list[list[str]] = []
    try:
        env.reset(seed=1)
        multi = env.core
        original = multi.sim.set_speeds

        def spy(ids, speeds):
            commanded.append(list(ids))
            return original(ids, speeds)

        multi.sim.set_speeds = spy
        ego_speed = []
        for _ in range(200):
            _, _, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
            s = multi.states
            if "V001" in s.ids:
                ego_speed.append((multi.num_steps, s.speed[s.ids.index("V001")]))
            if terminated or truncated:
                break
        override, release = multi.hazard.plan.override_step, multi.hazard.plan.release_step
        end = release if release is not None else max(t for t, _ in ego_speed)
        held = [v for t, v in ego_speed if override + 1 < t <= end]  # speeds after the calls with the override on
        assert held and max(held) - min(held) < 1e-6, "the idle ego holds its speed while the override is on"
        hazard_vehicle = multi.hazard.vehicle
        others = {v for ids in commanded for v in ids} - {"V001", hazard_vehicle}
        assert not others, f"SUMO-driven vehicles were commanded: {others}"
    finally:
        env.close()


def test_unknown_ego_is_a_clear_error():
    with pytest.raises(ValueError, match="ego_id 'V042' is not a vehicle"):
        gym.make("RoadSense-Convoy-v4", ego_id="V042")


def test_the_egos_episode_length_may_be_given_in_seconds():
    env = gym.make("RoadSense-Convoy-v4", max_time_s=2.5, step_length=0.5).unwrapped
    try:
        from roadsense_marl.env.core import MAX_WARMUP_S

        assert env.max_steps == 5  # 2.5 s at 0.5 s
        assert env.core.max_steps == 5 + round(MAX_WARMUP_S / 0.5)  # the core adds the warm-up allowance, in seconds
        env.reset(seed=0)
        steps, truncated, terminated = 0, False, False
        while not (truncated or terminated):
            _, _, terminated, truncated, info = env.step(np.zeros(1, np.float32))
            steps += 1
        assert steps == 5 and truncated and info["reason"] == "max_steps"
    finally:
        env.close()
