import numpy as np
import pytest

from roadsense_marl.env.observations import (
    BRAKING_SIGNAL_HALF_LIFE_S,
    braking_signal_decay,
    build_observations,
    to_heading_frame,
    wrap180,
)


def _obs(own, msgs, k=8, cone=None, prev=None, **kw):
    own_xy = np.array([[o[0], o[1]] for o in own], dtype=float)
    speed = np.array([o[2] for o in own], dtype=float)
    heading = np.array([o[3] for o in own], dtype=float)
    accel = np.array([o[4] for o in own], dtype=float)
    prev = np.zeros(len(own)) if prev is None else np.asarray(prev, dtype=float)
    rows = np.array([m[0] for m in msgs], dtype=np.int64)
    senders = np.array([m[1] for m in msgs], dtype=np.int64)
    payload = np.array([m[2] for m in msgs], dtype=float).reshape(-1, 5)
    age = np.array([m[3] for m in msgs], dtype=float)
    return build_observations(
        own_xy, speed, accel, heading, prev, rows, senders, payload, age, max_peers=k, cone_half_angle_deg=cone, **kw
    )


def test_heading_frame_follows_sumo_compass_convention():
    # Heading 0 = north: a peer 10 m north is 10 m ahead; 90 = east: a peer north is on the left.
    f, l = to_heading_frame(np.array([0.0]), np.array([10.0]), np.array([0.0]))
    assert f[0] == pytest.approx(10) and l[0] == pytest.approx(0, abs=1e-12)
    f, l = to_heading_frame(np.array([0.0]), np.array([10.0]), np.array([90.0]))
    assert f[0] == pytest.approx(0, abs=1e-12) and l[0] == pytest.approx(10)
    f, l = to_heading_frame(np.array([10.0]), np.array([0.0]), np.array([0.0]))
    assert l[0] == pytest.approx(-10)  # east of a north-facing car is its right


def test_wrap180_range():
    assert np.allclose(wrap180(np.array([190.0, -190.0, 0.0, 360.0])), [-170.0, 170.0, 0.0, 0.0])


def test_peer_features_are_relative_scaled_and_in_own_frame():
    # Agent 0 heads east at 10 m/s; a peer 20 m ahead, 3 m to the left, at 12 m/s, braking at -3.
    obs = _obs([(0, 0, 10, 90, -1.0)], [(0, 5, (20, 3, 12, 100, -3.0), 40.0)])
    row = obs.peers[0, 0]
    assert row == pytest.approx([0.2, 0.03, 2 / 30, 10 / 180, -0.3, 40 / 500], abs=1e-6)
    assert obs.peer_mask[0].tolist() == [1] + [0] * 7
    assert obs.peer_sender[0, 0] == 5 and (obs.peer_sender[0, 1:] == -1).all()
    # ego: speed, accel, visible/K, min(0, lowest peer accel), braking signal, closing speed
    assert obs.ego[0] == pytest.approx([10 / 30, -0.1, 1 / 8, -0.3, 1.0, 0.0], abs=1e-6)


def test_closing_speed_counts_only_peers_ahead():
    obs = _obs(
        [(0, 0, 20, 0, 0.0)],
        [(0, 1, (0, 30, 15, 0, 0.0), 10.0), (0, 2, (0, -30, 5, 0, 0.0), 10.0)],
    )
    assert obs.ego[0, 5] == pytest.approx(5 / 30)  # 20 - 15 to the peer ahead; the slow one behind ignored


def test_more_than_k_peers_keeps_the_k_nearest_sorted_by_distance():
    msgs = [(0, s, (0, d, 10, 0, 0), 10.0) for s, d in [(1, 50), (2, 10), (3, 30), (4, 20)]]
    obs = _obs([(0, 0, 10, 0, 0)], msgs, k=2)
    assert obs.peer_sender[0].tolist() == [2, 4]
    assert obs.n_visible[0] == 2


def test_cone_filters_senders_outside_the_half_angle():
    msgs = [(0, 1, (0, 10, 10, 0, 0), 1.0), (0, 2, (10, 10.5, 10, 0, 0), 1.0), (0, 3, (0, -10, 10, 0, 0), 1.0)]
    obs = _obs([(0, 0, 10, 0, 0)], msgs, cone=45.0)
    assert sorted(obs.peer_sender[0][obs.peer_mask[0] > 0].tolist()) == [1, 2]
    obs = _obs([(0, 0, 10, 0, 0)], msgs, cone=None)
    assert obs.n_visible[0] == 3


def test_each_agent_sees_only_its_own_rows():
    msgs = [(1, 0, (0, 10, 10, 0, -5.0), 1.0)]
    obs = _obs([(0, 0, 10, 0, 0), (0, 0, 10, 0, 0)], msgs)
    assert obs.peer_mask[0].sum() == 0 and obs.peer_mask[1].sum() == 1
    assert obs.braking_signal.tolist() == [0.0, 1.0]


def test_braking_signal_decays_when_no_peer_brakes():
    obs = _obs([(0, 0, 10, 0, 0)], [(0, 1, (0, 10, 10, 0, -2.4), 1.0)], prev=[1.0])
    assert obs.braking_signal[0] == pytest.approx(0.95)
    obs = _obs([(0, 0, 10, 0, 0)], [(0, 1, (0, 10, 10, 0, -2.5), 1.0)], prev=[0.3])
    assert obs.braking_signal[0] == 1.0


def test_braking_signal_decay_is_exactly_the_v1_factor_at_a_tenth_of_a_second():
    assert braking_signal_decay(0.1) == 0.95  # bit-identical to env contract v1 at the shipped step length
    assert BRAKING_SIGNAL_HALF_LIFE_S == pytest.approx(1.3513, abs=1e-4)


@pytest.mark.parametrize("step_length", [0.05, 0.1, 0.25, 0.5, 1.0])
def test_braking_signal_after_two_seconds_is_the_same_at_any_step_length(step_length):
    signal = np.array([1.0])
    msgs = [(0, 1, (0, 10, 10, 0, 0.0), 1.0)]  # a visible peer that does not brake
    for _ in range(round(2.0 / step_length)):
        signal = _obs([(0, 0, 10, 0, 0)], msgs, prev=signal, braking_decay=braking_signal_decay(step_length)).braking_signal
    assert signal[0] == pytest.approx(0.95 ** 20, rel=1e-9)  # 2 s: 20 tenths of a second
    assert signal[0] == pytest.approx(0.5 ** (2.0 / BRAKING_SIGNAL_HALF_LIFE_S), rel=1e-9)


def test_no_messages_gives_padding_only():
    obs = _obs([(0, 0, 5, 0, 0)] * 3, [])
    assert obs.peers.shape == (3, 8, 6) and not obs.peer_mask.any() and not obs.peers.any()
    assert obs.ego.dtype == np.float32 and np.isfinite(obs.ego).all()


def _table(rows):
    """Peer tables from per-agent lists of (forward m, rel_speed m/s[, sender slot[, age ms]]):
    float32[n, K, 6] scaled rows, float32[n, K] mask, int64[n, K] senders (default: the row index)."""
    from roadsense_marl.env.observations import AGE_SCALE_MS, OFFSET_SCALE, PEER_INDEX, SPEED_SCALE

    k = max(1, max(len(r) for r in rows))
    peers = np.zeros((len(rows), k, 6), dtype=np.float32)
    mask = np.zeros((len(rows), k), dtype=np.float32)
    sender = np.full((len(rows), k), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        for j, row in enumerate(r):
            fwd, rel, who, age = (tuple(row) + (j, 0.0))[:4] if len(row) == 2 else (tuple(row) + (0.0,))[:4]
            peers[i, j, PEER_INDEX["forward"]] = fwd / OFFSET_SCALE
            peers[i, j, PEER_INDEX["rel_speed"]] = rel / SPEED_SCALE
            peers[i, j, PEER_INDEX["age"]] = age / AGE_SCALE_MS
            mask[i, j] = 1.0
            sender[i, j] = who
    return peers, mask, sender


def _track(rows, speed, prev=None, dt=0.1):
    from roadsense_marl.env.observations import track_nearest_ahead

    peers, mask, sender = _table(rows)
    n = len(rows)
    d, c, s = prev if prev is not None else (np.zeros(n), np.zeros(n), np.full(n, -1, dtype=np.int64))
    return track_nearest_ahead(peers, mask, sender, np.broadcast_to(np.asarray(speed, float), (n,)), d, c, s, dt)


def test_a_new_track_starts_at_the_nearest_peer_ahead_and_none_ahead_reads_the_radio_range():
    from roadsense_marl.env.observations import TRACK_NO_PEER_M

    # agent 0: peers 30 m and 12 m ahead and one 5 m behind -> the one 12 m ahead (row 2), 1.5 m/s slower
    d, c, need, sender = _track([[(30.0, 0.0), (-5.0, 3.0), (12.0, -1.5)], [(-8.0, 1.0)], []], 10.0)
    np.testing.assert_allclose(d, [12.0, TRACK_NO_PEER_M, TRACK_NO_PEER_M], rtol=1e-6)
    np.testing.assert_allclose(c, [1.5, 0.0, 0.0], rtol=1e-6)
    assert need[0] > 0.0 and (need[1:] == 0.0).all()
    assert sender.tolist() == [2, -1, -1]


def test_a_steady_closing_is_tracked_exactly_by_the_prediction():
    """Noiseless messages of a car 0.5 m/s slower: once the closing speed has converged the
    predicted distance equals the true one (a filter without the prediction lags ~0.5 m behind)."""
    true_d, prev = 30.0, None
    for _ in range(300):
        true_d -= 0.5 * 0.1
        d, c, _, sender = _track([[(true_d, -0.5, 7)]], 8.0, prev)
        prev = (d, c, sender)
    # float32 messages: exact to their rounding
    assert c[0] == pytest.approx(0.5, abs=1e-6) and d[0] == pytest.approx(true_d, abs=1e-4) and sender[0] == 7


def test_the_track_averages_out_message_noise_and_follows_a_steady_closing():
    """A car closing at 0.5 m/s on a car 20 m ahead, every message with 3 m position and 0.43 m/s
    speed noise (the measured radio): after 10 s the median track is within 0.3 m and 0.05 m/s,
    and 90 % of the tracks within 1.5 m and 0.25 m/s (single messages: 4.9 m and 0.7 m/s)."""
    rng = np.random.default_rng(0)
    n, dt, true_c = 200, 0.1, 0.5  # 200 independent agents, the same situation
    prev = None
    true_d = 20.0
    for _ in range(100):
        true_d -= true_c * dt
        rows = [[(true_d + rng.normal(0, 3.0), -true_c + rng.normal(0, 0.43), 1)] for _ in range(n)]
        d, c, _, s = _track(rows, 8.0, prev, dt)
        prev = (d, c, s)
    assert abs(np.median(d) - true_d) < 0.3 and np.percentile(np.abs(d - true_d), 90) < 1.5
    assert abs(np.median(c) - true_c) < 0.05 and np.percentile(np.abs(c - true_c), 90) < 0.25


def test_a_cut_in_or_a_lost_peer_restarts_the_track_instead_of_blending_two_cars():
    from roadsense_marl.env.observations import REQUIRED_DECEL_CAP, TRACK_NO_PEER_M

    prev = None
    for _ in range(20):  # tracking sender 4, 40 m ahead
        d, c, need, s = _track([[(40.0, 0.0, 4)]], 12.0, prev)
        prev = (d, c, s)
    # a cut-in by sender 9, 8 m ahead and 3 m/s slower: the track is that car at once
    d, c, need, s = _track([[(40.0, 0.0, 4), (8.0, -3.0, 9)]], 12.0, prev)
    assert (d[0], c[0], s[0]) == (pytest.approx(8.0, abs=1e-5), pytest.approx(3.0, abs=1e-5), 9)
    assert need[0] == REQUIRED_DECEL_CAP
    # no peer ahead: the no-peer reading, unfiltered; the car seen again starts a new track there
    d, c, need, s = _track([[]], 12.0, (d, c, s))
    assert (d[0], c[0], need[0], s[0]) == (TRACK_NO_PEER_M, 0.0, 0.0, -1)
    d, c, need, s = _track([[(15.0, -1.0, 9)]], 12.0, (d, c, s))
    assert (d[0], c[0], s[0]) == (pytest.approx(15.0, abs=1e-5), pytest.approx(1.0, abs=1e-5), 9)


def test_a_message_position_is_moved_on_by_its_age_at_the_senders_speed():
    # 20 m ahead when sent 400 ms ago, the sender at 12 - 2 = 10 m/s: 24 m ahead now
    d, c, _, _ = _track([[(20.0, -2.0, 3, 400.0)]], 12.0)
    assert d[0] == pytest.approx(24.0, abs=1e-4) and c[0] == pytest.approx(2.0, abs=1e-5)


def test_the_tracked_required_deceleration_is_the_rewards_formula_on_the_tracked_gap():
    from roadsense_marl.env.observations import NOMINAL_LENGTH_M, REQUIRED_DECEL_CAP
    from roadsense_marl.env.rewards import required_decel

    d, c, need, _ = _track([[(40.0, -4.0)], [(6.0, -6.0)]], 16.0)
    assert need[0] == pytest.approx(required_decel(np.array([40.0 - NOMINAL_LENGTH_M]), np.array([4.0]),
                                                   np.array([16.0]))[0])
    assert need[1] == REQUIRED_DECEL_CAP  # 1 m left at 6 m/s closing: far beyond the cap


class _Line:
    """A fake StepView: cars on one lane heading east (SUMO compass 90), each hearing the car ahead
    with a fresh message; ``slots`` in a different order from the rows."""

    def __init__(self, x, speed, slots, offset=0.0):
        from roadsense_marl.env.config import make_env_config

        n = len(x)
        self.states = type("S", (), dict(x=np.asarray(x, float), y=np.zeros(n), speed=np.asarray(speed, float),
                                         accel=np.zeros(n), heading_deg=np.full(n, 90.0)))()
        self.slots = np.asarray(slots)
        self.row_of_slot = np.empty(n, np.int64)
        self.row_of_slot[self.slots] = np.arange(n)
        order = np.argsort(self.states.x)
        recv = [(int(a), int(b)) for a, b in zip(order[:-1], order[1:])]  # rows: follower hears the one ahead
        self.rx = type("R", (), dict(
            receiver=np.array([self.slots[a] for a, _ in recv]), sender=np.array([self.slots[b] for _, b in recv]),
            payload=np.array([[self.states.x[b] + offset, 0.0, speed[b], 90.0, 0.0] for _, b in recv]),
            age_ms=np.zeros(len(recv))))()
        self.config = make_env_config(max_peers=4)
        self.step_length = 0.1
        self.imposed = np.zeros(n, dtype=bool)
        self.cbr = None


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_observation_keeps_a_track_per_slot_and_a_cleared_slot_starts_again(backend):
    from roadsense_marl.env import kernels
    from roadsense_marl.env.observations import EGO_DIM, EGO_INDEX, EGO_TABLE, DeepSetObservation

    if backend == "numba" and not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    obs_fn = DeepSetObservation(backend)
    obs_fn.reset(3)
    x, speed, slots = [0.0, 20.0, 45.0], [10.0, 10.0, 10.0], [2, 0, 1]
    obs, extras = obs_fn(_Line(x, speed, slots))
    assert obs["ego"].shape == (3, EGO_DIM)
    np.testing.assert_allclose(extras["ahead_distance"][:2], [20.0, 25.0], atol=1e-4)  # rows 0 and 1
    assert extras["ahead_sender"].tolist() == [0, 1, -1]  # the slots of the cars ahead
    col = obs["ego"][:, EGO_INDEX["ahead_distance"]] * EGO_TABLE[EGO_INDEX["ahead_distance"]].scale
    np.testing.assert_allclose(col, extras["ahead_distance"], rtol=1e-6)
    # every message now reads 4 m too far: tracked slots move a little, a cleared one starts at 24 m
    obs_fn.clear(np.array([2]))  # row 0's slot
    _, extras = obs_fn(_Line(x, speed, slots, offset=4.0))
    d = extras["ahead_distance"]
    assert d[0] == pytest.approx(24.0, abs=1e-4)
    assert d[1] == pytest.approx(25.0 + (1.0 - np.exp(-0.1 / 1.0)) * 4.0, abs=1e-4)  # filtered, 1 s time constant
