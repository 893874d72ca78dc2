"""The shared V2V radio: every vehicle broadcasts, every vehicle has its own receive table.

One :class:`Radio` serves all vehicles of an environment. Vehicles are integer *slots*
``0 .. capacity-1``. A *link* is an ordered pair (sender, receiver) inside radio range; each link
has its own loss draws, latency and burst state, and each receiver keeps, per sender, only the
newest message that has *arrived* (send time + link latency <= now).

Storage (all NumPy, no per-link Python objects):

- a link pool: one row per link ever in range this episode (receiver, sender, burst state and
  the receiver-table entry for that sender: send time, frame sequence, arrival time, frame row),
  with a ``capacity x capacity`` int32 index (zero-initialised, so untouched pages
  cost no memory);
- frames: one row per transmitted message (send time, frame sequence number, noisy payload,
  message id): a sender's one noisy reading, shared by every copy of it and by every table entry
  holding it, kept while something that can still be shown points at it;
- in flight: flat arrays of delivered copies not yet arrived (link row, arrival, frame row), in
  send order. They move into the table entries once a ``receive`` (or a ``broadcast``: later
  receives cannot be earlier) reaches their arrival. Only
  what can still become visible is kept: copies stale on arrival, copies older than what their link
  already shows, and copies a later-sent copy on the same link arriving no later will hide are
  dropped, so a receiver that never calls ``receive`` holds at most what arrives within the
  staleness window.

Each phase has a NumPy implementation (the reference) and a compiled twin in
:mod:`roadsense_marl.espnow.kernels`; ``Radio(backend=...)`` picks one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from roadsense_marl.espnow import channel as _ch
from roadsense_marl.espnow import kernels as _k
from roadsense_marl.espnow.core import (
    _DENSE_PAIRS_MAX,
    PAYLOAD_FIELDS,
    apply_sensor_noise,
    candidate_links,
    beacon_jitter,
    draw_beacon_phases,
    draw_link_randomness,
    noise_stds,
    radio_generator,
    resolve_links,
    sample_episode_params,
)
from roadsense_marl.espnow.params import RadioParams, load_params

__all__ = ["BACKENDS", "LinkBatch", "Radio", "RxBatch"]

#: Values of ``Radio(backend=...)``.
BACKENDS: tuple[str, ...] = ("auto", "numba", "numpy")

SeedLike = int | np.random.SeedSequence | None


@dataclass(frozen=True)
class LinkBatch:
    """The transmissions of one broadcast, in canonical (receiver, sender) order.

    ``latency_ms`` is NaN for lost packets (with the shared channel on it includes the sender's
    channel-access delay). ``collided`` bool ``(n,)``: lost to the shared channel (another heard
    frame overlapped it at this receiver, or the frame was dropped waiting for the channel); all
    False when the channel model is off (:mod:`roadsense_marl.espnow.channel`).
    """

    sender: np.ndarray
    receiver: np.ndarray
    distance_m: np.ndarray
    delivered: np.ndarray
    latency_ms: np.ndarray
    collided: np.ndarray = field(default_factory=lambda: np.empty(0, bool))

    def __len__(self) -> int:
        return len(self.sender)


@dataclass(frozen=True)
class RxBatch:
    """Valid (non-stale) received messages, one row per (receiver, sender), sorted by that pair.

    ``payload`` ``(k, fields)`` holds the sender's noisy frame (the same values for every receiver
    of it); ``timestamp_ms`` the send time; ``age_ms = now - timestamp``; ``received_at_ms`` the
    arrival time (send time + link latency); ``message_id`` the id given
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
    :param beacon_hz: broadcast rate of every vehicle (per-vehicle phase drawn at reset). With the
        parameters' ``channel.alert_beacon_hz`` set, a vehicle whose latest broadcast reported an
        acceleration at or below ``channel.alert_accel_threshold_ms2`` beacons at that rate instead
        (phase modulo the alert period) until a broadcast reports otherwise, as the original
        firmware's 20 Hz while alerting; :meth:`beacon_due` and :meth:`beacon_times` follow it.
        With ``channel.dcc = "reactive"`` each vehicle's beacon period is instead
        ``max(nominal period, T_off)``, ``T_off`` the minimum inter-beacon gap of the ETSI DCC state
        its own :attr:`cbr` falls in (:meth:`RadioParams.dcc_gap_ms`, ETSI TS 102 687 V1.2.1 Annex A),
        re-evaluated at each :meth:`receive` for the slots it serves (the nominal period is the alert
        period while alerting, also taken at the receive): a higher CBR moves to a more restrictive
        state at once, a lower one to a less restrictive state only once no CBR at or above the
        current state's bound was read for ``channel.dcc_relax_ms`` (hysteresis). A slot whose
        period changes to ``P`` beacons on the grid ``phase * P / base_period + k * P`` (its random phase kept as the same
        fraction of the period, so slots switching together stay spread out), from the first grid
        time at least ``P`` after its latest beacon: consecutive beacons are never closer than the
        period in force, hence never closer than ``T_off`` (less ``channel.tx_jitter_ms``: each beacon
        leaves up to that much after its grid time).
    :param payload_fields: payload column names; the first five must be :data:`PAYLOAD_FIELDS`
        for the env; the object API adds accel y/z and gyro columns (see ``FIELD_NOISE``).
    :param backend: ``"numba"`` (compiled kernels, :mod:`roadsense_marl.espnow.kernels`),
        ``"numpy"`` (the vectorised reference) or ``"auto"`` (numba when installed). Both give
        bit-identical results for the same seed and calls.

    With the parameters' ``channel.enabled`` the radio also models the shared channel (airtime,
    CSMA/CA, collisions, hidden terminals; :mod:`roadsense_marl.espnow.channel`) and exposes
    :attr:`cbr`, float64 ``(capacity,)``: each slot's channel busy ratio (0..1) over the
    ``channel.cbr_window_ms`` before its latest :meth:`receive` (0 with the channel off).
    """

    def __init__(
        self,
        params: RadioParams | Mapping[str, Any] | str | Path | None = None,
        capacity: int = 64,
        domain_randomization: bool = True,
        beacon_hz: float = 10.0,
        payload_fields: Sequence[str] = PAYLOAD_FIELDS,
        backend: str = "auto",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "numba" and not _k.AVAILABLE:
            raise ValueError("backend='numba' needs the numba package (pip install numba); use 'numpy' or 'auto'")
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        if not (isinstance(beacon_hz, (int, float)) and np.isfinite(beacon_hz) and beacon_hz > 0):
            raise ValueError(f"beacon_hz must be a positive finite number, got {beacon_hz!r}")
        self.nominal_params: RadioParams = load_params(params)
        jit, np_ = self.nominal_params.channel_tx_jitter_ms, self.nominal_params
        shortest = 1000.0 / max(float(beacon_hz), np_.alert_beacon_hz or 0.0)
        if np_.channel_enabled and jit >= shortest:
            raise ValueError(
                f"channel.tx_jitter_ms = {jit:g} ms must be shorter than the shortest beacon period, "
                f"{shortest:g} ms (beacon_hz {beacon_hz:g}{', alert_beacon_hz %g' % np_.alert_beacon_hz if np_.alert_beacon_hz else ''}): "
                "a vehicle's beacons would overtake each other")
        self.params: RadioParams = self.nominal_params
        self.capacity = int(capacity)
        self.domain_randomization = bool(domain_randomization) and self.nominal_params.dr_enabled
        self.beacon_hz = float(beacon_hz)
        self.payload_fields = tuple(payload_fields)
        self._speed_col = self.payload_fields.index("speed_ms") if "speed_ms" in self.payload_fields else None
        self._accel_col = self.payload_fields.index("accel_ms2") if "accel_ms2" in self.payload_fields else None
        self._heading_col = self.payload_fields.index("heading_deg") if "heading_deg" in self.payload_fields else None
        self.backend = "numba" if backend == "numba" or (backend == "auto" and _k.AVAILABLE) else "numpy"
        self._use_kernels = self.backend == "numba"
        self._rng: np.random.Generator | None = None
        self._chan: _ch.ChannelConsts | None = None
        self.last_links = LinkBatch(*(np.empty(0, np.int64),) * 2, np.empty(0), np.empty(0, bool), np.empty(0))
        self._clear()

    # ---- episode ---------------------------------------------------------------------------
    def reset(self, seed: SeedLike = None) -> None:
        """Start an episode: seed the generator, clear everything, redraw DR and beacon phases.

        ``seed=None`` keeps the current generator (fresh OS entropy on the very first reset), as
        Gymnasium does, so episodes after one seeded reset are reproducible.
        """
        if seed is not None or self._rng is None:
            self._rng = radio_generator(seed)
        self.params = sample_episode_params(self._rng, self.nominal_params, self.domain_randomization)
        # Phases come from a child generator seeded by one draw: the main stream does not depend on
        # the capacity, and slot i's phase is the same for any capacity > i.
        phase_seed = int(self._rng.integers(0, 2**63))
        self._phases = draw_beacon_phases(radio_generator(phase_seed), self.capacity, self.beacon_hz)
        # The channel's backoff draws and the transmit-jitter keys come from generators of their own,
        # children of the phases' seed (SeedSequence spawn keys 1 and 2): the main stream (loss,
        # latency, noise) is the same with the channel on or off, so switching it changes exactly what
        # the channel decides, and neither depends on the capacity (slot i's key is the same for any
        # capacity > i).
        on = self.params.channel_enabled
        self._chan_rng = radio_generator(np.random.SeedSequence(phase_seed, spawn_key=(1,))) if on else None
        self._jit_max = self.params.channel_tx_jitter_ms if on else 0.0
        self._jit_key = (radio_generator(np.random.SeedSequence(phase_seed, spawn_key=(2,)))
                         .integers(0, 2**63, size=self.capacity).astype(np.uint64) if self._jit_max > 0.0 else None)
        self._stds = noise_stds(self.params, self.payload_fields)
        self._model = _k.model_array(self.params)
        self._bin_lo, self._bin_rate = self.params.bin_table() if self.params.uses_bins else (_EMPTY, _EMPTY)
        self._chan = _ch.ChannelConsts(self.params) if self.params.channel_enabled else None
        self._clear()
        if self.params.channel_dcc == "reactive":
            # reactive DCC: each slot's own beacon grid anchor + k * period (ms), re-evaluated at receive
            self._dcc_anchor = self._phases.copy()
            self._dcc_period = np.full(self.capacity, 1000.0 / self.beacon_hz)
            self._dcc_start = np.full(self.capacity, -np.inf)  # no beacon of a slot's grid before this
            self._dcc_last = np.full(self.capacity, -np.inf)  # latest beacon before the start (none: -inf)
            self._dcc_gap = np.full(self.capacity, float(self.params.dcc_gap_ms(0.0)))  # T_off of the state (ms)
            self._dcc_since = np.full(self.capacity, -np.inf)  # latest CBR at or above the state's bound (ms)

    def _clear(self) -> None:
        cap, f = self.capacity, len(self.payload_fields)
        self._index = np.zeros((cap, cap), dtype=np.int32)  # [receiver, sender] -> link row + 1
        self._n = 0
        self._sorted = True  # link rows in increasing (receiver, sender) order
        size = 64
        # link pool: link state and the receiver-table entry of that link
        self._l_recv = np.zeros(size, np.int64)
        self._l_send = np.zeros(size, np.int64)
        self._l_burst = np.zeros(size, bool)
        self._t_has = np.zeros(size, bool)
        self._t_ts = np.zeros(size)
        self._t_seq = np.zeros(size, np.int64)
        self._t_arr = np.zeros(size)
        self._t_frame = np.full(size, -1, np.int32)  # row in the frame store (-1: payload dropped)
        # in flight: flat arrays in send order, the first ``_m`` rows used
        self._m = 0
        self._p_first = np.inf  # earliest arrival in flight
        self._p_lid = np.zeros(size, np.int32)  # link row (pool rows < 2**31: capacity**2 <= int32 index range)
        self._p_arr = np.zeros(size)
        self._p_frame = np.zeros(size, np.int32)  # row in the frame store
        # frames: one noisy payload (and message id) per transmitted message, shared by its copies
        self._nf = 0
        self._f_ts = np.zeros(size)
        self._f_seq = np.zeros(size, np.int64)
        self._f_pay = np.zeros((size, f))
        self._f_mid = np.full(size, -1, np.int64)
        self._seq = 0  # sequence number of the next frame (orders frames sent at the same time)
        self._clock = -np.inf  # latest time given to broadcast or receive
        self._last_receive = -np.inf  # latest time given to receive (per-sender send times may not be earlier)
        self._req = np.zeros(cap, bool)
        # the shared channel: frames on (or recently on) the air, kept while they can still overlap a
        # later frame or fall in a CBR window; latest position of every slot; CBR per slot
        self._nc = 0
        self._c_start = np.zeros(size)
        self._c_end = np.zeros(size)
        self._c_x = np.zeros(size)
        self._c_y = np.zeros(size)
        self._c_slot = np.zeros(size, np.int64)
        self._pos = np.zeros((cap, 2))
        self.cbr = np.zeros(cap)
        self._alerting = np.zeros(cap, bool)  # latest broadcast reported hard braking (alert beacon rate)
        # reactive DCC schedule (set by reset when switched on)
        self._dcc_anchor = self._dcc_period = self._dcc_start = self._dcc_last = None
        self._dcc_gap = self._dcc_since = None
        # reused scratch buffers (internal only; never handed out)
        self._w_si = self._w_lid = np.empty(0, np.int32)
        self._w_z = np.empty(0)

    # ---- beacons ---------------------------------------------------------------------------
    def beacon_due(self, slots: Any, t_prev_ms: float, t_now_ms: float) -> np.ndarray:
        """Which slots have a beacon time (``phase + k * 1000 / beacon_hz`` ms plus the transmit jitter,
        see :meth:`beacon_times`) in ``(t_prev_ms, t_now_ms]``:
        a bool ``(R,)`` mask over ``slots``.

        Without transmit jitter an interval of at least one beacon period makes every slot due (no
        float edge cases); with it, a slot is due when one of its jittered times
        (:meth:`beacon_times`) is inside. It
        says whether a slot beacons, not when or how often: :meth:`beacon_times` gives every beacon
        time in the interval (one row per beacon, for per-sender send times in :meth:`broadcast`).
        """
        self._require_reset()
        s = _slots("slots", slots, self.capacity)
        if self._jit_key is not None:  # jittered times: a slot is due when one of its times is inside
            due = np.zeros(len(s), bool)
            due[self.beacon_times(s, t_prev_ms, t_now_ms)[0]] = True
            return due
        period = 1000.0 / self.beacon_hz
        schedule = self._schedule(s)
        if schedule is not None:
            ph, per = schedule
            due = (t_now_ms - t_prev_ms >= per * (1.0 - 1e-9)) | (
                np.floor((t_now_ms - ph) / per) > np.floor((t_prev_ms - ph) / per))
            return due if self._dcc_start is None else due & (self._dcc_start[s] <= t_now_ms)
        if t_now_ms - t_prev_ms >= period * (1.0 - 1e-9):
            return np.ones(len(s), bool)
        ph = self._phases[s]
        return np.floor((t_now_ms - ph) / period) > np.floor((t_prev_ms - ph) / period)

    def _schedule(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(phase, period)`` (ms) per slot of ``s``: with reactive DCC each slot's own anchor and
        period; else when some of ``s`` are alerting and the parameters set ``channel.alert_beacon_hz``,
        the alert grid for those; else None (every slot at ``beacon_hz``, the common case)."""
        if self._dcc_period is not None:
            return self._dcc_anchor[s], self._dcc_period[s]
        hz = self.params.alert_beacon_hz
        if hz is None or not len(s) or not self._alerting[s].any():
            return None
        al = self._alerting[s]
        base, alert = 1000.0 / self.beacon_hz, 1000.0 / hz
        ph = self._phases[s]
        return np.where(al, np.mod(ph, alert), ph), np.where(al, alert, base)

    def beacon_times(self, slots: Any, t_prev_ms: float, t_now_ms: float) -> tuple[np.ndarray, np.ndarray]:
        """Every beacon time ``g + jitter(slot, g)``, ``g = phase[slot] + k * period`` (``period = 1000 / beacon_hz``
        ms, any integer ``k``) inside ``(t_prev_ms, t_now_ms]``, for each of ``slots``. With alert
        beacons or reactive DCC (see the class docstring) each slot has its own phase and period; a
        DCC grid has no beacon before its start (the first beacon after the slot's period changed).
        ``jitter``: with the shared channel on, the transmit-time jitter, uniform in
        ``[0, channel.tx_jitter_ms)`` (:func:`~roadsense_marl.espnow.beacon_jitter`, a pure function of
        the slot's per-episode key and the grid time ``g``: any partition of time into intervals lists
        each beacon exactly once, and a beacon keeps its time when its slot changes grid); 0 with the
        channel off.

        :param slots: ``(R,)`` integer slots.
        :param t_prev_ms: start of the interval (ms, excluded); ``t_now_ms``: its end (ms, included).
        :returns: ``(slot_index, t_ms)``: int64 ``(m,)`` positions in ``slots`` and float64 ``(m,)``
            beacon times in ms, sorted by (time, slot). Without jitter each slot appears
            ``floor(d / period)`` or ``floor(d / period) + 1`` times, ``d = t_now_ms - t_prev_ms``
            (10 times for a 1 s SUMO step at 10 Hz); jitter can add or remove one more (a 100 ms
            step at 10 Hz holds 0, 1 or 2 beacons of a slot). A :meth:`broadcast` call takes each slot
            at most once, so several beacons of one slot go in successive calls
            (:func:`~roadsense_marl.espnow.beacon_calls`).
        :raises ValueError: slots outside ``0..capacity-1``, non-finite times, ``t_now_ms < t_prev_ms``.

        Relation to :meth:`beacon_due`: for an interval shorter than one period, the slots listed
        here are exactly those ``beacon_due`` marks (up to float rounding at the interval ends, where
        this method compares the times themselves); for an interval of a period or more,
        ``beacon_due`` marks every slot and this method lists every beacon, one row each (with
        jitter ``beacon_due`` marks exactly the slots listed here).
        """
        self._require_reset()
        s = _slots("slots", slots, self.capacity)
        lo, hi = float(t_prev_ms), float(t_now_ms)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"beacon_times needs finite times, got t_prev_ms={t_prev_ms!r}, t_now_ms={t_now_ms!r}")
        if hi < lo:
            raise ValueError(f"beacon_times needs t_now_ms >= t_prev_ms, got t_prev_ms={lo!r} > t_now_ms={hi!r}")
        period: float | np.ndarray = 1000.0 / self.beacon_hz
        ph = self._phases[s]
        schedule = self._schedule(s)
        if schedule is not None:
            ph, per = schedule
            period = per[:, None]
        # candidate k: first = floor((lo - ph) / period) (at or before lo) up to floor((hi - ph) / period) + 1;
        # the exact test on the times themselves then keeps those in (lo, hi]
        if len(s) == 0:
            return np.empty(0, np.int64), np.empty(0)
        jmax = self._jit_max if self._jit_key is not None else 0.0
        if self._use_kernels:  # the compiled twin of what follows (same candidates, same bits)
            per_s = schedule[1] if schedule is not None else np.full(len(s), period)
            keys = self._jit_key[s] if jmax > 0.0 else np.zeros(len(s), np.uint64)
            start = self._dcc_start[s] if self._dcc_start is not None else np.full(len(s), -np.inf)
            return _k.beacon_grid(np.ascontiguousarray(ph, np.float64), per_s, keys, jmax, lo, hi, start, s)
        # (with jitter a beacon of grid time in (lo - jmax, lo] may fall inside: one more candidate)
        if schedule is not None:
            k0 = np.floor((lo - jmax - ph) / schedule[1])
            width = int((np.floor((hi - ph) / schedule[1]) - k0).max()) + 2
        else:
            k0 = np.floor((lo - jmax - ph) / period)
            width = int(np.floor((hi - ph) / period).max() - k0.min()) + 2
        kk = k0[:, None] + np.arange(width)
        grid = ph[:, None] + kk * period  # (R, width) candidate grid times
        times = grid if jmax == 0.0 else grid + beacon_jitter(self._jit_key[s][:, None], grid, jmax)
        inside = (times > lo) & (times <= hi)
        if self._dcc_start is not None:
            inside &= grid >= self._dcc_start[s][:, None]  # a DCC grid has no beacon before its start
        idx, col = np.nonzero(inside)  # by position in slots, then time
        t = times[idx, col]
        if len(s) > 1 and (s[1:] > s[:-1]).all():
            o = np.argsort(t, kind="stable")  # equal times keep position order = slot order
        else:
            o = np.lexsort((s[idx], t))
        return idx[o].astype(np.int64, copy=False), t[o]

    # ---- send ------------------------------------------------------------------------------
    def broadcast(
        self,
        t_ms: float | np.ndarray,
        sender_slots: Any,
        sender_xy: Any,
        payload: Any,
        receiver_slots: Any,
        receiver_xy: Any,
        message_ids: Any = None,
    ) -> LinkBatch:
        """Every sender broadcasts its TRUE state ``payload[i]`` at its send time to every receiver in range.

        :param t_ms: send time in ms: one number for every sender, or a float array ``(S,)`` with
            sender ``i``'s own send time ``t_ms[i]`` (e.g. from :meth:`beacon_times`, the sender's state
            interpolated to it). Sender ``i``'s frame is stamped ``t_ms[i]`` and each delivered copy
            arrives at ``t_ms[i] + latency``. Later :meth:`receive` calls must not be earlier than
            the latest send time. Per-sender times must be finite and not earlier than the latest
            :meth:`receive` time (a message sent before it could have arrived before it).
        :param sender_slots: ``(S,)`` distinct integer slots; ``sender_xy`` ``(S, 2)`` metres;
            ``payload`` ``(S, len(payload_fields))`` true states in the fields' units.
        :param receiver_slots: ``(R,)`` distinct integer slots; ``receiver_xy`` ``(R, 2)`` metres.
        :param message_ids: optional ``(S,)`` int ids carried to :class:`RxBatch` (-1 if omitted).
        :raises ValueError: bad shapes, slots outside ``0..capacity-1``, repeated slots, a non-finite
            time, a per-sender time earlier than the latest receive (naming the sender slot and both
            times); raised before anything changes.

        Links are all (sender, receiver) pairs with sender != receiver and distance < range; out
        of range pairs cost no random draws. Each sender transmits ONE frame with one noisy copy
        of its payload (noise drawn once per message); every receiver of the frame gets the same
        values. Per link: loss (tier or bins, burst per link) and latency. Delivered copies go in
        flight; nothing is visible before :meth:`receive` at ``now >= t_ms[i] + latency``. Copies that
        would be stale on arrival (latency >= ``staleness_threshold_ms``) are not kept. A receiver
        shows, per sender, the arrived message with the latest send time (equal send times: the one
        broadcast last). The random draws (their number and order) do not depend on the send times:
        a scalar and an array of equal times give the same results (with the shared channel off).

        With ``channel.enabled`` (:mod:`roadsense_marl.espnow.channel`) each frame first contends
        for the air at its access time (``t_ms[i]``; for a scalar ``t_ms``, its sender's latest
        beacon instant ``<= t_ms``): CSMA/CA against every frame on the air that its sender hears,
        including frames of earlier calls; links whose frame another heard frame overlapped at the
        receiver, or whose frame was dropped waiting, are lost (``collided``). The access delay is
        added to the latency of the frame's copies. Backoffs come from the channel's own generator,
        so the link model's draws are the same with the channel on or off.
        Returns (and stores in ``last_links``) the links.
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
        mids = -1 if message_ids is None else np.asarray(message_ids, np.int64)
        if message_ids is not None and mids.shape != (len(ss),):
            raise ValueError(f"message_ids must have shape ({len(ss)},), got {mids.shape}")
        t, t_max = self._send_times(t_ms, ss)

        ro, so = _sorted_distinct("receiver_slots", rs), _sorted_distinct("sender_slots", ss)
        si, dist, r_slot, s_slot, lid = self._links(rs, rxy, ss, sxy, ro, so)
        n = len(si)

        # Later receives are at >= t: everything arriving by then can move into the tables now,
        # which bounds what stays in flight even for receivers that never call receive.
        self._clock = max(self._clock, t_max)
        self._deliver(self._clock)

        if len(self._w_z) < n:
            self._w_z = np.empty(2 * n)
        draws = draw_link_randomness(self._rng, n, len(ss), len(self.payload_fields), self._w_z)
        # One noisy frame per sender (z_noise rows follow increasing sender slot), stored once;
        # its in-flight copies point at it.
        frame0 = self._reserve_frames(len(ss))
        frames = self._f_pay[frame0:frame0 + len(ss)]
        if self._use_kernels:
            _k.noisy_frames(pay, np.arange(len(ss)) if so is None else so, draws.z_noise, self._stds,
                            -1 if self._speed_col is None else self._speed_col,
                            -1 if self._heading_col is None else self._heading_col, frames)
        elif so is None:
            frames[:] = apply_sensor_noise(pay, draws.z_noise, self._stds, self._speed_col, self._heading_col)
        else:
            frames[so] = apply_sensor_noise(pay[so], draws.z_noise, self._stds, self._speed_col, self._heading_col)
        self._f_mid[frame0:frame0 + len(ss)] = mids
        self._f_ts[frame0:frame0 + len(ss)] = t
        self._f_seq[frame0:frame0 + len(ss)] = np.arange(self._seq, self._seq + len(ss))
        self._seq += len(ss)
        self._nf = frame0 + len(ss)
        self._reserve_in_flight(self._m + n)
        if self._chan is None:
            blocked = defer = _EMPTY
            collided = np.zeros(n, bool)
        else:
            blocked, defer = self._channel(t, ss, sxy, rs, rxy, so, si, r_slot)
            collided = blocked
        if self._use_kernels:
            delivered, latency = self._resolve_enqueue_kernel(t, dist, lid, si, frame0, draws, blocked, defer)
        else:
            delivered, latency = self._resolve_enqueue_numpy(t, dist, lid, si, frame0, draws, blocked, defer)
        if self.params.alert_beacon_hz is not None and self._accel_col is not None:
            # the next beacons of a sender reporting hard braking come at the alert rate
            self._alerting[ss] = pay[:, self._accel_col] <= self.params.alert_accel_threshold_ms2
        self.last_links = LinkBatch(s_slot, r_slot, dist, delivered, latency, collided)
        return self.last_links

    def _channel(self, t, ss, sxy, rs, rxy, so, si, r_slot) -> tuple[np.ndarray, np.ndarray]:
        """The shared channel for one call: backoff draws (the channel's own generator, one per
        sender in increasing slot order), access times, CSMA/CA start times, per-link collisions; stores the
        frames that went on the air. Returns ``(blocked (n,), defer (S,) ms)``."""
        c = self._chan
        s = len(ss)
        drawn = self._chan_rng.integers(0, c.cw + 1, size=s)
        backoff = drawn if so is None else np.empty(s, np.int64)
        if so is not None:
            backoff[so] = drawn
        if isinstance(t, float):
            # One time for all: the step's time, not the senders' access times. Each frame is put on
            # the air at its sender's latest beacon instant <= t (where beacon_times would put it);
            # only the overlap uses that instant, arrival stays t + access delay + latency.
            schedule = self._schedule(ss)
            period, ph = (1000.0 / self.beacon_hz, self._phases[ss]) if schedule is None else (schedule[1], schedule[0])
            t_acc = np.minimum(self._latest_beacon(ss, ph, period, t), t)
        else:
            t_acc = t
        self._pos[ss] = sxy
        self._pos[rs] = rxy
        nc = self._nc
        store = (self._c_start[:nc], self._c_end[:nc], self._c_x[:nc], self._c_y[:nc], self._c_slot[:nc])
        sx, sy = np.ascontiguousarray(sxy[:, 0]), np.ascontiguousarray(sxy[:, 1])
        # only stored frames still on the air (or in their DIFS) at the earliest access time can defer anyone
        live = store if nc == 0 or not len(t_acc) else tuple(
            a[store[1] + c.difs > t_acc.min()] for a in store)
        if self._use_kernels:
            start = _k.channel_access(t_acc, sx, sy, ss, backoff, *live, c.air, c.cs, c.slot, c.difs, c.max_delay)
            blocked = _k.channel_collisions(start, sx, sy, ss, *store, np.asarray(si, np.int64), r_slot, self._pos,
                                            c.air, c.cs)
        else:
            start = _ch.access_reference(t_acc, sx, sy, ss, backoff, *live, c)
            blocked = _ch.collisions_reference(start, sx, sy, ss, *store, np.asarray(si, np.int64), r_slot,
                                               self._pos, c)
        on_air = ~np.isnan(start)
        k = int(on_air.sum())
        if nc + k > len(self._c_start):
            size = max(2 * len(self._c_start), nc + k)
            for name in _CHANNEL_ARRAYS:
                a = getattr(self, name)
                out = np.zeros(size, a.dtype)
                out[:nc] = a[:nc]
                setattr(self, name, out)
        self._c_start[nc:nc + k] = start[on_air]
        self._c_end[nc:nc + k] = start[on_air] + c.air
        self._c_x[nc:nc + k], self._c_y[nc:nc + k] = sx[on_air], sy[on_air]
        self._c_slot[nc:nc + k] = ss[on_air]
        self._nc = nc + k
        defer = np.where(on_air, start - t_acc, 0.0)
        return blocked, defer

    def _latest_beacon(self, s: np.ndarray, ph: np.ndarray, period: Any, now: float) -> np.ndarray:
        """Latest beacon time (ms) at or before ``now`` of slots ``s`` on the grids ``ph + k * period``,
        with their transmit jitter (as :meth:`beacon_times` lists them); under reactive DCC a grid
        time before the slot's grid start is not a beacon: the latest one before the start
        (``_dcc_last``) is."""
        g = ph + np.floor((now - ph) / period) * period
        if self._jit_key is None:
            t = g
        else:
            key = self._jit_key[s]
            t = g + beacon_jitter(key, g, self._jit_max)
            g_before = g - period
            before = g_before + beacon_jitter(key, g_before, self._jit_max)
            late = t > now
            t, g = np.where(late, before, t), np.where(late, g_before, g)
        if self._dcc_start is not None:
            t = np.where(g >= self._dcc_start[s], t, self._dcc_last[s])
        return t

    @property
    def airtime_ms(self) -> float:
        """Time one frame occupies the air (ms), from this episode's parameters."""
        return self.params.airtime_ms

    def _send_times(self, t_ms: Any, ss: np.ndarray) -> tuple[float | np.ndarray, float]:
        """``(t, latest)``: a float for a scalar ``t_ms``, else the checked ``(S,)`` float64 array."""
        if isinstance(t_ms, float) or np.ndim(t_ms) == 0:  # (np.float64 is a float: the common case costs no ndim)
            t = float(t_ms)
            if not math.isfinite(t):
                raise ValueError(f"t_ms must be finite, got {t_ms!r}")
            return t, t
        arr = np.asarray(t_ms)
        if arr.shape != ss.shape or arr.dtype.kind not in "iuf":
            raise ValueError(
                f"t_ms must be a number or a float array of shape ({len(ss)},) (one send time in ms per "
                f"sender), got shape {arr.shape} dtype {arr.dtype}"
            )
        arr = arr.astype(np.float64)  # a copy: the caller's array may change after the call
        if len(arr) == 0:
            return arr, -np.inf
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"t_ms[{i}] (sender slot {ss[i]}) must be finite, got {float(arr[i])!r}")
        early = arr < self._last_receive
        if early.any():
            i = int(np.flatnonzero(early)[0])
            raise ValueError(
                f"t_ms[{i}] = {float(arr[i])!r} ms (sender slot {ss[i]}) is earlier than the last receive at "
                f"{self._last_receive!r} ms: a message sent then could have arrived before that receive; "
                "send times must not be earlier than the latest receive time"
            )
        return arr, float(arr.max())

    def _links(self, rs, rxy, ss, sxy, ro, so):
        """In-range links in canonical (receiver slot, sender slot) order, with their pool rows."""
        p = self.params
        if self._use_kernels and ro is None and so is None and len(rs) * len(ss) <= _DENSE_PAIRS_MAX:
            pairs = len(rs) * len(ss)
            if len(self._w_si) < pairs:
                self._w_si, self._w_lid = np.empty(pairs, np.int32), np.empty(pairs, np.int32)
            r_slot, s_slot, dist, n_new = _k.dense_links(rxy, sxy, rs, ss, float(p.range_m), self._index.ravel(),
                                                         self.capacity, self._w_si, self._w_lid)
            si, lid = self._w_si[: len(dist)], self._w_lid[: len(dist)]
            if n_new:
                lid = self._link_rows(r_slot, s_slot)
            return si, dist, r_slot, s_slot, lid
        if self._use_kernels and ro is None and so is None and math.isfinite(p.range_m) and len(rs) and len(ss):
            r_slot, s_slot, si, dist, lid, n_new = _k.grid_links(rxy, sxy, rs, ss, float(p.range_m),
                                                                 self._index.ravel(), self.capacity)
            if n_new:
                lid = self._link_rows(r_slot, s_slot)
            return si, dist, r_slot, s_slot, lid
        if ro is None and so is None:
            ri, si, dist = candidate_links(rxy, sxy, p.range_m)
        else:
            ro = np.arange(len(rs)) if ro is None else ro
            so = np.arange(len(ss)) if so is None else so
            ri, si, dist = candidate_links(rxy[ro], sxy[so], p.range_m)
            ri, si = ro[ri], so[si]
        r_slot, s_slot = rs[ri], ss[si]
        keep = r_slot != s_slot
        key = r_slot * self.capacity + s_slot
        if not keep.all():
            ri, si, dist, r_slot, s_slot, key = ri[keep], si[keep], dist[keep], r_slot[keep], s_slot[keep], key[keep]
        if len(key) > 1 and not (key[1:] > key[:-1]).all():
            o = np.argsort(key, kind="stable")
            ri, si, dist, r_slot, s_slot = ri[o], si[o], dist[o], r_slot[o], s_slot[o]
        return si, dist, r_slot, s_slot, self._link_rows(r_slot, s_slot)

    def _resolve_enqueue_numpy(self, t, dist, lid, si, frame0, draws, blocked, defer):
        n = len(lid)
        rows: np.ndarray | slice = slice(0, n) if (self._sorted and n == self._n) else lid  # dense steady state
        lost, latency = resolve_links(self.params, dist, self._l_burst[rows], draws)
        self._l_burst[rows] = lost  # bursts follow the link model (fading), not collisions
        if len(blocked):
            lost = lost | blocked
        if len(defer):
            latency = latency + defer[si]
        ok = ~lost
        keep = ok & (latency < self.params.staleness_threshold_ms)  # stale on arrival: never visible
        k = int(keep.sum())
        if k:
            m = self._m
            ks = si[keep]
            arr = (t if isinstance(t, float) else t[ks]) + latency[keep]
            self._p_lid[m:m + k] = lid[keep]
            self._p_arr[m:m + k] = arr
            self._p_frame[m:m + k] = frame0 + ks
            self._m = m + k
            self._p_first = min(self._p_first, float(arr.min()))
        return ok, np.where(ok, latency, np.nan)

    def _resolve_enqueue_kernel(self, t, dist, lid, si, frame0, draws, blocked, defer):
        delivered, latency, self._m, first = _k.resolve_enqueue(
            dist, lid, draws.raw, draws.z_latency, self._model, self._bin_lo, self._bin_rate,
            self._l_burst, t if isinstance(t, float) else -np.inf, _EMPTY if isinstance(t, float) else t, si, frame0,
            self._p_lid, self._p_arr, self._p_frame, self._m, _EMPTY_BOOL if len(blocked) == 0 else blocked, defer,
        )
        self._p_first = min(self._p_first, first)
        return delivered, latency

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
        for name in _POOL_ARRAYS:
            a = getattr(self, name)
            out = np.full((size,) + a.shape[1:], -1 if name == "_t_frame" else 0, a.dtype)
            out[: len(a)] = a
            setattr(self, name, out)

    def _reserve_in_flight(self, need: int) -> None:
        if need <= len(self._p_lid):
            return
        size = max(need, 2 * len(self._p_lid))
        for name in _IN_FLIGHT_ARRAYS:
            a = getattr(self, name)
            out = np.zeros((size,) + a.shape[1:], a.dtype)
            out[: self._m] = a[: self._m]
            setattr(self, name, out)

    def _reserve_frames(self, k: int) -> int:
        """Room for ``k`` new frames at the end of the store; returns the first row. When full, frames
        nothing can show any more are dropped first (see :meth:`_compact_frames`), then the store grows
        if it is still more than half full."""
        if self._nf + k > len(self._f_pay):
            self._compact_frames()
            if 2 * (self._nf + k) > len(self._f_pay) or len(self._f_pay) < 16 * k:
                # room for >= 16 broadcasts between compactions: their cost stays a few % of a step
                size = max(2 * len(self._f_pay), 2 * (self._nf + k), 16 * k)
                for name in _FRAME_ARRAYS:
                    a = getattr(self, name)
                    out = np.zeros((size,) + a.shape[1:], a.dtype)
                    out[: self._nf] = a[: self._nf]
                    setattr(self, name, out)
        return self._nf

    def _compact_frames(self) -> None:
        """Keep only frames a copy in flight or a table entry that can still be shown points at.

        An entry whose send time is ``staleness_threshold_ms`` or more before the clock can never be
        shown again (later receives are not earlier): its payload is dropped (frame -1) while its send
        time stays for newest-wins. So the store holds about one frame per sender in steady state.
        """
        n, m = self._n, self._m
        tf = self._t_frame[:n]
        live = self._t_has[:n] & (tf >= 0) & (self._clock - self._t_ts[:n] < self.params.staleness_threshold_ms)
        tf[~live] = -1
        mark = np.zeros(self._nf, bool)
        mark[tf[live]] = True
        mark[self._p_frame[:m]] = True
        used = np.flatnonzero(mark)
        new_row = (np.cumsum(mark) - 1).astype(np.int32)
        for name in _FRAME_ARRAYS:
            a = getattr(self, name)
            a[: len(used)] = a[used]
        tf[live] = new_row[tf[live]]
        self._p_frame[:m] = new_row[self._p_frame[:m]]
        self._nf = len(used)

    # ---- receive ---------------------------------------------------------------------------
    def receive(self, now_ms: float, receiver_slots: Any) -> RxBatch:
        """Deliver every in-flight message with arrival <= ``now_ms``, return these receivers' valid messages.

        :param now_ms: current time (ms), not earlier than any earlier ``broadcast`` or ``receive`` time.
        :param receiver_slots: ``(R,)`` integer slots whose tables are returned.
        :raises ValueError: time went backwards (that could show a message before its arrival),
            slots outside ``0..capacity-1``.

        A delivered message replaces the receiver's entry for its sender only if it was sent later
        (an older message never replaces a newer one; among copies sent at the same time the one
        sent last wins). Valid means ``now - timestamp < staleness_threshold_ms``.
        """
        self._require_reset()
        now = float(now_ms)
        if not now >= self._clock:
            raise ValueError(
                f"receive(now_ms={now_ms!r}) went back in time: the radio's clock is at {self._clock} ms "
                "(latest broadcast or receive); time must not decrease"
            )
        rs = _slots("receiver_slots", receiver_slots, self.capacity)
        self._clock = self._last_receive = now
        self._deliver(now)
        if self._chan is not None:
            self._channel_receive(now, rs)
            if self._dcc_period is not None and len(rs):
                self._dcc_update(now, rs)
        if not self._sorted:
            self._sort_pool()
        n = self._n
        stale = self.params.staleness_threshold_ms
        self._req[rs] = True
        try:
            if self._use_kernels:
                return RxBatch(*_k.select_rows(now, float(stale), self._req, self._l_recv, self._l_send, self._t_has,
                                               self._t_ts, self._t_arr, self._t_frame, self._f_pay, self._f_mid, n))
            m = self._t_has[:n] & self._req[self._l_recv[:n]] & (now - self._t_ts[:n] < stale)
        finally:
            self._req[rs] = False
        idx = slice(0, n) if m.all() else np.flatnonzero(m)  # slices copy faster than a gather
        ts = self._t_ts[idx].copy()
        fr = self._t_frame[idx]
        return RxBatch(
            self._l_recv[idx].copy(), self._l_send[idx].copy(), np.take(self._f_pay, fr, axis=0), ts,
            now - ts, self._t_arr[idx].copy(), self._f_mid[fr],
        )

    def _channel_receive(self, now: float, rs: np.ndarray) -> None:
        """CBR of these receivers over ``(now - cbr_window_ms, now]``, then drop stored frames that
        can neither overlap a later frame nor fall in a later window (later access times are
        >= now - one beacon period - channel.tx_jitter_ms, later windows start >= now - cbr_window_ms)."""
        c, nc = self._chan, self._nc
        store = (self._c_start[:nc], self._c_end[:nc], self._c_x[:nc], self._c_y[:nc], self._c_slot[:nc])
        if len(rs):
            if self._use_kernels:
                self.cbr[rs] = _k.channel_cbr(now, c.window, rs, self._pos, *store, c.cs)
            else:
                self.cbr[rs] = _ch.cbr_reference(now, rs, self._pos, *store, c)
        longest = 1000.0 / self.beacon_hz if self._dcc_period is None else max(
            1000.0 / self.beacon_hz, float(self.params.dcc_gap_ms(1.0)))
        keep = self._c_end[:nc] + c.difs > now - max(c.window, longest + self._jit_max)
        if not keep.all():
            idx = np.flatnonzero(keep)
            for name in _CHANNEL_ARRAYS:
                a = getattr(self, name)
                a[: len(idx)] = a[idx]
            self._nc = len(idx)

    def _dcc_update(self, now: float, rs: np.ndarray) -> None:
        """Reactive DCC for these slots: the state's T_off follows the CBR at once towards a more
        restrictive state, towards a less restrictive one only after ``channel.dcc_relax_ms`` without
        a CBR at or above the current state's bound; new beacon period ``max(nominal, T_off)``; a slot
        whose period changes starts a new grid (see the class docstring)."""
        base = 1000.0 / self.beacon_hz
        nominal: float | np.ndarray = base
        if self.params.alert_beacon_hz is not None:
            nominal = np.where(self._alerting[rs], 1000.0 / self.params.alert_beacon_hz, base)
        g, cur, since = self.params.dcc_gap_ms(self.cbr[rs]), self._dcc_gap[rs], self._dcc_since[rs]
        relax = (g < cur) & (now - since >= self.params.channel_dcc_relax_ms)
        self._dcc_gap[rs] = np.where((g > cur) | relax, g, cur)
        self._dcc_since[rs] = np.where((g >= cur) | relax, now, since)
        new = np.maximum(nominal, self._dcc_gap[rs])
        old = self._dcc_period[rs]
        changed = new != old
        if changed.any():
            r, o, p = rs[changed], old[changed], new[changed]
            a = self._dcc_anchor[r]
            # latest beacon time <= now: on the current grid if it has started, else the one before it
            last = self._latest_beacon(r, a, o, now)
            # the new grid keeps the slot's random phase as the same fraction of the new period (beacons
            # of slots switching together stay spread over the period); it starts at its first time at
            # least one new period after the last beacon and after now (earlier times are past)
            phase = self._phases[r] * (p / base)
            with np.errstate(invalid="ignore"):
                k = np.maximum(np.ceil((last + p - phase) / p), np.floor((now - phase) / p) + 1.0)
            first = phase + np.where(np.isfinite(k), k, np.floor((now - phase) / p) + 1.0) * p
            self._dcc_anchor[r] = self._dcc_start[r] = first
            self._dcc_last[r] = last
            self._dcc_period[r] = p

    def _deliver(self, now: float) -> None:
        """Move in-flight messages that have arrived by ``now`` into the tables (newest sent wins)
        and drop in-flight messages that can no longer become visible."""
        if self._m == 0 or self._p_first > now:
            return
        if self._use_kernels:
            self._m, self._p_first = _k.deliver(
                now, self._p_lid, self._p_arr, self._p_frame, self._m, self._f_ts, self._f_seq,
                self._t_has, self._t_ts, self._t_seq, self._t_arr, self._t_frame,
            )
        else:
            self._deliver_numpy(now)
        if self._m > 2 * self._n + 64:  # several in flight per link: keep only those that can still show
            self._drop_superseded()

    def _deliver_numpy(self, now: float) -> None:
        m = self._m
        arrived = self._p_arr[:m] <= now
        every = bool(arrived.all())
        src = np.arange(m) if every else np.flatnonzero(arrived)
        lid, fr = self._p_lid[src], self._p_frame[src]
        ts, seq = self._f_ts[fr], self._f_seq[fr]
        if len(lid) > 1 and not (lid[1:] > lid[:-1]).all():
            # Several arrivals on one link: keep the newest sent (send time, then sequence).
            o = np.lexsort((seq, ts, lid))
            last = np.r_[lid[o][1:] != lid[o][:-1], True]
            pick = o[last]
            src, lid, fr, ts, seq = src[pick], lid[pick], fr[pick], ts[pick], seq[pick]
        newer = ~self._t_has[lid] | (ts > self._t_ts[lid]) | ((ts == self._t_ts[lid]) & (seq > self._t_seq[lid]))
        if not newer.all():
            src, lid, fr, ts, seq = src[newer], lid[newer], fr[newer], ts[newer], seq[newer]
        dst: np.ndarray | slice = lid
        if len(lid) == self._n and len(lid) and lid[0] == 0 and lid[-1] == self._n - 1:
            dst = slice(0, self._n)  # every link once, increasing: the identity (dense steady state)
        self._t_has[dst] = True
        self._t_ts[dst], self._t_seq[dst] = ts, seq
        self._t_arr[dst], self._t_frame[dst] = self._p_arr[src], fr
        if every:
            self._m, self._p_first = 0, np.inf
            return
        keep = ~arrived
        plid, pfr = self._p_lid[:m], self._p_frame[:m]
        pts, pseq = self._f_ts[pfr], self._f_seq[pfr]
        th, tts, tseq = self._t_has[plid], self._t_ts[plid], self._t_seq[plid]
        keep &= ~(th & ((pts < tts) | ((pts == tts) & (pseq < tseq))))  # older than what already arrived
        self._compact_in_flight(keep)

    def _compact_in_flight(self, keep: np.ndarray) -> None:
        idx = np.flatnonzero(keep)
        k = len(idx)
        for name in _IN_FLIGHT_ARRAYS:
            a = getattr(self, name)
            a[:k] = np.take(a, idx, axis=0)
        self._m = k
        self._p_first = float(self._p_arr[:k].min()) if k else np.inf

    def _drop_superseded(self) -> None:
        """Per link, drop in-flight messages that a newer-sent one arriving no later will hide.

        Newest-wins is by send time, and a later-sent message may arrive earlier: message i stays
        visible-able only if every later-sent message on its link arrives strictly after it.
        """
        m = self._m
        lid, arr = self._p_lid[:m], self._p_arr[:m]
        ts, seq = self._f_ts[self._p_frame[:m]], self._f_seq[self._p_frame[:m]]
        rank = np.empty(m, np.int64)
        rank[np.lexsort((seq, ts))] = np.arange(m)  # send order
        # by link, then arrival, later-sent first among equal arrivals
        o = np.lexsort((-rank, arr, lid))
        g = np.r_[0, np.cumsum(lid[o][1:] != lid[o][:-1])]
        key = rank[o] + g * m  # groups never mix in the running max
        before = np.r_[-1, np.maximum.accumulate(key)[:-1]]
        hidden = np.empty(m, bool)
        hidden[o] = before > key  # a later-sent message on this link arrives no later
        if hidden.any():
            self._compact_in_flight(~hidden)

    def _sort_pool(self) -> None:
        """Renumber link rows in (receiver, sender) order so receive output needs no sort."""
        n = self._n
        perm = np.argsort(self._l_recv[:n] * self.capacity + self._l_send[:n], kind="stable")
        new_row = np.empty(n, np.int64)
        new_row[perm] = np.arange(n)
        for name in _POOL_ARRAYS:
            a = getattr(self, name)
            a[:n] = a[perm]
        self._index[self._l_recv[:n], self._l_send[:n]] = np.arange(1, n + 1)
        self._p_lid[: self._m] = new_row[self._p_lid[: self._m]]
        self._sorted = True

    # ---- vehicles leaving ------------------------------------------------------------------
    def forget(self, slots: Any) -> None:
        """A vehicle left: drop its receive table, its entries in others' tables, its in-flight
        messages (sent or addressed) and the burst state of every link it is on. A vehicle that
        later gets the same slot starts from nothing."""
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
        # its frames stay on the air for others, but are no longer "own" frames of a new vehicle in the slot
        owner = self._c_slot[: self._nc]
        owner[(owner >= 0) & gone[np.maximum(owner, 0)]] = -1
        self.cbr[s] = 0.0
        self._alerting[s] = False
        if self._dcc_period is not None:
            self._dcc_anchor[s] = self._phases[s]
            self._dcc_period[s] = 1000.0 / self.beacon_hz
            self._dcc_start[s] = self._dcc_last[s] = self._dcc_since[s] = -np.inf
            self._dcc_gap[s] = float(self.params.dcc_gap_ms(0.0))
        if self._m:
            hit = rows[self._p_lid[: self._m]]
            if hit.any():
                self._compact_in_flight(~hit)

    # ---- introspection ---------------------------------------------------------------------
    @property
    def in_flight_count(self) -> int:
        """Number of delivered copies still in flight (sent, not yet arrived, able to become visible)."""
        return self._m

    def in_flight_message_ids(self) -> np.ndarray:
        """Message ids still in flight or held in some receive table (for side tables of the object API)."""
        n = self._n
        tf = self._t_frame[:n]
        live = self._t_has[:n] & (tf >= 0) & (self._clock - self._t_ts[:n] < self.params.staleness_threshold_ms)
        return np.concatenate([self._f_mid[self._p_frame[: self._m]], self._f_mid[tf[live]]])

    def _require_reset(self) -> None:
        if self._rng is None:
            raise RuntimeError("Radio.reset(seed) must be called before using the radio")


_EMPTY = np.empty(0)
_EMPTY_BOOL = np.empty(0, bool)
_CHANNEL_ARRAYS = ("_c_start", "_c_end", "_c_x", "_c_y", "_c_slot")
_POOL_ARRAYS = ("_l_recv", "_l_send", "_l_burst", "_t_has", "_t_ts", "_t_seq", "_t_arr", "_t_frame")
_IN_FLIGHT_ARRAYS = ("_p_lid", "_p_arr", "_p_frame")
_FRAME_ARRAYS = ("_f_ts", "_f_seq", "_f_pay", "_f_mid")
