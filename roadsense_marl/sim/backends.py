"""Two ways to drive SUMO behind one interface: in-process libsumo and a TraCI subprocess.

Both take full SUMO argument lists (without the binary), start lazily, reset with
``load()``, and return :class:`VehicleStates`. They know nothing about scenarios or RL.

Per step they read only what the env uses (position, speed, acceleration, angle, leader;
length and minGap once per vehicle); lane index and lane position only when asked for
(``extra_fields``, see :data:`~roadsense_marl.sim.states.OPTIONAL_FIELDS`).

* :class:`LibsumoBackend`: SUMO inside this process; plain getters (cheaper than
  subscriptions in libsumo), each mapped over all vehicles straight into an array. libsumo is a process-wide singleton, and a second
  ``libsumo.start`` silently replaces the first simulation, so a module-level owner token
  refuses a second one with :class:`LibsumoInUseError`.
* :class:`TraciBackend`: the real ``sumo`` (or ``sumo-gui``) binary on a free port, one
  uniquely labelled connection each (several per process work); per-vehicle reads come
  from subscriptions delivered with each step's answer, so a step is one round trip.
"""

from __future__ import annotations

import abc
import contextlib
import io
import itertools
import os
from itertools import chain, repeat
from operator import itemgetter
import socket
import subprocess
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from roadsense_marl.sim.states import (
    LEADER_LOOKAHEAD_M,
    OPTIONAL_FIELDS,
    LibsumoInUseError,
    SumoError,
    VehicleStates,
    assemble_states,
    check_extra_fields,
    leader_columns,
)

__all__ = ["BACKENDS", "LibsumoBackend", "SumoBackend", "TraciBackend", "libsumo_getters", "libsumo_owner_alive"]

BACKENDS = ("libsumo", "traci")

_LIBSUMO_LOCK = threading.Lock()
_libsumo_owner: "weakref.ref[LibsumoBackend] | None" = None
_labels = itertools.count()


def libsumo_owner_alive() -> bool:
    """True while a :class:`LibsumoBackend` in this process holds libsumo."""
    owner = _libsumo_owner() if _libsumo_owner is not None else None
    return owner is not None and owner.started


def _order_key(rank: Mapping[str, int]) -> Callable[[str], tuple[int, str]]:
    big = len(rank)
    return lambda vid: (rank.get(vid, big), vid)


class SumoBackend(abc.ABC):
    """The interface both backends implement, and what they share (vehicle ordering, cached
    per-vehicle constants, the error log). Used by :class:`~roadsense_marl.sim.SumoSimulation`
    only; one backend drives one SUMO simulation at a time.

    :param vehicle_order: vehicle ids in the order states list them (the scenario's
        ``vehicle_ids``); unknown ids sort after them, by id.
    :param error_log: file SUMO writes its errors to (``--error-log``), quoted in errors.
    :param extra_fields: optional per-vehicle values to read each step (``OPTIONAL_FIELDS``).
    """

    #: ``"libsumo"`` or ``"traci"``.
    name = ""

    def __init__(self, vehicle_order: Sequence[str], error_log: Path, extra_fields: Sequence[str] = ()) -> None:
        self._key = _order_key({vid: i for i, vid in enumerate(vehicle_order)})
        self.error_log = Path(error_log)
        #: True between a successful :meth:`start` and :meth:`close`.
        self.started = False
        self.extra_fields = check_extra_fields(extra_fields)
        self._min_gap: dict[str, float] = {}
        self._length: dict[str, float] = {}

    @abc.abstractmethod
    def start(self, args: Sequence[str]) -> None:
        """Start SUMO with ``args`` (full SUMO arguments without the binary name). Raises
        :class:`LibsumoInUseError` (libsumo already running here) or :class:`SumoError`."""

    @abc.abstractmethod
    def load(self, args: Sequence[str]) -> None:
        """Reload the running SUMO with new ``args`` (a new episode: seed, route files)."""

    @abc.abstractmethod
    def read(self) -> VehicleStates:
        """Every vehicle's state now, without stepping (right after :meth:`start`/:meth:`load`)."""

    @abc.abstractmethod
    def step(self) -> VehicleStates:
        """Advance SUMO one step; every vehicle's state after it, with this step's departed,
        arrived and collided ids."""

    @property
    @abc.abstractmethod
    def raw(self) -> Any:
        """The ``libsumo`` module or the TraCI connection (same API), while running."""

    @abc.abstractmethod
    def set_speed(self, vid: str, speed: float) -> None:
        """Hold ``vid`` at ``speed`` m/s from the next step (-1: back to its car-following model)."""

    @abc.abstractmethod
    def slow_down(self, vid: str, speed: float, duration_s: float) -> None:
        """Change ``vid``'s speed linearly to ``speed`` m/s over ``duration_s`` seconds."""

    @abc.abstractmethod
    def set_speed_mode(self, vid: str, mode: int) -> None:
        """Set SUMO's speed-mode bit field of ``vid`` (0..255)."""

    @abc.abstractmethod
    def command_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types a command on a vehicle that just left raises (caught by the caller)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop SUMO; idempotent."""

    @property
    def pid(self) -> int | None:
        """The SUMO process id (traci), ``None`` for libsumo or when not running."""
        return None

    def sumo_messages(self, limit: int = 20) -> str:
        """The last lines SUMO wrote to its error log or stderr (empty if none)."""
        lines: list[str] = []
        for path in (self.error_log, self.error_log.with_suffix(".stderr")):
            try:
                lines += path.read_text(errors="replace").strip().splitlines()
            except OSError:
                continue
        unique = list(dict.fromkeys(line for line in lines if line.strip()))
        return "\n".join(unique[-limit:])

    def exit_description(self) -> str:
        """How the SUMO process ended, if it has (empty otherwise, and for libsumo)."""
        return ""

    def _forget_vehicles(self) -> None:
        self._min_gap.clear()
        self._length.clear()


# --------------------------------------------------------------------------- libsumo


class LibsumoBackend(SumoBackend):
    """SUMO in this process through libsumo (only one per process)."""

    name = "libsumo"

    def __init__(self, vehicle_order: Sequence[str], error_log: Path, extra_fields: Sequence[str] = ()) -> None:
        super().__init__(vehicle_order, error_log, extra_fields)
        import libsumo  # noqa: PLC0415 - heavy import, only when used

        self._ls = libsumo
        self._getters = libsumo_getters(libsumo)
        self._forget_order()

    def _forget_order(self) -> None:
        # SUMO's id list of the last read and what was derived from it; rebuilt only when the
        # set (or SUMO's order) of vehicles changes, not every step.
        self._raw_ids: tuple[str, ...] | None = None
        self._ids: tuple[str, ...] = ()
        self._position: dict[str, int] = {}
        self._length_arr = self._min_gap_arr = np.empty(0)

    def _forget_vehicles(self) -> None:
        super()._forget_vehicles()
        self._forget_order()

    def start(self, args: Sequence[str]) -> None:
        global _libsumo_owner
        ls = self._ls
        with _LIBSUMO_LOCK:
            owner = _libsumo_owner() if _libsumo_owner is not None else None
            if (owner is not None and owner is not self and owner.started) or (
                owner is None and ls.simulation.isLoaded()
            ):
                raise LibsumoInUseError(
                    "a libsumo simulation is already running in this process, and libsumo can run only "
                    "one (a second start would silently replace the first). Use backend='traci' for "
                    "several simulations in one process, or run one process per env "
                    "(e.g. SuperSuit concat_vec_envs_v1 with num_cpus > 1)."
                )
            _libsumo_owner = weakref.ref(self)
            try:
                ls.start(["sumo", *args])
            except BaseException:
                _libsumo_owner = None
                with contextlib.suppress(Exception):
                    ls.close()
                raise
            self.started = True

    @property
    def raw(self) -> Any:
        return self._ls

    def load(self, args: Sequence[str]) -> None:
        self._forget_vehicles()
        self._ls.load(list(args))

    def step(self) -> VehicleStates:
        ls, f = self._ls, self._getters
        ls.simulationStep()  # the public call: it also runs TraCI step listeners a user added
        collided, collisions = _collided(ls.simulation) if f.colliding() else ((), ())
        return self.read(f.departed(), f.arrived(), collided, collisions)

    def read(self, departed: Sequence[str] = (), arrived: Sequence[str] = (),
             collided: Sequence[str] = (), collisions: Sequence[tuple[str, str]] = ()) -> VehicleStates:
        f = self._getters
        raw = f.ids()
        if raw != self._raw_ids:
            self._reorder(raw, (*arrived, *collided))
        ids = self._ids
        n = len(ids)
        # One C-level map per getter, straight into an array: this is the per-step hot path.
        xy = np.fromiter(chain.from_iterable(map(f.position, ids, repeat(False, n))), np.float64, 2 * n)
        xy = xy.reshape(n, 2).T.copy()
        speed = np.fromiter(map(f.speed, ids), np.float64, n)
        accel = np.fromiter(map(f.accel, ids), np.float64, n)
        heading = np.fromiter(map(f.angle, ids), np.float64, n)
        leaders = list(map(f.leader, ids, repeat(LEADER_LOOKAHEAD_M, n)))
        leader, gap = leader_columns(ids, self._position, leaders, self._min_gap_arr)
        extras = {}
        for name in self.extra_fields:
            extras[name] = np.fromiter(map(getattr(f, name), ids), OPTIONAL_FIELDS[name][0], n)
        return assemble_states(f.time(), ids, xy[0], xy[1], speed, accel, heading,
                               self._length_arr, leader, gap, departed, arrived, collided, extras,
                               collisions=collisions)

    def _reorder(self, raw: tuple[str, ...], gone: Sequence[str]) -> None:
        """The vehicles changed: new order, position index, and per-vehicle constants (read-only
        arrays shared by the states of every step until the next change)."""
        veh = self._ls.vehicle
        length, min_gap = self._length, self._min_gap
        for vid in gone:
            length.pop(vid, None)
            min_gap.pop(vid, None)
        ids = tuple(sorted(raw, key=self._key))
        for vid in ids:
            if vid not in length:
                length[vid] = veh.getLength(vid)
                min_gap[vid] = veh.getMinGap(vid)
        self._raw_ids = raw
        self._ids = ids
        self._position = {vid: i for i, vid in enumerate(ids)}
        self._length_arr = np.array([length[v] for v in ids], dtype=np.float64)
        self._min_gap_arr = np.array([min_gap[v] for v in ids], dtype=np.float64)
        self._length_arr.flags.writeable = False
        self._min_gap_arr.flags.writeable = False

    def set_speed(self, vid: str, speed: float) -> None:
        self._ls.vehicle.setSpeed(vid, speed)

    def slow_down(self, vid: str, speed: float, duration_s: float) -> None:
        self._ls.vehicle.slowDown(vid, speed, duration_s)

    def set_speed_mode(self, vid: str, mode: int) -> None:
        self._ls.vehicle.setSpeedMode(vid, mode)

    def command_errors(self) -> tuple[type[BaseException], ...]:
        return (self._ls.TraCIException,)

    def close(self) -> None:
        global _libsumo_owner
        with _LIBSUMO_LOCK:
            owner = _libsumo_owner() if _libsumo_owner is not None else None
            if owner is self:
                _libsumo_owner = None
                with contextlib.suppress(Exception):
                    self._ls.close()
            self.started = False


class _Getters:
    """The libsumo functions one step reads, by what they return."""

    __slots__ = ("departed", "arrived", "colliding", "ids", "time", "position", "speed", "accel", "angle", "leader", "lane_index", "lane_pos")


def libsumo_getters(ls: Any) -> _Getters:
    """libsumo's per-vehicle getters as its compiled (SWIG) functions where they exist.

    ``libsumo.vehicle.getSpeed`` is a Python staticmethod that only forwards to
    ``libsumo._libsumo.vehicle_getSpeed``; calling the compiled function directly halves the
    cost of a read (measured 0.2 vs 0.4 us per call). Same values: it is the same call. If a
    SUMO build lacks the compiled name, the public method is used. ``position(vid, False)``
    takes includeZ explicitly; ``leader(vid, dist)`` answers ``("", -1.0)`` or ``None`` for
    no leader (see :func:`~roadsense_marl.sim.states.leader_columns`).
    """
    compiled = getattr(ls, "_libsumo", None)

    def pick(name: str, public: Any) -> Any:
        return getattr(compiled, name, None) or public

    g = _Getters()
    veh = ls.vehicle
    sim = ls.simulation
    g.departed = pick("simulation_getDepartedIDList", sim.getDepartedIDList)
    g.arrived = pick("simulation_getArrivedIDList", sim.getArrivedIDList)
    g.colliding = pick("simulation_getCollidingVehiclesIDList", sim.getCollidingVehiclesIDList)
    g.ids = pick("vehicle_getIDList", veh.getIDList)
    g.time = pick("simulation_getTime", sim.getTime)
    g.position = pick("vehicle_getPosition", veh.getPosition)
    g.speed = pick("vehicle_getSpeed", veh.getSpeed)
    g.accel = pick("vehicle_getAcceleration", veh.getAcceleration)
    g.angle = pick("vehicle_getAngle", veh.getAngle)
    g.leader = pick("vehicle_getLeader", veh.getLeader)
    g.lane_index = pick("vehicle_getLaneIndex", veh.getLaneIndex)
    g.lane_pos = pick("vehicle_getLanePosition", veh.getLanePosition)
    return g


def _collided(simulation: Any) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Colliders and victims of this step, and SUMO's collision records as ``(collider, victim)``
    pairs (``simulation.getCollisions()``). SUMO lists both roles in its colliding ids; the records
    are read too, in case a victim is missing there."""
    colliding = tuple(simulation.getCollidingVehiclesIDList())
    if not colliding:
        return (), ()
    seen = dict.fromkeys(colliding)
    pairs = []
    for c in simulation.getCollisions():
        seen.setdefault(c.collider)
        seen.setdefault(c.victim)
        pairs.append((str(c.collider), str(c.victim)))
    return tuple(seen), tuple(pairs)


# --------------------------------------------------------------------------- traci


def describe_exit(returncode: int | None) -> str:
    """Human words for a SUMO process exit code (SUMO 1.28 crashes on some broken nets)."""
    if returncode is None or returncode == 0:
        return ""
    if returncode < 0:
        return f"SUMO crashed (signal {-returncode}) without a message; check the network and route files"
    return f"SUMO exited with code {returncode}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TraciBackend(SumoBackend):
    """The real SUMO binary in a subprocess, driven through one labelled TraCI connection."""

    name = "traci"

    def __init__(self, vehicle_order: Sequence[str], error_log: Path, binary: Path,
                 extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 extra_fields: Sequence[str] = ()) -> None:
        super().__init__(vehicle_order, error_log, extra_fields)
        import traci  # noqa: PLC0415
        import traci.constants as tc  # noqa: PLC0415

        self._traci = traci
        self._tc = tc
        self._binary = Path(binary)
        self._extra_args = list(extra_args)
        self._env = dict(env) if env is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._returncode: int | None = None
        self._conn: Any = None
        self._label = ""
        self._stderr: io.BufferedWriter | None = None
        self._extra_vars = {"lane_index": tc.VAR_LANE_INDEX, "lane_pos": tc.VAR_LANEPOSITION}
        self._vars = (tc.VAR_POSITION, tc.VAR_SPEED, tc.VAR_ACCELERATION, tc.VAR_ANGLE, tc.VAR_LENGTH,
                      tc.VAR_MINGAP, tc.VAR_LEADER, *(self._extra_vars[f] for f in self.extra_fields))
        self._sim_vars = (tc.VAR_TIME, tc.VAR_DEPARTED_VEHICLES_IDS, tc.VAR_ARRIVED_VEHICLES_IDS,
                          tc.VAR_COLLIDING_VEHICLES_IDS)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def exit_description(self) -> str:
        proc = self._proc
        return describe_exit(proc.poll() if proc is not None else self._returncode)

    def start(self, args: Sequence[str]) -> None:
        last_error = ""
        for _attempt in range(3):  # a port can be taken between choosing and binding it
            port = _free_port()
            self._stderr = open(self.error_log.with_suffix(".stderr"), "ab")
            self._proc = subprocess.Popen(
                [str(self._binary), *args, *self._extra_args, "--remote-port", str(port)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr, env=self._env,
            )
            self._label = f"roadsense-{os.getpid()}-{next(_labels)}"
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # traci prints each retry
                    self._conn = self._traci.connect(
                        port, numRetries=6000, proc=self._proc, waitBetweenRetries=0.01, label=self._label
                    )
            except (self._traci.TraCIException, self._traci.FatalTraCIError) as exc:
                proc = self._proc
                self._kill(grace_s=0.0)
                last_error = self.sumo_messages() or describe_exit(proc.returncode if proc else None) or str(exc)
                if "address" in last_error.lower() and "use" in last_error.lower():
                    continue
                raise SumoError(f"SUMO ({self._binary.name}) did not start: {last_error}") from None
            self.started = True
            self._subscribe_simulation()
            return
        raise SumoError(f"SUMO ({self._binary.name}) could not get a free port: {last_error}")

    @property
    def raw(self) -> Any:
        return self._conn

    def _subscribe_simulation(self) -> None:
        self._conn.simulation.subscribe(self._sim_vars)

    def load(self, args: Sequence[str]) -> None:
        self._forget_vehicles()
        self._conn.load([*args, *self._extra_args])
        self._subscribe_simulation()  # load() drops all subscriptions

    def step(self) -> VehicleStates:
        conn, tc = self._conn, self._tc
        conn.simulationStep()
        res = conn.simulation.getSubscriptionResults()
        collided: tuple[str, ...] = ()
        collisions: tuple[tuple[str, str], ...] = ()
        if res[tc.VAR_COLLIDING_VEHICLES_IDS]:
            collided, collisions = _collided(conn.simulation)
        arrived = res[tc.VAR_ARRIVED_VEHICLES_IDS]
        gone = set(arrived) | set(collided)
        params = {tc.VAR_LEADER: ("d", LEADER_LOOKAHEAD_M)}
        for vid in res[tc.VAR_DEPARTED_VEHICLES_IDS]:
            if vid not in gone:
                conn.vehicle.subscribe(vid, self._vars, parameters=params)
        return self._read(res[tc.VAR_TIME], res[tc.VAR_DEPARTED_VEHICLES_IDS], arrived, collided, collisions)

    def read(self) -> VehicleStates:
        """State right after start/load (no step yet). traci keeps the previous episode's
        subscription results until the next step, so only vehicles alive now are read."""
        vehicles = self._conn.vehicle.getIDList()
        params = {self._tc.VAR_LEADER: ("d", LEADER_LOOKAHEAD_M)}
        for vid in vehicles:
            self._conn.vehicle.subscribe(vid, self._vars, parameters=params)
        return self._read(self._conn.simulation.getTime(), (), (), (), only=set(vehicles))

    def _read(self, time_s: float, departed: Sequence[str], arrived: Sequence[str],
              collided: Sequence[str], collisions: Sequence[tuple[str, str]] = (),
              only: set[str] | None = None) -> VehicleStates:
        tc = self._tc
        results = self._conn.vehicle.getAllSubscriptionResults()
        ids = sorted(results if only is None else (v for v in results if v in only), key=self._key)
        n = len(ids)
        rs = list(map(results.__getitem__, ids))

        def column(var: int, dtype: type = np.float64) -> np.ndarray:
            return np.fromiter(map(itemgetter(var), rs), dtype, n)

        xy = np.array(list(map(itemgetter(tc.VAR_POSITION), rs)), dtype=np.float64).reshape(n, 2).T.copy()
        leaders = list(map(itemgetter(tc.VAR_LEADER), rs))
        leader, gap = leader_columns(ids, {v: i for i, v in enumerate(ids)}, leaders, column(tc.VAR_MINGAP))
        extras = {f: column(self._extra_vars[f], OPTIONAL_FIELDS[f][0]) for f in self.extra_fields}
        return assemble_states(time_s, ids, xy[0], xy[1], column(tc.VAR_SPEED), column(tc.VAR_ACCELERATION),
                               column(tc.VAR_ANGLE), column(tc.VAR_LENGTH), leader, gap,
                               departed, arrived, collided, extras, collisions=collisions)

    def set_speed(self, vid: str, speed: float) -> None:
        self._conn.vehicle.setSpeed(vid, speed)

    def slow_down(self, vid: str, speed: float, duration_s: float) -> None:
        self._conn.vehicle.slowDown(vid, speed, duration_s)

    def set_speed_mode(self, vid: str, mode: int) -> None:
        self._conn.vehicle.setSpeedMode(vid, mode)

    def command_errors(self) -> tuple[type[BaseException], ...]:
        return (self._traci.TraCIException,)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close(wait=False)
            # A failed close leaves the label registered; drop it so nothing points at a dead socket.
            with contextlib.suppress(Exception):
                self._traci.connection._connections.pop(self._label, None)
        self._kill()
        self.started = False

    def _kill(self, grace_s: float = 2.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(timeout=grace_s)  # exits by itself once the connection is closed
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5.0)
        if proc is not None:
            self._returncode = proc.returncode
        if self._stderr is not None:
            with contextlib.suppress(OSError):
                self._stderr.close()
            self._stderr = None
