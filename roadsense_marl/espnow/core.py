"""Pure, vectorised pieces of the radio: link culling, loss, latency, burst state, sensor noise.

Everything here is a function of NumPy arrays (no state). :class:`~roadsense_marl.espnow.radio.Radio`
strings them together; the tests feed the same random draws to a per-link reference.

Random draws of one broadcast come from exactly one call, :func:`draw_link_randomness`, in a
fixed, documented order: per link (links ordered by (receiver slot, sender slot)) for loss, burst
and latency, per transmitted message (senders ordered by slot) for sensor noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from roadsense_marl.espnow.params import RadioParams

__all__ = [
    "PAYLOAD_FIELDS",
    "X",
    "Y",
    "SPEED",
    "HEADING",
    "ACCEL",
    "FIELD_NOISE",
    "LinkDraws",
    "LinkLoss",
    "apply_sensor_noise",
    "beacon_jitter",
    "beacon_calls",
    "candidate_links",
    "draw_beacon_phases",
    "draw_link_randomness",
    "link_loss",
    "loss_probability",
    "noise_stds",
    "radio_generator",
    "resolve_links",
    "sample_episode_params",
]

#: Columns of a payload row: the sender's TRUE state (noise is added once per transmitted message).
PAYLOAD_FIELDS: tuple[str, ...] = ("x_m", "y_m", "speed_ms", "heading_deg", "accel_ms2")
X, Y, SPEED, HEADING, ACCEL = range(5)

#: Which ``sensor_noise`` std applies to a payload column, by field name. ``speed_ms`` is clamped
#: at 0 and ``heading_deg`` wrapped to [0, 360) after noise. Fields not listed get no noise.
FIELD_NOISE: dict[str, str] = {
    "x_m": "gps_std_m",
    "y_m": "gps_std_m",
    "speed_ms": "speed_std_ms",
    "heading_deg": "heading_std_deg",
    "accel_ms2": "accel_std_ms2",
    "accel_y_ms2": "accel_std_ms2",
    "accel_z_ms2": "accel_std_ms2",
    "gyro_x_rad_s": "gyro_std_rad_s",
    "gyro_y_rad_s": "gyro_std_rad_s",
    "gyro_z_rad_s": "gyro_std_rad_s",
}

_DENSE_PAIRS_MAX = 65_536  # below this many sender x receiver pairs a dense distance matrix is cheapest


# ---- episode-level randomness ----------------------------------------------------------------

def radio_generator(seed: int | np.random.SeedSequence | None) -> np.random.Generator:
    """The radio's random generator: ``Generator(SFC64(seed))`` (``seed=None``: OS entropy).

    SFC64 rather than NumPy's default PCG64: with everyone in range the draws are the largest
    single cost of a radio step, and SFC64 was measured 16 % faster for the normals and 26 % for
    the uniforms (9,900 of each). It is one of NumPy's own tested bit generators.
    """
    return np.random.Generator(np.random.SFC64(seed))


def sample_episode_params(rng: np.random.Generator, params: RadioParams, enabled: bool) -> RadioParams:
    """Domain randomisation for one episode (nothing is drawn when ``enabled`` is False).

    Draw order: one ``rng.random(4)`` -> base latency, base loss, jitter std, GPS std, each uniform
    in its ``domain_randomization`` range. Measured bin rates scale by drawn_base / nominal_base,
    clipped to [0, 1] (left as they are when the nominal base is 0).
    """
    if not enabled:
        return params
    u = rng.random(4)

    def pick(r: tuple[float, float], x: float) -> float:
        return float(r[0] + (r[1] - r[0]) * x)

    base_loss = pick(params.dr_loss_rate_range, u[1])
    bins = params.distance_bins
    if bins and params.loss_base_rate > 0:
        scale = base_loss / params.loss_base_rate
        bins = tuple(
            b if b.loss_rate is None else type(b)(b.name, b.lo_m, b.hi_m, float(min(1.0, max(0.0, b.loss_rate * scale))), b.count)
            for b in bins
        )
    return params.with_overrides(
        latency_base_ms=pick(params.dr_latency_range_ms, u[0]),
        loss_base_rate=base_loss,
        latency_jitter_std_ms=pick(params.dr_jitter_std_range_ms, u[2]),
        gps_std_m=pick(params.dr_gps_noise_range_m, u[3]),
        distance_bins=bins,
    )


def draw_beacon_phases(rng: np.random.Generator, capacity: int, beacon_hz: float) -> np.ndarray:
    """Per-slot beacon phase in [0, period) ms: ``rng.random(capacity) * 1000 / beacon_hz``.

    :class:`~roadsense_marl.espnow.Radio` passes a generator of their own, seeded by one
    ``integers(0, 2**63)`` draw of the radio's generator after domain randomisation, so the
    radio's stream does not depend on the capacity and slot i's phase is the same for any capacity.
    """
    return rng.random(capacity) * (1000.0 / beacon_hz)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def beacon_jitter(keys: np.ndarray, grid_ms: np.ndarray, max_ms: float) -> np.ndarray:
    """Transmit-time jitter (ms) of the beacons whose grid times are ``grid_ms`` (ms), for slots with
    jitter keys ``keys``: uniform in ``[0, max_ms)``, a pure function of ``(key, grid time in whole
    microseconds)`` (SplitMix64 of ``key + round(grid_ms * 1000) * golden``).

    A counter-based draw keyed by the grid time itself, so a beacon has one time whichever call asks
    for it (a beacon near a step boundary is listed once, never twice or not at all), and a beacon
    whose grid time belongs to two grids (the alert grid ``phase mod 50 ms`` holds every 100 ms
    grid time) keeps its time when its slot switches grid. The keys are one draw per slot per
    episode from a SeedSequence child of the radio's phase seed (:meth:`Radio.reset`), so the
    randomness still flows from ``reset(seed)``.

    :param keys: uint64, broadcastable against ``grid_ms`` (float64, ms, any sign).
    """
    with np.errstate(over="ignore"):
        us = np.floor(np.asarray(grid_ms, np.float64) * 1000.0 + 0.5).astype(np.int64).view(np.uint64)
        z = np.asarray(keys, np.uint64) + us * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (max_ms * 2.0 ** -53)


def beacon_calls(idx: np.ndarray) -> list[slice]:
    """Split beacons listed as :meth:`Radio.beacon_times` lists them (sorted by time) into
    :meth:`Radio.broadcast` calls that each take a slot at most once: consecutive runs of the list,
    a new call where a slot repeats. Every call's beacons come at or after the previous call's, so
    the channel sees frames in time order (a later call's frame never starts before an earlier
    call's). One call when no slot repeats (the common 0.1 s step); a slot beacons twice in an
    interval a period long or more, or with transmit jitter when two of its jittered times fall in it.

    :returns: slices of ``idx``, in order, covering it.
    """
    idx = np.asarray(idx, np.int64)
    m = len(idx)
    if m < 2 or np.bincount(idx).max() <= 1:
        return [slice(0, m)]
    out, start = [], 0
    while start < m:
        seg = idx[start:]
        first = np.unique(seg, return_index=True)[1]
        repeat = np.ones(len(seg), bool)
        repeat[first] = False
        stop = start + (int(np.argmax(repeat)) if repeat.any() else len(seg))
        out.append(slice(start, stop))
        start = stop
    return out


# ---- per-broadcast randomness ----------------------------------------------------------------

_U32 = 2.0 ** -32


@dataclass(frozen=True)
class LinkDraws:
    """Random numbers of one broadcast call.

    Per in-range link (canonical link order, length ``n_links``): ``raw`` one 64-bit word of the
    bit generator, split into two independent 32-bit uniforms in [0, 1) (:attr:`u_loss` from the
    high half, :attr:`u_burst` from the low half, each ``k * 2**-32``); ``z_latency`` standard
    normal, jitter. Per transmitted message (one per sender, senders in increasing slot order):
    ``z_noise[i, j]`` standard normal, sensor noise of payload column j of sender i's frame.
    Drawn for every in-range link and every sender whether or not a packet is lost, so the
    stream never depends on outcomes.
    """

    raw: np.ndarray
    z_latency: np.ndarray
    z_noise: np.ndarray

    @property
    def u_loss(self) -> np.ndarray:
        """Uniform per link for the loss draw (high 32 bits of ``raw``)."""
        return (self.raw >> np.uint64(32)).astype(np.float64) * _U32

    @property
    def u_burst(self) -> np.ndarray:
        """Uniform per link for the burst continuation (low 32 bits of ``raw``)."""
        return (self.raw & np.uint64(0xFFFFFFFF)).astype(np.float64) * _U32


def draw_link_randomness(
    rng: np.random.Generator, n_links: int, n_senders: int, n_fields: int, out_z: np.ndarray | None = None,
) -> LinkDraws:
    """All draws of one broadcast call, in this fixed order:

    1. ``raw = rng.bit_generator.random_raw(n_links)``: per link, two 32-bit uniforms (loss,
       burst continuation; see :class:`LinkDraws`);
    2. ``z_latency = rng.standard_normal(n_links)``: latency jitter, per link;
    3. ``z_noise = rng.standard_normal((n_senders, n_fields))``: sensor noise, per transmitted
       message (row i: the i-th sender in increasing slot order), shared by every copy of it.

    A sender transmits one frame with one noisy reading; every receiver of that frame gets the
    same bytes (roadsense/convoy-v1). Environment contract v0 drew noise per delivered copy, in one
    ``standard_normal((1 + n_fields, n_links))`` block with latency, and two 53-bit uniforms per link.

    Why 32-bit uniforms: with everyone in range the draws are the largest single cost of a radio
    step; one raw word per link costs half of two doubles (measured 15 vs 30 us for 9,900 links),
    and a 2**-32 resolution is far below any loss probability the model can express.
    ``out_z`` (``(>= n_links,)`` float64) is an optional buffer the latency normals are written
    into (identical values); ``z_latency`` is then a view of it. Double-precision normals:
    single precision was measured only ~5-10 % faster, not worth the coarser values.
    """
    raw = rng.bit_generator.random_raw(n_links) if n_links else np.empty(0, np.uint64)
    if out_z is None:
        z_latency = rng.standard_normal(n_links)
    else:  # same values, written into a reused buffer (cache-warm, no allocation)
        z_latency = rng.standard_normal(out=out_z[:n_links])
    z_noise = rng.standard_normal((n_senders, n_fields))
    return LinkDraws(raw, z_latency, z_noise)


# ---- link culling ----------------------------------------------------------------------------

def candidate_links(
    receiver_xy: np.ndarray, sender_xy: np.ndarray, range_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (receiver index, sender index, distance) with distance < ``range_m``.

    Small problems use a dense distance matrix; large ones a uniform grid of ``range_m`` cells
    (sort receivers by cell, look up the 3x3 neighbouring cells of each sender), so out-of-range
    pairs cost almost nothing. Self-pairs are NOT removed here (indices refer to the two arrays).
    The output is in no particular order.
    """
    nr, ns = len(receiver_xy), len(sender_xy)
    if nr == 0 or ns == 0:
        e = np.empty(0, np.int64)
        return e, e, np.empty(0)
    if nr * ns <= _DENSE_PAIRS_MAX or not math.isfinite(range_m):
        dx = receiver_xy[:, None, 0] - sender_xy[None, :, 0]
        dy = receiver_xy[:, None, 1] - sender_xy[None, :, 1]
        d2 = (dx * dx + dy * dy).ravel()
        flat = np.flatnonzero(d2 < range_m * range_m) if math.isfinite(range_m) else np.arange(nr * ns)
        ri, si = np.divmod(flat, ns)
        return ri, si, np.sqrt(d2[flat])
    cell = float(range_m)
    lo = np.minimum(receiver_xy.min(axis=0), sender_xy.min(axis=0))
    rc = np.floor((receiver_xy - lo) / cell).astype(np.int64) + 1
    sc = np.floor((sender_xy - lo) / cell).astype(np.int64) + 1
    ny = int(max(rc[:, 1].max(), sc[:, 1].max())) + 2
    rkey = rc[:, 0] * ny + rc[:, 1]
    order = np.argsort(rkey, kind="stable")
    rkey_sorted = rkey[order]
    skey = sc[:, 0] * ny + sc[:, 1]
    offsets = (np.array([-1, 0, 1])[:, None] * ny + np.array([-1, 0, 1])[None, :]).ravel()
    q = (skey[:, None] + offsets[None, :]).ravel()  # 9 neighbour cells per sender
    start = np.searchsorted(rkey_sorted, q, side="left")
    stop = np.searchsorted(rkey_sorted, q, side="right")
    counts = stop - start
    total = int(counts.sum())
    if total == 0:
        e = np.empty(0, np.int64)
        return e, e, np.empty(0)
    si = np.repeat(np.repeat(np.arange(ns), 9), counts)
    first = np.repeat(start - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    ri = order[first + np.arange(total)]
    dx = receiver_xy[ri, 0] - sender_xy[si, 0]
    dy = receiver_xy[ri, 1] - sender_xy[si, 1]
    d = np.sqrt(dx * dx + dy * dy)  # the dense path's formula (not hypot), so both give the same bits
    keep = d < range_m
    return ri[keep], si[keep], d[keep]


# ---- loss, burst, latency --------------------------------------------------------------------

def loss_probability(params: RadioParams, distance_m: np.ndarray) -> np.ndarray:
    """Per-packet loss probability at each distance (before burst).

    Tiered model (the original formula, kept for compatibility with its files; ``rate_tier_1`` is
    read but unused): ``base_rate`` below T1, linear from ``base_rate`` to ``rate_tier_2`` on
    [T1, T2), ``rate_tier_3`` at or past T2. Measured bins, when present, replace it: the rate of
    the populated bin ``[lo, hi)`` holding d (first bin below it, ``m_plus`` or last bin past it).
    The hard range is applied by the caller (links at or past it do not exist).
    """
    d = np.asarray(distance_m, dtype=np.float64)
    if params.uses_bins:
        los, rates = params.bin_table()
        idx = np.clip(np.searchsorted(los, d, side="right") - 1, 0, len(rates) - 1)
        return rates[idx]
    t1, t2 = params.loss_threshold_1_m, params.loss_threshold_2_m
    frac = np.clip((d - t1) / (t2 - t1), 0.0, 1.0)
    mid = params.loss_base_rate + frac * (params.loss_rate_tier_2 - params.loss_base_rate)
    return np.where(d < t1, params.loss_base_rate, np.where(d < t2, mid, params.loss_rate_tier_3))


@dataclass(frozen=True)
class LinkLoss:
    """The loss model of links at given distances: per link a two-state chain (last packet
    delivered / lost). The one owner of the burst formula: :func:`resolve_links` draws from it,
    evaluation (``expected_delivery_ratio``) reads its stationary delivery ratio.

    ``fresh``: loss probability of a packet after a delivered one (the per-packet loss of
    :func:`loss_probability`). ``boosted``: loss probability while a burst continues,
    ``max(p, min(max_loss_cap, p * loss_multiplier))`` (= ``fresh`` without bursts).
    ``burst_continue``: probability ``1 - 1/mean_burst_length`` that a burst continues after a
    loss (0 without bursts). ``in_range``: distance < the hard range (``range_m``). Arrays have
    the shape of the distances.
    """

    fresh: np.ndarray
    boosted: np.ndarray
    burst_continue: float
    in_range: np.ndarray

    @property
    def after_loss(self) -> np.ndarray:
        """Loss probability of a packet right after a lost one: ``c * boosted + (1 - c) * fresh``."""
        c = self.burst_continue
        return c * self.boosted + (1.0 - c) * self.fresh

    @property
    def stationary_loss(self) -> np.ndarray:
        """Long-run share of lost packets of the chain, ``p / (1 - q + p)`` (``q`` = :attr:`after_loss`);
        1 where the chain never delivers. Ignores the hard range."""
        p, q = self.fresh, self.after_loss
        den = 1.0 - q + p
        return np.where(den > 0, p / np.where(den > 0, den, 1.0), 1.0)

    @property
    def stationary_delivery_ratio(self) -> np.ndarray:
        """Long-run delivery ratio: ``1 - stationary_loss`` in range, 0 at or past the hard range."""
        return np.where(self.in_range, 1.0 - self.stationary_loss, 0.0)


def link_loss(params: RadioParams, distance_m: np.ndarray) -> LinkLoss:
    """The burst loss model at each distance (metres, any shape); see :class:`LinkLoss`."""
    d = np.asarray(distance_m, dtype=np.float64)
    p = loss_probability(params, d)
    if params.burst_enabled:
        boosted = np.maximum(p, np.minimum(params.burst_max_loss_cap, p * params.burst_loss_multiplier))
        c = 1.0 - 1.0 / params.burst_mean_length
    else:
        boosted, c = p, 0.0
    return LinkLoss(p, boosted, float(c), d < params.range_m)


def resolve_links(
    params: RadioParams, distance_m: np.ndarray, in_burst: np.ndarray, draws: LinkDraws
) -> tuple[np.ndarray, np.ndarray]:
    """Outcome of each link's packet: ``(lost: bool[n], latency_ms: float[n])``. Pure.

    Loss from :func:`link_loss`: a link in burst (``in_burst``: its previous packet was lost)
    stays in burst with probability ``burst_continue`` (``u_burst < burst_continue``) and then
    loses with ``boosted``, else with ``fresh``. Lost iff ``u_loss < p_eff``.
    Latency ``max(1, base + distance_factor * d + jitter * z_latency)`` ms. The caller stores
    ``lost`` as the link's new burst state.
    """
    loss = link_loss(params, distance_m)
    p = loss.fresh
    if params.burst_enabled:
        p = np.where(in_burst & (draws.u_burst < loss.burst_continue), loss.boosted, p)
    lost = draws.u_loss < p
    latency = (
        params.latency_base_ms
        + params.latency_distance_factor * distance_m
        + params.latency_jitter_std_ms * draws.z_latency
    )
    return lost, np.maximum(latency, 1.0)


# ---- sensor noise ----------------------------------------------------------------------------

def noise_stds(params: RadioParams, fields: tuple[str, ...]) -> np.ndarray:
    """Noise std of each payload column (0 for fields without a noise model)."""
    return np.array([getattr(params, FIELD_NOISE[f]) if f in FIELD_NOISE else 0.0 for f in fields])


def apply_sensor_noise(
    payload: np.ndarray, z_noise: np.ndarray, stds: np.ndarray, speed_col: int | None, heading_col: int | None
) -> np.ndarray:
    """Noisy messages ``payload + stds * z_noise`` (float64 ``(n_messages, fields)``, one row per
    transmitted message); speed clamped at 0, heading wrapped to [0, 360). Pure.

    :param payload: ``(n_messages, fields)`` true states.
    :param z_noise: ``(n_messages, fields)`` standard normals (:attr:`LinkDraws.z_noise`).
    :param stds: ``(fields,)`` noise std per column (:func:`noise_stds`), in the column's unit.
    """
    out = payload + z_noise * np.asarray(stds, dtype=np.float64)
    if speed_col is not None:
        np.maximum(out[:, speed_col], 0.0, out=out[:, speed_col])
    if heading_col is not None:
        h = out[:, heading_col]
        np.mod(h, 360.0, out=h)
        h[h >= 360.0] = 0.0  # -1e-17 % 360 == 360.0
    return out
