"""The object API of the original specification, as a thin view on :class:`Radio`.

``ESPNOWEmulator`` maps string vehicle ids to radio slots and keeps each sent ``V2VMessage`` in a
side table keyed by an integer message id that travels through the radio core. Loss, latency,
bursts, buffers and noise all happen in the core; this module only converts. GPS noise (metres,
added by the core to zero x/y offsets) is turned into degrees: 1 deg latitude = 111,320 m,
longitude scaled by cos(latitude).

Inputs are checked before anything changes (``ValueError`` naming the field and the vehicle):
positions and every message field must be finite, latitude within [-90, 90] degrees, and a
message's ``timestamp_ms`` may not lie after ``current_time_ms`` (a clock ahead of the receiver's
would give negative ages that never go stale). Senders register on their first transmit and the
original single implicit receiver ``"ego"`` always exists; any other explicit ``receiver_id``
must be a vehicle already seen (as a sender), unless the emulator was built with
``add_receivers=True``, so a misspelled receiver id is an error rather than a silent new vehicle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from roadsense_marl.espnow.params import RadioParams
from roadsense_marl.espnow.radio import Radio

__all__ = ["EMULATOR_FIELDS", "ESPNOWEmulator", "ReceivedMessage", "V2VMessage", "METRES_PER_DEG_LAT"]

METRES_PER_DEG_LAT = 111_320.0

#: Payload columns carried by the core for the object API (noise per ``core.FIELD_NOISE``).
EMULATOR_FIELDS: tuple[str, ...] = (
    "x_m", "y_m", "speed_ms", "heading_deg", "accel_ms2",
    "accel_y_ms2", "accel_z_ms2", "gyro_x_rad_s", "gyro_y_rad_s", "gyro_z_rad_s",
)


@dataclass(frozen=True)
class V2VMessage:
    """One broadcast state message (the original firmware's fields, SI units, lat/lon in degrees)."""

    vehicle_id: str
    lat: float
    lon: float
    speed: float
    heading: float
    accel_x: float
    accel_y: float
    accel_z: float
    gyro_x: float
    gyro_y: float
    gyro_z: float
    timestamp_ms: float


@dataclass(frozen=True)
class ReceivedMessage:
    """A message in a receiver's buffer: the noisy copy, its age (now - timestamp_ms) and arrival time."""

    message: V2VMessage
    age_ms: float
    received_at_ms: float


class ESPNOWEmulator:
    """Per-link ESP-NOW emulation with the original object API.

    :param params: path, dict or ``RadioParams`` (``None``: built-in defaults).
    :param domain_randomization: redraw DR parameters at each :meth:`reset`.
    :param seed: seed of the first reset.
    :param max_vehicles: number of distinct vehicle ids (senders and receivers) it can track.
    :param add_receivers: register an unknown explicit ``receiver_id`` as a new vehicle (the
        original API's behaviour); by default it is an error, so a typo cannot create a vehicle.
    """

    #: The original API's implicit receiver.
    DEFAULT_RECEIVER = "ego"

    def __init__(
        self,
        params: RadioParams | Mapping[str, Any] | str | Path | None = None,
        *,
        domain_randomization: bool = True,
        seed: int | np.random.SeedSequence | None = None,
        max_vehicles: int = 256,
        add_receivers: bool = False,
    ) -> None:
        if not isinstance(add_receivers, bool):
            raise ValueError(f"add_receivers must be True or False, got {add_receivers!r}")
        self.add_receivers = add_receivers
        self.radio = Radio(params, capacity=max_vehicles, domain_randomization=domain_randomization,
                           payload_fields=EMULATOR_FIELDS)
        self.reset(seed)

    @property
    def params(self) -> RadioParams:
        """Parameters in force this episode (after domain randomisation)."""
        return self.radio.params

    def reset(self, seed: int | np.random.SeedSequence | None = None) -> None:
        """Clear every buffer and in-flight message and redraw domain randomisation."""
        self.radio.reset(seed)
        self._slot: dict[str, int] = {}
        self._ids: list[str] = []
        self._messages: dict[int, V2VMessage] = {}
        self._next_id = 0

    def _slot_of(self, vehicle_id: str) -> int:
        slot = self._slot.get(vehicle_id)
        if slot is None:
            if len(self._ids) >= self.radio.capacity:
                raise ValueError(
                    f"vehicle id {vehicle_id!r} exceeds max_vehicles={self.radio.capacity}; "
                    "construct ESPNOWEmulator(max_vehicles=...) larger"
                )
            slot = self._slot[vehicle_id] = len(self._ids)
            self._ids.append(vehicle_id)
        return slot

    def _receiver_slot(self, receiver_id: Any) -> int:
        if receiver_id in self._slot or receiver_id == self.DEFAULT_RECEIVER or self.add_receivers:
            return self._slot_of(receiver_id)
        import difflib

        known = sorted(set(self._ids) | {self.DEFAULT_RECEIVER}, key=str)
        close = difflib.get_close_matches(str(receiver_id), [str(k) for k in known], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown receiver_id {receiver_id!r}.{hint} Known vehicles: {known[:20]}"
            f"{' ...' if len(known) > 20 else ''}. A receiver must have transmitted before, or be the "
            f"implicit {self.DEFAULT_RECEIVER!r}; build ESPNOWEmulator(add_receivers=True) to register new receivers"
        )

    @staticmethod
    def _check_time(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number of milliseconds, got {value!r}")
        return float(value)

    @staticmethod
    def _check_position(name: str, pos: Any, vehicle: Any) -> None:
        try:
            arr = np.asarray(pos, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.shape != (2,):
            raise ValueError(f"{name} of {vehicle!r} must be an (x, y) pair in metres, got {pos!r}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} of {vehicle!r} must be finite (x, y) metres, got {pos!r}")

    @staticmethod
    def _check_message(m: Any, now: float) -> None:
        if not isinstance(m, V2VMessage):
            raise ValueError(f"sender_msg must be a V2VMessage, got {type(m).__name__}")
        for name in ("lat", "lon", "speed", "heading", "accel_x", "accel_y", "accel_z",
                     "gyro_x", "gyro_y", "gyro_z", "timestamp_ms"):
            v = getattr(m, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise ValueError(f"message from {m.vehicle_id!r}: field {name!r} must be a finite number, got {v!r}")
        if not -90.0 <= m.lat <= 90.0:
            raise ValueError(f"message from {m.vehicle_id!r}: lat must be in [-90, 90] degrees, got {m.lat!r}")
        if m.timestamp_ms > now:
            raise ValueError(
                f"message from {m.vehicle_id!r}: timestamp_ms={m.timestamp_ms!r} is {m.timestamp_ms - now:g} ms after "
                f"current_time_ms={now!r}; a message cannot be stamped in the future (clocks out of sync?)"
            )

    def transmit(
        self,
        sender_msg: V2VMessage,
        sender_pos: tuple[float, float],
        receiver_pos: tuple[float, float],
        current_time_ms: float,
        receiver_id: str = "ego",
    ) -> None:
        """Send ``sender_msg`` over the link to ``receiver_id`` (positions in metres). Fire and forget:
        it becomes visible through :meth:`sync_and_get_messages` only after the link latency.

        Raises ``ValueError`` (before anything changes) for a non-finite position or message field,
        a latitude outside [-90, 90], a ``timestamp_ms`` after ``current_time_ms``, or an unknown
        explicit ``receiver_id`` (see the class docstring)."""
        now = self._check_time("current_time_ms", current_time_ms)
        self._check_message(sender_msg, now)
        self._check_position("sender_pos", sender_pos, sender_msg.vehicle_id)
        self._check_position("receiver_pos", receiver_pos, receiver_id)
        if receiver_id not in self._slot and receiver_id != self.DEFAULT_RECEIVER and not self.add_receivers:
            self._receiver_slot(receiver_id)  # raises, before the sender is registered
        s, r = self._slot_of(sender_msg.vehicle_id), self._receiver_slot(receiver_id)
        if s == r:
            return
        mid = self._next_id
        self._next_id += 1
        self._messages[mid] = sender_msg
        m = sender_msg
        payload = [[0.0, 0.0, m.speed, m.heading, m.accel_x, m.accel_y, m.accel_z, m.gyro_x, m.gyro_y, m.gyro_z]]
        self.radio.broadcast(current_time_ms, [s], [sender_pos], payload, [r], [receiver_pos], message_ids=[mid])
        if len(self._messages) > 4096 and len(self._messages) > 4 * (self.radio._n + 1):
            live = set(self.radio.in_flight_message_ids().tolist())
            self._messages = {k: v for k, v in self._messages.items() if k in live}

    def sync_and_get_messages(self, current_time_ms: float, receiver_id: str = "ego") -> dict[str, ReceivedMessage]:
        """Deliver everything that has arrived by ``current_time_ms`` and return a copy of the
        receiver's buffer: vehicle id -> latest (non-stale) ``ReceivedMessage``. A message's age is
        ``current_time_ms - message.timestamp_ms`` (the sensor sample's time, which may precede its
        transmission); it is stale, and left out, at ``staleness_threshold_ms`` or more.

        Raises ``ValueError`` for a non-finite time or an unknown explicit ``receiver_id``."""
        now = self._check_time("current_time_ms", current_time_ms)
        rx = self.radio.receive(now, [self._receiver_slot(receiver_id)])
        out: dict[str, ReceivedMessage] = {}
        stale_ms = self.radio.params.staleness_threshold_ms
        for i in range(len(rx)):
            orig = self._messages[int(rx.message_id[i])]
            if current_time_ms - orig.timestamp_ms >= stale_ms:
                continue  # age is by the message's own timestamp, so staleness is too
            p = rx.payload[i]
            lat = orig.lat + p[1] / METRES_PER_DEG_LAT
            cos_lat = max(math.cos(math.radians(orig.lat)), 1e-9)
            noisy = replace(
                orig,
                lat=float(lat),
                lon=float(orig.lon + p[0] / (METRES_PER_DEG_LAT * cos_lat)),
                speed=float(p[2]), heading=float(p[3]),
                accel_x=float(p[4]), accel_y=float(p[5]), accel_z=float(p[6]),
                gyro_x=float(p[7]), gyro_y=float(p[8]), gyro_z=float(p[9]),
            )
            out[self._ids[int(rx.sender[i])]] = ReceivedMessage(
                noisy, float(current_time_ms - orig.timestamp_ms), float(rx.received_at_ms[i])
            )
        return out
