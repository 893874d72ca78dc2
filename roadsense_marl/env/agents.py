"""Who is an agent, and in which slot: join/leave bookkeeping over fixed vehicle slots.

Every SUMO vehicle is an agent from the step SUMO inserts it until it collides, arrives or
vanishes; an agent that ended is never revived. The array core works on *slots*
``0 .. n_slots-1``: a joining vehicle takes the lowest free slot (vehicles joining in the
same step in ``possible_agents`` order); a slot freed in step ``t`` is reusable from step
``t + 1``, so in one step a slot never both ends one agent and takes another (a vehicle can
join in the step that reaches ``max_steps`` and be truncated at once). The number of slots is
bounded by the most vehicles present at once (``max_vehicles``), never by ``possible_agents``.

The mapping from SUMO's vehicle ids to rows is recomputed only in steps where SUMO reports a
departure, arrival or collision (or the vehicle count changes); otherwise the previous one is
reused, so a quiet step costs no per-vehicle Python work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SlotChanges:
    """What changed in one step, as slots (int64 arrays, increasing)."""

    collided: np.ndarray  # agents that collided (terminated)
    left: np.ndarray  # agents that arrived or vanished (truncated)
    joined: np.ndarray  # new agents


_EMPTY = np.empty(0, np.int64)
NO_CHANGES = SlotChanges(_EMPTY, _EMPTY, _EMPTY)


class AgentSlots:
    """Vehicle id <-> slot bookkeeping of one env (see the module docstring).

    :param possible_agents: every vehicle id the scenario can produce (defines join order).
    :param n_slots: number of slots; more vehicles on the road at once is a ``RuntimeError``
        naming ``max_vehicles``.
    """

    def __init__(self, possible_agents: Sequence[str], n_slots: int) -> None:
        self.possible_agents = tuple(possible_agents)
        self.index_of = {a: i for i, a in enumerate(self.possible_agents)}
        self.n_slots = int(n_slots)
        self.reset()

    def reset(self) -> None:
        """Empty every slot (a new episode)."""
        self.agent_of_slot: list[str | None] = [None] * self.n_slots
        #: object[S] view of ``agent_of_slot`` for fancy indexing (``ids[slots].tolist()``).
        self.ids = np.full(self.n_slots, None, dtype=object)
        #: int64[S]: index in ``possible_agents`` of each slot's agent, -1 empty.
        self.agent_index = np.full(self.n_slots, -1, dtype=np.int64)
        self.slot_of: dict[str, int] = {}
        self.live = np.zeros(self.n_slots, dtype=bool)
        self._free = np.ones(self.n_slots, dtype=bool)
        self._ended: set[str] = set()
        self._ids_key: tuple[str, ...] | None = None
        self.in_order = True
        self.row_slot = _EMPTY  # int64[n]: slot of each vehicle row of the latest states (-1: not an agent)

    def update(
        self,
        ids: tuple[str, ...],
        departed: Sequence[str] = (),
        arrived: Sequence[str] = (),
        collided: Sequence[str] = (),
        time_s: float = 0.0,
    ) -> SlotChanges:
        """Apply one SUMO step's vehicle set; return the slots that ended or joined.

        Raises RuntimeError naming the vehicle if SUMO inserted one that is not in
        ``possible_agents`` or one that already ended, or naming ``max_vehicles`` when no slot is free.
        """
        if not departed and not arrived and not collided and ids == self._ids_key:
            return NO_CHANGES
        present = set(ids)
        gone = [a for a in self.slot_of if a not in present]
        hit = set(collided)
        col = sorted(self.slot_of[a] for a in gone if a in hit)
        left = sorted(self.slot_of[a] for a in gone if a not in hit)
        for a in gone:
            s = self.slot_of.pop(a)
            self.live[s] = False
            self._ended.add(a)
        new = [v for v in ids if v not in self.slot_of]
        joined: list[int] = []
        if new:
            back = [v for v in new if v in self._ended]
            if back:
                raise RuntimeError(
                    f"vehicle {back[0]!r} is on the road again at t={time_s:g} s after it left; an agent that "
                    "ended cannot be revived (PettingZoo), so SUMO must not reuse vehicle ids"
                )
            unknown = [v for v in new if v not in self.index_of]
            if unknown:
                raise RuntimeError(
                    f"SUMO inserted vehicle {unknown[0]!r} at t={time_s:g} s, which is not among the scenario's "
                    f"possible agents ({len(self.possible_agents)} known); vehicles added at run time "
                    "(e.g. by a TraCI client or rerouter) cannot be agents"
                )
            new.sort(key=self.index_of.__getitem__)
            free = np.flatnonzero(self._free & ~self.live)
            if len(free) < len(new):
                raise RuntimeError(
                    f"{len(self.slot_of) + len(new)} vehicles on the road at t={time_s:g} s but max_vehicles="
                    f"{self.n_slots}; raise max_vehicles (the most vehicles present at once)"
                )
            for v, s in zip(new, free[: len(new)].tolist()):
                self.slot_of[v] = s
                self.agent_of_slot[s] = v
                self.ids[s] = v
                self.agent_index[s] = self.index_of[v]
                self.live[s] = True
                joined.append(s)
            joined.sort()
        # Slots that ended in this step become free from the next one.
        self._free = ~self.live
        for s in col + left:
            self._free[s] = False
        self._ids_key = ids
        slot_of = self.slot_of
        self.row_slot = np.fromiter((slot_of.get(v, -1) for v in ids), dtype=np.int64, count=len(ids))
        occupied = self.agent_index[self.agent_index >= 0]
        #: True when slot order is possible_agents order (the views then need no sort).
        self.in_order = bool(len(occupied) < 2 or (occupied[1:] > occupied[:-1]).all())
        return SlotChanges(np.array(col, np.int64), np.array(left, np.int64), np.array(joined, np.int64))

    def release_ended(self, slots: np.ndarray) -> None:
        """Forget the agents of ``slots`` that ended in the last step (their slots become free)."""
        for s in np.asarray(slots).tolist():
            self.agent_of_slot[s] = None
            self.ids[s] = None
            self.agent_index[s] = -1
            self._free[s] = True
        occupied = self.agent_index[self.agent_index >= 0]
        self.in_order = bool(len(occupied) < 2 or (occupied[1:] > occupied[:-1]).all())
