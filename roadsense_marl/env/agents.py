"""Who is an agent, who carries a radio, and in which slot: join/leave bookkeeping over fixed slots.

**Who is an agent.** The config key ``agents`` selects, among the vehicles SUMO can insert (the
scenario's vehicle set, with each vehicle's vType and vClass as SUMO reports them), the ones
that are agents (:class:`VehicleSelector`, :func:`parse_selector`); by default every motor
vehicle (:data:`MOTOR_VCLASSES`: not pedestrians, bicycles, scooters, rail, ships, ...).
``possible_agents`` lists only agents, in the scenario's order. The others are driven by SUMO
(never commanded) and get no observation or reward.

**Who is equipped.** ``penetration_rate`` (default 1) is the share of vehicles that carry a
radio: :func:`draw_equipped` gives each vehicle of the scenario (agents and others, in the
scenario's fixed vehicle order, so independent of the order SUMO inserts them) one uniform
draw per episode from a generator spawned from ``reset(seed)``; a vehicle is equipped when its
draw is below the rate (and it matches the optional ``equipped`` selector). Unequipped vehicles
neither send nor receive; an unequipped agent still acts and observes its own state.

**Radio slots.** Agents use their agent slot ``0 .. n_slots-1`` as radio slot. Equipped
vehicles that are not agents take radio slots from a separate pool ``n_slots ..
n_slots+n_other-1`` (:class:`OtherSlots`; ``n_other`` is ``max_other_vehicles``, default one per
non-agent vehicle of the scenario), so ``max_vehicles`` and every per-agent array stay sized by
agents only. Same reuse rule as agent slots.

**Agent slots.** An agent lives from the step SUMO inserts it until it collides, arrives or
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

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: SUMO's vClass names (``src/utils/common/SUMOVehicleClass.cpp``, as listed by sumolib).
try:
    from sumolib.net.lane import SUMO_VEHICLE_CLASSES as _SUMOLIB_CLASSES
except ImportError:  # pragma: no cover - sumolib ships with eclipse-sumo, a dependency
    _SUMOLIB_CLASSES = frozenset()
#: Road motor vehicles: the default agents. Not: pedestrian, wheelchair, bicycle, scooter, tram,
#: rail_urban, rail, rail_electric, rail_fast (and the other deprecated rail names), subway,
#: cable_car, ship, container, aircraft, drone.
MOTOR_VCLASSES = ("private", "emergency", "authority", "army", "vip", "passenger", "hov", "taxi", "bus", "coach",
                  "delivery", "truck", "trailer", "motorcycle", "moped", "evehicle", "custom1", "custom2",
                  "public_emergency", "public_authority", "public_army", "public_transport", "transport")
VCLASSES = tuple(sorted(set(_SUMOLIB_CLASSES) | set(MOTOR_VCLASSES) | {"ignoring"}))
SELECTOR_KEYS = ("vclass", "vtype", "id")


@dataclass(frozen=True)
class VehicleSelector:
    """Which vehicles a config key (``agents``, ``equipped``) chooses, by shell-style glob patterns
    (:func:`fnmatch.fnmatchcase`: ``*``, ``?``, ``[seq]``; case-sensitive, whole string).

    A vehicle is chosen when it matches every given include key (``vclass``, ``vtype``, ``id``;
    within a key any pattern) and no pattern of ``exclude`` (any key). ``None``: the key does not
    restrict. See :func:`parse_selector` for the config form.
    """

    vclass: tuple[str, ...] | None = None
    vtype: tuple[str, ...] | None = None
    id: tuple[str, ...] | None = None
    exclude: "VehicleSelector | None" = None

    def matches(self, ids: Sequence[str], vtypes: Sequence[str], vclasses: Sequence[str]) -> np.ndarray:
        """bool[n]: which of the vehicles (aligned sequences) this selector chooses."""
        columns = {"vclass": vclasses, "vtype": vtypes, "id": ids}
        out = np.ones(len(ids), dtype=bool)
        for key in SELECTOR_KEYS:
            pats = getattr(self, key)
            if pats is not None:
                out &= _match(columns[key], pats)
        if self.exclude is not None:
            for key in SELECTOR_KEYS:
                pats = getattr(self.exclude, key)
                if pats is not None:
                    out &= ~_match(columns[key], pats)
        return out

    def describe(self) -> str:
        """The selector as config text, e.g. ``{vclass: [passenger], exclude: {id: [ego*]}}``."""
        parts = [f"{k}: {list(getattr(self, k))}" for k in SELECTOR_KEYS if getattr(self, k) is not None]
        if self.exclude is not None:
            parts.append(f"exclude: {self.exclude.describe()}")
        return "{" + ", ".join(parts) + "}"


def _match(values: Sequence[str], patterns: Sequence[str]) -> np.ndarray:
    cache: dict[str, bool] = {}
    out = np.empty(len(values), dtype=bool)
    for i, v in enumerate(values):
        hit = cache.get(v)
        if hit is None:
            hit = cache[v] = any(fnmatch.fnmatchcase(v, p) for p in patterns)
        out[i] = hit
    return out


#: ``agents`` when the config leaves it unset: every road motor vehicle.
DEFAULT_AGENTS = VehicleSelector(vclass=MOTOR_VCLASSES)


def parse_selector(value, key: str) -> VehicleSelector | None:
    """A selector from its config form; ``None`` stays ``None`` (the key's default).

    Config form: a mapping with any of ``vclass``, ``vtype``, ``id`` (a glob pattern or a list of
    them) and ``exclude`` (a mapping with the same three keys). A mapping with only ``exclude``
    for ``agents`` starts from the default motor vehicles (:data:`MOTOR_VCLASSES`). Raises
    ValueError naming ``key`` for an unknown sub-key, a pattern that is not a string, an empty
    selector, or a ``vclass`` pattern that matches no SUMO vClass (listing them).
    """
    if value is None or isinstance(value, VehicleSelector):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} must be a mapping with keys {', '.join(SELECTOR_KEYS)} and/or exclude (glob "
                         f"patterns), or null, got {value!r}")
    unknown = sorted(set(value) - {*SELECTOR_KEYS, "exclude"})
    if unknown:
        raise ValueError(f"unknown {key} key(s) {unknown}; valid: {', '.join(SELECTOR_KEYS)}, exclude")
    fields = {k: _patterns(value.get(k), f"{key}.{k}") for k in SELECTOR_KEYS}
    exclude = value.get("exclude")
    ex = None
    if exclude is not None:
        if not isinstance(exclude, Mapping):
            raise ValueError(f"{key}.exclude must be a mapping with keys {', '.join(SELECTOR_KEYS)}, got {exclude!r}")
        bad = sorted(set(exclude) - {*SELECTOR_KEYS, "exclude"})
        if bad or exclude.get("exclude") is not None:
            raise ValueError(f"unknown {key}.exclude key(s) {bad or ['exclude']}; valid: {', '.join(SELECTOR_KEYS)}")
        ex = VehicleSelector(**{k: _patterns(exclude.get(k), f"{key}.exclude.{k}") for k in SELECTOR_KEYS})
        if all(getattr(ex, k) is None for k in SELECTOR_KEYS):
            ex = None
    if all(v is None for v in fields.values()):
        if ex is None:
            raise ValueError(f"{key} selects nothing: give at least one of {', '.join(SELECTOR_KEYS)} "
                             f"(glob patterns), or null for the default")
        if key == "agents":
            fields["vclass"] = MOTOR_VCLASSES
    return VehicleSelector(**fields, exclude=ex)


def _patterns(value, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    pats = (value,) if isinstance(value, str) else value
    if not isinstance(pats, (list, tuple)) or not pats or not all(isinstance(p, str) and p for p in pats):
        raise ValueError(f"{name} must be a glob pattern or a non-empty list of them (strings), got {value!r}")
    if name.endswith("vclass"):
        for p in pats:
            if not any(fnmatch.fnmatchcase(c, p) for c in VCLASSES):
                raise ValueError(f"{name} pattern {p!r} matches no SUMO vClass; valid vClasses: {', '.join(VCLASSES)}")
    return tuple(pats)


def type_alternatives(vtypes: Sequence[str], vclasses: Sequence[str], type_classes: Mapping[str, str],
                      alternatives: Mapping[str, Sequence[str]]) -> tuple[np.ndarray, list[str], list[str]]:
    """Every (vType, vClass) each vehicle may have in some episode: its own, or, for a member of a
    ``<vTypeDistribution>``, every member of it. Returns (owner int64[m]: the vehicle of each
    alternative, vtypes[m], vclasses[m])."""
    owner: list[int] = []
    types: list[str] = []
    classes: list[str] = []
    for i, (t, c) in enumerate(zip(vtypes, vclasses)):
        for alt in alternatives.get(t, (t,)):
            owner.append(i)
            types.append(alt)
            classes.append(c if alt == t else type_classes.get(alt, c))
    return np.array(owner, np.int64), types, classes


def select_vehicles(selector: VehicleSelector | None, key: str, ids: Sequence[str], vtypes: Sequence[str],
                    vclasses: Sequence[str], scenario: str, owner: np.ndarray | None = None,
                    check: bool = True) -> np.ndarray:
    """bool[m]: which rows (vehicles, or with ``owner`` the alternatives of ``ids[owner[j]]``, see
    :func:`type_alternatives`) ``selector`` chooses (``None``: :data:`DEFAULT_AGENTS` for
    ``agents``, everyone otherwise). With ``check``, raises ValueError naming ``key``, the selector
    and the vTypes and vClasses the scenario has when it chooses none."""
    if owner is not None:
        ids = [ids[i] for i in owner.tolist()]
    if selector is None and key != "agents":
        return np.ones(len(ids), dtype=bool)
    sel = DEFAULT_AGENTS if selector is None else selector
    chosen = sel.matches(ids, vtypes, vclasses)
    if check and len(ids) and not chosen.any():
        what = "the default (road motor vehicles)" if selector is None else sel.describe()
        raise ValueError(
            f"{key} selector {what} matches no vehicle of scenario {scenario!r}; its vehicles have "
            f"vClasses {sorted(set(vclasses))} and vTypes {sorted(set(vtypes))}"
            + (" (set agents: {vclass: ['*']} to make every vehicle an agent)" if key == "agents" else "")
        )
    return chosen


def draw_equipped(rng: np.random.Generator, penetration_rate: float, eligible: np.ndarray) -> np.ndarray:
    """bool[n]: which vehicles carry a radio this episode: one uniform draw per vehicle (in the
    scenario's vehicle order), equipped when below ``penetration_rate`` and ``eligible``.

    Every vehicle consumes its draw whatever the rate, so the same seed gives nested equipped
    sets for rising rates."""
    return (rng.random(len(eligible)) < penetration_rate) & eligible


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
    :param others: vehicles SUMO may insert that are not agents (ignored here: row slot -1).
    """

    def __init__(self, possible_agents: Sequence[str], n_slots: int, others: Sequence[str] = ()) -> None:
        self.possible_agents = tuple(possible_agents)
        self.base_others = frozenset(others)
        self.index_of = {a: i for i, a in enumerate(self.possible_agents)}
        self.n_slots = int(n_slots)
        self.reset()

    def reset(self) -> None:
        """Empty every slot (a new episode)."""
        #: Vehicles that are not agents this episode: ``others`` plus those :meth:`exclude` named.
        self.others: set[str] = set(self.base_others)
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
        others = self.others
        new = [v for v in ids if v not in self.slot_of and v not in others]
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
                    f"possible agents ({len(self.possible_agents)} known) nor a known non-agent vehicle; vehicles "
                    "added at run time "
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

    def exclude(self, vehicle: str) -> None:
        """``vehicle`` (a possible agent) is not an agent in this episode (e.g. SUMO drew a
        bicycle type for it from a ``<vTypeDistribution>``); call before it joins."""
        self.others.add(vehicle)

    def release_ended(self, slots: np.ndarray) -> None:
        """Forget the agents of ``slots`` that ended in the last step (their slots become free)."""
        for s in np.asarray(slots).tolist():
            self.agent_of_slot[s] = None
            self.ids[s] = None
            self.agent_index[s] = -1
            self._free[s] = True
        occupied = self.agent_index[self.agent_index >= 0]
        self.in_order = bool(len(occupied) < 2 or (occupied[1:] > occupied[:-1]).all())


class OtherSlots:
    """Radio slots of the equipped vehicles that are not agents: ``offset .. offset+n-1``.

    The same rules as agent slots: the lowest free slot, in the order given; a slot freed in one
    :meth:`update` is reusable from the next one. More equipped non-agents on the road at once
    than ``n`` is a RuntimeError naming ``max_other_vehicles``.
    """

    def __init__(self, offset: int, n: int) -> None:
        self.offset, self.n = int(offset), int(n)
        self.reset()

    def reset(self) -> None:
        """Empty every slot (a new episode)."""
        self.slot_of: dict[str, int] = {}
        #: object[n]: the vehicle in each slot (None: empty).
        self.ids = np.full(self.n, None, dtype=object)
        self._free = np.ones(self.n, dtype=bool)
        self._cooling: list[int] = []

    def update(self, present: Sequence[str], time_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The equipped non-agents now on the road (in row order); returns the radio slots that
        left and joined (int64, increasing)."""
        for k in self._cooling:
            self._free[k] = True
        self._cooling = []
        here = set(present)
        gone = [v for v in self.slot_of if v not in here]
        for v in gone:
            k = self.slot_of.pop(v) - self.offset
            self.ids[k] = None
            self._cooling.append(k)
        new = [v for v in present if v not in self.slot_of]
        free = np.flatnonzero(self._free)
        if len(free) < len(new):
            raise RuntimeError(
                f"{len(self.slot_of) + len(new)} radio-equipped vehicles that are not agents on the road at "
                f"t={time_s:g} s but max_other_vehicles={self.n}; raise max_other_vehicles (the most such "
                "vehicles present at once)"
            )
        for v, k in zip(new, free[: len(new)].tolist()):
            self.slot_of[v] = k + self.offset
            self.ids[k] = v
            self._free[k] = False
        left = np.array(sorted(k + self.offset for k in self._cooling), np.int64)
        joined = np.array(sorted(self.slot_of[v] for v in new), np.int64)
        return left, joined
