"""Compiled (numba) twins of the radio's hot NumPy phases, bit-identical to them.

Why, from measurement (thread CPU time per 100 ms step, 100 vehicles all in range, 9,900 links,
measured radio, 2 cores shared with other work): the NumPy path spends its time in ~70 array
passes per step, each re-reading memory, 1.3-1.6 ms; one fused pass per phase gives 0.47 ms, of
which the random draws (NumPy, shared by both paths) are ~0.1 ms. The NumPy phases in
:mod:`roadsense_marl.espnow.radio` stay the reference: the same random numbers (drawn by NumPy
outside the kernels, :func:`~roadsense_marl.espnow.core.draw_link_randomness`) go into the same
scalar formulas in the same order, so both paths give the same bits (pinned by
``tests/unit/test_espnow_kernels.py``).

Kernels are compiled on first use with ``cache=True`` (on-disk cache next to this file, so worker
processes and later runs load them instead of recompiling). Without numba installed,
:data:`AVAILABLE` is False and the radio uses its NumPy path.
"""

from __future__ import annotations

import math

import numpy as np

try:  # numba is a declared dependency; the NumPy path still works without it
    import numba

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only in environments without numba
    numba = None
    AVAILABLE = False

__all__ = ["AVAILABLE", "MODEL_FIELDS", "beacon_grid", "channel_access", "channel_cbr", "channel_collisions", "deliver", "dense_links", "grid_links", "model_array", "noisy_frames", "resolve_enqueue",
           "select_rows"]


U32 = 2.0 ** -32  # as core._U32


def _jit(f):
    return numba.njit(cache=True, nogil=True)(f) if AVAILABLE else f


@_jit
def noisy_frames(payload, order, z_noise, stds, speed_col, heading_col, out):  # pragma: no cover - compiled
    """``out[order[i]] = payload[order[i]] + z_noise[i] * stds``, speed (column ``speed_col``, -1:
    none) clamped at 0, heading (``heading_col``) wrapped to [0, 360): as ``core.apply_sensor_noise``
    applied to the senders in slot order ``order``."""
    f = payload.shape[1]
    for i in range(order.shape[0]):
        row = order[i]
        for j in range(f):
            v = payload[row, j] + z_noise[i, j] * stds[j]
            if j == speed_col:
                v = np.maximum(v, 0.0)
            elif j == heading_col:
                v = np.mod(v, 360.0)
                if v >= 360.0:
                    v = 0.0
            out[row, j] = v


@_jit
def dense_links(rxy, sxy, r_slots, s_slots, range_m, index, capacity, si, lid):  # pragma: no cover - compiled
    """In-range links of strictly increasing receiver and sender slots, canonical order.

    Returns ``(r_slot, s_slot, dist, n_new)``: receiver and sender slots, distance
    ``sqrt(dx*dx + dy*dy)`` (as the dense NumPy cull) and how many links are new; writes the sender
    input index to ``si[:n]`` and the link row from ``index`` (flat ``[receiver * capacity +
    sender]`` -> row + 1) to ``lid[:n]`` (-1 where the link is new): reused internal buffers of at
    least ``len(r_slots) * len(s_slots)``. Self-pairs (same slot) are no links.
    """
    nr, ns = rxy.shape[0], sxy.shape[0]
    finite = math.isfinite(range_m)
    r2 = range_m * range_m
    n = 0  # first pass: count (exact-size outputs box faster than views of larger buffers)
    for i in range(nr):
        rx, ry, rslot = rxy[i, 0], rxy[i, 1], r_slots[i]
        for j in range(ns):
            dx = rx - sxy[j, 0]
            dy = ry - sxy[j, 1]
            if s_slots[j] != rslot and (not finite or dx * dx + dy * dy < r2):
                n += 1
    r_out = np.empty(n, np.int64)
    s_out = np.empty(n, np.int64)
    dist = np.empty(n, np.float64)
    k = 0
    n_new = 0
    for i in range(nr):
        rx, ry, rslot = rxy[i, 0], rxy[i, 1], r_slots[i]
        for j in range(ns):
            if s_slots[j] == rslot:
                continue
            dx = rx - sxy[j, 0]
            dy = ry - sxy[j, 1]
            d2 = dx * dx + dy * dy
            if finite and not d2 < r2:
                continue
            r_out[k] = rslot
            s_out[k] = s_slots[j]
            si[k] = j
            dist[k] = math.sqrt(d2)
            row = np.int64(index[rslot * capacity + s_slots[j]]) - 1
            lid[k] = row
            if row < 0:
                n_new += 1
            k += 1
    return r_out, s_out, dist, n_new


@_jit
def grid_links(rxy, sxy, r_slots, s_slots, range_m, index, capacity):  # pragma: no cover - compiled
    """:func:`dense_links` for many vehicles: senders bucketed in square cells of ``range_m``, each
    receiver checks the 3 x 3 cells around its own, so out-of-range pairs cost almost nothing.
    Same links, same order, same distances as the dense cull (``range_m`` finite).

    Returns ``(r_slot, s_slot, si, dist, lid, n_new)`` (fresh arrays).
    """
    nr, ns = rxy.shape[0], sxy.shape[0]
    r2 = range_m * range_m
    lo_x, lo_y = np.inf, np.inf
    for i in range(nr):
        lo_x, lo_y = min(lo_x, rxy[i, 0]), min(lo_y, rxy[i, 1])
    for j in range(ns):
        lo_x, lo_y = min(lo_x, sxy[j, 0]), min(lo_y, sxy[j, 1])
    scx = np.empty(ns, np.int64)
    scy = np.empty(ns, np.int64)
    max_cy = 0
    for j in range(ns):
        scx[j] = np.int64(math.floor((sxy[j, 0] - lo_x) / range_m))
        scy[j] = np.int64(math.floor((sxy[j, 1] - lo_y) / range_m))
        max_cy = max(max_cy, scy[j])
    ny = max_cy + 3  # cells shifted by +1 so every neighbour index is >= 0
    skey = (scx + 1) * ny + (scy + 1)
    order = np.argsort(skey)
    keys = skey[order]
    size = max(16, 8 * nr)
    r_out = np.empty(size, np.int64)
    s_out = np.empty(size, np.int64)
    si = np.empty(size, np.int64)
    dist = np.empty(size, np.float64)
    lid = np.empty(size, np.int64)
    cand = np.empty(ns, np.int64)
    cand_d = np.empty(ns, np.float64)
    n = 0
    n_new = 0
    for i in range(nr):
        rx, ry, rslot = rxy[i, 0], rxy[i, 1], r_slots[i]
        cx = np.int64(math.floor((rx - lo_x) / range_m)) + 1
        cy = np.int64(math.floor((ry - lo_y) / range_m)) + 1
        c = 0
        for ox in range(-1, 2):
            for oy in range(-1, 2):
                ky = cy + oy
                if ky < 0 or ky >= ny:
                    continue
                key = (cx + ox) * ny + ky
                a = np.searchsorted(keys, key)
                b = np.searchsorted(keys, key, side="right")
                for q in range(a, b):
                    j = order[q]
                    if s_slots[j] == rslot:
                        continue
                    dx = rx - sxy[j, 0]
                    dy = ry - sxy[j, 1]
                    d2 = dx * dx + dy * dy
                    if d2 < r2:
                        cand[c] = j
                        cand_d[c] = math.sqrt(d2)
                        c += 1
        # by sender index: the canonical (receiver, sender) order
        if c > 32:
            o = np.argsort(cand[:c])
            cand[:c] = cand[:c][o]
            cand_d[:c] = cand_d[:c][o]
        else:  # insertion sort: cheapest for the few neighbours of sparse traffic
            for a in range(1, c):
                j, dj = cand[a], cand_d[a]
                p = a
                while p > 0 and cand[p - 1] > j:
                    cand[p] = cand[p - 1]
                    cand_d[p] = cand_d[p - 1]
                    p -= 1
                cand[p] = j
                cand_d[p] = dj
        if n + c > size:
            size = max(2 * size, n + c)
            r_out = _grown(r_out, size, n)
            s_out = _grown(s_out, size, n)
            si = _grown(si, size, n)
            dist = _grown(dist, size, n)
            lid = _grown(lid, size, n)
        for k in range(c):
            j = cand[k]
            r_out[n] = rslot
            s_out[n] = s_slots[j]
            si[n] = j
            dist[n] = cand_d[k]
            row = np.int64(index[rslot * capacity + s_slots[j]]) - 1
            lid[n] = row
            if row < 0:
                n_new += 1
            n += 1
    return r_out[:n].copy(), s_out[:n].copy(), si[:n].copy(), dist[:n].copy(), lid[:n].copy(), n_new


@_jit
def _grown(a, size, n):  # pragma: no cover - compiled
    out = np.empty(size, a.dtype)
    out[:n] = a[:n]
    return out


#: Order of the scalars in the ``model`` array of :func:`resolve_enqueue` (see :func:`model_array`).
MODEL_FIELDS = (
    "uses_bins", "loss_base_rate", "loss_threshold_1_m", "loss_threshold_2_m", "loss_rate_tier_2",
    "loss_rate_tier_3", "burst_enabled", "burst_continue", "burst_max_loss_cap", "burst_loss_multiplier",
    "latency_base_ms", "latency_distance_factor", "latency_jitter_std_ms", "staleness_threshold_ms",
)


def model_array(params) -> np.ndarray:
    """The episode's loss/latency scalars as one float64 array in :data:`MODEL_FIELDS` order
    (one kernel argument instead of fourteen; booleans as 0/1)."""
    c = 1.0 - 1.0 / params.burst_mean_length if params.burst_enabled else 0.0
    return np.array([
        float(params.uses_bins), params.loss_base_rate, params.loss_threshold_1_m, params.loss_threshold_2_m,
        params.loss_rate_tier_2, params.loss_rate_tier_3, float(params.burst_enabled), c,
        params.burst_max_loss_cap, params.burst_loss_multiplier, params.latency_base_ms,
        params.latency_distance_factor, params.latency_jitter_std_ms, params.staleness_threshold_ms,
    ], dtype=np.float64)


@_jit
def resolve_enqueue(  # pragma: no cover - compiled
    dist, lid, raw, z_latency, model, bin_lo, bin_rate, burst, t, t_sender, si, frame0,
    p_lid, p_arr, p_frame, m, blocked, defer,
):
    """Loss, burst and latency of every link (as ``core.resolve_links``, the uniforms split from
    ``raw`` as ``core.LinkDraws`` does; scalars in ``model``, see
    :data:`MODEL_FIELDS`), burst state written back, and the delivered copies that can still
    become visible appended to the in-flight arrays at ``m`` (capacity reserved by the caller),
    each pointing at its sender's frame ``frame0 + si``, arriving at send time + latency: the send
    time is ``t_sender[si]`` when ``t_sender`` is non-empty (one time per sender), else ``t``.
    The shared channel (both empty when it is off): ``blocked`` ``(n,)`` links lost to the channel
    (lost whatever the link model draws; the burst state follows the link model's draw), ``defer``
    ``(S,)`` each sender's channel-access delay (ms), added to the latency of its copies.
    Returns ``(delivered, latency_ms (NaN if lost), m, earliest arrival appended)``.
    """
    uses_bins = model[0] != 0.0
    base, t1, t2, rate2, rate3 = model[1], model[2], model[3], model[4], model[5]
    burst_enabled, burst_continue, max_loss_cap, loss_multiplier = model[6] != 0.0, model[7], model[8], model[9]
    lat_base, lat_factor, jitter, staleness = model[10], model[11], model[12], model[13]
    n = dist.shape[0]
    delivered = np.empty(n, np.bool_)
    latency = np.empty(n, np.float64)
    nb = bin_lo.shape[0]
    first = np.inf
    per_sender = t_sender.shape[0] > 0
    has_block = blocked.shape[0] > 0
    has_defer = defer.shape[0] > 0
    for k in range(n):
        d = dist[k]
        if uses_bins:
            idx = 0
            for b in range(1, nb):
                if bin_lo[b] <= d:
                    idx = b
            p = bin_rate[idx]
        elif d < t1:
            p = base
        elif d < t2:
            frac = (d - t1) / (t2 - t1)
            frac = min(max(frac, 0.0), 1.0)
            p = base + frac * (rate2 - base)
        else:
            p = rate3
        row = lid[k]
        w = raw[k]
        if burst_enabled and burst[row] and np.float64(w & np.uint64(0xFFFFFFFF)) * U32 < burst_continue:
            p = max(p, min(max_loss_cap, p * loss_multiplier))
        lost = np.float64(w >> np.uint64(32)) * U32 < p
        burst[row] = lost
        lat = lat_base + lat_factor * d + jitter * z_latency[k]
        lat = max(lat, 1.0)
        if has_block and blocked[k]:
            lost = True
        delivered[k] = not lost
        if lost:
            latency[k] = np.nan
            continue
        if has_defer:
            lat = lat + defer[si[k]]
        latency[k] = lat
        if not lat < staleness:  # stale on arrival: can never become visible
            continue
        arr = (t_sender[si[k]] if per_sender else t) + lat
        p_lid[m] = row
        p_arr[m] = arr
        p_frame[m] = frame0 + si[k]
        first = min(first, arr)
        m += 1
    return delivered, latency, m, first


@_jit
def deliver(  # pragma: no cover - compiled
    now, p_lid, p_arr, p_frame, m, f_ts, f_seq,
    t_has, t_ts, t_seq, t_arr, t_frame,
):
    """Move every in-flight copy with arrival <= ``now`` into its link's table entry if its frame
    was sent later (send time, then frame sequence) than the entry's; keep the rest in order,
    dropping those older than their link's (updated) entry. Send time and sequence come from the
    copy's frame; the entry keeps the frame row. Returns ``(m, earliest arrival kept)``."""
    for i in range(m):
        if p_arr[i] <= now:
            row = p_lid[i]
            fr = p_frame[i]
            ts, seq = f_ts[fr], f_seq[fr]
            if (not t_has[row]) or ts > t_ts[row] or (ts == t_ts[row] and seq > t_seq[row]):
                t_has[row] = True
                t_ts[row] = ts
                t_seq[row] = seq
                t_arr[row] = p_arr[i]
                t_frame[row] = fr
    out = 0
    first = np.inf
    for i in range(m):
        if p_arr[i] <= now:
            continue
        row = p_lid[i]
        fr = p_frame[i]
        ts, seq = f_ts[fr], f_seq[fr]
        if t_has[row] and (ts < t_ts[row] or (ts == t_ts[row] and seq < t_seq[row])):
            continue
        if out != i:
            p_lid[out] = row
            p_arr[out] = p_arr[i]
            p_frame[out] = fr
        first = min(first, p_arr[out])
        out += 1
    return out, first


@_jit
def select_rows(now, staleness, req, l_recv, l_send, t_has, t_ts, t_arr, t_frame, f_pay, f_mid, n):  # pragma: no cover
    """Receive-table rows ``< n`` held for a requested receiver and not stale (``now - ts <
    staleness``), in row order, as fresh arrays ``(receiver, sender, payload, ts, age, arrival, id)``;
    payload and id read from each entry's frame."""
    f = f_pay.shape[1]
    keep = np.empty(n, np.bool_)
    count = 0
    for i in range(n):
        ok = t_has[i] and req[l_recv[i]] and now - t_ts[i] < staleness
        keep[i] = ok
        count += ok
    recv = np.empty(count, np.int64)
    send = np.empty(count, np.int64)
    pay = np.empty((count, f), np.float64)
    ts = np.empty(count, np.float64)
    age = np.empty(count, np.float64)
    arr = np.empty(count, np.float64)
    mid = np.empty(count, np.int64)
    k = 0
    for i in range(n):
        if keep[i]:
            fr = t_frame[i]
            recv[k] = l_recv[i]
            send[k] = l_send[i]
            for j in range(f):
                pay[k, j] = f_pay[fr, j]
            ts[k] = t_ts[i]
            age[k] = now - t_ts[i]
            arr[k] = t_arr[i]
            mid[k] = f_mid[fr]
            k += 1
    return recv, send, pay, ts, age, arr, mid


# ---- the shared channel (NumPy reference: roadsense_marl.espnow.channel) --------------------------

@_jit
def _heap_less(hk, hs, a, b):  # pragma: no cover - compiled
    return hk[a] < hk[b] or (hk[a] == hk[b] and hs[a] < hs[b])


@_jit
def _heap_push(hk, hs, hi, size, key, slot, idx):  # pragma: no cover - compiled
    hk[size], hs[size], hi[size] = key, slot, idx
    c = size
    while c > 0:
        par = (c - 1) // 2
        if _heap_less(hk, hs, c, par):
            hk[c], hk[par] = hk[par], hk[c]
            hs[c], hs[par] = hs[par], hs[c]
            hi[c], hi[par] = hi[par], hi[c]
            c = par
        else:
            break
    return size + 1


@_jit
def _heap_pop(hk, hs, hi, size):  # pragma: no cover - compiled
    key, slot, idx = hk[0], hs[0], hi[0]
    size -= 1
    hk[0], hs[0], hi[0] = hk[size], hs[size], hi[size]
    c = 0
    while True:
        a, b, m = 2 * c + 1, 2 * c + 2, c
        if a < size and _heap_less(hk, hs, a, m):
            m = a
        if b < size and _heap_less(hk, hs, b, m):
            m = b
        if m == c:
            break
        hk[c], hk[m] = hk[m], hk[c]
        hs[c], hs[m] = hs[m], hs[c]
        hi[c], hi[m] = hi[m], hi[c]
        c = m
    return key, slot, idx, size


@_jit
def channel_access(t_acc, sx, sy, s_slot, backoff, f_start, f_end, f_x, f_y, f_slot,  # pragma: no cover - compiled
                   air, cs, slot, difs, max_delay):
    """Compiled twin of :func:`roadsense_marl.espnow.channel.access_reference` (same arguments, the
    constants spelled out): start time of each frame (NaN: dropped).

    Only frames that can be on the air at a candidate time are looked at: every frame lasts
    ``air``, so a frame busy at ``cand`` started in ``(cand - air - difs, cand - slot]``. Stored
    frames are sorted by start and this call's frames are committed in start order (events are
    taken in time order), so each event scans back from ``cand`` over those few frames only and
    then tests their distance: a time cut, then the carrier-sense cut, never all pairs."""
    s = t_acc.shape[0]
    cs2 = cs * cs
    so = np.argsort(f_start, kind="mergesort")
    sst = f_start[so]
    start = np.full(s, np.nan)
    c_idx = np.empty(s, np.int64)  # committed call frames, in start order
    n_c = 0
    rem = backoff.astype(np.int64).copy()
    deferred = np.zeros(s, np.bool_)
    cd = np.zeros(s)
    hk = np.empty(s)
    hs = np.empty(s, np.int64)
    hi = np.empty(s, np.int64)
    size = 0
    margin = 1e-9 * (1.0 + air + difs)
    for i in range(s):
        size = _heap_push(hk, hs, hi, size, t_acc[i], s_slot[i], i)
    while size > 0:
        cand, sl, i, size = _heap_pop(hk, hs, hi, size)
        x0, y0 = sx[i], sy[i]
        lim = cand - air - difs - margin * (1.0 + abs(cand))  # started at or before: idle for DIFS by cand
        busy_end = -np.inf
        first = np.inf
        q = np.searchsorted(sst, cand, side="right") - 1
        while q >= 0 and sst[q] > lim:
            j = so[q]
            q -= 1
            dx, dy = f_x[j] - x0, f_y[j] - y0
            if (dx * dx + dy * dy < cs2 or f_slot[j] == sl) and f_start[j] + slot <= cand and cand < f_end[j] + difs:
                busy_end = max(busy_end, f_end[j] + difs)
                first = min(first, f_start[j])
        q = n_c - 1
        while q >= 0 and start[c_idx[q]] > lim:
            j = c_idx[q]
            q -= 1
            dx, dy = sx[j] - x0, sy[j] - y0
            st = start[j]
            if dx * dx + dy * dy < cs2 and st + slot <= cand and cand < (st + air) + difs:
                busy_end = max(busy_end, (st + air) + difs)
                first = min(first, st)
        if busy_end == -np.inf:
            start[i] = cand
            c_idx[n_c] = i
            n_c += 1
            continue
        if deferred[i]:
            elapsed = math.floor((first + slot - cd[i]) / slot)
            rem[i] = max(0, rem[i] - max(0, elapsed))
        deferred[i] = True
        cd[i] = busy_end
        nxt = busy_end + float(rem[i]) * slot
        if nxt - t_acc[i] > max_delay:
            continue
        size = _heap_push(hk, hs, hi, size, nxt, sl, i)
    return start


@_jit
def channel_collisions(start, sx, sy, s_slot, f_start, f_end, f_x, f_y, f_slot, si, r_slot, pos,  # pragma: no cover
                       air, cs):
    """Compiled twin of :func:`roadsense_marl.espnow.channel.collisions_reference`: per link, lost
    to the channel. Overlapping frames are found by a search in start-sorted frames (every frame
    lasts ``air``), then tested against each receiver of the frame."""
    s = start.shape[0]
    p = f_start.shape[0]
    g = p + s
    cs2 = cs * cs
    gst = np.empty(g)
    gen = np.empty(g)
    for q in range(p):
        gst[q], gen[q] = f_start[q], f_end[q]
    for i in range(s):
        gst[p + i] = start[i]
        gen[p + i] = start[i] + air
    key = np.empty(g)
    for q in range(g):
        key[q] = np.inf if math.isnan(gst[q]) else gst[q]
    to = np.argsort(key, kind="mergesort")
    ks = key[to]
    # overlapping frames of each call frame, CSR
    cnt = np.zeros(s + 1, np.int64)
    lo_i = np.empty(s, np.int64)
    hi_i = np.empty(s, np.int64)
    for i in range(s):
        if math.isnan(start[i]):
            lo_i[i] = 0
            hi_i[i] = 0
            continue
        lo_i[i] = np.searchsorted(ks, start[i] - 2.0 * air)
        hi_i[i] = np.searchsorted(ks, gen[p + i])
        c = 0
        for q in range(lo_i[i], hi_i[i]):
            j = to[q]
            if j != p + i and gst[j] < gen[p + i] and start[i] < gen[j]:
                c += 1
        cnt[i + 1] = cnt[i] + c
    ov = np.empty(cnt[s], np.int64)
    for i in range(s):
        c = cnt[i]
        for q in range(lo_i[i], hi_i[i]):
            j = to[q]
            if j != p + i and gst[j] < gen[p + i] and start[i] < gen[j]:
                ov[c] = j
                c += 1
    n = si.shape[0]
    out = np.zeros(n, np.bool_)
    for k in range(n):
        i = si[k]
        if math.isnan(start[i]):
            out[k] = True
            continue
        r = r_slot[k]
        rx, ry = pos[r, 0], pos[r, 1]
        for q in range(cnt[i], cnt[i + 1]):
            j = ov[q]
            if j < p:
                hx, hy, hsl = f_x[j], f_y[j], f_slot[j]
            else:
                hx, hy, hsl = sx[j - p], sy[j - p], s_slot[j - p]
            dx, dy = hx - rx, hy - ry
            if dx * dx + dy * dy < cs2 or hsl == r:
                out[k] = True
                break
    return out


@_jit
def channel_cbr(now, window, r_slots, pos, f_start, f_end, f_x, f_y, f_slot, cs):  # pragma: no cover - compiled
    """Compiled twin of :func:`roadsense_marl.espnow.channel.cbr_reference`: frames in the window
    sorted by x, each receiver sums the overlaps (whole ns, so the order does not matter) of the
    frames it hears in its ``|dx| <= cs`` strip, plus its own frames sent from outside the strip."""
    lo = now - window
    nf = f_start.shape[0]
    cs2 = cs * cs
    idx = np.empty(nf, np.int64)
    ovl = np.empty(nf, np.int64)
    m = 0
    for j in range(nf):
        o = min(f_end[j], now) - max(f_start[j], lo)
        if o > 0.0:
            idx[m] = j
            ovl[m] = np.int64(np.rint(o * 1e6))
            m += 1
    xk = np.empty(m)
    sk = np.empty(m, np.int64)
    for q in range(m):
        xk[q] = f_x[idx[q]]
        sk[q] = f_slot[idx[q]]
    xo = np.argsort(xk, kind="mergesort")
    xs = xk[xo]
    own_order = np.argsort(sk, kind="mergesort")
    own_keys = sk[own_order]
    r = r_slots.shape[0]
    out = np.zeros(r)
    w_ns = window * 1e6
    for a in range(r):
        sl = r_slots[a]
        rx, ry = pos[sl, 0], pos[sl, 1]
        lo_q = np.searchsorted(xs, rx - cs)
        hi_q = np.searchsorted(xs, rx + cs, side="right")
        busy = np.int64(0)
        for q in range(lo_q, hi_q):
            k = xo[q]
            j = idx[k]
            dx, dy = f_x[j] - rx, f_y[j] - ry
            if dx * dx + dy * dy < cs2 or f_slot[j] == sl:
                busy += ovl[k]
        u = np.searchsorted(own_keys, sl)  # own frames sent from outside the strip (it moved far)
        while u < m and own_keys[u] == sl:
            k = own_order[u]
            u += 1
            if not (rx - cs <= xk[k] <= rx + cs):
                busy += ovl[k]
        out[a] = min(busy / w_ns, 1.0)
    return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@_jit
def _jitter(key, g, jmax):  # pragma: no cover - compiled
    """As :func:`~roadsense_marl.espnow.core.beacon_jitter` for one beacon of grid time ``g`` (ms)
    (SplitMix64 of the grid time in whole microseconds, uint64 wrap)."""
    z = key + np.uint64(np.int64(math.floor(g * 1000.0 + 0.5))) * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (jmax * 2.0 ** -53)


@_jit
def beacon_grid(ph, per, keys, jmax, lo, hi, start, slots):  # pragma: no cover - compiled
    """Every beacon time ``ph[i] + k * per[i] (+ jitter)`` in ``(lo, hi]`` with grid time >= ``start[i]``:
    ``(positions, times)`` sorted by (time, slot), as :meth:`Radio.beacon_times`' NumPy path lists them
    (candidates from ``floor((lo - jmax - ph) / per)``; ``jmax`` 0: no jitter, ``keys`` unused)."""
    r = ph.shape[0]
    cap = 0
    for i in range(r):
        cap += int(math.floor((hi - ph[i]) / per[i]) - math.floor((lo - jmax - ph[i]) / per[i])) + 2
    idx = np.empty(cap, np.int64)
    t = np.empty(cap)
    m = 0
    for i in range(r):
        k0 = math.floor((lo - jmax - ph[i]) / per[i])
        k1 = math.floor((hi - ph[i]) / per[i]) + 1.0
        k = k0
        while k <= k1:
            g = ph[i] + k * per[i]
            x = g + _jitter(keys[i], g, jmax) if jmax > 0.0 else g
            if x > lo and x <= hi and g >= start[i]:
                idx[m] = i
                t[m] = x
                m += 1
            k += 1.0
    idx = idx[:m]
    t = t[:m]
    o1 = np.argsort(slots[idx], kind="mergesort")
    o = o1[np.argsort(t[o1], kind="mergesort")]
    return idx[o], t[o]
