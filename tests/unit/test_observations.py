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
    """float32[n, K, 6] peer tables and mask from per-agent lists of (forward m, rel_speed m/s)."""
    from roadsense_marl.env.observations import OFFSET_SCALE, PEER_INDEX, SPEED_SCALE

    k = max(1, max(len(r) for r in rows))
    peers = np.zeros((len(rows), k, 6), dtype=np.float32)
    mask = np.zeros((len(rows), k), dtype=np.float32)
    for i, r in enumerate(rows):
        for j, (fwd, rel) in enumerate(r):
            peers[i, j, PEER_INDEX["forward"]] = fwd / OFFSET_SCALE
            peers[i, j, PEER_INDEX["rel_speed"]] = rel / SPEED_SCALE
            mask[i, j] = 1.0
    return peers, mask


def test_a_new_track_starts_at_the_nearest_peer_ahead_and_none_ahead_reads_the_radio_range():
    from roadsense_marl.env.observations import TRACK_NO_PEER_M, track_nearest_ahead

    # agent 0: peers 30 m and 12 m ahead and one 5 m behind -> the one 12 m ahead, 1.5 m/s slower
    peers, mask = _table([[(30.0, 0.0), (-5.0, 3.0), (12.0, -1.5)], [(-8.0, 1.0)], []])
    d, c, need = track_nearest_ahead(peers, mask, np.array([10.0, 10.0, 10.0]), np.zeros(3), np.zeros(3),
                                     np.zeros(3, dtype=bool), 0.1)
    np.testing.assert_allclose(d, [12.0, TRACK_NO_PEER_M, TRACK_NO_PEER_M], rtol=1e-6)
    np.testing.assert_allclose(c, [1.5, 0.0, 0.0], rtol=1e-6)
    assert need[0] > 0.0 and (need[1:] == 0.0).all()


def test_the_track_averages_out_message_noise_and_follows_a_steady_closing():
    """A car closing at 0.5 m/s on a car 20 m ahead, every message with 3 m position and 0.43 m/s
    speed noise (the measured radio): after 10 s the track is within 1 m and 0.15 m/s."""
    from roadsense_marl.env.observations import track_nearest_ahead

    rng = np.random.default_rng(0)
    n, dt, true_c = 200, 0.1, 0.5  # 200 independent agents, the same situation
    d = c = np.zeros(n)
    tracked = np.zeros(n, dtype=bool)
    true_d = 20.0
    for _ in range(100):
        true_d -= true_c * dt
        peers, mask = _table([[(true_d + rng.normal(0, 3.0), -true_c + rng.normal(0, 0.43))] for _ in range(n)])
        d, c, _ = track_nearest_ahead(peers, mask, np.full(n, 8.0), d, c, tracked, dt)
        tracked = np.ones(n, dtype=bool)
    assert abs(np.median(d) - true_d) < 1.0 and np.percentile(np.abs(d - true_d), 90) < 2.5
    assert abs(np.median(c) - true_c) < 0.05 and np.percentile(np.abs(c - true_c), 90) < 0.25


def test_the_tracked_required_deceleration_is_the_rewards_formula_on_the_tracked_gap():
    from roadsense_marl.env.observations import NOMINAL_LENGTH_M, REQUIRED_DECEL_CAP, track_nearest_ahead
    from roadsense_marl.env.rewards import required_decel

    peers, mask = _table([[(40.0, -4.0)], [(6.0, -6.0)]])
    speed = np.array([16.0, 16.0])
    d, c, need = track_nearest_ahead(peers, mask, speed, np.zeros(2), np.zeros(2), np.zeros(2, dtype=bool), 0.1)
    assert need[0] == pytest.approx(required_decel(np.array([40.0 - NOMINAL_LENGTH_M]), np.array([4.0]), speed[:1])[0])
    assert need[1] == REQUIRED_DECEL_CAP  # 1 m left at 6 m/s closing: far beyond the cap
