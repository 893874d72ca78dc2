"""One SUMO simulation: lazy start, ``load()`` resets, batched reads and commands, safe shutdown."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from roadsense_marl.sim.backends import BACKENDS, LibsumoBackend, TraciBackend
from roadsense_marl.sim.install import sumo_binary, sumo_env
from roadsense_marl.sim.probe import SumoProbeError, sumo_session
from roadsense_marl.sim.registry import Scenario, resolve_scenario
from roadsense_marl.sim.variation import ScenarioVariation, write_episode_routes
from roadsense_marl.sim.states import SumoError, VehicleStates, check_extra_fields

__all__ = ["SumoSimulation"]

#: What happens to vehicles in a collision. ``remove``: both leave the simulation in that
#: step (a collided agent terminates and leaves), reported in ``VehicleStates.collided``.
COLLISION_ACTIONS = ("remove", "teleport", "warn", "none")

# Scenario files (with their modification times) that the real binary has loaded fine.
_PREFLIGHT_OK: set[tuple[Any, ...]] = set()


def preflight(scenario: Scenario, args: Sequence[str], sumo_args: Sequence[str]) -> None:
    """Run the scenario for one step with the real ``sumo`` binary in a subprocess, under
    exactly the options the libsumo run gets (``args``), before libsumo loads it.

    SUMO 1.28 segfaults on some broken networks; inside libsumo that would kill this Python
    process, so libsumo only ever loads files the binary has loaded once (per process and
    file version, ~70 ms). Raises :class:`SumoError` with SUMO's own message.
    """
    files = [p for p in (scenario.sumocfg, scenario.net_file, *scenario.route_files, *scenario.additional_files)
             if p is not None]
    try:
        stamp = tuple((str(p), p.stat().st_mtime_ns) for p in files)
    except OSError as exc:
        raise SumoError(f"scenario {scenario.name!r}: {exc}") from None
    key = (stamp, tuple(sumo_args))
    if key in _PREFLIGHT_OK:
        return
    # The run's own options, not an --end at the begin time: SUMO refuses that for files a real
    # run accepts (a flow without end that begins later: "ends before its begin time"; an
    # <edgeData> output: "End before or at begin for meandata dump"). One step under TraCI.
    run_args = list(args)
    if "--error-log" in run_args:  # the probe keeps its own log
        k = run_args.index("--error-log")
        del run_args[k:k + 2]
    try:
        with sumo_session(run_args, f"scenario {scenario.name!r} ({scenario.sumocfg})") as conn:
            conn.simulationStep()
    except SumoProbeError as exc:
        raise SumoError(str(exc)) from None
    _PREFLIGHT_OK.add(key)


#: Options the env sets itself, why, and the parameter to use instead. They win over the
#: ``.sumocfg`` (SUMO: the command line overrides the config file); in ``sumo_args`` a
#: different value is an error naming both.
ENV_OWNED_OPTIONS: dict[str, str] = {
    "--step-length": "the step length: pass step_length",
    "--seed": "the episode seed: pass it to reset()",
    "--collision.action": "pass collision_action",
    "--collision.check-junctions": "collisions on junctions must count",
    "--collision.mingap-factor": "only real contact is a collision",
    "--time-to-teleport": "stuck vehicles stay: a stopped car is a state the agents handle",
    "--configuration-file": "the scenario: pass its .sumocfg as the scenario",
    "--route-files": "per-episode route files are written from the scenario's",
    "--remote-port": "the backend chooses the port",
}
_OPTION_ALIASES = {"-c": "--configuration-file", "-r": "--route-files"}


def _check_user_options(sumo_args: tuple[str, ...], step_length: float, collision_action: str) -> None:
    """ValueError naming a ``sumo_args`` option that conflicts with one the env sets."""
    env_values = {"--step-length": repr(step_length), "--collision.action": collision_action,
                  "--collision.check-junctions": "true", "--collision.mingap-factor": "0",
                  "--time-to-teleport": "-1"}
    for k, arg in enumerate(sumo_args):
        name, _, inline = arg.partition("=")
        name = _OPTION_ALIASES.get(name, name)
        if name not in ENV_OWNED_OPTIONS:
            continue
        value = inline or (sumo_args[k + 1] if k + 1 < len(sumo_args) else "")
        mine = env_values.get(name)
        if mine is not None and _same_value(value, mine):
            continue
        why = ENV_OWNED_OPTIONS[name]
        ours = f"{name} {mine}" if mine is not None else name
        raise ValueError(
            f"sumo_args option {arg}{'' if inline else ' ' + value} conflicts with the env's {ours} ({why}); "
            "remove it from sumo_args"
        )


def _same_value(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a.strip().lower() == b.strip().lower()


class _Runtime:
    """Everything that lives only while SUMO runs: the backend and a private temp folder.

    Kept apart from :class:`SumoSimulation` so a ``weakref.finalize`` can close it when the
    simulation is garbage-collected without holding the simulation alive.
    """

    def __init__(self, backend: Any, tmpdir: Path) -> None:
        self.backend = backend
        self.tmpdir = tmpdir
        self.episode = 0
        self.route_files: tuple[Path, ...] = ()

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


class SumoSimulation:
    """A SUMO simulation of one scenario, started lazily on the first :meth:`reset`.

    Construction is cheap and starts nothing, so the object pickles (SuperSuit cloudpickles
    envs before their first reset); pickling a started simulation gives an unstarted copy.
    Later resets ``load()`` the live simulation with a new seed and variation (a few ms)
    instead of starting a new SUMO. Any exception inside a step closes SUMO and is re-raised
    as :class:`SumoError`; ``close()`` is idempotent and also runs on garbage collection.

    SUMO runs with collision detection on (``--collision.action remove`` by default,
    ``--collision.check-junctions``, ``--collision.mingap-factor 0``: only real contact counts),
    teleporting of stuck vehicles off (``--time-to-teleport -1``: a stopped car is a state the
    agents must handle, not something to hide) and quiet logs. SUMO's errors go to a log file
    whose tail is quoted in every :class:`SumoError`.

    :param scenario: a :class:`Scenario`, a scenario name or a ``.sumocfg`` path.
    :param backend: ``"libsumo"`` (in-process, fastest, one per process) or ``"traci"``
        (subprocess; several per process; required for ``gui=True``).
    :param step_length: seconds per step; ``None`` takes the scenario's (0.1 s for shipped ones).
    :param gui: run ``sumo-gui`` (traci only).
    :param sumo_args: extra SUMO command-line arguments, appended last.
    :param collision_action: SUMO's ``--collision.action`` (``remove`` is what the env expects).
    :param extra_fields: optional per-vehicle values to read every step besides those the env
        uses, from :data:`~roadsense_marl.sim.states.OPTIONAL_FIELDS` (``"lane_index"``,
        ``"lane_pos"``); each costs one more SUMO call per vehicle per step (libsumo). Values
        not requested are absent from :class:`VehicleStates` (reading them raises
        AttributeError). ValueError names an unknown field and lists the valid ones.
    """

    def __init__(
        self,
        scenario: Scenario | str | os.PathLike[str],
        backend: str = "libsumo",
        step_length: float | None = None,
        gui: bool = False,
        sumo_args: Sequence[str] = (),
        collision_action: str = "remove",
        extra_fields: Sequence[str] = (),
    ) -> None:
        self.scenario = scenario if isinstance(scenario, Scenario) else resolve_scenario(scenario)
        if backend not in BACKENDS:
            raise ValueError(f"unknown SUMO backend {backend!r}; valid: {', '.join(BACKENDS)}")
        if gui and backend != "traci":
            raise ValueError("gui=True needs backend='traci' (libsumo has no GUI)")
        step = self.scenario.default_step_length if step_length is None else float(step_length)
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"step_length must be a positive number of seconds, got {step_length!r}")
        if collision_action not in COLLISION_ACTIONS:
            raise ValueError(f"collision_action {collision_action!r} is not one of {COLLISION_ACTIONS}")
        if isinstance(sumo_args, str) or not all(isinstance(a, str) for a in sumo_args):
            raise TypeError(f"sumo_args must be a sequence of strings, got {sumo_args!r}")
        _check_user_options(tuple(sumo_args), step, collision_action)
        self.extra_fields = check_extra_fields(extra_fields)
        self.backend = backend
        self.step_length = step
        self.gui = bool(gui)
        self.sumo_args = tuple(sumo_args)
        self.collision_action = collision_action
        self._runtime: _Runtime | None = None
        self._finalizer: weakref.finalize | None = None

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_runtime"] = None
        state["_finalizer"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        status = "running" if self.is_running else "not started"
        return f"SumoSimulation({self.scenario.name!r}, backend={self.backend!r}, {status})"

    def __enter__(self) -> "SumoSimulation":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ status

    @property
    def is_running(self) -> bool:
        """True between a successful :meth:`reset` and :meth:`close` (or a fatal error)."""
        return self._runtime is not None and self._runtime.backend.started

    @property
    def pid(self) -> int | None:
        """The SUMO process id (traci), ``None`` for libsumo or when not running."""
        return self._runtime.backend.pid if self._runtime is not None else None

    @property
    def raw(self) -> Any:
        """The ``libsumo`` module or this simulation's TraCI connection, for SUMO calls this
        class does not wrap (same API: ``raw.vehicle.getDecel(vid)``). Valid while running;
        do not call ``load``/``close`` on it."""
        return self._require_running("raw").backend.raw

    # ------------------------------------------------------------------ episodes

    def reset(self, seed: int, variation: ScenarioVariation | None = None) -> VehicleStates:
        """Start SUMO (first call) or ``load()`` it again with ``--seed seed`` and the
        episode's route files (``variation`` applied), and return the state at the begin
        time, before the first step (usually empty: vehicles enter during steps).

        ``seed`` must be a non-negative integer; it is taken modulo 2**31 because SUMO's
        ``--seed`` is a signed 32-bit integer.
        """
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if variation is not None and not isinstance(variation, ScenarioVariation):
            raise TypeError(f"variation must be a ScenarioVariation or None, got {type(variation).__name__}")
        rt = self._runtime or self._new_runtime()
        routes: tuple[Path, ...] = ()
        if variation is not None:
            episode_dir = rt.tmpdir / f"episode{rt.episode}"
            episode_dir.mkdir()
            routes = write_episode_routes(self.scenario, variation, episode_dir)
        args = self._args(int(seed) % 2**31, routes, rt)
        try:
            if rt.backend.started:
                rt.backend.load(args)
            else:
                if self.backend == "libsumo":
                    preflight(self.scenario, args, self.sumo_args)
                rt.backend.start(args)
            states = rt.backend.read()
        except SumoError:  # already says what went wrong (in-use libsumo, SUMO's load error)
            self.close()
            raise
        except Exception as exc:
            raise self._fail(exc, "reset") from exc
        # Files of the previous episode are no longer read by SUMO.
        for old in {p.parent for p in rt.route_files}:
            shutil.rmtree(old, ignore_errors=True)
        rt.route_files = routes
        rt.episode += 1
        return states

    def step(self) -> VehicleStates:
        """Advance one step and return every vehicle's state."""
        rt = self._require_running("step")
        try:
            return rt.backend.step()
        except Exception as exc:
            raise self._fail(exc, "step") from exc

    def expected_vehicles(self) -> int:
        """Vehicles on the road or still to be inserted (SUMO's ``simulation.getMinExpectedNumber``):
        0 means the scenario has no more traffic."""
        rt = self._require_running("expected_vehicles")
        try:
            return int(rt.backend.raw.simulation.getMinExpectedNumber())
        except Exception as exc:
            raise self._fail(exc, "expected_vehicles") from exc

    # ------------------------------------------------------------------ commands

    def set_speeds(self, ids: Sequence[str], speeds: np.ndarray | Sequence[float]) -> None:
        """Hold each vehicle at a speed (m/s) from the next step on; a negative speed
        releases it back to its car-following model (SUMO ``setSpeed(v, -1)``)."""
        values = self._values(ids, speeds, "speeds")
        self._command("set_speed", ids, [(-1.0 if v < 0 else float(v),) for v in values])

    def slow_down(self, ids: Sequence[str], speeds: np.ndarray | Sequence[float],
                  durations_s: np.ndarray | Sequence[float]) -> None:
        """Change each vehicle's speed linearly to ``speeds`` over ``durations_s`` seconds."""
        values = self._values(ids, speeds, "speeds")
        durations = self._values(ids, durations_s, "durations_s")
        if np.any(values < 0) or np.any(durations < 0):
            raise ValueError("slow_down speeds and durations_s must be >= 0")
        self._command("slow_down", ids, [(float(v), float(d)) for v, d in zip(values, durations)])

    def set_speed_modes(self, ids: Sequence[str], modes: np.ndarray | Sequence[int]) -> None:
        """Set SUMO speed modes (bit field, 31 = all checks, 0 = none: collisions possible)."""
        values = self._values(ids, modes, "modes")
        if np.any(values != np.round(values)) or np.any(values < 0) or np.any(values > 255):
            raise ValueError(f"speed modes must be integers in 0..255, got {values.tolist()}")
        self._command("set_speed_mode", ids, [(int(m),) for m in values])

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Stop SUMO and delete the temp files; safe to call any number of times."""
        finalizer, self._finalizer = self._finalizer, None
        self._runtime = None
        if finalizer is not None:
            finalizer()  # runs _Runtime.close exactly once

    # ------------------------------------------------------------------ internals

    def _new_runtime(self) -> _Runtime:
        tmpdir = Path(tempfile.mkdtemp(prefix="roadsense-sumo-"))
        error_log = tmpdir / "sumo-errors.log"
        order = self.scenario.vehicle_ids
        if self.backend == "libsumo":
            backend: Any = LibsumoBackend(order, error_log, self.extra_fields)
        else:
            name = "sumo-gui" if self.gui else "sumo"
            try:
                binary = sumo_binary(name)
            except FileNotFoundError as exc:
                shutil.rmtree(tmpdir, ignore_errors=True)
                raise SumoError(f"{exc} (gui=True needs sumo-gui)" if self.gui else str(exc)) from None
            extra = ("--start", "true", "--quit-on-end", "true") if self.gui else ()
            backend = TraciBackend(order, error_log, binary, extra, env=sumo_env(), extra_fields=self.extra_fields)
        rt = _Runtime(backend, tmpdir)
        self._runtime = rt
        self._finalizer = weakref.finalize(self, rt.close)
        return rt

    def _args(self, seed: int, routes: Sequence[Path], rt: _Runtime) -> list[str]:
        args = [
            "-c", str(self.scenario.sumocfg),
            "--step-length", repr(self.step_length),
            "--seed", str(seed),
            "--no-step-log", "true",
            "--no-warnings", "true",
            "--duration-log.disable", "true",
            "--collision.action", self.collision_action,
            "--collision.check-junctions", "true",
            "--collision.mingap-factor", "0",
            "--time-to-teleport", "-1",
            "--error-log", str(rt.backend.error_log),
        ]
        if routes:
            args += ["--route-files", ",".join(str(p) for p in routes)]
        return args + list(self.sumo_args)

    def _require_running(self, what: str) -> _Runtime:
        rt = self._runtime
        if rt is None or not rt.backend.started:
            raise SumoError(f"{what}() before reset(): SUMO is not running ({self!r})")
        return rt

    def _fail(self, exc: BaseException, what: str) -> SumoError:
        """Close SUMO and build the error to raise, quoting SUMO's own messages."""
        rt = self._runtime
        messages = rt.backend.sumo_messages() if rt is not None else ""
        pid = self.pid
        self.close()  # also reaps the process, so its exit code is known
        if not messages and rt is not None:
            messages = rt.backend.exit_description()
        detail = f"\nSUMO said:\n{messages}" if messages else ""
        return SumoError(
            f"SUMO {what} failed for scenario {self.scenario.name!r} ({self.scenario.sumocfg}), "
            f"backend={self.backend}{f', pid={pid}' if pid else ''}: {type(exc).__name__}: {exc}{detail}\n"
            "The simulation has been closed; reset() starts a new one."
        )

    @staticmethod
    def _values(ids: Sequence[str], values: Any, what: str) -> np.ndarray:
        if isinstance(ids, str):
            raise TypeError(f"ids must be a sequence of vehicle ids, not the string {ids!r}")
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} ids but {arr.shape[0]} {what}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what} must be finite, got {arr.tolist()}")
        return arr

    def _command(self, method: str, ids: Sequence[str], argss: Sequence[tuple[Any, ...]]) -> None:
        rt = self._require_running(method)
        call = getattr(rt.backend, method)
        recoverable = rt.backend.command_errors()
        vid = None
        try:
            for vid, args in zip(ids, argss):
                call(vid, *args)
        except recoverable as exc:  # e.g. an unknown vehicle: SUMO itself is fine
            raise SumoError(
                f"{method}({vid!r}, {', '.join(map(str, args))}) refused by SUMO: {exc} "
                "(the simulation is still running)"
            ) from exc
        except Exception as exc:
            raise self._fail(exc, method) from exc
