"""The compiled observation and reward kernels equal their NumPy references bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from roadsense_marl.env import kernels
from roadsense_marl.env.config import RewardConfig
from roadsense_marl.env.observations import BEACON_EGO_DIM, EGO_DIM, DeepSetObservation, build_observations
from roadsense_marl.env.rewards import ConvoyReward, compute_rewards

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")


class _States:
    def __init__(self, rng, n):
        self.x = np.round(rng.uniform(0, 300, n), -1)
        self.y = np.zeros(n)
        self.speed = rng.uniform(0, 30, n)
        self.accel = rng.normal(0, 3, n)
        self.heading_deg = rng.choice([90.0, 89.5, 270.0, 0.0], n)
        self.gap = np.where(rng.random(n) < 0.2, np.inf, rng.uniform(0, 60, n))
        self.leader = np.where(np.isfinite(self.gap), rng.integers(0, n, n), -1)
        self.n = n


class _Rx:
    def __init__(self, rng, n, k):
        self.receiver = np.sort(rng.integers(0, n, k))
        self.sender = rng.integers(0, n, k)
        self.payload = np.column_stack([
            rng.uniform(0, 300, k), rng.uniform(-5, 5, k), rng.uniform(0, 30, k), rng.uniform(0, 360, k),
            rng.normal(-1, 3, k),
        ])
        self.payload[::2, :2] = np.round(self.payload[::2, :2], -1)  # ties in distance: order by sender
        self.age_ms = rng.uniform(0, 499, k)


class _View:
    def __init__(self, rng, n, k, cone, step_length=None):
        from roadsense_marl.env.config import make_env_config

        self.states = _States(rng, n)
        self.slots = rng.permutation(n)  # slot order differs from row order
        self.row_of_slot = np.empty(n, np.int64)
        self.row_of_slot[self.slots] = np.arange(n)
        self.rx = _Rx(rng, n, k)
        self.config = make_env_config(max_peers=4, cone_half_angle_deg=cone)
        self.imposed = rng.random(n) < 0.1
        self.step_length = float(rng.choice([0.1, 0.05, 0.25])) if step_length is None else step_length


@pytest.mark.parametrize("cone", [45.0, "off"])
@pytest.mark.parametrize("seed", range(6))
def test_the_observation_kernel_equals_build_observations(seed, cone):
    rng = np.random.default_rng(seed)
    step_length = (0.1, 0.05, 0.5, 1.0)[seed % 4]  # the braking-signal decay per step depends on it
    view = _View(rng, n=int(rng.integers(1, 40)), k=int(rng.integers(0, 400)), cone=cone, step_length=step_length)
    ref, fast = DeepSetObservation("numpy"), DeepSetObservation("numba")
    for f in (ref, fast):
        f.reset(len(view.slots))
        f.braking_signal[:] = rng.random(len(view.slots)) if f is ref else ref.braking_signal
    o1, e1 = ref(view)
    o2, e2 = fast(view)
    for key in o1:
        assert o1[key].dtype == o2[key].dtype and np.array_equal(o1[key], o2[key]), key
    for key in e1:
        assert np.array_equal(e1[key], e2[key]), key
    assert np.array_equal(ref.braking_signal, fast.braking_signal)
    # and the reference is build_observations itself
    s = view.states
    built = build_observations(np.stack([s.x, s.y], axis=1), s.speed, s.accel, s.heading_deg, np.zeros(s.n),
                               view.row_of_slot[view.rx.receiver], view.rx.sender, view.rx.payload, view.rx.age_ms,
                               max_peers=4, cone_half_angle_deg=view.config.cone_half_angle_deg)
    assert built.ego.shape == (o1["ego"].shape[0], BEACON_EGO_DIM) and o1["ego"].shape[1] == EGO_DIM


@pytest.mark.parametrize("seed", range(6))
def test_the_reward_kernel_equals_compute_rewards(seed):
    rng = np.random.default_rng(100 + seed)
    view = _View(rng, n=int(rng.integers(1, 60)), k=0, cone=45.0)
    w = RewardConfig(progress=float(rng.uniform(0, 2)), comfort_scale=float(rng.uniform(0, 2)),
                     early_reaction=float(rng.uniform(0, 2)))
    object.__setattr__(view.config, "reward", w)
    extras = {"braking_signal": np.where(rng.random(view.states.n) < 0.5, rng.random(view.states.n), 0.0)}
    t1, c1 = ConvoyReward("numpy")(view, extras)
    t2, c2 = ConvoyReward("numba")(view, extras)
    assert np.array_equal(t1, t2)
    for key in c1:
        assert np.array_equal(c1[key], c2[key]), key
    s = view.states
    leader_speed = np.where(s.leader >= 0, s.speed[np.maximum(s.leader, 0)], np.nan)
    t3, _ = compute_rewards(s.gap, s.accel, s.speed, leader_speed, extras["braking_signal"], view.imposed, w,
                            view.step_length)
    assert np.array_equal(t1, t3)


def test_an_unknown_backend_is_named():
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'numba', 'numpy'\), got 'gpu'"):
        DeepSetObservation("gpu")


@pytest.mark.parametrize("seed", range(4))
def test_the_interpolation_kernel_equals_interpolate_states(seed):
    from types import SimpleNamespace

    from roadsense_marl.env import kernels
    from roadsense_marl.env.core import interpolate_states

    rng = np.random.default_rng(seed)
    n0, n1, m = 30, 35, 50

    def states(n):
        return SimpleNamespace(x=rng.uniform(-1e3, 1e3, n), y=rng.uniform(-1e3, 1e3, n), speed=rng.uniform(0, 40, n),
                               heading_deg=rng.uniform(0, 360, n), accel=rng.uniform(-9, 3, n))

    p, s = states(n0), states(n1)
    p.heading_deg[:5], s.heading_deg[:5] = 359.5, 0.5  # across north
    row0, row1 = rng.integers(0, n0, m), rng.integers(0, n1, m)
    row0[:5], row1[:5] = np.arange(5), np.arange(5)
    w = rng.uniform(0, 1, m)
    w[:2] = (0.0, 1.0)
    ref = interpolate_states(p, s, row0, row1, w)
    out = np.empty((m, 5))
    kernels.interpolate_states(p.x, p.y, p.speed, p.heading_deg, p.accel, s.x, s.y, s.speed, s.heading_deg, s.accel,
                               row0, row1, w, out)
    assert np.array_equal(ref, out)
    assert np.all((ref[:, 3] >= 0) & (ref[:, 3] < 360))
    assert np.allclose(ref[2:5, 3], (359.5 + w[2:5]) % 360.0)  # the shorter arc through north
    assert ref[0, 0] == p.x[0] and ref[1, 0] == pytest.approx(s.x[1], abs=1e-9)  # w = 0: earlier state; 1: later


@pytest.mark.parametrize("seed", range(6))
def test_the_track_kernel_equals_track_nearest_ahead(seed):
    """Bit for bit, on random peer tables where about half the agents continue their track (the
    filter path), with ties in distance, stale messages and agents with no peer ahead."""
    import math

    from roadsense_marl.env.observations import (AGE_SCALE_MS, NOMINAL_LENGTH_M, OFFSET_SCALE, PEER_INDEX,
                                                 REQUIRED_DECEL_CAP, SPEED_SCALE, TRACK_NO_PEER_M,
                                                 TRACK_TIME_CONSTANT_S, track_nearest_ahead)
    from roadsense_marl.env.rewards import HEADWAY_S, STOP_MARGIN

    rng = np.random.default_rng(300 + seed)
    n, k = int(rng.integers(1, 50)), int(rng.integers(1, 9))
    peers = rng.normal(0, 0.3, (n, k, 6)).astype(np.float32)
    peers[:, ::2, PEER_INDEX["forward"]] = np.round(peers[:, ::2, PEER_INDEX["forward"]], 1)  # ties
    peers[..., PEER_INDEX["age"]] = rng.uniform(0, 1, (n, k)).astype(np.float32)
    mask = (rng.random((n, k)) < 0.7).astype(np.float32)
    sender = rng.integers(0, 5, (n, k))
    speed = rng.uniform(0, 30, n)
    prev_d, prev_c = rng.uniform(-5, 60, n), rng.normal(0, 3, n)
    prev_s = rng.integers(-1, 5, n)
    dt = float(rng.choice([0.1, 0.05, 0.5]))
    ref = track_nearest_ahead(peers, mask, sender, speed, prev_d, prev_c, prev_s, dt)
    assert 0 < (ref[3] == prev_s).sum() or n < 5  # some tracks continue
    out = (np.empty(n), np.empty(n), np.empty(n), np.empty(n, dtype=np.int64))
    kernels.track_ahead(peers, mask, sender, speed, prev_d, prev_c, prev_s, dt, math.exp(-dt / TRACK_TIME_CONSTANT_S),
                        PEER_INDEX["forward"], PEER_INDEX["rel_speed"], PEER_INDEX["age"], OFFSET_SCALE, SPEED_SCALE,
                        AGE_SCALE_MS / 1000.0, TRACK_NO_PEER_M, NOMINAL_LENGTH_M, STOP_MARGIN, HEADWAY_S,
                        REQUIRED_DECEL_CAP, *out)
    for a, b in zip(ref, out):
        assert a.dtype == b.dtype and np.array_equal(a, b)
