"""The per-step snapshot of every vehicle, as NumPy arrays, and the errors of the sim layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = ["LibsumoInUseError", "SumoError", "VehicleStates", "assemble_states"]

#: How far ahead ``getLeader`` looks for the leader (m); beyond it, gap is ``inf``.
LEADER_LOOKAHEAD_M = 200.0


class SumoError(RuntimeError):
    """SUMO failed (bad files, a dead process, an error inside a step). The simulation that
    raised it has been closed unless the message says otherwise."""


class LibsumoInUseError(SumoError):
    """A second libsumo simulation was started in a process that already runs one."""


@dataclass(frozen=True, eq=False)
class VehicleStates:
    """State of every vehicle on the road after a step; arrays are aligned with ``ids``.

    SI units and SUMO conventions: ``x, y`` front-bumper centre in network coordinates (m);
    ``speed`` (m/s); ``accel`` (m/s², SUMO's acceleration of the last step); ``heading_deg``
    compass heading (0 = north, clockwise; 90 = driving towards +x); ``lane_index`` (0 =
    rightmost); ``lane_pos`` front bumper position along the lane (m); ``length`` (m);
    ``leader`` index into ``ids`` of the vehicle ahead (within 200 m on the vehicle's best
    lanes), -1 if none; ``gap`` bumper-to-bumper distance to it (m; the follower's minGap is
    added back to SUMO's ``getLeader`` distance), ``inf`` if none.

    ``departed``, ``arrived``, ``collided`` list the vehicles that entered, left at their
    route end, or were in a collision (collider or victim) during this step. Collided
    vehicles are removed by SUMO, so they are not in ``ids``, and they are not in ``arrived``.
    ``ids`` follow the scenario's departure order, not SUMO's internal order.
    """

    time_s: float
    ids: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    speed: np.ndarray
    accel: np.ndarray
    heading_deg: np.ndarray
    lane_index: np.ndarray
    lane_pos: np.ndarray
    length: np.ndarray
    leader: np.ndarray
    gap: np.ndarray
    departed: tuple[str, ...] = ()
    arrived: tuple[str, ...] = ()
    collided: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        """Number of vehicles on the road."""
        return len(self.ids)

    def index(self, vehicle_id: str) -> int:
        """Position of ``vehicle_id`` in the arrays (ValueError if not on the road)."""
        try:
            return self.ids.index(vehicle_id)
        except ValueError:
            raise ValueError(f"vehicle {vehicle_id!r} is not on the road at t={self.time_s}; on it: {self.ids}") from None

    @classmethod
    def empty(cls, time_s: float = 0.0) -> "VehicleStates":
        """No vehicle on the road."""
        return assemble_states(time_s, [], np.empty((0, 8)), [], {})


def assemble_states(
    time_s: float,
    ids: Sequence[str],
    rows: np.ndarray,
    leaders: Sequence[tuple[str, float] | None],
    min_gap: Mapping[str, float],
    departed: Sequence[str] = (),
    arrived: Sequence[str] = (),
    collided: Sequence[str] = (),
) -> VehicleStates:
    """Build :class:`VehicleStates` from raw per-vehicle reads.

    :param rows: float[n, 8] columns x, y, speed, accel, heading, lane_index, lane_pos, length.
    :param leaders: per vehicle, SUMO's ``getLeader`` result (``(id, dist)``; ``None`` or an
        empty id means no leader).
    :param min_gap: minGap per vehicle id (added back to SUMO's leader distance).
    """
    n = len(ids)
    rows = np.asarray(rows, dtype=np.float64).reshape(n, 8)
    leader = np.full(n, -1, dtype=np.int64)
    gap = np.full(n, np.inf)
    found = [i for i, lead in enumerate(leaders) if lead and lead[0]]
    if found:
        position = {vid: i for i, vid in enumerate(ids)}
        idx = np.array(found)
        leader[idx] = [position.get(leaders[i][0], -1) for i in found]
        gap[idx] = [leaders[i][1] + min_gap.get(ids[i], 0.0) for i in found]
    collided_t = tuple(collided)
    gone = set(collided_t)
    return VehicleStates(
        time_s=float(time_s),
        ids=tuple(ids),
        x=rows[:, 0].copy(),
        y=rows[:, 1].copy(),
        speed=rows[:, 2].copy(),
        accel=rows[:, 3].copy(),
        heading_deg=rows[:, 4].copy(),
        lane_index=rows[:, 5].astype(np.int32),
        lane_pos=rows[:, 6].copy(),
        length=rows[:, 7].copy(),
        leader=leader,
        gap=gap,
        departed=tuple(departed),
        arrived=tuple(v for v in arrived if v not in gone),
        collided=collided_t,
    )
