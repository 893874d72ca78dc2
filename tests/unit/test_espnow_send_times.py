"""Per-sender send times in Radio.broadcast and Radio.beacon_times: every beacon at its own time
inside a (possibly long) SUMO step, pinned against the per-link heapq reference on both backends."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from roadsense_marl.espnow import Radio

from espnow_helpers import assert_rx_equal, channel_off, grid_exact, radio_dict
from reference_radio import ReferenceRadio

BACKENDS = ["numpy", "numba"]
NOISE = {"gps_std_m": 2.0, "speed_std_ms": 0.5, "accel_std_ms2": 0.3, "heading_std_deg": 4.0, "gyro_std_rad_s": 0.0}


def _payload(xy: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """x, y, speed, heading, accel = the sender's slot (a payload in the wrong row differs from the reference)."""
    n = len(xy)
    return np.c_[xy, np.full(n, 12.0), np.full(n, 355.0), slots.astype(float)]


def _calls(idx: np.ndarray, t: np.ndarray):
    """Split beacon rows (sorted by time) into broadcast calls holding each slot at most once:
    call j gets every slot's j-th beacon of the step."""
    rank = np.zeros(len(idx), np.int64)
    seen: dict[int, int] = {}
    for q, i in enumerate(idx.tolist()):  # test-side bookkeeping, not the radio's hot path
        rank[q] = seen.get(i, 0)
        seen[i] = rank[q] + 1
    return [(idx[rank == j], t[rank == j]) for j in range(int(rank.max()) + 1 if len(rank) else 0)]


def _run_schedule(radio: Radio, ref: ReferenceRadio, seed: int, n: int, steps: int, dt_choices, spread: float):
    """SUMO-like steps of various lengths; each beacon sent at its own time with the sender's
    position interpolated between the two step states; receive at the end of every step."""
    rng = np.random.default_rng(seed)
    xy0 = rng.uniform(0, spread, (n, 2))
    vel = rng.normal(0, 10.0, (n, 2))  # m/s
    slots = np.arange(n)
    t_now, links, received, multi = 0.0, 0, 0, 0
    for k in range(steps):
        t_prev, t_now = t_now, t_now + float(rng.choice(dt_choices))
        idx, t = radio.beacon_times(slots, t_prev, t_now)
        ridx, rt = ref.beacon_times(slots, t_prev, t_now)
        assert np.array_equal(idx, ridx) and np.array_equal(t, rt)
        for ci, ct in _calls(idx, t):
            s = slots[ci]
            # send times in any order within a call; senders in slot order (compiled culls) or shuffled
            order = np.argsort(s) if rng.random() < 0.5 else rng.permutation(len(s))
            s, ct = s[order], ct[order]
            sxy = xy0[s] + vel[s] * (ct[:, None] / 1000.0)
            pay = _payload(sxy, s)
            rxy = xy0 + vel * (ct.max() / 1000.0)
            multi += len(np.unique(ct)) > 1
            lb = radio.broadcast(ct, s, sxy, pay, slots, rxy)
            ref.broadcast(ct, s, sxy, pay, slots, rxy)
            assert len(lb) == len(ref.last_links)
            if ref.last_links:
                ls, lr, _d, ok, lat = map(np.array, zip(*ref.last_links))
                assert np.array_equal(lb.sender, ls) and np.array_equal(lb.receiver, lr)
                assert np.array_equal(lb.delivered, ok)
                assert np.allclose(lb.latency_ms, lat, equal_nan=True)
            links += len(lb)
        rx_slots = np.sort(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False))
        got = radio.receive(t_now, rx_slots)
        assert_rx_equal(got, ref.receive(t_now, rx_slots))
        received += len(got)
        if k % 11 == 10:
            gone = [k % n]
            radio.forget(gone)
            ref.forget(gone)
    assert links > 0 and received > 0 and multi > 0
    return links, received


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt_choices", [[100.0], [1000.0], [20.0, 100.0, 250.0, 1000.0]], ids=["100ms", "1s", "mixed"])
def test_per_sender_send_times_equal_the_heapq_reference(backend, dt_choices):
    params = radio_dict(latency_ms=15.0, jitter_ms=6.0, factor=0.1, loss=0.15, noise=NOISE)
    radio = Radio(params, capacity=12, backend=backend)
    ref = ReferenceRadio(params, capacity=12)
    radio.reset(21)
    ref.reset(21)
    _run_schedule(radio, ref, seed=21, n=12, steps=40, dt_choices=dt_choices, spread=60.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_sender_send_times_equal_the_reference_when_jitter_makes_messages_overtake(backend):
    """Jitter far above the beacon period: later-sent copies arrive first and several per link
    are in flight at once (pruned as superseded), across calls and steps."""
    params = radio_dict(latency_ms=60.0, jitter_ms=50.0, loss=0.1, noise=NOISE)
    radio = Radio(params, capacity=8, backend=backend, beacon_hz=50.0)
    ref = ReferenceRadio(params, capacity=8, beacon_hz=50.0)
    radio.reset(5)
    ref.reset(5)
    _run_schedule(radio, ref, seed=5, n=8, steps=60, dt_choices=[7.0, 30.0, 100.0, 400.0], spread=30.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_newest_wins_by_send_time_across_calls_and_arrival_follows_each_senders_time(backend):
    """Fixed latency 20 ms + 0.5 ms/m. Sender 0 is 40 m from receiver 2 (latency 40 ms), sender 1
    at 2 m (21 ms)."""
    params = radio_dict(latency_ms=20.0, factor=0.5)
    radio = Radio(params, capacity=3, backend=backend)
    radio.reset(0)
    xy = np.array([[40.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    rx = np.array([2])
    # one call, two senders at different times: each arrives at its own send time + latency
    radio.broadcast(np.array([10.0, 30.0]), [0, 1], xy[:2], _payload(xy[:2], np.arange(2)), rx, xy[2:])
    assert len(radio.receive(49.9, rx)) == 0
    got = radio.receive(50.0, rx)
    assert got.sender.tolist() == [0] and got.timestamp_ms.tolist() == [10.0] and got.received_at_ms.tolist() == [50.0]
    got = radio.receive(51.0, rx)
    assert got.sender.tolist() == [0, 1] and got.timestamp_ms.tolist() == [10.0, 30.0]
    assert got.received_at_ms.tolist() == [50.0, 51.0]
    # a later call whose sender time (60) arrives (100) after an earlier-sent message (55, from
    # the call before, arriving 95) on the same link: the earlier one shows first, then is replaced
    radio.broadcast(np.array([55.0]), [0], xy[:1], _payload(xy[:1], np.arange(1)), rx, xy[2:])
    radio.broadcast(np.array([60.0]), [0], xy[:1], _payload(xy[:1], np.arange(1)), rx, xy[2:])
    assert radio.receive(94.0, rx).timestamp_ms.tolist() == [10.0, 30.0]
    assert radio.receive(95.0, rx).timestamp_ms.tolist() == [55.0, 30.0]
    assert radio.receive(100.0, rx).timestamp_ms.tolist() == [60.0, 30.0]
    # a later CALL with an EARLIER send time never replaces a newer-sent message, even arriving later
    radio.broadcast(np.array([120.0]), [0], xy[:1], _payload(xy[:1], np.arange(1)), rx, xy[2:])  # arrives 160
    radio.broadcast(np.array([110.0]), [0], xy[:1], _payload(xy[:1], np.arange(1)), rx, xy[2:])  # arrives 150
    assert radio.receive(155.0, rx).timestamp_ms.tolist()[0] == 110.0
    got = radio.receive(170.0, rx)
    assert got.timestamp_ms.tolist()[0] == 120.0 and got.received_at_ms.tolist()[0] == 160.0
    assert radio.in_flight_count == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_array_of_equal_send_times_gives_the_scalar_results_bit_for_bit(backend):
    # the link model alone: with the shared channel on, send times decide overlaps (by design)
    radios = [Radio(channel_off("measured"), capacity=20, backend=backend) for _ in range(2)]
    for r in radios:
        r.reset(9)
    rng = np.random.default_rng(9)
    xy = rng.uniform(0, 40, (20, 2))
    slots = np.arange(20)
    for k in range(30):
        t = 100.0 * (k + 1)
        xy += rng.normal(0, 1, xy.shape)
        due = radios[0].beacon_due(slots, t - 100.0, t)
        pay = _payload(xy, slots)
        a = radios[0].broadcast(t, slots[due], xy[due], pay[due], slots, xy)
        b = radios[1].broadcast(np.full(int(due.sum()), t), slots[due], xy[due], pay[due], slots, xy)
        for f in a.__dataclass_fields__:
            assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f
        ra, rb = radios[0].receive(t + 20.0, slots), radios[1].receive(t + 20.0, slots)
        for f in ra.__dataclass_fields__:
            assert np.array_equal(getattr(ra, f), getattr(rb, f)), f
    assert radios[0]._rng.random() == radios[1]._rng.random()


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_draws_do_not_depend_on_the_send_times(backend):
    """Same senders and positions, different send times: same loss outcomes, same latencies, same
    noisy payloads, and the generator ends in the same state (the link model alone; with the shared
    channel on, only the main generator's state is independent of the send times: test_espnow_channel)."""
    radios = [Radio(channel_off("measured"), capacity=10, backend=backend) for _ in range(2)]
    for r in radios:
        r.reset(4)
    xy = np.c_[np.arange(10) * 4.0, np.zeros(10)]
    slots = np.arange(10)
    pay = _payload(xy, slots)
    a = radios[0].broadcast(np.full(10, 50.0), slots, xy, pay, slots, xy)
    b = radios[1].broadcast(np.linspace(1.0, 99.0, 10), slots, xy, pay, slots, xy)
    assert np.array_equal(a.delivered, b.delivered) and np.array_equal(a.latency_ms, b.latency_ms, equal_nan=True)
    ra, rb = radios[0].receive(500.0, slots), radios[1].receive(500.0, slots)
    assert np.array_equal(ra.sender, rb.sender) and np.array_equal(ra.payload, rb.payload)
    assert not np.array_equal(ra.timestamp_ms, rb.timestamp_ms)
    assert radios[0]._rng.random() == radios[1]._rng.random()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_send_time_before_the_last_receive_is_refused_naming_the_slot_before_anything_changes(backend):
    radio = Radio(radio_dict(latency_ms=5.0), capacity=4, backend=backend)
    radio.reset(1)
    xy = np.c_[np.arange(4.0), np.zeros(4)]
    slots = np.arange(4)
    radio.broadcast(np.array([90.0, 95.0, 99.0, 100.0]), slots, xy, _payload(xy, slots), slots, xy)
    radio.receive(100.0, slots)
    def state():
        return copy.deepcopy(radio._rng).random(), radio.in_flight_count, radio._seq, radio._nf, radio._clock

    before = state()
    with pytest.raises(ValueError, match=r"t_ms\[2\] = 99\.5 ms \(sender slot 3\).*last receive at 100\.0 ms"):
        radio.broadcast(np.array([101.0, 100.0, 99.5]), slots[1:], xy[1:], _payload(xy[1:], slots[1:]), slots, xy)
    with pytest.raises(ValueError, match=r"t_ms\[0\] \(sender slot 2\) must be finite, got nan"):
        radio.broadcast(np.array([np.nan, 150.0]), slots[2:], xy[2:], _payload(xy[2:], slots[2:]), slots, xy)
    with pytest.raises(ValueError, match=r"shape \(2,\).*got shape \(3,\)"):
        radio.broadcast(np.full(3, 150.0), slots[2:], xy[2:], _payload(xy[2:], slots[2:]), slots, xy)
    assert state() == before
    radio.broadcast(np.array([100.0, 101.0]), slots[2:], xy[2:], _payload(xy[2:], slots[2:]), slots, xy)  # at the receive time: fine
    assert radio.receive(106.0, slots).timestamp_ms.max() == 101.0


def test_a_receive_before_the_latest_send_time_of_a_call_is_refused():
    radio = Radio(radio_dict(latency_ms=5.0), capacity=2)
    radio.reset(1)
    xy = np.zeros((2, 2))
    radio.broadcast(np.array([10.0, 40.0]), [0, 1], xy, _payload(xy, np.arange(2)), [0, 1], xy)
    with pytest.raises(ValueError, match="went back in time"):
        radio.receive(39.0, [0, 1])


# ---- beacon_times ----------------------------------------------------------------------------

@pytest.mark.parametrize("interval", [3.0, 50.0, 99.9, 100.0, 250.0, 1000.0, 2537.5])
def test_beacon_times_lists_every_beacon_in_the_interval_sorted_by_time_and_slot(interval):
    exact = grid_exact("measured")
    radio, ref = Radio(exact, capacity=40, backend="numpy"), ReferenceRadio(exact, capacity=40)
    radio.reset(2)
    ref.reset(2)
    slots = np.random.default_rng(2).permutation(40)[:30]
    period = 100.0
    for t_prev in (0.0, 1234.5, 77.7):
        idx, t = radio.beacon_times(slots, t_prev, t_prev + interval)
        ridx, rt = ref.beacon_times(slots, t_prev, t_prev + interval)
        assert idx.dtype == np.int64 and t.dtype == np.float64
        assert np.array_equal(idx, ridx) and np.array_equal(t, rt)
        assert ((t > t_prev) & (t <= t_prev + interval)).all()
        assert np.all(np.diff(t) >= 0)
        counts = np.bincount(idx, minlength=len(slots))
        assert counts.min() >= int(interval // period) and counts.max() <= int(interval // period) + 1
        ph = radio._phases[slots[idx]]
        assert np.allclose(np.round((t - ph) / period), (t - ph) / period)  # phase + k * period
        if interval < period:  # the companion of beacon_due
            due = radio.beacon_due(slots, t_prev, t_prev + interval)
            assert np.array_equal(np.flatnonzero(due), np.unique(idx))


def test_beacon_times_of_a_one_second_step_at_10_hz_are_ten_per_slot_100_ms_apart():
    radio = Radio(grid_exact("measured"), capacity=50)
    radio.reset(8)
    slots = np.arange(50)
    idx, t = radio.beacon_times(slots, 3000.0, 4000.0)
    assert len(idx) == 500 and np.array_equal(np.bincount(idx), np.full(50, 10))
    for s in (0, 17, 49):
        assert np.allclose(np.diff(t[idx == s]), 100.0)
    same = t[1:] == t[:-1]  # ties (none expected with random phases) would be in slot order
    assert (slots[idx][1:][same] > slots[idx][:-1][same]).all()


def test_beacon_times_refuses_bad_intervals_and_slots():
    radio = Radio("measured", capacity=5)
    radio.reset(0)
    with pytest.raises(ValueError, match="t_now_ms >= t_prev_ms"):
        radio.beacon_times([0, 1], 200.0, 100.0)
    with pytest.raises(ValueError, match="finite"):
        radio.beacon_times([0, 1], 0.0, np.inf)
    with pytest.raises(ValueError, match="slot 7, outside 0..4"):
        radio.beacon_times([0, 7], 0.0, 100.0)
    idx, t = radio.beacon_times([], 0.0, 100.0)
    assert idx.shape == (0,) and t.shape == (0,)
    idx, t = radio.beacon_times([3], 100.0, 100.0)
    assert len(idx) == 0
