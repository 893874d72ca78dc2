"""The radio's fast paths (whole-batch delivery, slice writes, row-record copies) against the
per-link heapq reference, on the schedules that exercise them."""

from __future__ import annotations

import numpy as np
import pytest

from roadsense_marl.espnow import Radio

from espnow_helpers import radio_dict
from reference_radio import ReferenceRadio


def _payload(xy: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """x, y, speed, heading, accel; the accel column carries the sender's slot so a payload
    landing in the wrong table row is visible."""
    n = len(xy)
    return np.c_[xy, np.full(n, 10.0), np.full(n, 45.0), slots.astype(float)]


def _step(radio: Radio, ref: ReferenceRadio, t: float, senders, receivers, xy: np.ndarray, now: float) -> None:
    senders, receivers = np.asarray(senders), np.asarray(receivers)
    pay = _payload(xy[senders], senders)
    radio.broadcast(t, senders, xy[senders], pay, receivers, xy[receivers])
    ref.broadcast(t, senders, xy[senders], pay, receivers, xy[receivers])
    got, want = radio.receive(now, receivers), ref.receive(now, receivers)
    assert len(got) == len(want)
    if want:
        r, s, noisy, ts, _age, arr = map(np.array, zip(*want))
        assert np.array_equal(got.receiver, r) and np.array_equal(got.sender, s)
        assert np.array_equal(got.payload[:, 4], s.astype(float))  # each row holds its own sender's copy
        assert np.allclose(got.payload, noisy) and np.array_equal(got.timestamp_ms, ts)
        assert np.allclose(got.received_at_ms, arr)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_new_links_appended_out_of_order_land_in_their_own_rows(backend):
    """A broadcast that adds links out of (receiver, sender) order, then is delivered alone and
    covers every link: its rows are a permutation starting at 0 and ending at n-1, which must
    not be taken for the identity (the whole-pool slice write)."""
    params = radio_dict(latency_ms=50.0, noise={"gps_std_m": 1.0, "speed_std_ms": 0.1, "accel_std_ms2": 0.0,
                                                "heading_std_deg": 1.0, "gyro_std_rad_s": 0.0})
    radio, ref = Radio(params, capacity=4, backend=backend), ReferenceRadio(params, capacity=4)
    radio.reset(3)
    ref.reset(3)
    xy = np.array([[0.0, 0.0], [5.0, 0.0], [10.0, 0.0], [15.0, 0.0]])
    _step(radio, ref, 0.0, [0, 1], [0, 2], xy, now=60.0)  # rows: (0,1), (2,0), (2,1); sorted at receive
    _step(radio, ref, 100.0, [0, 1], [0, 1, 2, 3], xy, now=160.0)  # adds (1,0), (3,0), (3,1) after them
    _step(radio, ref, 200.0, [0, 1, 2, 3], [0, 1, 2, 3], xy, now=260.0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("latency_ms, dt_ms", [(3.0, 100.0), (50.0, 20.0), (30.0, 30.0)])
def test_dense_steady_state_with_batches_arriving_whole_split_and_late(latency_ms, dt_ms, backend):
    """Everyone in range every step; latency shorter than, longer than, and equal to the step, so
    in-flight batches arrive whole, split, or several at once on the same links; a vehicle leaves."""
    params = radio_dict(latency_ms=latency_ms, jitter_ms=2.0, loss=0.2,
                        burst={"mean_burst_length": 2.0, "loss_multiplier": 2.0, "max_loss_cap": 0.8},
                        noise={"gps_std_m": 1.0, "speed_std_ms": 0.5, "accel_std_ms2": 0.0,
                               "heading_std_deg": 5.0, "gyro_std_rad_s": 0.0})
    n = 9
    radio, ref = Radio(params, capacity=n, backend=backend), ReferenceRadio(params, capacity=n)
    radio.reset(5)
    ref.reset(5)
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 30, (n, 2))
    alive = np.arange(n)
    t = 0.0
    for k in range(40):
        t += dt_ms
        xy += rng.normal(0, 0.5, xy.shape)
        _step(radio, ref, t, alive, alive, xy, now=t)
        if k == 25:
            radio.forget([4])
            ref.forget([4])
            alive = alive[alive != 4]
