"""The shared channel: airtime, CSMA/CA channel access, collisions and the channel busy ratio (CBR).

Every vehicle shares one 2.4 GHz channel. With ``channel.enabled`` the radio adds, on top of the
measured per-link loss (which stays the noise floor), the losses that come from sharing it, in the
spirit of Veins' 802.11 MAC (unslotted CSMA/CA with DIFS and backoff, no capture) at the level of
abstraction of MOSAIC's SNS (no PHY signal model):

1. **Airtime.** A frame occupies the air for ``preamble + (payload + overhead) * 8 / rate``
   (:attr:`~roadsense_marl.espnow.RadioParams.airtime_ms`; ESP-NOW defaults 1.256 ms).
2. **Channel access (CSMA/CA, 802.11 DCF for broadcast).** A frame is ready at its access time
   (its beacon time; beacon times carry the transmit-time jitter ``channel.tx_jitter_ms``, see
   :meth:`Radio.beacon_times <roadsense_marl.espnow.Radio.beacon_times>`).
   Its sender transmits at once if it hears no frame on the air and the air has been idle for
   DIFS; otherwise it defers until the air is idle for DIFS, then counts down a backoff of
   ``U{0..cw_min}`` slots (drawn from the radio's own generator, one per frame), frozen while the
   air is busy (elapsed idle slots are kept). Broadcast frames are never acknowledged, so the
   window never doubles and nothing is retried. A sender does not sense a frame that started less
   than one slot ago (the 802.11 slot covers CCA time, turnaround and propagation): two frames
   starting within a slot of each other, or in the same backoff slot, collide. A frame not on the
   air ``max_access_delay_ms`` after its access time is dropped (the next beacon replaces it).
3. **Collisions.** A frame is lost at a receiver when any other frame the receiver hears
   (sender within ``carrier_sense_range_m``, or the receiver's own transmission: half duplex)
   overlaps it in time. No capture effect. Senders out of each other's carrier-sense range do not
   defer to each other and collide at receivers that hear both (hidden terminals).
4. **CBR.** Per receiver: the airtime of every frame it hears (own frames included) inside the
   window ``(now - cbr_window_ms, now]``, divided by the window (overlaps counted once per frame,
   capped at 1), as ETSI TS 102 687 defines the channel busy ratio over 100 ms.

Order: the channel decides first (a frame occupies the air from its start; a collided or dropped
frame is lost on that link whatever the link model draws), then the measured link model (loss,
burst, latency) applies to what survived. The measured latency is end to end with an idle channel,
so the channel-access delay (start - access time) is added to it. The link model's burst state
follows the link model's own draws only (bursts model fading, not collisions).

Beacon-rate adaptation (``channel.dcc = "reactive"``, ETSI TS 102 687 V1.2.1 reactive DCC, off
by default) lives in :class:`~roadsense_marl.espnow.Radio`'s beacon schedule, not here: it changes
when frames are sent, not what the channel does with them.

Limits: no capture, no SINR (a hidden terminal's frame is lost or not, by range alone); the
carrier-sense range is one disc; frames of an earlier :meth:`Radio.broadcast` call are not
resolved again when a later call's frame overlaps them (the later frame defers to or collides with
them; the earlier one keeps its outcome), so send beacons in time order, as the env does.

This module is the NumPy reference (plain loops in send-time order, vectorised per frame); the
compiled twins in :mod:`roadsense_marl.espnow.kernels` give the same bits (pinned by tests).
"""

from __future__ import annotations

import heapq
import math

import numpy as np

__all__ = ["ChannelConsts", "access_reference", "broadcast_delivery_probability", "cbr_reference",
           "collisions_reference"]


class ChannelConsts:
    """The channel scalars of one parameter set, in ms and m (from :class:`RadioParams`)."""

    __slots__ = ("air", "cs", "cs2", "slot", "difs", "cw", "max_delay", "window")

    def __init__(self, params) -> None:
        self.air = float(params.airtime_ms)
        self.cs = float(params.channel_carrier_sense_range_m)
        self.cs2 = self.cs * self.cs
        self.slot = params.channel_slot_us / 1000.0
        self.difs = params.channel_difs_us / 1000.0
        self.cw = int(params.channel_cw_min)
        self.max_delay = float(params.channel_max_access_delay_ms)
        self.window = float(params.channel_cbr_window_ms)


def access_reference(t_acc, sx, sy, s_slot, backoff, f_start, f_end, f_x, f_y, f_slot, c: ChannelConsts):
    """Start time (ms) of each frame of one broadcast call; NaN: dropped (not on the air within
    ``max_access_delay_ms``).

    :param t_acc: ``(S,)`` access times (ms); ``sx, sy`` ``(S,)`` sender positions (m); ``s_slot``
        ``(S,)`` sender slots; ``backoff`` ``(S,)`` int backoff slots drawn for each frame.
    :param f_start, f_end, f_x, f_y, f_slot: ``(P,)`` frames already on (or past) the air from
        earlier calls (start, end in ms, sender position, sender slot).

    Events in order of (candidate time, sender slot): at its candidate time a frame checks the air
    as its sender hears it (frames of heard senders, started at least one slot ago, not yet idle
    for DIFS); idle: it starts; busy: it waits for DIFS idle after the last heard frame, then its
    remaining backoff (elapsed idle slots of an interrupted countdown are kept).
    """
    s = len(t_acc)
    p = len(f_start)
    heard_store = ((f_x[None, :] - sx[:, None]) ** 2 + (f_y[None, :] - sy[:, None]) ** 2 < c.cs2) | (
        f_slot[None, :] == s_slot[:, None])
    heard_call = (sx[None, :] - sx[:, None]) ** 2 + (sy[None, :] - sy[:, None]) ** 2 < c.cs2
    np.fill_diagonal(heard_call, False)
    g_start = np.concatenate([f_start, np.full(s, np.nan)])
    g_end = np.concatenate([f_end, np.full(s, np.nan)])
    heard = np.concatenate([heard_store, heard_call], axis=1)  # (S, P + S)
    start = np.full(s, np.nan)
    rem = np.asarray(backoff, np.int64).copy()
    deferred = np.zeros(s, bool)
    cd = np.zeros(s)  # countdown start (ms)
    heap = [(float(t_acc[i]), int(s_slot[i]), i) for i in range(s)]
    heapq.heapify(heap)
    while heap:
        cand, sl, i = heapq.heappop(heap)
        h = heard[i]
        with np.errstate(invalid="ignore"):
            busy = h & (g_start + c.slot <= cand) & (cand < g_end + c.difs)
        if not busy.any():
            start[i] = cand
            g_start[p + i] = cand
            g_end[p + i] = cand + c.air
            continue
        busy_end = float(np.max(g_end[busy] + c.difs))
        if deferred[i]:
            first = float(np.min(g_start[busy]))
            elapsed = math.floor((first + c.slot - cd[i]) / c.slot)
            rem[i] = max(0, rem[i] - max(0, elapsed))
        deferred[i] = True
        cd[i] = busy_end
        nxt = busy_end + float(rem[i]) * c.slot
        if nxt - t_acc[i] > c.max_delay:
            continue  # dropped: still waiting when the next beacon is due
        heapq.heappush(heap, (nxt, sl, i))
    return start


def collisions_reference(start, sx, sy, s_slot, f_start, f_end, f_x, f_y, f_slot, si, r_slot, pos, c: ChannelConsts):
    """bool ``(n,)``: link ``k`` (frame of call sender ``si[k]`` at receiver slot ``r_slot[k]``,
    position ``pos[r_slot[k]]``) lost to the channel: its frame was dropped, or another frame the
    receiver hears (sender within carrier-sense range, or the receiver's own) overlaps it in time."""
    s = len(start)
    end = start + c.air
    g_start = np.concatenate([f_start, start])
    g_end = np.concatenate([f_end, end])
    g_x, g_y = np.concatenate([f_x, sx]), np.concatenate([f_y, sy])
    g_slot = np.concatenate([f_slot, s_slot])
    p = len(f_start)
    out = np.zeros(len(si), bool)
    order = np.argsort(si, kind="stable")
    bounds = np.searchsorted(si[order], np.arange(s + 1))
    for i in range(s):
        ks = order[bounds[i]:bounds[i + 1]]
        if len(ks) == 0:
            continue
        if math.isnan(start[i]):
            out[ks] = True
            continue
        with np.errstate(invalid="ignore"):
            ov = (g_start < end[i]) & (start[i] < g_end)
        ov[p + i] = False
        if not ov.any():
            continue
        rs = r_slot[ks]
        rx, ry = pos[rs, 0], pos[rs, 1]
        hx, hy, hs = g_x[ov], g_y[ov], g_slot[ov]
        hit = ((hx[None, :] - rx[:, None]) ** 2 + (hy[None, :] - ry[:, None]) ** 2 < c.cs2) | (hs[None, :] == rs[:, None])
        out[ks] = hit.any(axis=1)
    return out


def cbr_reference(now, r_slots, pos, f_start, f_end, f_x, f_y, f_slot, c: ChannelConsts):
    """float64 ``(R,)``: channel busy ratio of each receiver slot over ``(now - window, now]``: the
    airtime inside the window of every stored frame it hears (sender within carrier-sense range of
    its latest position ``pos[slot]``, or its own), summed in whole nanoseconds (exact in any
    order), / window, capped at 1."""
    lo = now - c.window
    ov = np.minimum(f_end, now) - np.maximum(f_start, lo)
    w = ov > 0.0
    ns = np.rint(ov[w] * 1e6).astype(np.int64)
    fx, fy, fs = f_x[w], f_y[w], f_slot[w]
    rx, ry = pos[r_slots, 0], pos[r_slots, 1]
    hit = ((fx[None, :] - rx[:, None]) ** 2 + (fy[None, :] - ry[:, None]) ** 2 < c.cs2) | (fs[None, :] == r_slots[:, None])
    busy = (hit * ns[None, :]).sum(axis=1)
    return np.minimum(busy / (c.window * 1e6), 1.0)


def broadcast_delivery_probability(n_in_range: int, beacon_hz: float, params) -> float:
    """Approximate probability that a beacon escapes collision when ``n_in_range`` vehicles all hear
    each other (no hidden terminals) and beacon at ``beacon_hz`` with independent phases, below
    saturation (``n * beacon_hz * service time`` under about 0.5).

    Derived here for the model above (an approximation, not a published formula; its structure is
    the vulnerable-period argument of CSMA analyses, Kleinrock & Tobagi 1975, with the broadcast
    backoff of the 802.11 DCF and no retransmission, as in the vehicular broadcast models of Campolo,
    Molinaro & Vinel). The other ``n - 1`` senders' beacons arrive as Poisson with rate
    ``lam = (n - 1) * beacon_hz``. One frame's service time is ``S = T + DIFS + slot * cw_min / 2``
    (airtime, DIFS, mean backoff); the air is busy or has a frame waiting with probability
    ``u = n * beacon_hz * S``, and ``Lq = u**2 / (2 (1 - u))`` frames wait on average (M/D/1 queue).

    - Found idle (probability ``1 - u``), a beacon starts at once; every start happens in idle
      time, so starts come at rate ``lam / (1 - u)`` there, and one within a slot either side
      collides: ``p_idle = 1 - exp(-2 * slot * lam / (1 - u))``.
    - Found busy (``u``), it draws one of ``W = cw_min + 1`` backoff slots, as do the frames that
      arrive in the same busy period (``lam * (T + DIFS)``) and those already waiting (``Lq``); a
      shared slot collides: ``p_busy = 1 - (1 - 1/W) ** (lam * (T + DIFS) + Lq)``.

    Returns ``1 - [(1 - u) * p_idle + u * p_busy]``. Accuracy against the explicit model: see
    ``tests/unit/test_espnow_channel.py`` (the test states its tolerance).
    """
    c = ChannelConsts(params)
    lam = (n_in_range - 1) * beacon_hz / 1000.0  # per ms
    service = c.air + c.difs + c.slot * c.cw / 2.0
    u = n_in_range * beacon_hz / 1000.0 * service
    if not u < 1.0:
        raise ValueError(f"offered load n * beacon_hz * service time = {u:.2f} >= 1: the approximation needs an "
                         "unsaturated channel (fewer vehicles or a lower beacon rate)")
    lq = u * u / (2.0 * (1.0 - u))
    p_idle = 1.0 - math.exp(-2.0 * c.slot * lam / (1.0 - u))
    p_busy = 1.0 - (1.0 - 1.0 / (c.cw + 1)) ** (lam * (c.air + c.difs) + lq)
    return 1.0 - ((1.0 - u) * p_idle + u * p_busy)
