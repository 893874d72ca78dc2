"""Plain per-link reference of the ESP-NOW radio, for equivalence tests of the vectorised core.

Written the obvious way: a Python loop over every (receiver, sender) pair, scalar formulas from
the issue text, one heapq of in-flight messages ordered by arrival time, and a dict per receiver.
It shares with :class:`roadsense_marl.espnow.Radio` only the random draws (the same documented
functions consume the generator in the same order), never the loss/latency/buffer logic. Sensor
noise is drawn once per transmitted frame (per sender), latency and loss per link (env contract v1).
It keeps every message in flight until it arrives (no pruning): the oracle for what is visible.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from roadsense_marl.espnow import PAYLOAD_FIELDS, RadioParams, draw_beacon_phases, draw_link_randomness, load_params
from roadsense_marl.espnow.core import FIELD_NOISE, radio_generator, sample_episode_params


def reference_loss(p: RadioParams, d: float) -> float:
    """Loss probability at distance d, straight from the issue text."""
    bins = sorted((b for b in p.distance_bins if b.populated), key=lambda b: b.lo_m)
    if bins:
        finite = [b for b in bins if math.isfinite(b.hi_m)]
        plus = [b for b in bins if not math.isfinite(b.hi_m)]
        if d < bins[0].lo_m:
            return bins[0].loss_rate
        for b in finite:
            if b.lo_m <= d < b.hi_m:
                return b.loss_rate
        if finite and d >= finite[-1].hi_m:
            return (plus[0] if plus else finite[-1]).loss_rate
        return plus[0].loss_rate
    if d < p.loss_threshold_1_m:
        return p.loss_base_rate
    if d < p.loss_threshold_2_m:
        f = (d - p.loss_threshold_1_m) / (p.loss_threshold_2_m - p.loss_threshold_1_m)
        return p.loss_base_rate + f * (p.loss_rate_tier_2 - p.loss_base_rate)
    return p.loss_rate_tier_3


class ReferenceRadio:
    """Same public surface as Radio (reset / beacon_due / broadcast / receive / forget), per link."""

    def __init__(self, params, capacity: int, domain_randomization: bool = True, beacon_hz: float = 10.0,
                 payload_fields=PAYLOAD_FIELDS) -> None:
        self.nominal = load_params(params)
        self.capacity = capacity
        self.dr = domain_randomization and self.nominal.dr_enabled
        self.beacon_hz = beacon_hz
        self.fields = tuple(payload_fields)

    def reset(self, seed) -> None:
        self.rng = radio_generator(seed)
        self.params = sample_episode_params(self.rng, self.nominal, self.dr)
        # the phases' own generator, seeded by one draw of the main one (the Radio's documented order)
        self.phases = draw_beacon_phases(radio_generator(int(self.rng.integers(0, 2**63))), self.capacity, self.beacon_hz)
        self.heap: list = []
        self.seq = 0
        self.tables: dict[int, dict[int, tuple]] = {}
        self.burst: dict[tuple[int, int], bool] = {}
        self.last_links: list[tuple] = []

    def beacon_due(self, slots, t_prev, t_now):
        period = 1000.0 / self.beacon_hz
        out = []
        for s in slots:
            ph = self.phases[s]
            k = math.floor((t_now - ph) / period)
            out.append(ph + k * period > t_prev or t_now - t_prev >= period * (1 - 1e-9))
        return np.array(out, bool)

    def beacon_times(self, slots, t_prev, t_now):
        """Every beacon time of each slot in (t_prev, t_now], stepping k one at a time; sorted by (time, slot)."""
        period = 1000.0 / self.beacon_hz
        out = []
        for i, s in enumerate(slots):
            ph = self.phases[s]
            k = math.floor((t_prev - ph) / period) - 1
            while ph + k * period <= t_now:
                if ph + k * period > t_prev:
                    out.append((ph + k * period, int(s), i))
                k += 1
        out.sort()
        return np.array([i for _t, _s, i in out], np.int64), np.array([t for t, _s, _i in out], np.float64)

    def _std(self, field: str) -> float:
        return getattr(self.params, FIELD_NOISE[field]) if field in FIELD_NOISE else 0.0

    def broadcast(self, t, sender_slots, sender_xy, payload, receiver_slots, receiver_xy):
        """``t``: one send time (ms) or one per sender (sender i's frame stamped t[i])."""
        p = self.params
        times = [float(t)] * len(sender_slots) if np.ndim(t) == 0 else [float(x) for x in t]
        senders = sorted(zip(sender_slots, sender_xy, payload, times), key=lambda a: a[0])
        links = []
        for r, rxy in sorted(zip(receiver_slots, receiver_xy), key=lambda a: a[0]):
            for i, (s, sxy, _pay, _t) in enumerate(senders):
                if r == s:
                    continue
                dx, dy = rxy[0] - sxy[0], rxy[1] - sxy[1]
                d = math.sqrt(dx * dx + dy * dy)
                if d < p.range_m:
                    links.append((int(r), int(s), d, i))
        draws = draw_link_randomness(self.rng, len(links), len(senders), len(self.fields))
        # One frame per sender, one noisy reading in it: every receiver gets these same values.
        frames = []
        for i, (_s, _sxy, pay, _t) in enumerate(senders):
            noisy = []
            for j, f in enumerate(self.fields):
                v = pay[j] + self._std(f) * draws.z_noise[i, j]
                if f == "speed_ms":
                    v = max(0.0, v)
                if f == "heading_deg":
                    v = v % 360.0
                    v = 0.0 if v >= 360.0 else v
                noisy.append(v)
            frames.append(tuple(noisy))
        self.last_links = []
        u_burst, u_loss = draws.u_burst, draws.u_loss
        for k, (r, s, d, i) in enumerate(links):
            loss = reference_loss(p, d)
            if p.burst_enabled and self.burst.get((r, s), False):
                if u_burst[k] < 1 - 1 / p.burst_mean_length:
                    loss = max(loss, min(p.burst_max_loss_cap, loss * p.burst_loss_multiplier))
            lost = bool(u_loss[k] < loss)
            self.burst[(r, s)] = lost
            latency = max(1.0, p.latency_base_ms + p.latency_distance_factor * d + p.latency_jitter_std_ms * draws.z_latency[k])
            self.last_links.append((s, r, d, not lost, math.nan if lost else latency))
            if lost:
                continue
            ts = senders[i][3]
            heapq.heappush(self.heap, (ts + latency, self.seq, r, s, ts, frames[i]))
            self.seq += 1

    def receive(self, now, receiver_slots):
        while self.heap and self.heap[0][0] <= now:
            arrival, seq, r, s, t, noisy = heapq.heappop(self.heap)
            table = self.tables.setdefault(r, {})
            if s not in table or (t, seq) > table[s][:2]:  # newest sent wins (same send time: sent last)
                table[s] = (t, seq, arrival, noisy)
        rows = []
        for r in sorted(int(x) for x in receiver_slots):
            for s, (t, _seq, arrival, noisy) in sorted(self.tables.get(r, {}).items()):
                if now - t < self.params.staleness_threshold_ms:
                    rows.append((r, s, noisy, t, now - t, arrival))
        return rows

    def forget(self, slots) -> None:
        gone = {int(s) for s in slots}
        for g in gone:
            self.tables.pop(g, None)
        for table in self.tables.values():
            for g in gone:
                table.pop(g, None)
        self.heap = [m for m in self.heap if m[2] not in gone and m[3] not in gone]
        heapq.heapify(self.heap)
        self.burst = {k: v for k, v in self.burst.items() if k[0] not in gone and k[1] not in gone}
