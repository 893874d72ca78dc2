"""The radio behaves like the real 10 Hz beacon whatever SUMO's step length (issue 11 item 4).

Beacons go at their own times inside a step, each with the sender's state interpolated between
the two SUMO states around it; message ages then reflect beacon period and latency, not the step
length. Real SUMO (convoy_6, libsumo), real radio.
"""

from __future__ import annotations

import numpy as np
import pytest

from roadsense_marl.env.core import ConvoyCore
from roadsense_marl.espnow.core import link_loss

from env_helpers import seen_peers

STEP_LENGTHS = (0.05, 0.1, 0.5, 1.0)
PERIOD_MS = 100.0  # the radio's 10 Hz beacon


def _core(step_length: float, radio: str, **config) -> ConvoyCore:
    config.setdefault("max_time_s", 30.0)
    return ConvoyCore(scenario="convoy_6", step_length=step_length, radio=radio, cone_half_angle_deg="off",
                      max_peers=8, hazard={"probability": 0.0}, **config)


def _visibility(core: ConvoyCore, seed: int = 3, min_delivery: float = 0.8):
    """Run an episode with zero actions: (visible neighbour pairs, neighbour pairs, ages of every
    shown message in ms). A neighbour is a vehicle whose link's long-run delivery ratio is at least
    ``min_delivery`` (in radio range); visible: in the receiver's peer table this step."""
    core.reset(seed)
    visible = total = 0
    ages = []
    while not core.episode_over:
        core.step(np.zeros(core.n_slots))
        rec = core.record
        s = rec.states
        if s.n < 2:
            continue
        xy = np.stack([s.x, s.y], axis=1)
        dist = np.linalg.norm(xy[:, None] - xy[None], axis=2)
        near = link_loss(rec.radio_params, dist).stationary_delivery_ratio >= min_delivery
        np.fill_diagonal(near, False)
        seen = seen_peers(rec)
        visible += int((seen & near).sum())
        total += int(near.sum())
        peers = core.obs["peers"][rec.slots]
        mask = core.obs["peer_mask"][rec.slots] > 0
        ages.append(peers[..., 5][mask].astype(np.float64) * 500.0)
    return visible, total, np.concatenate(ages)


@pytest.mark.parametrize("step_length", STEP_LENGTHS)
def test_peers_in_range_are_visible_at_any_step_length_with_the_measured_radio(step_length):
    core = _core(step_length, "measured")
    try:
        visible, total, ages = _visibility(core)
        stale = core.radio.params.staleness_threshold_ms
    finally:
        core.close()
    assert total > 100, "the convoy has neighbours in range"
    assert visible / total > 0.9, f"{visible}/{total} neighbours in range visible at {step_length} s"
    assert ages.min() >= 1.0 and ages.max() < stale


@pytest.mark.parametrize("step_length", STEP_LENGTHS)
def test_message_ages_reflect_beacon_period_and_latency_not_the_step_length(step_length):
    # the ideal radio: no loss, 2 ms latency, no noise: every peer is shown with its newest beacon,
    # at most one period plus the latency old
    core = _core(step_length, "ideal")
    try:
        visible, total, ages = _visibility(core)
        latency = core.radio.params.latency_base_ms
    finally:
        core.close()
    assert visible == total > 100
    assert ages.min() >= latency - 1e-3 and ages.max() <= PERIOD_MS + latency + 1e-3
    assert ages.mean() < 0.75 * PERIOD_MS  # spread over the period, not stuck at one step length


def test_each_beacon_carries_the_sender_state_interpolated_to_its_send_time():
    core = _core(1.0, "ideal", max_time_s=12.0)
    try:
        core.reset(5)
        for _ in range(3):
            core.step(np.zeros(core.n_slots))
        before = core.record.states
        prev_x = dict(zip(before.ids, before.x))
        prev_heading = dict(zip(before.ids, before.heading_deg))
        prev_t = before.time_s * 1000.0
        core.step(np.zeros(core.n_slots))
        rec = core.record
        now = rec.time_s * 1000.0
        rx = core.radio.receive(now, rec.slots)  # the buffers as the observation saw them (same time)
        after = rec.states
        row_of_slot = np.full(core.n_slots, -1)
        row_of_slot[rec.slots] = np.arange(after.n)
        rows = row_of_slot[rx.sender]
        ids = [after.ids[r] for r in rows]
        w = (rx.timestamp_ms - prev_t) / (now - prev_t)
        assert np.all((w > 0) & (w <= 1)), "every shown message was sent inside the last step"
        x0 = np.array([prev_x[i] for i in ids])
        expected = x0 + w * (after.x[rows] - x0)
        assert np.allclose(rx.payload[:, 0], expected, rtol=0, atol=1e-9)
        assert np.any(np.abs(rx.payload[:, 0] - after.x[rows]) > 1.0), "not simply the end-of-step state"
        h0 = np.array([prev_heading[i] for i in ids])
        assert np.all((rx.payload[:, 3] >= 0) & (rx.payload[:, 3] < 360))
        assert np.allclose(rx.payload[:, 3], (h0 + w * ((after.heading_deg[rows] - h0 + 180) % 360 - 180)) % 360)
        # ten beacons of each sender in a 1 s step, each to every other vehicle (unlimited range)
        n = after.n
        assert len(rec.links) == 10 * n * (n - 1)
        assert np.all(np.bincount(rec.links.sender, minlength=core.n_slots)[rec.slots] == 10 * (n - 1))
    finally:
        core.close()


def test_headings_interpolate_along_the_shorter_arc():
    from types import SimpleNamespace

    core = _core(0.1, "ideal")
    try:
        core.reset(0)
        slots = core.record.slots
        n = len(slots)

        def states(t, heading):
            return SimpleNamespace(n=n, time_s=t, x=np.zeros(n), y=np.arange(n) * 10.0, speed=np.zeros(n),
                                   accel=np.zeros(n), heading_deg=np.full(n, heading))

        core.radio.reset(1)
        row_of_radio = np.full(core.radio.capacity, -1)
        row_of_radio[slots] = np.arange(n)
        core._prev_row_of_radio = row_of_radio
        core._radio_phase(states(10.0, 350.0), states(11.0, 10.0), slots, slice(None), slots, slice(None),
                          10_000.0, 11_000.0)
        rx = core.radio.receive(11_000.0, slots)
    finally:
        core.close()
    w = (rx.timestamp_ms - 10_000.0) / 1000.0
    assert len(rx) and np.allclose(rx.payload[:, 3], (350.0 + 20.0 * w) % 360.0)  # through north, not south


@pytest.mark.parametrize("step_length", [0.1, 1.0])
def test_same_seed_same_episode_with_beacons_inside_steps(step_length):
    core = _core(step_length, "measured", max_time_s=15.0)
    try:
        runs = []
        for _ in range(2):
            core.reset(11)
            obs = []
            while not core.episode_over:
                core.step(np.full(core.n_slots, 0.1))
                obs.append(core.obs["peers"].copy())
            runs.append(np.stack(obs))
    finally:
        core.close()
    assert runs[0].shape == runs[1].shape and np.array_equal(runs[0], runs[1])
    assert runs[0][..., 5].any()


def test_episode_length_in_seconds_is_converted_with_the_step_length():
    core = _core(0.5, "ideal", max_time_s=3.2)  # ceil(6.4) = 7 steps
    try:
        assert core.max_steps == 7
        core.reset(0)
        steps = 0
        while not core.episode_over:
            core.step(np.zeros(core.n_slots))
            steps += 1
        assert steps == 7 and core.record.end_reason[core.record.slots].tolist() == [1] * core.record.states.n
    finally:
        core.close()


@pytest.mark.parametrize("step_length", [0.1, 0.5])
def test_the_hazard_window_is_in_seconds(step_length):
    core = ConvoyCore(scenario="convoy_6", step_length=step_length, max_time_s=8.0, radio="ideal",
                      hazard={"onset_window_s": [4.0, 4.0], "override_delay_s": 0.5})
    try:
        core.reset(0)
        assert core.record.hazard_onset_s == pytest.approx(4.0)
        assert core.record.hazard_onset_step == round(4.0 / step_length)
        assert (core.hazard.plan.override_step - core.hazard.plan.onset_step) * step_length == pytest.approx(0.5)
    finally:
        core.close()


def test_deprecated_step_window_converts_with_the_run_step_length_and_says_the_new_key():
    with pytest.warns(FutureWarning, match=r"at this run's step length 0.5 s it is hazard.onset_window_s: \[5.0, 5.0\]"):
        core = ConvoyCore(scenario="convoy_6", step_length=0.5, max_steps=20, radio="ideal",
                          hazard={"step_window": [10, 10]})
    try:
        assert core.config.hazard.onset_window_s == (5.0, 5.0) and core.config.hazard.step_window is None
        core.reset(0)
        assert core.record.hazard_onset_step == 10
    finally:
        core.close()


def test_a_radio_in_which_no_message_can_be_fresh_is_refused_at_construction():
    from roadsense_marl.env.core import check_radio_timing
    from roadsense_marl.espnow import load_params

    with pytest.raises(ValueError, match=r"observation.staleness_threshold_ms = 1 ms is not above the smallest "
                                         r"latency the radio can draw, 1 ms"):
        ConvoyCore(scenario="convoy_6", radio={"observation": {"staleness_threshold_ms": 1.0}})
    no_jitter = {"latency": {"base_ms": 20.0, "jitter_std_ms": 0.0}, "observation": {"staleness_threshold_ms": 15.0}}
    with pytest.raises(ValueError, match=r"latency.base_ms = 20 ms"):
        check_radio_timing(load_params(no_jitter), domain_randomization=False)
    check_radio_timing(load_params({**no_jitter, "observation": {"staleness_threshold_ms": 25.0}}), False)
    # with domain randomisation the low end of its latency range counts
    dr = {**no_jitter, "observation": {"staleness_threshold_ms": 25.0},
          "domain_randomization": {"enabled": True, "latency_range_ms": [30.0, 40.0], "jitter_std_range_ms": [0.0, 0.0]}}
    with pytest.raises(ValueError, match=r"domain_randomization.latency_range_ms\[0\] = 30 ms"):
        check_radio_timing(load_params(dr), domain_randomization=True)
    check_radio_timing(load_params(dr), domain_randomization=False)


def _flow_scenario(tmp_path, step: float):
    from roadsense_marl.sim.highway import write_straight_road

    write_straight_road(tmp_path, "n", 2000.0, 1, 30.0)
    (tmp_path / "r.rou.xml").write_text('<routes><route id="r" edges="road"/>'
                                        '<flow id="f" route="r" begin="0" end="8" period="2" departSpeed="10"/></routes>')
    cfg = tmp_path / "s.sumocfg"
    cfg.write_text('<configuration><input><net-file value="n.net.xml"/><route-files value="r.rou.xml"/></input>'
                   f'<time><step-length value="{step}"/></time></configuration>')
    return cfg


def test_a_vehicle_inserted_in_a_step_beacons_no_earlier_than_its_insertion(tmp_path):
    from roadsense_marl.sim.registry import DEFAULT_HORIZON_S

    core = ConvoyCore(scenario=str(_flow_scenario(tmp_path, 1.0)), max_time_s=14.0, radio="ideal",
                      cone_half_angle_deg="off", hazard={"probability": 0.0})
    try:
        # the scenario's own 1 s step: the episode is 14 steps, and possible_agents cover the warm-up
        # allowance plus those 14 s
        assert core.step_length == 1.0 and core.max_steps == 14
        assert core.scenario.horizon_s == pytest.approx(DEFAULT_HORIZON_S + 14.0)
        core.reset(0)
        joined_at: dict[int, float] = {int(s): core.record.time_s * 1000.0 for s in core.record.slots}
        checked_join = checked_later = 0
        while not core.episode_over:
            core.step(np.zeros(core.n_slots))
            rec = core.record
            now = rec.time_s * 1000.0
            for s in np.flatnonzero(rec.joined):
                joined_at[int(s)] = now
            rx = core.radio.receive(now, rec.slots)
            sent_at = rx.timestamp_ms
            inserted = np.array([joined_at[int(s)] for s in rx.sender])
            assert np.all(sent_at >= inserted), "no message from before its sender was inserted"
            checked_join += int(np.isin(rx.sender, np.flatnonzero(rec.joined)).sum())
            checked_later += int((sent_at > inserted).sum())
            # a vehicle inserted in this step sends one beacon (at the step's end), not ten
            joined = np.flatnonzero(rec.joined)
            per_sender = np.bincount(rec.links.sender, minlength=core.n_slots)
            assert np.all(per_sender[joined] <= rec.states.n - 1)
            old = np.setdiff1d(rec.slots, joined)
            assert np.all(per_sender[old] == 10 * (rec.states.n - 1))  # ideal radio: every vehicle in range
    finally:
        core.close()
    assert checked_later > 10
    assert checked_join == 0, "a vehicle's beacon at its insertion time arrives after it (latency): seen next step"
