"""The compiled radio kernels (numba) against the NumPy path: same seed, same calls -> the same
bits in every link outcome, every received message and the generator state afterwards."""

from __future__ import annotations

import numpy as np
import pytest

from roadsense_marl.espnow import Radio, beacon_calls, kernels, load_params

from espnow_helpers import radio_dict

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba not installed")

NOISE = {"gps_std_m": 2.0, "speed_std_ms": 0.5, "accel_std_ms2": 0.3, "heading_std_deg": 4.0, "gyro_std_rad_s": 0.0}


def _assert_same(a, b, what: str) -> None:
    for field in a.__dataclass_fields__:
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what}.{field}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f"{what}.{field} differs"


def _drive(params, n: int, steps: int, seed: int, *, spread: float, dt_choices, rx_every: int = 1,
           shuffle: bool = False, churn: bool = False, domain_randomization: bool = True, beacon_hz: float = 10.0,
           per_sender: bool = False):
    """Run the same schedule on both backends, comparing after every call. ``per_sender``: every
    beacon of the step at its own time (``beacon_times``), one call per round of beacons, receive
    at the step's end."""
    radios = [Radio(params, capacity=n, backend=b, domain_randomization=domain_randomization, beacon_hz=beacon_hz)
              for b in ("numpy", "numba")]
    for r in radios:
        r.reset(seed)
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, spread, (n, 2))
    alive = np.ones(n, bool)
    t = 0.0
    links = received = 0
    for k in range(steps):
        t_prev, t = t, t + float(rng.choice(dt_choices))
        xy += rng.normal(0, 1.0, xy.shape)
        slots = np.flatnonzero(alive)
        if shuffle and k % 3 == 0:
            slots = rng.permutation(slots)
        pay = np.c_[xy[slots], rng.uniform(0, 30, len(slots)), rng.uniform(0, 360, len(slots)),
                    rng.normal(0, 1, len(slots))]
        if per_sender:
            bts = [r.beacon_times(slots, t_prev, t) for r in radios]
            assert np.array_equal(bts[0][0], bts[1][0]) and np.array_equal(bts[0][1], bts[1][1])
            idx, times = bts[0]
            rank = np.zeros(len(idx), np.int64)
            calls = []
            seen = np.zeros(len(slots), np.int64)
            for q, i in enumerate(idx.tolist()):  # round of each beacon: how many of its slot came before
                rank[q] = seen[i]
                seen[i] += 1
            for j in range(int(rank.max()) + 1 if len(rank) else 0):
                sel, st = idx[rank == j], times[rank == j]
                o = np.argsort(sel)  # senders in slot order (the compiled link culls), times in any order
                calls.append((st[o], sel[o]))
        else:
            due = [r.beacon_due(slots, t_prev, t) for r in radios]
            assert np.array_equal(due[0], due[1])
            calls = [(t, np.flatnonzero(due[0]))]
        for send_t, sel in calls:
            lbs = [r.broadcast(send_t, slots[sel], xy[slots][sel], pay[sel], slots, xy[slots]) for r in radios]
            _assert_same(lbs[0], lbs[1], f"step {k} links")
            links += len(lbs[0])
        if k % rx_every == 0:
            rxs = [r.receive(t if per_sender else t + 0.5, slots) for r in radios]
            _assert_same(rxs[0], rxs[1], f"step {k} receive")
            assert np.array_equal(radios[0].cbr, radios[1].cbr), f"step {k} cbr"
            received += len(rxs[0])
        assert radios[0].in_flight_count == radios[1].in_flight_count
        if churn and k % 17 == 16:  # vehicles leave; their slots come back later as new vehicles
            gone = rng.choice(np.flatnonzero(alive), size=2, replace=False)
            for r in radios:
                r.forget(gone)
            alive[gone] = False
            back = np.flatnonzero(~alive)[:1] if k % 34 == 33 else np.empty(0, np.int64)
            alive[back] = True
    assert radios[0]._rng.random() == radios[1]._rng.random()  # both consumed the same draws
    assert links > 0 and received > 0
    return links, received


def test_kernels_equal_numpy_in_a_dense_convoy_with_bursts_churn_and_partial_beacons():
    _drive("measured", n=30, steps=150, seed=1, spread=30.0, dt_choices=[25.0, 50.0, 100.0], churn=True)


def test_kernels_equal_numpy_with_unsorted_slots_and_tiered_loss_with_distance_latency():
    params = radio_dict(latency_ms=8.0, jitter_ms=3.0, factor=0.05, loss=0.1, tiers=(0.1, 0.3, 0.6),
                        burst={"mean_burst_length": 2.5, "loss_multiplier": 3.0, "max_loss_cap": 0.7},
                        noise=NOISE, max_range_m=120.0)
    _drive(params, n=25, steps=120, seed=2, spread=150.0, dt_choices=[5.0, 10.0, 100.0], shuffle=True)


def test_kernels_equal_numpy_when_later_sent_messages_overtake_and_receive_is_rare():
    """Jitter far above the send interval: later-sent copies arrive first, several per link are in
    flight (more than twice the links, so superseded copies get pruned), receive runs every 9th
    step: delivery, pruning and newest-wins all get exercised."""
    params = radio_dict(latency_ms=40.0, jitter_ms=30.0, loss=0.2, noise=NOISE)
    _drive(params, n=8, steps=200, seed=3, spread=20.0, dt_choices=[1.0, 2.0, 5.0], rx_every=9,
           domain_randomization=False, beacon_hz=500.0)


def test_kernels_equal_numpy_on_the_grid_cull_path():
    _drive("measured", n=300, steps=6, seed=4, spread=1500.0, dt_choices=[100.0])


def test_kernels_equal_numpy_on_the_grid_cull_path_with_crowded_cells():
    """300 vehicles in a 45 m square: nearly every pair in range, hundreds of candidates per
    receiver (the kernel sorts them differently than for a few neighbours)."""
    links, _ = _drive("measured", n=300, steps=3, seed=5, spread=45.0, dt_choices=[100.0])
    assert links > 3 * 300 * 200


def test_kernels_equal_numpy_with_per_sender_send_times_from_beacon_times():
    """Steps from 20 ms to 1 s: each beacon at its own time, up to 10 calls per step, churn."""
    _drive("measured", n=30, steps=60, seed=6, spread=40.0, dt_choices=[20.0, 100.0, 350.0, 1000.0],
           churn=True, per_sender=True)


def test_kernels_equal_numpy_with_per_sender_send_times_when_messages_overtake():
    params = radio_dict(latency_ms=40.0, jitter_ms=30.0, loss=0.2, noise=NOISE,
                        burst={"mean_burst_length": 2.5, "loss_multiplier": 3.0, "max_loss_cap": 0.7})
    _drive(params, n=8, steps=120, seed=7, spread=20.0, dt_choices=[3.0, 20.0, 90.0], rx_every=5,
           domain_randomization=False, beacon_hz=100.0, shuffle=True, per_sender=True)


def test_kernels_equal_numpy_with_per_sender_send_times_on_the_grid_cull_path():
    _drive("measured", n=300, steps=4, seed=8, spread=1500.0, dt_choices=[100.0, 300.0], per_sender=True)


def test_kernels_equal_numpy_for_the_shared_channel_with_hidden_terminals_and_churn():
    """Carrier sense 60 m, range 50 m, 60 vehicles over 300 m: many senders out of each other's
    carrier-sense range (hidden terminals), saturated neighbourhoods, per-sender times, leavers."""
    params = radio_dict(latency_ms=4.0, jitter_ms=1.0, loss=0.05, noise=NOISE, max_range_m=50.0,
                        channel={"enabled": True, "carrier_sense_range_m": 60.0})
    _drive(params, n=60, steps=40, seed=9, spread=300.0, dt_choices=[20.0, 100.0, 250.0], churn=True,
           per_sender=True, beacon_hz=20.0)


def test_kernels_equal_numpy_for_the_shared_channel_with_one_send_time_per_call():
    params = radio_dict(latency_ms=4.0, loss=0.05, max_range_m=120.0,
                        channel={"enabled": True, "carrier_sense_range_m": 150.0, "max_access_delay_ms": 30.0})
    _drive(params, n=80, steps=30, seed=10, spread=200.0, dt_choices=[50.0, 100.0], shuffle=True)


@pytest.mark.parametrize("profile,jitter,beacon_hz,dcc", [
    ("measured", 5.0, 10.0, "off"), ("measured", 0.0, 10.0, "off"), ("measured", 0.3, 3.0, "off"),
    ("ideal", None, 10.0, "off"), ("measured", 5.0, 10.0, "reactive")])
def test_compiled_beacon_times_list_the_same_beacons_as_the_numpy_path(profile, jitter, beacon_hz, dcc):
    """200 random intervals (empty to 2.5 s, before and after 0) and random slot subsets, sorted or
    not: the same positions and the same float bits from both backends."""
    d = load_params(profile).to_dict()
    if jitter is not None:
        d["channel"].update(tx_jitter_ms=jitter, dcc=dcc)
    radios = [Radio(d, capacity=30, beacon_hz=beacon_hz, backend=b) for b in ("numpy", "numba")]
    for r in radios:
        r.reset(3)
    rng = np.random.default_rng(0)
    for _ in range(200):
        lo = float(rng.uniform(-50, 5000))
        hi = lo + float(rng.choice([0.0, 1.0, 50.0, 100.0, 1000.0, 2537.5]))
        slots = rng.permutation(30)[: rng.integers(0, 30)]
        if rng.random() < 0.5:
            slots = np.sort(slots)
        (ia, ta), (ib, tb) = (r.beacon_times(slots, lo, hi) for r in radios)
        assert ia.dtype == ib.dtype == np.int64 and np.array_equal(ia, ib) and np.array_equal(ta, tb)


def test_compiled_beacon_times_match_under_a_live_reactive_dcc_schedule():
    """60 vehicles in range with reactive DCC and the transmit jitter, driven for 3 s (the DCC
    grids restart, so grid starts and per-slot periods are live): at every step both backends list
    the same beacons."""
    d = load_params("measured").to_dict()
    d["channel"].update(dcc="reactive", tx_jitter_ms=5.0)
    radios = [Radio(d, capacity=60, backend=b, domain_randomization=False) for b in ("numpy", "numba")]
    for r in radios:
        r.reset(11)
    rng = np.random.default_rng(11)
    xy = rng.uniform(-100, 100, (60, 2))
    slots = np.arange(60)
    pay = np.c_[xy, np.full(60, 10.0), np.full(60, 90.0), np.zeros(60)]
    t, started = 0.0, 0
    for _ in range(30):
        t_prev, t = t, t + 100.0
        (ia, ta), (ib, tb) = (r.beacon_times(slots, t_prev, t) for r in radios)
        assert np.array_equal(ia, ib) and np.array_equal(ta, tb)
        for r in radios:
            for sl in beacon_calls(ia):
                i = ia[sl]
                o = np.argsort(i, kind="stable")
                r.broadcast(ta[sl][o], slots[i[o]], xy[i[o]], pay[i[o]], slots, xy)
            r.receive(t, slots)
        started += int(np.isfinite(radios[1]._dcc_start).sum())
    assert started > 0  # some grids restarted: the kernel's grid-start test ran
