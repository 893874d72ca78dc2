"""Behaviour of the vectorised ESP-NOW radio: causality, per-link independence, statistics,
property tests, equivalence with the per-link heapq reference, and the original object API."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roadsense_marl.espnow import (
    ESPNOWEmulator,
    PAYLOAD_FIELDS,
    Radio,
    ReceivedMessage,
    V2VMessage,
    candidate_links,
    link_loss,
    load_params,
)
from roadsense_marl.espnow.emulator import METRES_PER_DEG_LAT

from espnow_helpers import assert_rx_equal, channel_off, radio_dict
from reference_radio import ReferenceRadio

Z = 4.5  # tolerance in standard errors for the statistical tests (false alarm ~1e-5 per check)


def _payload(xy: np.ndarray, speed: float = 20.0, heading: float = 90.0) -> np.ndarray:
    n = len(xy)
    return np.c_[xy, np.full(n, speed), np.full(n, heading), np.zeros(n)]


def _ring(n: int, radius: float, centre=(0.0, 0.0)) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.c_[centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)]


def _one_sender_many_receivers(radio: Radio, receiver_xy: np.ndarray, n_broadcasts: int):
    """Sender slot 0 at the origin broadcasts n times to receivers 1..n; returns (delivered, latency) [k, n]."""
    n = len(receiver_xy)
    rs = np.arange(1, n + 1)
    delivered, latency = [], []
    for k in range(n_broadcasts):
        lb = radio.broadcast(100.0 * k, [0], [[0.0, 0.0]], _payload(np.zeros((1, 2))), rs, receiver_xy)
        assert np.array_equal(lb.receiver, rs)
        delivered.append(lb.delivered)
        latency.append(lb.latency_ms)
    return np.array(delivered), np.array(latency)


# ---- causality: the original cases --------------------------------------------------------------

def _fixed_50ms_emulator() -> ESPNOWEmulator:
    return ESPNOWEmulator(radio_dict(latency_ms=50.0), domain_randomization=False, seed=0)


def _msg(t: float, vid: str = "V002", speed: float = 10.0) -> V2VMessage:
    return V2VMessage(vid, 48.1, 11.5, speed, 90.0, 0.1, 0.2, 9.81, 0.01, 0.02, 0.03, t)


def test_message_is_absent_before_latency_and_present_exactly_at_send_plus_latency():
    emu = _fixed_50ms_emulator()
    assert emu.transmit(_msg(1000.0), (0.0, 0.0), (10.0, 0.0), 1000.0) is None  # fire and forget
    assert emu.sync_and_get_messages(1000.0) == {}
    assert emu.sync_and_get_messages(1001.0) == {}
    assert emu.sync_and_get_messages(1049.0) == {}
    got = emu.sync_and_get_messages(1050.0)
    assert list(got) == ["V002"]
    rm = got["V002"]
    assert isinstance(rm, ReceivedMessage)
    assert rm.message == _msg(1000.0)  # no noise, no loss: the exact message
    assert rm.age_ms == 50.0 and rm.received_at_ms == 1050.0


def test_three_messages_become_visible_in_turn_each_replacing_the_last():
    emu = _fixed_50ms_emulator()
    seen = []
    for k, t_send in enumerate((1000.0, 1100.0, 1200.0)):
        emu.transmit(_msg(t_send, speed=10.0 + k), (0.0, 0.0), (10.0, 0.0), t_send)
        before = emu.sync_and_get_messages(t_send + 49.0)
        if k == 0:
            assert before == {}
        else:
            assert before["V002"].message.timestamp_ms == t_send - 100.0
        now = emu.sync_and_get_messages(t_send + 50.0)
        seen.append((now["V002"].message.timestamp_ms, now["V002"].message.speed, len(now)))
    assert seen == [(1000.0, 10.0, 1), (1100.0, 11.0, 1), (1200.0, 12.0, 1)]


def test_late_arriving_older_message_never_replaces_newer_one():
    # Latency grows 0.1 ms per metre: the older message, sent from 1 km away, arrives last.
    emu = ESPNOWEmulator(radio_dict(latency_ms=5.0, factor=0.1), domain_randomization=False, seed=0)
    emu.transmit(_msg(1000.0, speed=1.0), (1000.0, 0.0), (0.0, 0.0), 1000.0)  # arrives at 1105
    emu.transmit(_msg(1010.0, speed=2.0), (0.0, 0.0), (0.0, 0.0), 1010.0)  # arrives at 1015
    assert emu.sync_and_get_messages(1020.0)["V002"].message.speed == 2.0
    assert emu.sync_and_get_messages(1200.0)["V002"].message.speed == 2.0


def test_send_and_receive_at_the_same_instant_never_show_the_message():
    radio = Radio(radio_dict(latency_ms=0.0), capacity=2)  # latency floors at 1 ms
    radio.reset(0)
    xy = np.array([[0.0, 0.0], [5.0, 0.0]])
    radio.broadcast(100.0, [0, 1], xy, _payload(xy), [0, 1], xy)
    assert len(radio.receive(100.0, [0, 1])) == 0
    assert len(radio.receive(100.999, [0, 1])) == 0
    assert len(radio.receive(101.0, [0, 1])) == 2


def test_stale_messages_are_not_offered_and_threshold_is_strict():
    radio = Radio(radio_dict(latency_ms=10.0, observation={"staleness_threshold_ms": 500.0}), capacity=2)
    radio.reset(0)
    xy = np.array([[0.0, 0.0], [5.0, 0.0]])
    radio.broadcast(0.0, [0], xy[:1], _payload(xy[:1]), [1], xy[1:])
    assert len(radio.receive(499.999, [1])) == 1
    assert len(radio.receive(500.0, [1])) == 0


def test_receive_going_back_in_time_is_refused():
    radio = Radio(radio_dict(), capacity=2)
    radio.reset(0)
    radio.receive(100.0, [0])
    with pytest.raises(ValueError, match="back in time"):
        radio.receive(99.0, [0])
    xy = np.array([[0.0, 0.0], [5.0, 0.0]])
    radio.broadcast(200.0, [0], xy[:1], _payload(xy[:1]), [1], xy[1:])
    with pytest.raises(ValueError, match=r"receive\(now_ms=150.0\) went back in time: the radio's clock is at 200.0"):
        radio.receive(150.0, [1])  # earlier than a broadcast already made
    with pytest.raises(ValueError, match="receiver_slots holds slot 5"):
        radio.receive(300.0, [5])
    assert len(radio.receive(250.0, [1])) == 1  # the refused call changed nothing (not even the clock)


def test_each_receiver_has_its_own_table_and_rx_is_sorted_by_receiver_then_sender():
    radio = Radio(radio_dict(latency_ms=2.0), capacity=6)
    radio.reset(0)
    xy = _ring(5, 10.0)
    slots = np.array([4, 0, 3, 1, 5])  # unsorted on purpose
    pay = _payload(xy)
    pay[:, 2] = slots  # speed column tags the sender
    radio.broadcast(0.0, slots, xy, pay, slots, xy)
    rx = radio.receive(10.0, [5, 0])
    keys = list(zip(rx.receiver.tolist(), rx.sender.tolist()))
    assert keys == [(r, s) for r in (0, 5) for s in sorted(slots) if s != r]
    assert np.array_equal(rx.payload[:, 2], rx.sender)  # each copy came from its sender
    assert np.allclose(rx.age_ms, 10.0) and np.allclose(rx.received_at_ms, 2.0)


def test_forget_drops_table_row_column_and_in_flight_messages():
    radio = Radio(radio_dict(latency_ms=50.0), capacity=3)
    radio.reset(0)
    xy = _ring(3, 5.0)
    radio.broadcast(0.0, [0, 1, 2], xy, _payload(xy), [0, 1, 2], xy)
    assert len(radio.receive(60.0, [0, 1, 2])) == 6
    radio.broadcast(100.0, [0, 1, 2], xy, _payload(xy), [0, 1, 2], xy)  # in flight until 150
    radio.forget([1])
    rx = radio.receive(200.0, [0, 1, 2])
    assert 1 not in rx.receiver and 1 not in rx.sender
    assert sorted(zip(rx.receiver.tolist(), rx.sender.tolist(), rx.timestamp_ms.tolist())) == [
        (0, 2, 100.0), (2, 0, 100.0)]


def test_broadcast_rejects_bad_shapes_and_slots_naming_them():
    radio = Radio(radio_dict(), capacity=3)
    with pytest.raises(RuntimeError, match="reset"):
        radio.receive(0.0, [0])
    radio.reset(0)
    xy = np.zeros((2, 2))
    with pytest.raises(ValueError, match="sender_slots holds slot 3"):
        radio.broadcast(0.0, [0, 3], xy, _payload(xy), [0, 1], xy)
    with pytest.raises(ValueError, match="receiver_slots must hold distinct slots; slot 1"):
        radio.broadcast(0.0, [0, 1], xy, _payload(xy), [1, 1], xy)
    with pytest.raises(ValueError, match="payload must have shape"):
        radio.broadcast(0.0, [0, 1], xy, xy, [0, 1], xy)
    with pytest.raises(ValueError, match="sender_xy must have shape"):
        radio.broadcast(0.0, [0, 1], np.zeros(2), _payload(xy), [0, 1], xy)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_reused_slot_inherits_nothing_from_the_vehicle_that_left(backend):
    """Slot 1 leaves and a new vehicle takes slot 1: no receive-table entries, no copies in flight
    to or from the old vehicle, no burst state on its links; the others' links are untouched.
    Run in lockstep with the per-link reference (whose forget deletes every dict entry)."""
    # A burst never ends and always loses (c ~ 1, boosted = min(1, 0.3 * 100) = 1): a link in
    # burst never delivers again unless its state is cleared.
    params = radio_dict(latency_ms=50.0, loss=0.3,
                        burst={"mean_burst_length": 1e12, "loss_multiplier": 100.0, "max_loss_cap": 1.0})
    radio, ref = Radio(params, capacity=3, backend=backend), ReferenceRadio(params, capacity=3)
    radio.reset(21)
    ref.reset(21)
    xy = _ring(3, 5.0)
    old = _payload(xy)
    old[:, 4] = -1.0  # tags the old vehicles' frames

    def step(t, senders, pay):
        lb = radio.broadcast(t, senders, xy[senders], pay[senders], [0, 1, 2], xy)
        ref.broadcast(t, senders, xy[senders], pay[senders], [0, 1, 2], xy)
        assert np.array_equal(lb.delivered, [ok for _, _, _, ok, _ in ref.last_links])
        return lb

    lost_on_1 = set()
    k = 0
    while lost_on_1 != {(0, 1), (1, 0), (1, 2), (2, 1)}:  # every link of slot 1 in burst
        lb = step(100.0 * k, [0, 1, 2], old)
        lost_on_1 |= {(int(s), int(r)) for s, r, ok in zip(lb.sender, lb.receiver, lb.delivered)
                      if not ok and 1 in (s, r)}
        radio.receive(100.0 * k + 60.0, [0, 1, 2])
        ref.receive(100.0 * k + 60.0, [0, 1, 2])
        k += 1
        assert k < 200
    t = 100.0 * k
    step(t, [0, 1, 2], old)  # copies in flight until t + 50, some to and from slot 1
    radio.forget([1])
    ref.forget([1])
    rx = radio.receive(t + 60.0, [0, 1, 2])
    assert 1 not in rx.receiver.tolist() and 1 not in rx.sender.tolist()  # nothing of the old vehicle
    want = ref.receive(t + 60.0, [0, 1, 2])  # and what survives equals the reference, message for message
    assert [(int(r), int(sd), float(ts)) for r, sd, ts in zip(rx.receiver, rx.sender, rx.timestamp_ms)] == \
        [(r, sd, ts) for r, sd, _, ts, _, _ in want]
    new = _payload(xy)
    new[:, 4] = 7.0  # the new vehicle's frames
    delivered_on_1 = 0
    for j in range(1, 21):
        lb = step(t + 100.0 * j, [0, 1, 2], np.where(np.arange(3)[:, None] == 1, new, old))
        delivered_on_1 += int(lb.delivered[(lb.sender == 1) | (lb.receiver == 1)].sum())
        got = radio.receive(t + 100.0 * j + 60.0, [0, 1, 2])
        want = ref.receive(t + 100.0 * j + 60.0, [0, 1, 2])
        assert [(int(r), int(s), float(ts)) for r, s, ts in zip(got.receiver, got.sender, got.timestamp_ms)] == \
            [(r, s, ts) for r, s, _, ts, _, _ in want]
        assert not (got.payload[got.sender == 1, 4] == -1.0).any()
    assert delivered_on_1 > 0, "links of the reused slot stayed in the old vehicle's burst"


# ---- bounded in flight -----------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_in_flight_is_bounded_for_a_receiver_that_never_calls_receive(backend):
    """20,000 sends every 10 ms over a 50 ms link, never received: only the copies that arrive
    after the latest send (5) stay in flight; the rest already sit in the receive table."""
    radio = Radio(radio_dict(latency_ms=50.0), capacity=2, backend=backend)
    radio.reset(0)
    xy = np.array([[0.0, 0.0], [5.0, 0.0]])
    for k in range(20_000):
        radio.broadcast(10.0 * k, [0], xy[:1], _payload(xy[:1]), [1], xy[1:])
        assert radio.in_flight_count <= 5
    assert radio.in_flight_count == 5
    rx = radio.receive(10.0 * 19_999, [1])
    assert rx.timestamp_ms.tolist() == [10.0 * 19_994]  # the newest that has arrived, nothing lost


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_copies_stale_on_arrival_are_not_kept(backend):
    radio = Radio(radio_dict(latency_ms=600.0), capacity=2, backend=backend)  # staleness 500 ms
    radio.reset(0)
    xy = np.array([[0.0, 0.0], [5.0, 0.0]])
    lb = radio.broadcast(0.0, [0], xy[:1], _payload(xy[:1]), [1], xy[1:])
    assert lb.delivered.all() and radio.in_flight_count == 0
    assert len(radio.receive(600.0, [1])) == 0


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_pruning_in_flight_never_changes_what_becomes_visible(backend):
    """Jitter far above the send interval (later-sent copies overtake earlier ones), receive only
    every 40 sends: the pruned radio shows exactly what the keep-everything reference shows, while
    holding far fewer copies in flight."""
    params = radio_dict(latency_ms=60.0, jitter_ms=40.0, factor=0.1, loss=0.1)
    n = 4
    radio, ref = Radio(params, capacity=n, backend=backend), ReferenceRadio(params, capacity=n)
    radio.reset(5)
    ref.reset(5)
    xy = _ring(n, 20.0)
    slots = np.arange(n)
    most = ref_most = 0
    for k in range(1, 1201):
        t = 2.0 * k
        pay = _payload(xy, speed=t)  # the speed column carries the send time: frames must not mix up
        radio.broadcast(t, slots, xy, pay, slots, xy)
        ref.broadcast(t, slots, xy, pay, slots, xy)
        most, ref_most = max(most, radio.in_flight_count), max(ref_most, len(ref.heap))
        if k % 40 == 0:
            got, want = radio.receive(t, slots), ref.receive(t, slots)
            assert [(int(r), int(s), float(ts), float(a)) for r, s, ts, a in
                    zip(got.receiver, got.sender, got.timestamp_ms, got.received_at_ms)] == \
                [(r, s, ts, a) for r, s, _, ts, _, a in want]
            assert np.array_equal(got.payload[:, 2], got.timestamp_ms)
    assert most < 0.2 * ref_most  # measured: 72 vs 802 copies held by the keep-everything reference


def test_original_api_receiver_that_never_syncs_stays_bounded():
    """The case of the original API: 20,000 transmits to a receiver that never syncs used to keep
    16,420 copies in flight (3.3 -> 20.8 MB). Now copies in flight and the message side table stay
    bounded and memory does not grow with the number of sends."""
    import tracemalloc

    emu = ESPNOWEmulator(radio_dict(latency_ms=50.0, jitter_ms=10.0), domain_randomization=False, seed=0)
    tracemalloc.start()
    try:
        for k in range(20_000):
            emu.transmit(_msg(10.0 * k), (0.0, 0.0), (10.0, 0.0), 10.0 * k)
            if k == 2_000:
                after_2k = tracemalloc.get_traced_memory()[0]
        grown = tracemalloc.get_traced_memory()[0] - after_2k
    finally:
        tracemalloc.stop()
    assert emu.radio.in_flight_count <= 10  # copies sent in the last 50 + 4.5 x 10 ms
    assert len(emu._messages) <= 4097
    got = emu.sync_and_get_messages(10.0 * 19_999 + 100.0)  # the newest message is still there
    assert got["V002"].message.timestamp_ms == 10.0 * 19_999
    assert grown < 1_000_000, f"memory grew by {grown} bytes between 2,000 and 20,000 sends"


# ---- per-link independence -------------------------------------------------------------------

def test_near_and_far_receivers_get_loss_and_latency_of_their_own_distance():
    params = load_params("measured").to_dict()
    params["burst_loss"]["enabled"] = False
    params["latency"].update(distance_factor=0.2)
    radio = Radio(params, capacity=401, domain_randomization=False)
    radio.reset(1)
    near, far = _ring(200, 10.0), _ring(200, 35.0)
    delivered, latency = _one_sender_many_receivers(radio, np.r_[near, far], 100)
    n = delivered[:, :200].size
    for got, p in ((1 - delivered[:, :200].mean(), 0.05804), (1 - delivered[:, 200:].mean(), 0.11579)):
        assert abs(got - p) < Z * math.sqrt(p * (1 - p) / n)
    lat_near, lat_far = np.nanmean(latency[:, :200]), np.nanmean(latency[:, 200:])
    assert abs(lat_near - (3.84 + 0.2 * 10)) < Z * 1.044 / math.sqrt(delivered[:, :200].sum())
    assert abs(lat_far - (3.84 + 0.2 * 35)) < Z * 1.044 / math.sqrt(delivered[:, 200:].sum())


def test_burst_on_one_link_leaves_the_senders_other_links_untouched():
    # A lost packet puts its link into a burst that never ends (p -> 1); other links keep p = 0.3.
    p = 0.3
    params = radio_dict(loss=p, burst={"mean_burst_length": 1e12, "loss_multiplier": 100.0, "max_loss_cap": 1.0})
    radio = Radio(params, capacity=301)
    radio.reset(2)
    delivered, _ = _one_sender_many_receivers(radio, _ring(300, 10.0), 12)
    lost = ~delivered
    assert lost[:-1][lost[:-1]].size > 0
    assert lost[1:][lost[:-1]].all(), "a link in burst must stay lost (burst state kept per link)"
    fresh = lost[1:][~lost[:-1]]  # links whose previous packet got through, while most others are in burst
    assert lost.mean() > 0.5
    assert abs(fresh.mean() - p) < Z * math.sqrt(p * (1 - p) / fresh.size)
    radio.forget([5])  # forgetting a receiver clears its link's burst state
    lb = radio.broadcast(1e4, [0], [[0.0, 0.0]], _payload(np.zeros((1, 2))), [5], [[10.0, 0.0]])
    assert len(lb) == 1


# ---- statistics ----------------------------------------------------------------------------

@pytest.mark.parametrize("distance, expected", [(5.0, 0.05804), (19.9, 0.05804), (20.0, 0.11579), (45.0, 0.11579)])
def test_measured_bin_loss_rate(distance, expected):
    params = load_params("measured").to_dict()
    params["burst_loss"]["enabled"] = False
    radio = Radio(params, capacity=201, domain_randomization=False)
    radio.reset(3)
    delivered, _ = _one_sender_many_receivers(radio, _ring(200, distance), 100)
    assert abs((1 - delivered.mean()) - expected) < Z * math.sqrt(expected * (1 - expected) / delivered.size)


def test_measured_range_is_50m_and_out_of_range_pairs_are_no_links():
    radio = Radio("measured", capacity=3, domain_randomization=False)
    radio.reset(0)
    lb = radio.broadcast(0.0, [0], [[0.0, 0.0]], _payload(np.zeros((1, 2))), [1, 2], [[49.9, 0.0], [50.0, 0.0]])
    assert lb.receiver.tolist() == [1]


@pytest.mark.parametrize("distance, expected", [(20.0, 0.1), (62.5, 0.15), (75.0, 0.2), (150.0, 0.5)])
def test_tiered_loss_rate(distance, expected):
    radio = Radio(radio_dict(loss=0.1, tiers=(0.9, 0.3, 0.5)), capacity=201)  # tier 1 is unused by the formula
    radio.reset(4)
    delivered, _ = _one_sender_many_receivers(radio, _ring(200, distance), 60)
    assert abs((1 - delivered.mean()) - expected) < Z * math.sqrt(expected * (1 - expected) / delivered.size)


def test_burst_raises_loss_after_a_loss_as_specified():
    p, mbl, mult, cap = 0.1, 1.606, 2.5, 0.2
    radio = Radio(radio_dict(loss=p, burst={"mean_burst_length": mbl, "loss_multiplier": mult, "max_loss_cap": cap}),
                  capacity=401)
    radio.reset(5)
    lost = ~_one_sender_many_receivers(radio, _ring(400, 10.0), 150)[0]
    after_loss = lost[1:][lost[:-1]]
    q = 1 - 1 / mbl
    expected = q * min(cap, p * mult) + (1 - q) * p
    assert abs(after_loss.mean() - expected) < Z * math.sqrt(expected * (1 - expected) / after_loss.size)
    after_ok = lost[1:][~lost[:-1]]
    assert abs(after_ok.mean() - p) < Z * math.sqrt(p * (1 - p) / after_ok.size)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_long_run_delivery_equals_the_loss_models_stationary_ratio(backend):
    """The radio's delivered share over many packets equals ``link_loss(...).stationary_delivery_ratio``,
    the one function evaluation uses for the expected ratio (bursts lower it well below 1 - p)."""
    params = radio_dict(loss=0.2, burst={"mean_burst_length": 3.0, "loss_multiplier": 3.0, "max_loss_cap": 0.9})
    radio = Radio(params, capacity=301, backend=backend)
    radio.reset(15)
    delivered, _ = _one_sender_many_receivers(radio, _ring(300, 10.0), 200)
    expected = float(link_loss(radio.params, np.array([10.0])).stationary_delivery_ratio[0])
    assert expected == pytest.approx(1 - 0.2 / (1 - (2 / 3 * 0.6 + 1 / 3 * 0.2) + 0.2))  # 0.727, not 0.8
    rho = (2 / 3 * 0.6 + 1 / 3 * 0.2) - 0.2  # lag-1 correlation of a link's losses
    se = math.sqrt(expected * (1 - expected) / delivered.size * (1 + rho) / (1 - rho))
    assert abs(delivered[20:].mean() - expected) < Z * se * math.sqrt(200 / 180)


def test_latency_mean_and_std():
    radio = Radio(radio_dict(latency_ms=10.0, jitter_ms=2.0), capacity=201)
    radio.reset(6)
    _, lat = _one_sender_many_receivers(radio, _ring(200, 10.0), 50)
    n = lat.size
    assert abs(lat.mean() - 10.0) < Z * 2.0 / math.sqrt(n)
    assert abs(lat.std() - 2.0) < Z * 2.0 / math.sqrt(2 * n)


def test_latency_floor_is_one_ms():
    radio = Radio(radio_dict(latency_ms=0.5, jitter_ms=1.0), capacity=201)
    radio.reset(7)
    _, lat = _one_sender_many_receivers(radio, _ring(200, 10.0), 50)
    assert lat.min() == 1.0
    at_floor = (lat == 1.0).mean()
    expected = 0.5 * (1 + math.erf(0.5 / math.sqrt(2)))  # P(0.5 + z < 1)
    assert abs(at_floor - expected) < Z * math.sqrt(expected * (1 - expected) / lat.size)


def test_sensor_noise_std_per_message_clamps_and_wraps():
    """Noise is drawn once per transmitted message: 200 senders around one receiver, 20 rounds,
    one copy of each of the 4,000 messages received, std per field as configured."""
    noise = {"gps_std_m": 3.0, "speed_std_ms": 0.5, "accel_std_ms2": 0.4, "heading_std_deg": 5.0, "gyro_std_rad_s": 0.0}
    radio = Radio(radio_dict(latency_ms=1.0, noise=noise), capacity=201)
    radio.reset(8)
    sxy = _ring(200, 10.0)
    senders = np.arange(1, 201)
    pay = np.tile([0.0, 0.0, 0.1, 359.0, 1.0], (200, 1))
    pay[:, :2] = sxy
    rows = []
    for k in range(20):
        radio.broadcast(100.0 * k, senders, sxy, pay, [0], [[0.0, 0.0]])
        rx = radio.receive(100.0 * k + 50, [0])
        assert len(rx) == 200 and (rx.timestamp_ms == 100.0 * k).all()
        rows.append(rx.payload - np.c_[sxy, np.zeros((200, 3))])
    got = np.concatenate(rows)
    n = len(got)
    for col, std in ((0, 3.0), (1, 3.0), (4, 0.4)):
        assert abs(got[:, col].std() - std) < Z * std / math.sqrt(2 * n)
    assert abs(got[:, 4].mean() - 1.0) < Z * 0.4 / math.sqrt(n)
    assert got[:, 2].min() == 0.0 and (got[:, 2] == 0.0).mean() > 0.3  # 0.1 + N(0, 0.5) clamped
    assert ((got[:, 3] >= 0) & (got[:, 3] < 360)).all() and (got[:, 3] < 180).mean() > 0.3  # wrapped


def test_every_receiver_of_one_message_gets_the_same_noisy_payload():
    """One frame, one noisy reading: all 200 receivers of a broadcast hold identical payloads,
    latency still differs per link, and the next broadcast carries a new noise draw."""
    noise = {"gps_std_m": 3.0, "speed_std_ms": 0.5, "accel_std_ms2": 0.4, "heading_std_deg": 5.0, "gyro_std_rad_s": 0.0}
    radio = Radio(radio_dict(latency_ms=5.0, jitter_ms=1.0, noise=noise), capacity=201)
    radio.reset(14)
    rs, rxy = np.arange(1, 201), _ring(200, 10.0)
    pay = np.array([[0.0, 0.0, 20.0, 90.0, 0.5]])
    payloads = []
    for k in range(3):
        lb = radio.broadcast(100.0 * k, [0], [[0.0, 0.0]], pay, rs, rxy)
        rx = radio.receive(100.0 * k + 50, rs)
        assert len(rx) == 200 and (rx.sender == 0).all()
        assert (rx.payload == rx.payload[0]).all(), "receivers of one message must see the same bytes"
        assert not np.allclose(rx.payload[0], pay[0])  # and it is noisy
        assert np.unique(lb.latency_ms).size > 150  # latency is per link
        payloads.append(rx.payload[0])
    assert not np.array_equal(payloads[0], payloads[1]) and not np.array_equal(payloads[1], payloads[2])


def test_domain_randomisation_draws_inside_ranges_and_scales_bins():
    radio = Radio("measured", capacity=2, domain_randomization=True)
    nominal = radio.nominal_params
    draws = []
    for seed in range(400):
        radio.reset(seed)
        p = radio.params
        draws.append((p.latency_base_ms, p.loss_base_rate, p.latency_jitter_std_ms, p.gps_std_m))
        scale = p.loss_base_rate / nominal.loss_base_rate
        assert p.distance_bins[0].loss_rate == pytest.approx(min(1.0, 0.05804 * scale))
        assert p.distance_bins[1].loss_rate == pytest.approx(min(1.0, 0.11579 * scale))
    draws = np.array(draws)
    ranges = [nominal.dr_latency_range_ms, nominal.dr_loss_rate_range, nominal.dr_jitter_std_range_ms,
              nominal.dr_gps_noise_range_m]
    for j, (lo, hi) in enumerate(ranges):
        col = draws[:, j]
        assert lo <= col.min() and col.max() <= hi
        assert abs(col.mean() - (lo + hi) / 2) < Z * (hi - lo) / math.sqrt(12 * len(col))
    radio = Radio("measured", capacity=2, domain_randomization=False)
    radio.reset(0)
    assert radio.params == radio.nominal_params


def test_beacons_every_step_at_10hz_and_staggered_within_shorter_steps():
    radio = Radio(radio_dict(), capacity=500, beacon_hz=10.0)
    radio.reset(9)
    slots = np.arange(500)
    for k in range(30):
        assert radio.beacon_due(slots, 100.0 * k - 100.0, 100.0 * k).all()
    counts = np.zeros(500, int)
    firsts = []
    for k in range(40):  # 25 ms steps over one second: each vehicle exactly 10 times, not in lockstep
        due = radio.beacon_due(slots, 25.0 * k, 25.0 * (k + 1))
        counts += due
        firsts.append(due.mean())
    assert (counts == 10).all()
    assert max(firsts) < 0.4


# ---- grid cull -------------------------------------------------------------------------------

def test_grid_cull_finds_exactly_the_pairs_of_the_brute_force():
    rng = np.random.default_rng(10)
    rxy = np.c_[rng.uniform(-2000, 2000, 400), rng.uniform(-60, 60, 400)]
    sxy = np.r_[rxy[:300], np.c_[rng.uniform(-2000, 2000, 100), rng.uniform(-60, 60, 100)]]
    ri, si, d = candidate_links(rxy, sxy, 50.0)  # 160,000 pairs: the grid path
    brute = np.hypot(rxy[:, None, 0] - sxy[None, :, 0], rxy[:, None, 1] - sxy[None, :, 1])
    want = set(zip(*np.nonzero(brute < 50.0)))
    assert set(zip(ri.tolist(), si.tolist())) == {(int(a), int(b)) for a, b in want}
    assert np.allclose(d, brute[ri, si])


# ---- equivalence with the per-link heapq reference -------------------------------------------

def _compare(radio: Radio, ref: ReferenceRadio, steps, forget_at=()):
    """Drive both radios through the same schedule and compare every link and every message."""
    for k, (t_prev, t, xy, rx_slots) in enumerate(steps):
        slots = np.arange(len(xy))
        due = radio.beacon_due(slots, t_prev, t)
        assert np.array_equal(due, ref.beacon_due(slots, t_prev, t))
        pay = _payload(xy, speed=5.0, heading=350.0)
        pay[:, 4] = slots
        lb = radio.broadcast(t, slots[due], xy[due], pay[due], slots, xy)
        ref.broadcast(t, slots[due], xy[due], pay[due], slots, xy)
        ref_links = ref.last_links
        assert len(lb) == len(ref_links)
        if ref_links:
            s, r, d, ok, lat = map(np.array, zip(*ref_links))
            assert np.array_equal(lb.sender, s) and np.array_equal(lb.receiver, r)
            assert np.array_equal(lb.delivered, ok)
            assert np.allclose(lb.distance_m, d) and np.allclose(lb.latency_ms, lat, equal_nan=True)
        now = t + 3.0
        assert_rx_equal(radio.receive(now, rx_slots), ref.receive(now, rx_slots))
        if k in forget_at:
            gone = [k % len(xy), (3 * k) % len(xy)]
            radio.forget(gone)
            ref.forget(gone)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("config", ["measured", "degraded"])
def test_vectorised_core_equals_heapq_reference_message_for_message(config, backend):
    """With ``channel: off`` the shipped profiles are the link model alone, message for message."""
    n, seed = 14, 11
    config = channel_off(config)
    radio = Radio(config, capacity=n, domain_randomization=True, beacon_hz=40.0, backend=backend)
    ref = ReferenceRadio(config, capacity=n, domain_randomization=True, beacon_hz=40.0)
    radio.reset(seed)
    ref.reset(seed)
    assert radio.params == ref.params
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 90, (n, 2))
    steps, t = [], 0.0
    for k in range(80):
        dt = float(rng.choice([2.0, 5.0, 10.0, 25.0]))  # steps shorter than latency: several in flight
        xy = xy + rng.normal(0, 2.0, xy.shape)
        rx_slots = np.sort(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False))
        steps.append((t, t + dt, xy.copy(), rx_slots))
        t += dt
    _compare(radio, ref, steps, forget_at={20, 45, 60})


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_vectorised_core_equals_reference_on_the_grid_cull_path(backend):
    n = 260  # 67,600 pairs: above the dense threshold
    radio = Radio(channel_off("measured"), capacity=n, backend=backend)
    ref = ReferenceRadio(channel_off("measured"), capacity=n)
    radio.reset(12)
    ref.reset(12)
    rng = np.random.default_rng(12)
    xy = np.c_[np.cumsum(rng.uniform(5, 25, n)), rng.integers(0, 3, n) * 3.5]
    steps = [(100.0 * k - 100.0, 100.0 * k, xy + 2.5 * k, np.arange(n)) for k in range(3)]
    _compare(radio, ref, steps)


# ---- property tests --------------------------------------------------------------------------

@st.composite
def schedules(draw):
    n = draw(st.integers(2, 5))
    base = draw(st.floats(0.0, 40.0))
    jitter = draw(st.floats(0.0, 25.0))
    factor = draw(st.floats(0.0, 0.5))
    loss = draw(st.floats(0.0, 0.6))
    xy = draw(st.lists(st.tuples(st.floats(0, 80), st.floats(0, 80)), min_size=n, max_size=n))
    events, t = [], 0.0
    for _ in range(draw(st.integers(1, 25))):
        t += draw(st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0, 40.0]))
        senders = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
        events.append((t, sorted(senders)))
    params = radio_dict(latency_ms=base, jitter_ms=jitter, factor=factor, loss=loss,
                        burst={"mean_burst_length": 2.0, "loss_multiplier": 2.0, "max_loss_cap": 0.9})
    return params, np.array(xy, float), events, draw(st.integers(0, 2**32 - 1))


def _run_schedule(params, xy, events, seed):
    n = len(xy)
    radio = Radio(params, capacity=n)
    radio.reset(seed)
    sent = []  # (sender, receiver, send time, arrival) of every delivered copy
    observed = []
    slots = np.arange(n)
    for t, senders in events:
        if senders:
            pay = _payload(xy[senders])
            pay[:, 2] = t  # speed column carries the send time: payload must match the timestamp
            lb = radio.broadcast(t, senders, xy[senders], pay, slots, xy)
            sent += [(s, r, t, t + lat) for s, r, ok, lat in zip(lb.sender, lb.receiver, lb.delivered, lb.latency_ms) if ok]
        rx = radio.receive(t, slots)
        observed.append((t, [(int(r), int(s), float(ts), float(p[2]), float(a)) for r, s, ts, p, a in
                             zip(rx.receiver, rx.sender, rx.timestamp_ms, rx.payload, rx.received_at_ms)]))
    return sent, observed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules())
def test_property_nothing_early_newest_arrived_wins_and_seed_reproduces(case):
    params, xy, events, seed = case
    sent, observed = _run_schedule(params, xy, events, seed)
    staleness = 500.0
    for now, rows in observed:
        for r, s, ts, speed, arrival in rows:
            assert speed == ts  # the copy is the message sent at ts (no noise in these params)
            assert arrival <= now and arrival >= ts + 1.0  # never before send + latency (>= 1 ms)
        # Oracle: the visible message on each link is the newest-sent one that has arrived by now.
        expect = {}
        for s, r, t_send, arr in sent:
            if arr <= now and t_send > expect.get((r, s), -math.inf):
                expect[(r, s)] = t_send
        expect = {k: v for k, v in expect.items() if now - v < staleness}
        assert {(r, s): ts for r, s, ts, _, _ in rows} == expect
    # Older never replaces newer: per link the visible send time never decreases.
    last = {}
    for _, rows in observed:
        for r, s, ts, _, _ in rows:
            assert ts >= last.get((r, s), -math.inf)
            last[(r, s)] = ts
    assert _run_schedule(params, xy, events, seed) == (sent, observed)


# ---- the object API --------------------------------------------------------------------------

def test_emulator_gps_noise_in_metres_becomes_degrees_with_cos_latitude():
    noise = {"gps_std_m": 3.0, "speed_std_ms": 0.0, "accel_std_ms2": 0.0, "heading_std_deg": 0.0, "gyro_std_rad_s": 0.02}
    emu = ESPNOWEmulator(radio_dict(latency_ms=1.0, noise=noise), domain_randomization=False, seed=13, add_receivers=True)
    lat0 = 60.0
    dlat, dlon, gyro = [], [], []
    for k in range(3000):
        t = 10.0 * k
        emu.transmit(V2VMessage("A", lat0, 10.0, 5.0, 0.0, 0, 0, 0, 0, 0, 0, t), (0, 0), (5, 0), t, receiver_id="B")
        m = emu.sync_and_get_messages(t + 2.0, receiver_id="B")["A"].message
        dlat.append(m.lat - lat0)
        dlon.append(m.lon - 10.0)
        gyro.append(m.gyro_x)
    n = len(dlat)
    sd_lat_m = np.std(dlat) * METRES_PER_DEG_LAT
    sd_lon_m = np.std(dlon) * METRES_PER_DEG_LAT * math.cos(math.radians(lat0))
    for sd, want in ((sd_lat_m, 3.0), (sd_lon_m, 3.0), (np.std(gyro), 0.02)):
        assert abs(sd - want) < Z * want / math.sqrt(2 * n)


def test_emulator_reset_clears_buffers_and_in_flight_messages():
    emu = _fixed_50ms_emulator()
    emu.transmit(_msg(0.0), (0, 0), (1, 0), 0.0)
    emu.transmit(_msg(20.0, vid="V003"), (0, 0), (1, 0), 20.0)
    assert list(emu.sync_and_get_messages(60.0)) == ["V002"]  # V003's message is still in flight
    emu.reset(1)
    assert emu.sync_and_get_messages(160.0) == {}


def test_emulator_receivers_have_separate_buffers():
    emu = ESPNOWEmulator(radio_dict(latency_ms=50.0), domain_randomization=False, seed=0, add_receivers=True)
    emu.transmit(_msg(0.0), (0, 0), (1, 0), 0.0, receiver_id="V005")
    assert emu.sync_and_get_messages(100.0, receiver_id="ego") == {}
    assert list(emu.sync_and_get_messages(100.0, receiver_id="V005")) == ["V002"]


def test_payload_fields_are_the_documented_columns():
    assert PAYLOAD_FIELDS == ("x_m", "y_m", "speed_ms", "heading_deg", "accel_ms2")
