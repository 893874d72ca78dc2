"""The shared V2V radio: every vehicle broadcasts, every vehicle has its own receive table.

One :class:`Radio` serves all vehicles of an environment. Vehicles are integer *slots*
``0 .. capacity-1``. A *link* is an ordered pair (sender, receiver) inside radio range; each link
has its own loss draws, latency and burst state, and each receiver keeps, per sender, only the
newest message that has *arrived* (send time + link latency <= now).

Storage (all NumPy, no per-link Python objects):

- a link pool: one row per link ever in range this episode (receiver, sender, burst state and
  the receiver-table entry for that sender: send time, arrival time, noisy payload, message id),
  with a ``capacity x capacity`` int32 index (zero-initialised, so untouched pages cost no memory);
- in-flight messages: one :class:`_InFlight` batch per broadcast (link rows, arrival times, payloads,
  message ids; one send time), moved into the pool's table entries by :meth:`Radio.receive` once
  they have arrived. A batch that has wholly arrived (or not at all) is moved (or kept) as it is,
  without copying its arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from roadsense_marl.espnow.core import (
    PAYLOAD_FIELDS,
    apply_sensor_noise,
    candidate_links,
    draw_beacon_phases,
    draw_link_randomness,
    noise_stds,
    resolve_links,
    sample_episode_params,
)
from roadsense_marl.espnow.params import RadioParams, load_params

__all__ = ["LinkBatch", "Radio", "RxBatch"]

SeedLike = int | np.random.SeedSequence | None


@dataclass(frozen=True)
class LinkBatch:
    """The transmissions of one broadcast, in canonical (receiver, sender) order.

    ``latency_ms`` is NaN for lost packets.
    """

    sender: np.ndarray
    receiver: np.ndarray
    distance_m: np.ndarray
    delivered: np.ndarray
    latency_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.sender)


@dataclass(frozen=True)
class RxBatch:
    """Valid (non-stale) received messages, one row per (receiver, sender), sorted by that pair.

    ``payload`` holds the noisy copy; ``timestamp_ms`` the send time; ``age_ms = now - timestamp``;
    ``received_at_ms`` the arrival time (send time + link latency); ``message_id`` the id given
    to :meth:`Radio.broadcast` (-1 if none).
    """

    receiver: np.ndarray
    sender: np.ndarray
    payload: np.ndarray
    timestamp_ms: np.ndarray
    age_ms: np.ndarray
    received_at_ms: np.ndarray
    message_id: np.ndarray

    def __len__(self) -> int:
        return len(self.receiver)


@dataclass
class _InFlight:
    """The delivered copies of one broadcast still in flight (link rows in canonical order)."""

    lid: np.ndarray
    t: float
    arr: np.ndarray
    pay: np.ndarray
    mid: np.ndarray
    first: float  # earliest arrival
    last: float  # latest arrival

    def keep(self, mask: np.ndarray) -> "_InFlight":
        arr = self.arr[mask]
        pay = np.compress(mask, _records(self.pay)).view(np.float64).reshape(-1, self.pay.shape[1])
        return _InFlight(self.lid[mask], self.t, arr, pay, self.mid[mask],
                         float(arr.min()) if len(arr) else np.inf, float(arr.max()) if len(arr) else -np.inf)


def _slots(name: str, slots: Any, capacity: int) -> np.ndarray:
    arr = np.asarray(slots)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-D array of integer slots, got shape {arr.shape} dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= capacity):
        bad = arr[(arr < 0) | (arr >= capacity)][0]
        raise ValueError(f"{name} holds slot {bad}, outside 0..{capacity - 1} (radio capacity {capacity})")
    return arr


def _sorted_distinct(name: str, slots: np.ndarray) -> np.ndarray | None:
    """None if ``slots`` is strictly increasing (the common case), else the sorting permutation;
    raises if a slot repeats."""
    if len(slots) < 2 or (slots[1:] > slots[:-1]).all():
        return None
    order = np.argsort(slots, kind="stable")
    s = slots[order]
    dup = s[1:] == s[:-1]
    if dup.any():
        raise ValueError(f"{name} must hold distinct slots; slot {s[1:][dup][0]} repeats")
    return order


def _records(a: np.ndarray) -> np.ndarray:
    """A C-contiguous 2-D array seen as one opaque record per row (no copy): row gathers and
    scatters on it move whole rows at once, several times faster than 2-D fancy indexing."""
    return a.view(np.dtype((np.void, a.shape[1] * a.itemsize))).reshape(a.shape[0])


def _take_rows(a: np.ndarray, rows: Any) -> np.ndarray:
    """``a[rows]`` for an int index or slice, through ``np.take`` (faster than fancy indexing)."""
    return a[rows] if isinstance(rows, slice) else np.take(a, rows, axis=0)


def _xy(name: str, xy: Any, n: int) -> np.ndarray:
    arr = np.asarray(xy, dtype=np.float64)
    if arr.shape != (n, 2):
        raise ValueError(f"{name} must have shape ({n}, 2) (one x, y in metres per slot), got {arr.shape}")
    return arr


class Radio:
    """Vectorised ESP-NOW emulator for all vehicles of an episode.

    :param params: anything :func:`~roadsense_marl.espnow.load_params` accepts.
    :param capacity: number of slots (vehicles) ever used; slots are ``0 .. capacity-1``.
    :param domain_randomization: redraw base latency, base loss, jitter and GPS std at each reset
        (only if the parameters' ``domain_randomization.enabled`` is true as well).
    :param beacon_hz: broadcast rate of every vehicle (per-vehicle phase drawn at reset).
    :param payload_fields: payload column names; the first five must be :data:`PAYLOAD_FIELDS`
        for the env; the object API adds accel y/z and gyro columns (see ``FIELD_NOISE``).
    """

    def __init__(
        self,
        params: RadioParams | Mapping[str, Any] | str | Path | None = None,
        capacity: int = 64,
        domain_randomization: bool = True,
        beacon_hz: float = 10.0,
        payload_fields: Sequence[str] = PAYLOAD_FIELDS,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        if not (isinstance(beacon_hz, (int, float)) and np.isfinite(beacon_hz) and beacon_hz > 0):
            raise ValueError(f"beacon_hz must be a positive finite number, got {beacon_hz!r}")
        self.nominal_params: RadioParams = load_params(params)
        self.params: RadioParams = self.nominal_params
        self.capacity = int(capacity)
        self.domain_randomization = bool(domain_randomization) and self.nominal_params.dr_enabled
        self.beacon_hz = float(beacon_hz)
        self.payload_fields = tuple(payload_fields)
        self._speed_col = self.payload_fields.index("speed_ms") if "speed_ms" in self.payload_fields else None
        self._heading_col = self.payload_fields.index("heading_deg") if "heading_deg" in self.payload_fields else None
        self._rng: np.random.Generator | None = None
        self.last_links = LinkBatch(*(np.empty(0, np.int64),) * 2, np.empty(0), np.empty(0, bool), np.empty(0))
        self._clear()

    # ---- episode ---------------------------------------------------------------------------
    def reset(self, seed: SeedLike = None) -> None:
        """Start an episode: seed the generator, clear everything, redraw DR and beacon phases.

        ``seed=None`` keeps the current generator (fresh OS entropy on the very first reset), as
        Gymnasium does, so episodes after one seeded reset are reproducible.
        """
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        self.params = sample_episode_params(self._rng, self.nominal_params, self.domain_randomization)
        self._phases = draw_beacon_phases(self._rng, self.capacity, self.beacon_hz)
        self._stds = noise_stds(self.params, self.payload_fields)
        self._clear()

    def _clear(self) -> None:
        cap, f = self.capacity, len(self.payload_fields)
        self._index = np.zeros((cap, cap), dtype=np.int32)  # [receiver, sender] -> link row + 1
        self._n = 0
        self._sorted = True  # link rows in increasing (receiver, sender) order
        size = 64
        self._l_recv = np.zeros(size, np.int64)
        self._l_send = np.zeros(size, np.int64)
        self._l_burst = np.zeros(size, bool)
        self._t_has = np.zeros(size, bool)
        self._t_ts = np.zeros(size)
        self._t_arr = np.zeros(size)
        self._t_pay = np.zeros((size, f))
        self._t_msg = np.full(size, -1, np.int64)
        self._pending: list[_InFlight] = []
        self._last_receive_ms = -np.inf
        self._req = np.zeros(cap, bool)

    # ---- beacons ---------------------------------------------------------------------------
    def beacon_due(self, slots: Any, t_prev_ms: float, t_now_ms: float) -> np.ndarray:
        """Which slots have a beacon time ``phase + k / beacon_hz`` in ``(t_prev_ms, t_now_ms]``.

        An interval of at least one beacon period makes every slot due (no float edge cases).
        """
        self._require_reset()
        s = _slots("slots", slots, self.capacity)
        period = 1000.0 / self.beacon_hz
        ph = self._phases[s]
        due = np.floor((t_now_ms - ph) / period) > np.floor((t_prev_ms - ph) / period)
        if t_now_ms - t_prev_ms >= period * (1.0 - 1e-9):
            due[:] = True
        return due

    # ---- send ------------------------------------------------------------------------------
    def broadcast(
        self,
        t_ms: float,
        sender_slots: Any,
        sender_xy: Any,
        payload: Any,
        receiver_slots: Any,
        receiver_xy: Any,
        message_ids: Any = None,
    ) -> LinkBatch:
        """Every sender broadcasts its TRUE state ``payload[i]`` at ``t_ms`` to every receiver in range.

        Links are all (sender, receiver) pairs with sender != receiver and distance < range; out
        of range pairs cost no random draws. Per link: loss (tier or bins, burst per link), latency,
        a noisy copy of the payload. Delivered copies go in flight; nothing is visible before
        :meth:`receive` at ``now >= t_ms + latency``. Returns (and stores in ``last_links``) the links.
        """
        self._require_reset()
        ss = _slots("sender_slots", sender_slots, self.capacity)
        rs = _slots("receiver_slots", receiver_slots, self.capacity)
        sxy, rxy = _xy("sender_xy", sender_xy, len(ss)), _xy("receiver_xy", receiver_xy, len(rs))
        pay = np.asarray(payload, dtype=np.float64)
        if pay.shape != (len(ss), len(self.payload_fields)):
            raise ValueError(
                f"payload must have shape ({len(ss)}, {len(self.payload_fields)}) with columns "
                f"{self.payload_fields}, got {pay.shape}"
            )
        mids = np.full(len(ss), -1, np.int64) if message_ids is None else np.asarray(message_ids, np.int64)
        if mids.shape != (len(ss),):
            raise ValueError(f"message_ids must have shape ({len(ss)},), got {mids.shape}")
        t = float(t_ms)
        if not np.isfinite(t):
            raise ValueError(f"t_ms must be finite, got {t_ms!r}")

        # Canonical link order (receiver slot, sender slot): sort inputs, cull, sort what is left.
        ro, so = _sorted_distinct("receiver_slots", rs), _sorted_distinct("sender_slots", ss)
        if ro is None and so is None:
            ri, si, dist = candidate_links(rxy, sxy, self.params.range_m)
        else:
            ro = np.arange(len(rs)) if ro is None else ro
            so = np.arange(len(ss)) if so is None else so
            ri, si, dist = candidate_links(rxy[ro], sxy[so], self.params.range_m)
            ri, si = ro[ri], so[si]
        r_slot, s_slot = rs[ri], ss[si]
        keep = r_slot != s_slot
        key = r_slot * self.capacity + s_slot
        if not keep.all():
            ri, si, dist, r_slot, s_slot, key = ri[keep], si[keep], dist[keep], r_slot[keep], s_slot[keep], key[keep]
        if len(key) > 1 and not (key[1:] > key[:-1]).all():
            o = np.argsort(key, kind="stable")
            ri, si, dist, r_slot, s_slot = ri[o], si[o], dist[o], r_slot[o], s_slot[o]
        n = len(ri)

        lid = self._link_rows(r_slot, s_slot)
        # Dense steady state: this broadcast's links are the whole pool, in row order.
        rows: np.ndarray | slice = slice(0, n) if (self._sorted and n == self._n) else lid
        draws = draw_link_randomness(self._rng, n, len(self.payload_fields))
        lost, latency = resolve_links(self.params, dist, self._l_burst[rows], draws)
        self._l_burst[rows] = lost
        ok = ~lost
        # Noise on every link's copy, then keep the delivered rows as whole records: cheaper than
        # selecting rows of the strided noise block first (2-D boolean selection is slow).
        noisy = apply_sensor_noise(np.take(pay, si, axis=0), draws.z_noise, self._stds, self._speed_col,
                                   self._heading_col)
        if not ok.all():
            noisy = np.compress(ok, _records(noisy)).view(np.float64).reshape(-1, noisy.shape[1])
        self._enqueue(lid[ok], t, t + latency[ok], noisy, mids[si[ok]])
        self.last_links = LinkBatch(s_slot, r_slot, dist, ok, np.where(ok, latency, np.nan))
        return self.last_links

    def _link_rows(self, r_slot: np.ndarray, s_slot: np.ndarray) -> np.ndarray:
        """Pool rows of these links (canonical order), allocating rows for new links."""
        lid = self._index.ravel()[r_slot * self.capacity + s_slot].astype(np.int64) - 1
        new = lid < 0
        if new.any():
            k = int(new.sum())
            if self._n + k > len(self._l_recv):
                self._grow(self._n + k)
            rows = np.arange(self._n, self._n + k)
            nr, ns = r_slot[new], s_slot[new]
            if self._n and self._sorted:
                last = self._l_recv[self._n - 1] * self.capacity + self._l_send[self._n - 1]
                self._sorted = bool(nr[0] * self.capacity + ns[0] > last)
            self._l_recv[rows], self._l_send[rows] = nr, ns
            self._index[nr, ns] = rows + 1
            lid[new] = rows
            self._n += k
        return lid

    def _grow(self, need: int) -> None:
        size = max(need, 2 * len(self._l_recv))

        def g(a: np.ndarray, fill: Any = 0) -> np.ndarray:
            out = np.full((size,) + a.shape[1:], fill, a.dtype)
            out[: len(a)] = a
            return out

        self._l_recv, self._l_send, self._l_burst = g(self._l_recv), g(self._l_send), g(self._l_burst)
        self._t_has, self._t_ts, self._t_arr = g(self._t_has), g(self._t_ts), g(self._t_arr)
        self._t_pay, self._t_msg = g(self._t_pay), g(self._t_msg, -1)

    def _enqueue(self, lid: np.ndarray, t: float, arr: np.ndarray, pay: np.ndarray, mid: np.ndarray) -> None:
        if len(lid):
            self._pending.append(_InFlight(lid, t, arr, pay, mid, float(arr.min()), float(arr.max())))

    # ---- receive ---------------------------------------------------------------------------
    def receive(self, now_ms: float, receiver_slots: Any) -> RxBatch:
        """Deliver every in-flight message with arrival <= ``now_ms``, return these receivers' valid messages.

        A delivered message replaces the receiver's entry for its sender only if it was sent later
        (an older message never replaces a newer one). Valid means ``now - timestamp <
        staleness_threshold_ms``. Time must not go backwards between calls (that could show a
        message before its arrival).
        """
        self._require_reset()
        now = float(now_ms)
        if not now >= self._last_receive_ms:
            raise ValueError(f"receive(now_ms={now_ms!r}) went back in time: last receive was at {self._last_receive_ms}")
        self._last_receive_ms = now
        rs = _slots("receiver_slots", receiver_slots, self.capacity)
        self._deliver(now)
        if not self._sorted:
            self._sort_pool()
        n = self._n
        self._req[rs] = True
        m = self._t_has[:n] & self._req[self._l_recv[:n]] & (now - self._t_ts[:n] < self.params.staleness_threshold_ms)
        self._req[rs] = False
        idx = slice(0, n) if m.all() else np.flatnonzero(m)  # slices copy faster than a gather
        ts = self._t_ts[idx].copy()
        return RxBatch(
            self._l_recv[idx].copy(), self._l_send[idx].copy(), _take_rows(self._t_pay[:n], idx).copy(), ts,
            now - ts, self._t_arr[idx].copy(), self._t_msg[idx].copy(),
        )

    def _deliver(self, now: float) -> None:
        if not self._pending or min(b.first for b in self._pending) > now:
            return
        parts: list[_InFlight] = []
        stay: list[_InFlight] = []
        for b in self._pending:  # one per broadcast still in flight: a handful, not per link
            if b.first > now:
                stay.append(b)
            elif b.last <= now:
                parts.append(b)
            else:
                arrived = b.arr <= now
                parts.append(b.keep(arrived))
                stay.append(b.keep(~arrived))
        self._pending = stay
        if len(parts) == 1:
            p = parts[0]
            lid, ts, arr, pay, mid = p.lid, np.full(len(p.lid), p.t), p.arr, p.pay, p.mid
        else:  # in enqueue order, so "later enqueued" below keeps its meaning
            lid = np.concatenate([p.lid for p in parts])
            ts = np.concatenate([np.full(len(p.lid), p.t) for p in parts])
            arr = np.concatenate([p.arr for p in parts])
            pay = np.concatenate([p.pay for p in parts])
            mid = np.concatenate([p.mid for p in parts])
        ordered = len(lid) < 2 or bool((lid[1:] > lid[:-1]).all())
        if not ordered and len(np.unique(lid)) != len(lid):
            # Several arrivals on one link: keep the latest sent (ties: the later enqueued).
            o = np.lexsort((np.arange(len(lid)), ts, lid))
            last = np.r_[lid[o][1:] != lid[o][:-1], True]
            pick = o[last]
            lid, ts, arr, pay, mid = lid[pick], ts[pick], arr[pick], np.take(pay, pick, axis=0), mid[pick]
            ordered = True  # pick follows increasing lid
        newer = ~self._t_has[lid] | (ts > self._t_ts[lid])
        if not newer.all():
            lid, ts, arr, pay, mid = lid[newer], ts[newer], arr[newer], np.compress(newer, pay, axis=0), mid[newer]
        if ordered and len(lid) == self._n and len(lid) and lid[0] == 0:
            lid = slice(0, len(lid))  # every link at once, in row order (dense steady state)
        self._t_has[lid] = True
        self._t_ts[lid], self._t_arr[lid], self._t_msg[lid] = ts, arr, mid
        _records(self._t_pay)[lid] = _records(np.ascontiguousarray(pay))

    def _sort_pool(self) -> None:
        """Renumber link rows in (receiver, sender) order so receive output needs no sort."""
        n = self._n
        perm = np.argsort(self._l_recv[:n] * self.capacity + self._l_send[:n], kind="stable")
        new_row = np.empty(n, np.int64)
        new_row[perm] = np.arange(n)
        for name in ("_l_recv", "_l_send", "_l_burst", "_t_has", "_t_ts", "_t_arr", "_t_pay", "_t_msg"):
            a = getattr(self, name)
            a[:n] = a[perm]
        self._index[self._l_recv[:n], self._l_send[:n]] = np.arange(1, n + 1)
        for b in self._pending:
            b.lid = new_row[b.lid]
        self._sorted = True

    # ---- vehicles leaving ------------------------------------------------------------------
    def forget(self, slots: Any) -> None:
        """A vehicle left: drop its receive table, its entries in others' tables, its in-flight
        messages (sent or addressed) and the burst state of every link it is on."""
        self._require_reset()
        s = _slots("slots", slots, self.capacity)
        if s.size == 0:
            return
        gone = np.zeros(self.capacity, bool)
        gone[s] = True
        n = self._n
        rows = gone[self._l_recv[:n]] | gone[self._l_send[:n]]
        self._t_has[:n][rows] = False
        self._l_burst[:n][rows] = False
        pending = []
        for b in self._pending:
            stay = ~rows[b.lid]
            b = b if stay.all() else b.keep(stay)
            if len(b.lid):
                pending.append(b)
        self._pending = pending

    # ---- introspection ---------------------------------------------------------------------
    def in_flight_message_ids(self) -> np.ndarray:
        """Message ids still in flight or held in some receive table (for side tables of the object API)."""
        return np.concatenate([b.mid for b in self._pending] + [self._t_msg[: self._n][self._t_has[: self._n]]])

    def _require_reset(self) -> None:
        if self._rng is None:
            raise RuntimeError("Radio.reset(seed) must be called before using the radio")
