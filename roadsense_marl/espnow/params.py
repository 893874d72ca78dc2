"""Radio parameters: built-in defaults, loading (JSON / YAML / dict), deep merge and validation.

The keys are those of the original project's parameter files, so its JSON files load as they
are. A key the schema below does not know, in a known section or as a section of its own, is an
error naming the key with the closest valid one ("did you mean"): a typo such as
``packet_loss.base_rte`` must not silently leave the default in place. Metadata stays allowed and
is kept in ``RadioParams.raw``: ``_metadata`` and any other key starting with ``_``, and
free-text keys named in :data:`METADATA_KEYS` (``description``, ``comment``, ``notes``, ...), at
the top level or inside a section::

    latency.{base_ms, distance_factor, jitter_std_ms}
    packet_loss.{base_rate, distance_threshold_1, distance_threshold_2,
                 rate_tier_1, rate_tier_2, rate_tier_3, max_range_m}
    burst_loss.{enabled, mean_burst_length, loss_multiplier, max_loss_cap}
    sensor_noise.{gps_std_m, speed_std_ms, accel_std_ms2, heading_std_deg, gyro_std_rad_s}
    observation.staleness_threshold_ms
    domain_randomization.{enabled, latency_range_ms, loss_rate_range,
                          jitter_std_range_ms, gps_noise_range_m}
    channel.{enabled, payload_bytes, frame_overhead_bytes, phy_rate_mbps, preamble_us,
             carrier_sense_range_m, slot_us, difs_us, cw_min, max_access_delay_ms, cbr_window_ms,
             alert_beacon_hz, alert_accel_threshold_ms2, dcc, dcc_table,
             dcc_relax_ms, tx_jitter_ms}
             (or ``channel: "off"`` / ``"on"`` / false / true; see :data:`CHANNEL_SOURCES`)
    _metadata.distance_bins: {"0_20m": {"count": 7581, "loss_rate": 0.058}, ..., "100m_plus": {...}}

Every problem raises ``ValueError`` naming the key and the bad value (a missing file raises
``ParamsFileNotFoundError``, which is both a ``FileNotFoundError`` and a ``ValueError``).
"""

from __future__ import annotations

import copy
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHANNEL_SOURCES",
    "DEFAULTS",
    "GPS_STD_WARN_M",
    "METADATA_KEYS",
    "DistanceBin",
    "ParamsFileNotFoundError",
    "RadioParams",
    "load_params",
    "shipped_config",
]

#: Built-in defaults: the measured convoy calibration in its tiered form (no distance bins,
#: no hard range). ``configs/espnow/defaults.json`` is the same dict as a file (a test keeps them equal).
DEFAULTS: dict[str, Any] = {
    "latency": {"base_ms": 3.84, "distance_factor": 0.0, "jitter_std_ms": 1.044},
    "packet_loss": {
        "base_rate": 0.058,
        "distance_threshold_1": 50.0,
        "distance_threshold_2": 100.0,
        "rate_tier_1": 0.1158,
        "rate_tier_2": 0.1241,
        "rate_tier_3": 0.1862,
        "max_range_m": None,
    },
    "burst_loss": {"enabled": True, "mean_burst_length": 1.606, "loss_multiplier": 2.5, "max_loss_cap": 0.1862},
    "sensor_noise": {
        "gps_std_m": 2.958877,
        "speed_std_ms": 0.42902,
        "accel_std_ms2": 0.394804,
        "heading_std_deg": 4.711787,
        "gyro_std_rad_s": 0.023215,
    },
    "observation": {"staleness_threshold_ms": 500.0},
    "domain_randomization": {
        "enabled": True,
        "latency_range_ms": [1.92, 7.68],
        "loss_rate_range": [0.029, 0.25],
        "jitter_std_range_ms": [0.52, 2.09],
        "gps_noise_range_m": [0.5, 4.438],
    },
    # The shared channel (:mod:`roadsense_marl.espnow.channel`): off in the built-in defaults so that
    # ``Radio()`` is the calibrated link model alone; on in configs/espnow/measured.json and degraded.json.
    "channel": {
        "enabled": False,
        "payload_bytes": 90,
        "frame_overhead_bytes": 43,
        "phy_rate_mbps": 1.0,
        "preamble_us": 192.0,
        "carrier_sense_range_m": 300.0,
        "slot_us": 20.0,
        "difs_us": 50.0,
        "cw_min": 31,
        "max_access_delay_ms": 100.0,
        "cbr_window_ms": 100.0,
        "alert_beacon_hz": None,
        "alert_accel_threshold_ms2": -2.5,
        "dcc": "off",
        "dcc_table": [[0.30, 60.0], [0.40, 100.0], [0.50, 180.0], [0.60, 260.0], [None, 460.0]],
        "dcc_relax_ms": 1000.0,
        "tx_jitter_ms": 5.0,
    },
}

#: Where each ``channel`` default comes from (also in the README's radio section).
CHANNEL_SOURCES: dict[str, str] = {
    "payload_bytes": "the original firmware's packed V2V state message (90 B)",
    "frame_overhead_bytes": "ESP-NOW vendor-specific action frame (Espressif ESP-NOW user guide, frame format): "
                            "24 B MAC header + 1 B category + 3 B OUI + 4 B random value + 7 B vendor element "
                            "header (element id, length, OUI, type, version) + 4 B FCS = 43 B",
    "phy_rate_mbps": "ESP-NOW default PHY rate, 1 Mbps (802.11b DSSS)",
    "preamble_us": "802.11b long PLCP preamble 144 us + PLCP header 48 us (IEEE Std 802.11-2016, clause 16 DSSS)",
    "carrier_sense_range_m": "two-ray ground path loss, 1.5 m antennas, 20 dBm ESP32 output, -82 dBm CCA "
                             "preamble-detect threshold of 802.11b gives ~530 m; minus a 10 dB margin for car "
                             "bodies and roadside clutter gives ~300 m (the 50 m measured limit is where the "
                             "recording had no data, not the radio's reach)",
    "slot_us": "802.11b DSSS aSlotTime 20 us (IEEE Std 802.11-2016, DSSS PHY characteristics)",
    "difs_us": "DIFS = aSIFSTime 10 us + 2 x aSlotTime = 50 us (IEEE Std 802.11-2016, 10.3.2.3)",
    "cw_min": "802.11b DSSS aCWmin 31; broadcast frames are never acknowledged, so the window never doubles",
    "max_access_delay_ms": "one beacon period at 10 Hz: a beacon still waiting for the channel when the next "
                           "is due is replaced by it (as the ETSI DCC gatekeeper does, ETSI TS 102 687)",
    "cbr_window_ms": "channel busy ratio measured over 100 ms, as ETSI TS 102 687 (DCC) specifies",
    "alert_beacon_hz": "off by default (null); the original firmware beacons at 20 Hz while alerting (hard braking), "
                       "which adds load exactly when it matters",
    "alert_accel_threshold_ms2": "a sender alerts while its own (true) acceleration in its latest broadcast is at or "
                                 "below this, the observation's braking threshold (-2.5 m/s^2)",
    "dcc": "off by default (a research switch); \"reactive\": ETSI TS 102 687 V1.2.1 reactive decentralized "
           "congestion control, a per-vehicle minimum inter-beacon gap T_off chosen by the vehicle's own CBR",
    "dcc_table": "ETSI TS 102 687 V1.2.1, Annex A, reactive DCC parameters for ~1 ms frames: Relaxed CBR < 0.30: "
                 "60 ms; Active1 < 0.40: 100 ms; Active2 < 0.50: 180 ms; Active3 < 0.60: 260 ms; Restrictive: "
                 "460 ms (rows [cbr_upper, T_off ms], the last row's cbr_upper null: everything above)",
    "dcc_relax_ms": "hysteresis (a modelling choice, not a value from the standard): a vehicle moves to a more "
                    "restrictive state at the first CBR reading that calls for it, to a less restrictive one only "
                    "after 1 s without such a reading. Without it, neighbours that cut their rate together read "
                    "an almost idle 100 ms window right after (the silence before their first longer gap ends) "
                    "and relax together: a synchronised on/off oscillation. Implementations of the ETSI state "
                    "machine use asymmetric windows as well (Vanetza: 1 s up, 5 s down); 0 disables it",
    "tx_jitter_ms": "transmit-time randomisation: each frame reaches the MAC a uniform U[0, 5 ms) after its beacon "
                    "time (drawn per frame), as the CAMP VSC4 on-board minimum performance requirements for V2V "
                    "safety systems v1.0 (2014), MPR-BSMTX-TXTIM-002, prescribe (every 100 ms plus a random "
                    "0-5 ms) and ns-3's BsmApplication models (TxMaxDelay). Without it two vehicles whose beacon "
                    "phases fall within one slot of each other collide on every beacon for as long as they are "
                    "in range (measured before it: 3 of 500 convoy_6 episodes lost every beacon of the braking "
                    "car to its follower); the recording's short bursts (mean 1.6) show no such lock. The beacon "
                    "is generated at its jittered time (its state is taken then), so the jitter is not latency; "
                    "0 puts beacons on their exact grid",
}

#: A GPS noise above this many metres is almost surely a degree/metre mix-up (the earlier
#: project shipped 33-48 km); loading such a value warns loudly.
GPS_STD_WARN_M = 100.0

_SECTIONS = ("latency", "packet_loss", "burst_loss", "sensor_noise", "observation", "domain_randomization", "channel")
#: Word forms ``channel`` may take instead of a mapping.
_CHANNEL_WORDS = {"off": False, "on": True}
#: Values of ``channel.dcc``.
DCC_MODES: tuple[str, ...] = ("off", "reactive")
#: Free-text keys allowed anywhere (besides keys starting with ``_``); never read as parameters.
METADATA_KEYS = frozenset({"description", "descriptions", "comment", "comments", "note", "notes", "source", "units"})
_BIN_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*_\s*(\d+(?:\.\d+)?)\s*m\s*$")
_PLUS_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*m\s*_?\s*plus\s*$")


class ParamsFileNotFoundError(FileNotFoundError, ValueError):
    """A parameter file that does not exist (a ValueError too, like every other parameter problem)."""


@dataclass(frozen=True)
class DistanceBin:
    """One measured loss bin ``[lo_m, hi_m)``; ``hi_m`` is ``inf`` for an ``"N m_plus"`` bin."""

    name: str
    lo_m: float
    hi_m: float
    loss_rate: float | None
    count: int | None

    @property
    def populated(self) -> bool:
        """A bin is used only if it carries a loss rate measured on at least one packet."""
        return self.loss_rate is not None and (self.count is None or self.count > 0)


@dataclass(frozen=True)
class RadioParams:
    """Validated radio parameters (build with :func:`load_params`). Times in ms, distances in m."""

    latency_base_ms: float
    latency_distance_factor: float  # ms per metre
    latency_jitter_std_ms: float
    loss_base_rate: float
    loss_threshold_1_m: float
    loss_threshold_2_m: float
    loss_rate_tier_1: float  # read for compatibility; the original formula never used it
    loss_rate_tier_2: float
    loss_rate_tier_3: float
    max_range_m: float | None
    burst_enabled: bool
    burst_mean_length: float
    burst_loss_multiplier: float
    burst_max_loss_cap: float
    gps_std_m: float
    speed_std_ms: float
    accel_std_ms2: float
    heading_std_deg: float
    gyro_std_rad_s: float
    staleness_threshold_ms: float
    dr_enabled: bool
    dr_latency_range_ms: tuple[float, float]
    dr_loss_rate_range: tuple[float, float]
    dr_jitter_std_range_ms: tuple[float, float]
    dr_gps_noise_range_m: tuple[float, float]
    distance_bins: tuple[DistanceBin, ...] = ()
    # the shared channel (see DEFAULTS["channel"] and CHANNEL_SOURCES); off: the link model alone
    channel_enabled: bool = False
    channel_payload_bytes: int = 90
    channel_frame_overhead_bytes: int = 43
    channel_phy_rate_mbps: float = 1.0
    channel_preamble_us: float = 192.0
    channel_carrier_sense_range_m: float = 300.0
    channel_slot_us: float = 20.0
    channel_difs_us: float = 50.0
    channel_cw_min: int = 31
    channel_max_access_delay_ms: float = 100.0
    channel_cbr_window_ms: float = 100.0
    alert_beacon_hz: float | None = None  # beacon rate while alerting (None: the normal rate always)
    alert_accel_threshold_ms2: float = -2.5
    # ETSI reactive DCC (see CHANNEL_SOURCES): "off" or "reactive"; table rows (cbr_upper, T_off ms),
    # the last row's cbr_upper None (everything above the previous row)
    channel_dcc: str = "off"
    channel_dcc_table: tuple[tuple[float | None, float], ...] = (
        (0.30, 60.0), (0.40, 100.0), (0.50, 180.0), (0.60, 260.0), (None, 460.0))
    channel_dcc_relax_ms: float = 1000.0
    channel_tx_jitter_ms: float = 5.0
    source: str = field(default="<defaults>", compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ---- derived, used by the core (cached: the radio asks on every broadcast) ------------
    @cached_property
    def uses_bins(self) -> bool:
        """True when measured distance bins replace the tiered loss model."""
        return any(b.populated for b in self.distance_bins)

    @cached_property
    def range_m(self) -> float:
        """Hard radio range (exclusive): links at ``d >= range_m`` do not exist (every packet lost).

        ``max_range_m`` when given; else, with measured bins, the upper edge of the last populated
        bin; else unbounded.
        """
        if self.max_range_m is not None:
            return float(self.max_range_m)
        if self.uses_bins:
            return max(b.hi_m for b in self.distance_bins if b.populated)
        return math.inf

    @property
    def airtime_ms(self) -> float:
        """Time one frame occupies the air (ms): PHY preamble + (payload + frame overhead) x 8 bits /
        PHY rate. ESP-NOW defaults: 192 us + 133 B x 8 / 1 Mbps = 1.256 ms."""
        bits = 8.0 * (self.channel_payload_bytes + self.channel_frame_overhead_bytes)
        return (self.channel_preamble_us + bits / self.channel_phy_rate_mbps) / 1000.0

    def bin_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower edges, loss rates) of the populated bins, sorted, for ``searchsorted`` lookup.

        A ``m_plus`` bin starts at the last finite upper edge at the latest, so everything at or
        past the last finite bin uses it, as the measured-bin rule asks.
        """
        return self._bin_table

    @cached_property
    def _bin_table(self) -> tuple[np.ndarray, np.ndarray]:
        bins = sorted((b for b in self.distance_bins if b.populated), key=lambda b: b.lo_m)
        finite_hi = [b.hi_m for b in bins if math.isfinite(b.hi_m)]
        los = [min(b.lo_m, max(finite_hi)) if (not math.isfinite(b.hi_m) and finite_hi) else b.lo_m for b in bins]
        table = np.asarray(los, dtype=np.float64), np.asarray([b.loss_rate for b in bins], dtype=np.float64)
        for a in table:
            a.flags.writeable = False  # shared by every call
        return table

    def to_dict(self) -> dict[str, Any]:
        """The parameters in file form (``load_params(p.to_dict()) == p``)."""
        out = copy.deepcopy(dict(self.raw))
        out.update(
            latency={"base_ms": self.latency_base_ms, "distance_factor": self.latency_distance_factor,
                     "jitter_std_ms": self.latency_jitter_std_ms},
            packet_loss={"base_rate": self.loss_base_rate, "distance_threshold_1": self.loss_threshold_1_m,
                         "distance_threshold_2": self.loss_threshold_2_m, "rate_tier_1": self.loss_rate_tier_1,
                         "rate_tier_2": self.loss_rate_tier_2, "rate_tier_3": self.loss_rate_tier_3,
                         "max_range_m": self.max_range_m},
            burst_loss={"enabled": self.burst_enabled, "mean_burst_length": self.burst_mean_length,
                        "loss_multiplier": self.burst_loss_multiplier, "max_loss_cap": self.burst_max_loss_cap},
            sensor_noise={"gps_std_m": self.gps_std_m, "speed_std_ms": self.speed_std_ms,
                          "accel_std_ms2": self.accel_std_ms2, "heading_std_deg": self.heading_std_deg,
                          "gyro_std_rad_s": self.gyro_std_rad_s},
            observation={"staleness_threshold_ms": self.staleness_threshold_ms},
            domain_randomization={"enabled": self.dr_enabled,
                                  "latency_range_ms": list(self.dr_latency_range_ms),
                                  "loss_rate_range": list(self.dr_loss_rate_range),
                                  "jitter_std_range_ms": list(self.dr_jitter_std_range_ms),
                                  "gps_noise_range_m": list(self.dr_gps_noise_range_m)},
            channel={"enabled": self.channel_enabled, "payload_bytes": self.channel_payload_bytes,
                     "frame_overhead_bytes": self.channel_frame_overhead_bytes,
                     "phy_rate_mbps": self.channel_phy_rate_mbps, "preamble_us": self.channel_preamble_us,
                     "carrier_sense_range_m": self.channel_carrier_sense_range_m,
                     "slot_us": self.channel_slot_us, "difs_us": self.channel_difs_us,
                     "cw_min": self.channel_cw_min, "max_access_delay_ms": self.channel_max_access_delay_ms,
                     "cbr_window_ms": self.channel_cbr_window_ms, "alert_beacon_hz": self.alert_beacon_hz,
                     "alert_accel_threshold_ms2": self.alert_accel_threshold_ms2,
                     "dcc": self.channel_dcc, "dcc_table": [list(r) for r in self.channel_dcc_table],
                     "dcc_relax_ms": self.channel_dcc_relax_ms, "tx_jitter_ms": self.channel_tx_jitter_ms},
        )
        meta = dict(out.get("_metadata") or {})
        if self.distance_bins:
            meta["distance_bins"] = {b.name: {"count": b.count, "loss_rate": b.loss_rate} for b in self.distance_bins}
            out["_metadata"] = meta
        return out

    def dcc_gap_ms(self, cbr: Any) -> np.ndarray:
        """Reactive DCC (ETSI TS 102 687 V1.2.1, Annex A): the minimum inter-beacon gap T_off (ms) of
        the DCC state each channel busy ratio falls in, float64 with the shape of ``cbr``.

        State ``i`` is the first row of ``channel.dcc_table`` with ``cbr < cbr_upper``; the last row
        (``cbr_upper`` None) takes every CBR at or above the previous row's bound. The default table
        is the standard's for ~1 ms frames (Relaxed 60, Active1 100, Active2 180, Active3 260,
        Restrictive 460 ms at CBR bounds 0.30 / 0.40 / 0.50 / 0.60). Defined whatever ``channel.dcc``
        says; the radio applies it only with ``channel.dcc = "reactive"``.
        """
        bounds, gaps = self._dcc_arrays
        return gaps[np.searchsorted(bounds, np.asarray(cbr, np.float64), side="right")]

    @cached_property
    def _dcc_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray([r[0] for r in self.channel_dcc_table[:-1]], np.float64),
                np.asarray([r[1] for r in self.channel_dcc_table], np.float64))

    def with_overrides(self, **changes: Any) -> RadioParams:
        """A copy with some fields changed (used for domain randomisation); not re-validated."""
        return replace(self, **changes)


# ---- loading ---------------------------------------------------------------------------------

def shipped_config(name: str) -> Path:
    """Path of a config shipped in ``configs/espnow/`` (``"measured"``, ``"ideal"``, ...)."""
    from roadsense_marl.paths import config_path

    return config_path("espnow", name if Path(name).suffix else f"{name}.json")


def load_params(source: str | Path | Mapping[str, Any] | RadioParams | None = None) -> RadioParams:
    """Load, deep-merge over :data:`DEFAULTS` and validate radio parameters.

    ``source`` is ``None`` (built-in defaults), a ``RadioParams`` (returned as is), a dict, or a
    path to a ``.json`` / ``.yaml`` / ``.yml`` file. A bare name such as ``"measured"`` that is not
    an existing file means the shipped ``configs/espnow/measured.json``.
    """
    if isinstance(source, RadioParams):
        return source
    if source is None:
        return _build(copy.deepcopy(DEFAULTS), "<defaults>")
    if isinstance(source, Mapping):
        return _build(_deep_merge(DEFAULTS, source), "<dict>")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists() and isinstance(source, str) and not path.suffix and "/" not in source:
            path = shipped_config(source)
        return _build(_deep_merge(DEFAULTS, _read_file(path)), str(path))
    raise ValueError(
        f"radio params: expected None, a path, a dict or RadioParams, got {type(source).__name__}: {source!r}"
    )


def _read_file(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise ParamsFileNotFoundError(f"radio parameter file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise ValueError(f"radio parameter file {path} is not valid {path.suffix or 'JSON'}: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"radio parameter file {path} must hold a mapping at top level, got {type(data).__name__}")
    return data


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ---- validation ------------------------------------------------------------------------------

def _bad(where: str, key: str, value: Any, valid: str) -> ValueError:
    return ValueError(f"{where}: invalid {key} = {value!r}: must be {valid}")


def _section(d: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    sec = d.get(name)
    if not isinstance(sec, Mapping):
        raise _bad(where, name, sec, "a mapping")
    return sec


def _num(sec: Mapping[str, Any], sname: str, key: str, where: str, *, lo: float | None = 0.0,
         hi: float | None = None, lo_open: bool = False) -> float:
    value = sec.get(key)
    full = f"{sname}.{key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(where, full, value, "a finite number")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise _bad(where, full, value, f"{'>' if lo_open else '>='} {lo}" + (f" and <= {hi}" if hi is not None else ""))
    if hi is not None and value > hi:
        raise _bad(where, full, value, f"<= {hi}" + (f" and >= {lo}" if lo is not None else ""))
    return float(value)


def _flag(sec: Mapping[str, Any], sname: str, key: str, where: str) -> bool:
    value = sec.get(key)
    if not isinstance(value, bool):
        raise _bad(where, f"{sname}.{key}", value, "true or false")
    return value


def _range(sec: Mapping[str, Any], key: str, where: str, *, lo: float, hi: float | None = None,
           lo_open: bool = False) -> tuple[float, float]:
    value = sec.get(key)
    full = f"domain_randomization.{key}"
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in value)
    ):
        raise _bad(where, full, value, "a [low, high] pair of finite numbers")
    a, b = float(value[0]), float(value[1])
    if a > b:
        raise _bad(where, full, value, "ordered low <= high (it is inverted)")
    if (a <= lo) if lo_open else (a < lo):
        raise _bad(where, full, value, f"a range starting {'>' if lo_open else '>='} {lo}")
    if hi is not None and b > hi:
        raise _bad(where, full, value, f"a range inside [{lo}, {hi}]")
    return a, b


def _int(sec: Mapping[str, Any], sname: str, key: str, where: str, lo: int, hi: int | None = None) -> int:
    value = sec.get(key)
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value) or value < lo or (hi is not None and value > hi)):
        raise _bad(where, f"{sname}.{key}", value, f"an integer >= {lo}" + (f" and <= {hi}" if hi is not None else ""))
    return int(value)


def _dcc_mode(ch: Mapping[str, Any], where: str) -> str:
    value = ch.get("dcc")
    if value not in DCC_MODES:
        raise _bad(where, "channel.dcc", value, " or ".join(f'"{m}"' for m in DCC_MODES))
    return value


def _dcc_table(value: Any, where: str) -> tuple[tuple[float | None, float], ...]:
    """``channel.dcc_table``: rows ``[cbr_upper, gap_ms]``, bounds strictly increasing in (0, 1], the
    last row's bound null, gaps positive, finite and non-decreasing (a busier state never beacons
    more often)."""
    shape = ("a non-empty list of [cbr_upper, gap_ms] rows (cbr_upper strictly increasing in (0, 1], the last "
             "row's null: every CBR above; gap_ms > 0, non-decreasing), e.g. [[0.3, 60], [0.4, 100], [null, 460]]")
    if not isinstance(value, (list, tuple)) or not value:
        raise _bad(where, "channel.dcc_table", value, shape)
    rows: list[tuple[float | None, float]] = []
    prev_bound, prev_gap = 0.0, 0.0
    for i, row in enumerate(value):
        key = f"channel.dcc_table[{i}]"
        if not isinstance(row, (list, tuple)) or len(row) != 2:
            raise _bad(where, key, row, "a [cbr_upper, gap_ms] pair")
        bound, gap = row
        last = i == len(value) - 1
        if last:
            if bound is not None:
                raise _bad(where, f"{key}[0]", bound, "null (the last row takes every CBR above the previous bound)")
        elif isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound) or not (
                prev_bound < bound <= 1.0):
            raise _bad(where, f"{key}[0]", bound, f"a CBR bound in ({prev_bound}, 1] (strictly increasing rows; only "
                       "the last row's is null)")
        if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not math.isfinite(gap) or not gap > 0:
            raise _bad(where, f"{key}[1]", gap, "a gap in ms > 0")
        if gap < prev_gap:
            raise _bad(where, f"{key}[1]", gap, f">= the previous row's gap {prev_gap} ms (a busier state never "
                       "beacons more often)")
        rows.append((None if last else float(bound), float(gap)))
        prev_bound, prev_gap = (prev_bound if last else float(bound)), float(gap)
    return tuple(rows)


def _channel(ch: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The ``channel`` section as RadioParams fields (errors name ``channel.<key>``).

    Upper bounds keep a typo from silently breaking a run: payload at most 1,470 B (ESP-NOW v2.0's
    limit; v1.0 and the original firmware: 250 B), contention window at most 1,023 (802.11's
    CWmax), PHY rate at most 150 Mbit/s (ESP32 802.11n), alert beacons at most 100 Hz.
    """
    return {
        "channel_enabled": _flag(ch, "channel", "enabled", where),
        "channel_payload_bytes": _int(ch, "channel", "payload_bytes", where, 0, 1470),
        "channel_frame_overhead_bytes": _int(ch, "channel", "frame_overhead_bytes", where, 0, 2304),
        "channel_phy_rate_mbps": _num(ch, "channel", "phy_rate_mbps", where, lo=0.0, hi=150.0, lo_open=True),
        "channel_preamble_us": _num(ch, "channel", "preamble_us", where, hi=1000.0),
        "channel_carrier_sense_range_m": _num(ch, "channel", "carrier_sense_range_m", where, lo=0.0, hi=10_000.0,
                                              lo_open=True),
        "channel_slot_us": _num(ch, "channel", "slot_us", where, lo=0.0, hi=1000.0, lo_open=True),
        "channel_difs_us": _num(ch, "channel", "difs_us", where, hi=10_000.0),
        "channel_cw_min": _int(ch, "channel", "cw_min", where, 0, 1023),
        "channel_max_access_delay_ms": _num(ch, "channel", "max_access_delay_ms", where, lo=0.0, hi=10_000.0,
                                            lo_open=True),
        "channel_cbr_window_ms": _num(ch, "channel", "cbr_window_ms", where, lo=0.0, hi=10_000.0, lo_open=True),
        "alert_beacon_hz": None if ch.get("alert_beacon_hz") is None else _num(
            ch, "channel", "alert_beacon_hz", where, lo=0.0, hi=100.0, lo_open=True),
        "alert_accel_threshold_ms2": _num(ch, "channel", "alert_accel_threshold_ms2", where, lo=None),
        "channel_dcc": _dcc_mode(ch, where),
        "channel_dcc_table": _dcc_table(ch.get("dcc_table"), where),
        "channel_dcc_relax_ms": _num(ch, "channel", "dcc_relax_ms", where),
        "channel_tx_jitter_ms": _num(ch, "channel", "tx_jitter_ms", where, hi=100.0),
    }


def _bins(meta: Any, where: str) -> tuple[DistanceBin, ...]:
    if meta is None:
        return ()
    if not isinstance(meta, Mapping):
        raise _bad(where, "_metadata", meta, "a mapping")
    raw = meta.get("distance_bins")
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise _bad(where, "_metadata.distance_bins", raw, 'a mapping like {"0_20m": {"count": 10, "loss_rate": 0.05}}')
    out = []
    for name, spec in raw.items():
        key = f"_metadata.distance_bins.{name}"
        m, p = _BIN_RE.match(str(name)), _PLUS_RE.match(str(name))
        if m:
            lo, hi = float(m.group(1)), float(m.group(2))
            if lo >= hi:
                raise _bad(where, key, name, "a bin name 'lo_hi m' with lo < hi")
        elif p:
            lo, hi = float(p.group(1)), math.inf
        else:
            raise _bad(where, key, name, "a bin name like '0_20m' or '100m_plus'")
        if not isinstance(spec, Mapping):
            raise _bad(where, key, spec, 'a mapping {"count": int, "loss_rate": float}')
        rate, count = spec.get("loss_rate"), spec.get("count")
        if rate is not None:
            rate = _num(spec, key, "loss_rate", where, lo=0.0, hi=1.0)
        if count is not None:
            if isinstance(count, bool) or not isinstance(count, (int, float)) or count < 0 or count != int(count):
                raise _bad(where, f"{key}.count", count, "a non-negative integer")
            count = int(count)
        out.append(DistanceBin(str(name), lo, hi, rate, count))
    return tuple(sorted(out, key=lambda b: b.lo_m))


def _is_metadata(key: Any) -> bool:
    return isinstance(key, str) and (key.startswith("_") or key.lower() in METADATA_KEYS)


def suggest(key: str, valid: Any) -> str:
    """``" Did you mean 'x'?"`` for the valid key closest to ``key``, or ``""`` when none is close."""
    import difflib

    valid = [str(v) for v in valid]
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    if not close:  # "loss" -> "packet_loss": a part of the name
        k = str(key).lower()
        close = [v for v in valid if len(k) >= 3 and (k in v.lower() or v.lower() in k)][:1]
    if not close:
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def _check_keys(d: Mapping[str, Any], where: str) -> None:
    """Unknown sections and unknown keys in known sections are errors (metadata keys excepted)."""
    for key in d:
        if key in _SECTIONS or _is_metadata(key):
            continue
        raise ValueError(
            f"{where}: unknown radio parameter section {key!r}.{suggest(key, _SECTIONS)} Valid sections: "
            f"{', '.join(_SECTIONS)} (metadata keys such as '_metadata' or 'description' are allowed)"
        )
    for name in _SECTIONS:
        sec = d.get(name)
        if not isinstance(sec, Mapping):
            continue  # reported by _section with the value
        valid = DEFAULTS[name]
        for key in sec:
            if key in valid or _is_metadata(key):
                continue
            raise ValueError(
                f"{where}: unknown radio parameter {name}.{key}.{suggest(key, valid)} "
                f"Valid keys in {name!r}: {', '.join(valid)}"
            )


def _build(d: dict[str, Any], where: str) -> RadioParams:
    """Validate a merged parameter dict and build RadioParams (errors name key and value)."""
    ch_raw = d.get("channel")
    if isinstance(ch_raw, bool) or (isinstance(ch_raw, str) and ch_raw.lower() in _CHANNEL_WORDS):
        on = ch_raw if isinstance(ch_raw, bool) else _CHANNEL_WORDS[ch_raw.lower()]
        d = {**d, "channel": {**DEFAULTS["channel"], "enabled": on}}
    elif not isinstance(ch_raw, Mapping):
        raise _bad(where, "channel", ch_raw, '"off", "on", true, false or a mapping of channel keys '
                   f"({', '.join(DEFAULTS['channel'])})")
    _check_keys(d, where)
    lat = _section(d, "latency", where)
    pl = _section(d, "packet_loss", where)
    bl = _section(d, "burst_loss", where)
    sn = _section(d, "sensor_noise", where)
    ob = _section(d, "observation", where)
    dr = _section(d, "domain_randomization", where)
    t1 = _num(pl, "packet_loss", "distance_threshold_1", where)
    t2 = _num(pl, "packet_loss", "distance_threshold_2", where)
    if t1 >= t2:
        raise _bad(where, "packet_loss.distance_threshold_1", t1,
                   f"< packet_loss.distance_threshold_2 = {t2}")
    max_range = pl.get("max_range_m")
    if max_range is not None:
        max_range = _num(pl, "packet_loss", "max_range_m", where, lo=0.0, lo_open=True)
    gps = _num(sn, "sensor_noise", "gps_std_m", where)
    if gps > GPS_STD_WARN_M:
        warnings.warn(
            f"{where}: sensor_noise.gps_std_m = {gps} m is implausibly large (> {GPS_STD_WARN_M} m); "
            "is it a value in degrees or a degree/metre mix-up? GPS noise is in metres (measured: ~3 m).",
            UserWarning,
            stacklevel=3,
        )
    enabled = dr.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _bad(where, "domain_randomization.enabled", enabled, "true or false")
    raw = {k: v for k, v in d.items() if k not in _SECTIONS}
    ch = _channel(_section(d, "channel", where), where)
    if ch["channel_dcc"] != "off" and not ch["channel_enabled"]:
        raise _bad(where, "channel.dcc", ch["channel_dcc"], '"off" unless channel.enabled is true (reactive DCC '
                   "follows the channel busy ratio, which only the shared channel model measures)")
    if ch["channel_enabled"]:
        reach = max_range if max_range is not None else (
            max((b.hi_m for b in _bins(d.get("_metadata"), where) if b.populated), default=math.inf))
        cs = ch["channel_carrier_sense_range_m"]
        if not reach <= cs:
            raise _bad(where, "channel.enabled", True,
                       f"false unless the radio range is finite and <= channel.carrier_sense_range_m = {cs} m "
                       f"(a frame a receiver decodes is a frame it hears); the range here is {reach} m: set "
                       "packet_loss.max_range_m, or channel: \"off\"")
    return RadioParams(
        latency_base_ms=_num(lat, "latency", "base_ms", where),
        latency_distance_factor=_num(lat, "latency", "distance_factor", where),
        latency_jitter_std_ms=_num(lat, "latency", "jitter_std_ms", where),
        loss_base_rate=_num(pl, "packet_loss", "base_rate", where, hi=1.0),
        loss_threshold_1_m=t1,
        loss_threshold_2_m=t2,
        loss_rate_tier_1=_num(pl, "packet_loss", "rate_tier_1", where, hi=1.0),
        loss_rate_tier_2=_num(pl, "packet_loss", "rate_tier_2", where, hi=1.0),
        loss_rate_tier_3=_num(pl, "packet_loss", "rate_tier_3", where, hi=1.0),
        max_range_m=max_range,
        burst_enabled=_flag(bl, "burst_loss", "enabled", where),
        burst_mean_length=_num(bl, "burst_loss", "mean_burst_length", where, lo=1.0),
        burst_loss_multiplier=_num(bl, "burst_loss", "loss_multiplier", where),
        burst_max_loss_cap=_num(bl, "burst_loss", "max_loss_cap", where, hi=1.0),
        gps_std_m=gps,
        speed_std_ms=_num(sn, "sensor_noise", "speed_std_ms", where),
        accel_std_ms2=_num(sn, "sensor_noise", "accel_std_ms2", where),
        heading_std_deg=_num(sn, "sensor_noise", "heading_std_deg", where),
        gyro_std_rad_s=_num(sn, "sensor_noise", "gyro_std_rad_s", where),
        staleness_threshold_ms=_num(ob, "observation", "staleness_threshold_ms", where, lo=0.0, lo_open=True),
        dr_enabled=enabled,
        dr_latency_range_ms=_range(dr, "latency_range_ms", where, lo=0.0, lo_open=True),
        dr_loss_rate_range=_range(dr, "loss_rate_range", where, lo=0.0, hi=1.0),
        dr_jitter_std_range_ms=_range(dr, "jitter_std_range_ms", where, lo=0.0),
        dr_gps_noise_range_m=_range(dr, "gps_noise_range_m", where, lo=0.0),
        distance_bins=_bins(d.get("_metadata"), where),
        **ch,
        source=where,
        raw=raw,
    )
