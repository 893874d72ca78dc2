"""Frames of real SUMO episodes: vehicles where SUMO has them, wrecks after a crash, no effect on the episode."""

from __future__ import annotations

import numpy as np
import pytest

from roadsense_marl import parallel_env
from roadsense_marl.env.render import BRAKING, CRASHED, DRIVING, HAZARD, HEADER_PX, LEGEND_PX, LINK

from env_helpers import assert_traces_equal, run_episode, zero_actions


def colour_cols(frame: np.ndarray, colour) -> np.ndarray:
    area = frame[HEADER_PX : frame.shape[0] - LEGEND_PX]
    return np.flatnonzero((area == np.array(colour, dtype=np.uint8)).all(axis=-1).any(axis=0))


def test_frame_shows_every_vehicle_and_the_links_of_this_step():
    env = parallel_env(scenario="convoy_6", render_mode="rgb_array", radio="ideal")
    try:
        env.reset(seed=0)
        for _ in range(5):
            env.step(zero_actions(env))
        frame = env.render()
        s = env.sim_states
        assert frame.shape == (260, 800, 3) and frame.dtype == np.uint8
        cols = colour_cols(frame, DRIVING)
        # One box per vehicle: runs of consecutive columns, as many as vehicles on the road.
        runs = np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1)
        assert len(runs) == s.n == 6
        # Boxes are spaced like SUMO's positions (the view is linear in x).
        centres = np.array([r.mean() for r in runs])
        order = np.sort(s.x - s.length / 2)
        fit = np.polyfit(order, centres, 1)
        assert np.abs(np.polyval(fit, order) - centres).max() < 3.0
        assert colour_cols(frame, LINK).size > 0  # the ideal radio delivered this step
    finally:
        env.close()


def test_hazard_braking_and_crash_are_visible():
    env = parallel_env(scenario="convoy_6", render_mode="rgb_array", hazard={"onset_window_s": [3.0, 4.0]})
    try:
        env.reset(seed=3)
        seen_hazard = seen_braking = seen_crash = False
        while env.agents and not seen_crash:
            env.step(zero_actions(env))  # followers hold speed under the override: a rear-end crash
            frame = env.render()
            seen_hazard |= env.record.hazard_vehicle is not None and colour_cols(frame, HAZARD).size > 0
            seen_braking |= colour_cols(frame, BRAKING).size > 0
            seen_crash |= colour_cols(frame, CRASHED).size > 0
        assert seen_hazard and seen_braking and seen_crash
        # The wreck stays drawn after SUMO removed the vehicle.
        if env.agents:
            env.step(zero_actions(env))
            assert colour_cols(env.render(), CRASHED).size > 0
    finally:
        env.close()


def test_rendering_does_not_change_the_episode():
    env = parallel_env(scenario="convoy_3", max_steps=80, render_mode="rgb_array")
    try:
        plain = run_episode(env, seed=5)
        rendered = []

        def policy(e, obs):
            rendered.append(e.render())
            return zero_actions(e)

        with_frames = run_episode(env, seed=5, policy=policy)
        assert len(rendered) == len(with_frames) - 1
        assert_traces_equal(plain, with_frames)
    finally:
        env.close()


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_human_mode_shows_each_step_in_a_window(monkeypatch, backend):
    import warnings

    import matplotlib

    matplotlib.use("Agg", force=True)  # stands in for a display's interactive backend
    monkeypatch.setenv("DISPLAY", ":0")
    env = parallel_env(scenario="convoy_3", render_mode="human", backend=backend, max_steps=5)
    shown = []
    try:
        monkeypatch.setattr(env._renderer.viewer, "show", shown.append)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            env.reset(seed=1)
            while env.agents:
                env.step(zero_actions(env))
            assert env.render() is None
    finally:
        env.close()
    assert len(shown) == 1 + 5 + 1  # reset, every step, the explicit render()
    assert all(f.shape == (260, 800, 3) for f in shown)
    assert colour_cols(shown[-1], DRIVING).size > 0
