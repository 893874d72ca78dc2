"""Compiled (numba) twins of the shipped observation and reward, one fused loop each.

The NumPy functions :func:`roadsense_marl.env.observations.build_observations`,
:func:`roadsense_marl.env.observations.track_nearest_ahead` and
:func:`roadsense_marl.env.rewards.compute_rewards` stay the reference: these kernels compute
the same arithmetic in the same order, and ``tests/unit/test_env_kernels.py`` pins them equal
(rewards bit for bit; observations bit for bit on the tested inputs, where both use the same
libm sin/cos/atan2). Why: at N = 10 vehicles the two NumPy functions cost about 60 such small
array operations per step, more than SUMO's own step; one compiled loop each costs a few
microseconds.

``numba.njit(cache=True)``: the first use after a fresh install compiles and stores the
machine code next to this file (``__pycache__``), so worker processes and later runs load it.
Without numba the NumPy path is used (``backend="numpy"``).
"""

from __future__ import annotations

import math

import numpy as np

try:  # numba is a declared dependency; the NumPy path still works without it
    import numba

    AVAILABLE = True
except ImportError:  # pragma: no cover - only without numba
    numba = None
    AVAILABLE = False

BACKENDS = ("auto", "numba", "numpy")


def _njit(f):
    return numba.njit(cache=True, nogil=True)(f) if AVAILABLE else f


def resolve_backend(backend: str) -> bool:
    """True when the compiled kernels are used for ``backend`` (``auto``: when numba is installed).

    Raises ValueError for an unknown backend, or ``numba`` without numba installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "numba" and not AVAILABLE:
        raise ValueError("backend='numba' needs the numba package (pip install numba); use 'numpy' or 'auto'")
    return backend == "numba" or (backend == "auto" and AVAILABLE)


@_njit
def observe(
    x, y, speed, accel, heading, prev_signal, rx_row, rx_sender, payload, age_ms,
    max_peers, cone_deg, offset_scale, speed_scale, heading_scale, accel_scale, age_scale,
    braking_threshold, decay, ego_col, peer_col, ego, peers, mask, sender, signal, n_visible,
):  # pragma: no cover - compiled
    """Fill ``ego`` f32[n,6], ``peers`` f32[n,K,6], ``mask`` f32[n,K], ``sender`` i64[n,K] (-1 pad),
    ``signal`` f64[n], ``n_visible`` i64[n]; ``cone_deg < 0`` keeps every sender. Outputs must be
    zeroed (``sender`` filled with -1) by the caller. ``ego_col`` / ``peer_col`` (int64[6]) give the
    column of each computed value, in the order speed, accel, visible_peers, min_peer_accel,
    braking_signal, max_closing_speed / forward, left, rel_speed, rel_heading, accel, age: the
    feature table in :mod:`roadsense_marl.env.observations` owns the layout."""
    n = speed.shape[0]
    k = rx_row.shape[0]
    # messages grouped by row (counting sort; keeps the given order inside a row)
    count = np.zeros(n + 1, np.int64)
    for i in range(k):
        count[rx_row[i] + 1] += 1
    for r in range(n):
        count[r + 1] += count[r]
    order = np.empty(k, np.int64)
    fill = count[:n].copy()
    for i in range(k):
        r = rx_row[i]
        order[fill[r]] = i
        fill[r] += 1
    fwd = np.empty(k)
    left = np.empty(k)
    dist = np.empty(k)
    cand = np.empty(k, np.int64)
    for r in range(n):
        h = math.radians(heading[r])
        s, c = math.sin(h), math.cos(h)
        m = 0
        for j in range(count[r], count[r + 1]):
            i = order[j]
            dx = payload[i, 0] - x[r]
            dy = payload[i, 1] - y[r]
            f = dx * s + dy * c
            lft = -dx * c + dy * s
            fwd[i] = f
            left[i] = lft
            dist[i] = math.hypot(dx, dy)
            if cone_deg >= 0.0 and abs(math.degrees(math.atan2(lft, f))) > cone_deg:
                continue
            # insertion by (distance, sender, original index): the reference's lexsort order
            p = m
            while p > 0:
                q = cand[p - 1]
                if dist[q] > dist[i] or (dist[q] == dist[i] and (rx_sender[q] > rx_sender[i] or (rx_sender[q] == rx_sender[i] and q > i))):
                    cand[p] = q
                    p -= 1
                else:
                    break
            cand[p] = i
            m += 1
        sel = min(m, max_peers)
        min_acc = 0.0
        closing = 0.0
        braking_now = False
        for rank in range(sel):
            i = cand[rank]
            ps = payload[i, 2]
            pa = payload[i, 4]
            d = payload[i, 3] - heading[r]
            peers[r, rank, peer_col[0]] = fwd[i] / offset_scale
            peers[r, rank, peer_col[1]] = left[i] / offset_scale
            peers[r, rank, peer_col[2]] = (ps - speed[r]) / speed_scale
            peers[r, rank, peer_col[3]] = ((d + 180.0) % 360.0 - 180.0) / heading_scale
            peers[r, rank, peer_col[4]] = pa / accel_scale
            peers[r, rank, peer_col[5]] = age_ms[i] / age_scale
            mask[r, rank] = 1.0
            sender[r, rank] = rx_sender[i]
            if pa < min_acc:
                min_acc = pa
            if fwd[i] > 0.0 and speed[r] - ps > closing:
                closing = speed[r] - ps
            if pa <= braking_threshold:
                braking_now = True
        n_visible[r] = sel
        signal[r] = 1.0 if braking_now else prev_signal[r] * decay
        ego[r, ego_col[0]] = speed[r] / speed_scale
        ego[r, ego_col[1]] = accel[r] / accel_scale
        ego[r, ego_col[2]] = sel / max_peers
        ego[r, ego_col[3]] = min_acc / accel_scale
        ego[r, ego_col[4]] = signal[r]
        ego[r, ego_col[5]] = closing / speed_scale


@_njit
def rewards(
    gap, accel, speed, leader, braking_signal, imposed, w, dt, total, safety, comfort, hard_brake, ignore_warning,
    early_reaction, progress, brake_shortfall,
):  # pragma: no cover - compiled
    """Fill the seven reward components and their total (float64[n], rate x ``dt``) for agents on the road.

    ``w``: float64[15] weights in :data:`roadsense_marl.env.rewards.REWARD_WEIGHT_ORDER`; ``leader`` int64[n] row of the
    leader (-1 none); ``dt`` the step length (s). Same arithmetic, same order, as
    :func:`roadsense_marl.env.rewards.compute_rewards` (the constants are that module's).
    """
    (_collision, gap_close, gap_good, gap_far, no_leader, comfort_scale, hard_large, very_hard_large,
     ignore_w, early_w, progress_w, signal_threshold) = (w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
                                                         w[8], w[9], w[10], w[11])
    shortfall_w, shortfall_cap = w[13], w[14]
    for i in range(gap.shape[0]):
        g = gap[i]
        decel = max(0.0, -accel[i])
        chosen = not imposed[i]
        braking = decel > 0.5
        sig = braking_signal[i]
        signal_set = sig >= signal_threshold
        lead = leader[i]
        has_leader = lead >= 0
        v_lead = speed[lead] if has_leader else 0.0
        closing = speed[i] - v_lead if has_leader else 0.0
        need = closing * closing / (2.0 * max(g - 2.0 - 1.0 * speed[i], 0.1)) if closing > 0.0 else 0.0
        required = signal_set or need >= 0.5
        # safety: gap keeping
        if g < 20.0:
            r = gap_close + (gap_good - gap_close) * (min(max(g, 5.0), 20.0) - 5.0) / 15.0
        elif g <= 35.0:
            r = gap_good
        elif math.isfinite(g):
            r = gap_far if (has_leader and v_lead > 0.5) else gap_good
        else:
            r = no_leader
        # comfort: not for required braking
        if decel <= 3.0:
            pen = -2.0 * max(decel - 0.5, 0.0) / 2.5
        else:
            pen = -2.0 - 3.0 * min(decel - 3.0, 1.5) / 1.5
        scale = max(0.1, (g - 5.0) / 15.0) if g < 20.0 else 1.0
        cf = 0.0 if required else comfort_scale * pen * scale
        hb = (very_hard_large if decel >= 4.5 else hard_large) if (g > 35.0 and braking and not required) else 0.0
        ig = ignore_w * sig * (1.0 - decel / 2.5) if (signal_set and decel < 2.5 and speed[i] > 0.5 and closing > 0.0) else 0.0
        er = early_w * sig if (signal_set and braking and g > 15.0) else 0.0
        allowed = min(speed[i], v_lead) if (has_leader and g <= 35.0) else speed[i]
        r = r * dt
        cf = cf * dt
        hb = hb * dt
        ig = ig * dt
        er = er * dt
        pr = progress_w * allowed / 30.0 * dt
        sf = shortfall_w * min(max(need - decel, 0.0), shortfall_cap) * dt
        if not chosen:
            cf = 0.0
            hb = 0.0
            ig = 0.0
            er = 0.0
            sf = 0.0
        safety[i] = r
        comfort[i] = cf
        hard_brake[i] = hb
        ignore_warning[i] = ig
        early_reaction[i] = er
        progress[i] = pr
        brake_shortfall[i] = sf
        total[i] = 0 + r + cf + hb + ig + er + pr + sf


@_njit
def interpolate_states(
    x0, y0, speed0, heading0, accel0, x1, y1, speed1, heading1, accel1, row0, row1, w, out,
):  # pragma: no cover - compiled
    """Fill ``out`` f64[m, 5] (x, y, speed, heading_deg, accel) with each beacon's sender state
    interpolated between two SUMO states: row ``row0[j]`` of the earlier arrays and ``row1[j]`` of
    the later ones, at weight ``w[j]`` in [0, 1]. Linear, the heading along the shorter arc and
    wrapped to [0, 360): the compiled twin of :func:`roadsense_marl.env.core.interpolate_states`."""
    for j in range(row0.shape[0]):
        a = row0[j]
        b = row1[j]
        wj = w[j]
        out[j, 0] = x0[a] + wj * (x1[b] - x0[a])
        out[j, 1] = y0[a] + wj * (y1[b] - y0[a])
        out[j, 2] = speed0[a] + wj * (speed1[b] - speed0[a])
        d = (heading1[b] - heading0[a] + 180.0) % 360.0 - 180.0
        out[j, 3] = (heading0[a] + wj * d) % 360.0
        out[j, 4] = accel0[a] + wj * (accel1[b] - accel0[a])


@_njit
def track_ahead(
    peers, mask, peer_sender, speed, prev_distance, prev_closing, prev_sender, step_length, keep,
    fwd_col, rel_col, age_col, offset_scale, speed_scale, age_s_scale, no_peer_m, nominal_length,
    stop_margin, headway_s, decel_cap, distance, closing, need, sender,
):  # pragma: no cover - compiled
    """Fill ``distance``, ``closing``, ``need`` (f64[n]) and ``sender`` (i64[n]): the twin of
    :func:`roadsense_marl.env.observations.track_nearest_ahead` (the same arithmetic in the same
    order; ``keep`` = exp(-step_length / time constant), ``age_s_scale`` = the age scale in s)."""
    n, k = mask.shape
    for r in range(n):
        best = math.inf
        j = -1
        for c in range(k):
            f = np.float64(peers[r, c, fwd_col]) * offset_scale
            if mask[r, c] > 0 and f > 0.0 and f < best:
                best = f
                j = c
        if j >= 0:
            rel = np.float64(peers[r, j, rel_col]) * speed_scale
            age = np.float64(peers[r, j, age_col]) * age_s_scale
            z_d = best + (speed[r] + rel) * age
            z_c = -rel
            s = peer_sender[r, j]
        else:
            z_d = no_peer_m
            z_c = 0.0
            s = -1
        if j >= 0 and prev_sender[r] == s:
            predicted = prev_distance[r] - prev_closing[r] * step_length
            d = predicted + (1.0 - keep) * (z_d - predicted)
            cl = keep * prev_closing[r] + (1.0 - keep) * z_c
        else:
            d = z_d
            cl = z_c
        req = 0.0
        if cl > 0.0:
            req = cl * cl / (2.0 * max(d - nominal_length - stop_margin - headway_s * speed[r], 0.1))
        distance[r] = d
        closing[r] = cl
        need[r] = min(req, decel_cap)
        sender[r] = s
