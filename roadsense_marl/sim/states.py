"""The per-step snapshot of every vehicle, as NumPy arrays, and the errors of the sim layer."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "OPTIONAL_FIELDS",
    "LibsumoInUseError",
    "SumoError",
    "VehicleStates",
    "assemble_states",
    "check_extra_fields",
]

#: How far ahead ``getLeader`` looks for the leader (m); beyond it, gap is ``inf``.
LEADER_LOOKAHEAD_M = 200.0

#: Per-vehicle values read only on request (``SumoSimulation(..., extra_fields=...)``): name ->
#: (dtype, meaning). The env does not use them, so by default SUMO is not asked for them.
OPTIONAL_FIELDS: dict[str, tuple[type, str]] = {
    "lane_index": (np.int32, "lane index, 0 = rightmost (SUMO getLaneIndex)"),
    "lane_pos": (np.float64, "front bumper position along the lane, m (SUMO getLanePosition)"),
}

_NO_LEADER = ("", math.inf)


class SumoError(RuntimeError):
    """SUMO failed (bad files, a dead process, an error inside a step). The simulation that
    raised it has been closed unless the message says otherwise."""


class LibsumoInUseError(SumoError):
    """A second libsumo simulation was started in a process that already runs one."""


def check_extra_fields(extra_fields: Iterable[str]) -> tuple[str, ...]:
    """Validate a request for optional per-vehicle values; returns them in :data:`OPTIONAL_FIELDS`
    order without repeats. Raises TypeError (not a sequence of strings) or ValueError (unknown
    name, naming it and the valid ones)."""
    if isinstance(extra_fields, str) or not all(isinstance(f, str) for f in extra_fields):
        raise TypeError(f"extra_fields must be a sequence of field names, got {extra_fields!r}; "
                        f"valid names: {', '.join(OPTIONAL_FIELDS)}")
    asked = set(extra_fields)
    unknown = sorted(asked - set(OPTIONAL_FIELDS))
    if unknown:
        raise ValueError(f"unknown extra_fields {unknown}: the optional per-vehicle values are "
                         f"{', '.join(OPTIONAL_FIELDS)} (the others are always read)")
    return tuple(f for f in OPTIONAL_FIELDS if f in asked)


@dataclass(frozen=True, eq=False)
class VehicleStates:
    """State of every vehicle on the road after a step; arrays are aligned with ``ids``.

    SI units and SUMO conventions, every array of shape ``(n,)``: ``x, y`` (float64)
    front-bumper centre in network coordinates (m); ``speed`` (m/s); ``accel`` (m/s², SUMO's
    acceleration of the last step); ``heading_deg`` compass heading (0 = north, clockwise;
    90 = driving towards +x); ``length`` (m; with libsumo a read-only array shared by the
    states of consecutive steps while the vehicles do not change); ``leader`` (int64) index into ``ids`` of the
    vehicle ahead (within 200 m on the vehicle's best lanes), -1 if none; ``gap``
    bumper-to-bumper distance to it (m; the follower's minGap is added back to SUMO's
    ``getLeader`` distance), ``inf`` if none.

    Optional values (:data:`OPTIONAL_FIELDS`) are present only when the simulation was asked
    for them (``SumoSimulation(..., extra_fields=("lane_index", "lane_pos"))``):
    ``lane_index`` (int32, 0 = rightmost) and ``lane_pos`` (float64, front bumper position
    along the lane, m). Reading one that was not requested raises AttributeError saying how to
    request it (so ``hasattr(states, "lane_pos")`` tells whether it was read); ``extras``
    holds the requested ones by name.

    ``departed``, ``arrived``, ``collided`` list the vehicles that entered, left at their
    route end, or were in a collision (collider or victim) during this step. Collided
    vehicles are removed by SUMO, so they are not in ``ids``, and they are not in ``arrived``.
    ``collisions`` holds SUMO's collision records of this step as ``(collider, victim)`` id pairs
    (``simulation.getCollisions()``; the collider is the vehicle that ran into the victim, for a
    rear-end collision the follower); :attr:`colliders` / :attr:`victims` are the roles by id.
    ``ids`` follow the scenario's departure order, not SUMO's internal order.
    """

    time_s: float
    ids: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    speed: np.ndarray
    accel: np.ndarray
    heading_deg: np.ndarray
    length: np.ndarray
    leader: np.ndarray
    gap: np.ndarray
    departed: tuple[str, ...] = ()
    arrived: tuple[str, ...] = ()
    collided: tuple[str, ...] = ()
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    collisions: tuple[tuple[str, str], ...] = ()

    @property
    def n(self) -> int:
        """Number of vehicles on the road."""
        return len(self.ids)

    @property
    def colliders(self) -> tuple[str, ...]:
        """Vehicles of ``collided`` that ran into another in this step: a collider in any of
        SUMO's records, or in no record at all (a collision SUMO reported without a record
        counts against the vehicle, never silently for it)."""
        victims_only = set(self.victims)
        return tuple(v for v in self.collided if v not in victims_only)

    @property
    def victims(self) -> tuple[str, ...]:
        """Vehicles of ``collided`` that were only ever the victim (hit, never hitting) in this step."""
        hit = {v for _, v in self.collisions}
        hitting = {c for c, _ in self.collisions}
        return tuple(v for v in self.collided if v in hit and v not in hitting)

    @property
    def lane_index(self) -> np.ndarray:
        """int32[n] lane index (0 = rightmost); only if requested (see the class docstring)."""
        return self._extra("lane_index")

    @property
    def lane_pos(self) -> np.ndarray:
        """float64[n] front bumper position along the lane (m); only if requested."""
        return self._extra("lane_pos")

    def _extra(self, name: str) -> np.ndarray:
        try:
            return self.extras[name]
        except KeyError:
            raise AttributeError(
                f"{name} was not read: SUMO is asked for it only on request, "
                f"SumoSimulation(..., extra_fields=({name!r},)) (optional fields: {', '.join(OPTIONAL_FIELDS)})"
            ) from None

    def index(self, vehicle_id: str) -> int:
        """Position of ``vehicle_id`` in the arrays (ValueError if not on the road)."""
        try:
            return self.ids.index(vehicle_id)
        except ValueError:
            raise ValueError(f"vehicle {vehicle_id!r} is not on the road at t={self.time_s}; on it: {self.ids}") from None

    @classmethod
    def empty(cls, time_s: float = 0.0, extra_fields: Sequence[str] = ()) -> "VehicleStates":
        """No vehicle on the road (``extra_fields`` present, empty)."""
        none = np.empty(0)
        return assemble_states(time_s, (), none, none, none, none, none, none, [], none, (), (), (),
                               {f: np.empty(0, OPTIONAL_FIELDS[f][0]) for f in check_extra_fields(extra_fields)})


def leader_columns(ids: Sequence[str], position: Mapping[str, int], leaders: Sequence[Any],
                   min_gap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leader index (int64[n], -1 if none) and bumper-to-bumper gap (float64[n] m, ``inf`` if
    none) from SUMO's per-vehicle ``getLeader`` answers (``(id, dist)``; ``None`` or an empty
    id means no leader, as does a leader that is not among ``ids``).

    :param position: vehicle id -> index into ``ids``.
    :param min_gap: float64[n], each follower's minGap (m), added back to SUMO's distance.
    """
    n = len(ids)
    if n == 0:
        return np.full(0, -1, dtype=np.int64), np.full(0, np.inf)
    lids, dists = zip(*[lead or _NO_LEADER for lead in leaders])
    leader = np.fromiter(map(position.get, lids, repeat(-1, n)), dtype=np.int64, count=n)
    gap = np.array(dists, dtype=np.float64)
    gap += min_gap
    gap[leader < 0] = np.inf
    return leader, gap


def assemble_states(
    time_s: float,
    ids: Sequence[str],
    x: np.ndarray,
    y: np.ndarray,
    speed: np.ndarray,
    accel: np.ndarray,
    heading_deg: np.ndarray,
    length: np.ndarray,
    leader: Sequence[Any] | np.ndarray,
    gap_or_min_gap: np.ndarray,
    departed: Sequence[str] = (),
    arrived: Sequence[str] = (),
    collided: Sequence[str] = (),
    extras: Mapping[str, np.ndarray] | None = None,
    *,
    collisions: Sequence[tuple[str, str]] = (),
) -> VehicleStates:
    """Build :class:`VehicleStates` from per-vehicle columns (float64[n] each, aligned with ``ids``).

    ``leader`` is either the int64[n] leader index (then ``gap_or_min_gap`` is the gap, m) or
    the raw ``getLeader`` answers per vehicle (then ``gap_or_min_gap`` is each follower's
    minGap, see :func:`leader_columns`). Arrivals that also collided are dropped from ``arrived``.
    ``collisions``: SUMO's ``(collider, victim)`` records of the step.
    """
    ids = tuple(ids)
    if isinstance(leader, np.ndarray):
        gap = gap_or_min_gap
    else:
        leader, gap = leader_columns(ids, {v: i for i, v in enumerate(ids)}, leader, gap_or_min_gap)
    collided_t = tuple(collided)
    arrived_t = tuple(arrived)
    if collided_t and arrived_t:
        gone = set(collided_t)
        arrived_t = tuple(v for v in arrived_t if v not in gone)
    return VehicleStates(
        time_s=float(time_s), ids=ids, x=x, y=y, speed=speed, accel=accel, heading_deg=heading_deg,
        length=length, leader=leader, gap=gap, departed=tuple(departed), arrived=arrived_t,
        collided=collided_t, extras=extras if extras is not None else {},
        collisions=tuple((str(c), str(v)) for c, v in collisions),
    )
