"""Measurement helpers of the benchmark suite: timing, workloads and the results files.

Every figure is a median over several repetitions after a warm-up. Workloads are plain
functions so each case (and a profiler) can run them alone:

* :func:`raw_sumo_rate`: libsumo stepping, every vehicle read and one ``setSpeed`` each;
* :func:`env_rate`: ``parallel_env(...).step`` with random actions, hazards on, measured radio;
* :func:`radio_step_ms`: the radio alone (beacon_due + broadcast + receive) per 100 ms step.

Results go to ``benchmarks/results/latest.json`` (merged per case, so one case re-run alone
updates only its own rows) and a Markdown table ``benchmarks/results/latest.md``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LANES = 3
SPACING_M = 50.0
HOLD_SPEED_MPS = 20.0
#: Vehicle counts of the raw SUMO ceiling (case 1) and of the full env (case 2).
SCALING_N = (2, 10, 50, 200)  # raw SUMO case: one setSpeed per vehicle per step, to this speed


# --------------------------------------------------------------------------- timing


def median_time(fn: Callable[[], float | None], reps: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median (and all) of ``reps`` runs of ``fn`` after ``warmup`` untimed runs.

    ``fn`` may return its own measured duration (seconds, e.g. excluding set-up); if it
    returns None it is timed from the outside.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        inner = fn()
        times.append(float(inner) if inner is not None else time.perf_counter() - t0)
    return statistics.median(times), times


def loglog_slope(ns: list[float], costs: list[float]) -> float:
    """Least-squares slope of log(cost) against log(n): the growth exponent."""
    return float(np.polyfit(np.log(ns), np.log(costs), 1)[0])


def rss_mb() -> float:
    """Resident memory of this process (``VmRSS`` of ``/proc/self/status``), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS line in /proc/self/status (Linux only)")


# --------------------------------------------------------------------------- scenarios


def highway_kwargs(n: int, travel_m: float = 3000.0) -> dict[str, Any]:
    """Straight 3-lane highway with all ``n`` vehicles on the road from t = 0, long enough
    that none reaches the end during a measurement (``travel_m`` of driving)."""
    per_lane = math.ceil(n / LANES)
    head = 5.0 + (per_lane - 1) * SPACING_M
    return dict(n_vehicles=n, lanes=LANES, spacing_m=SPACING_M, n_initial=n, length_m=float(math.ceil(head + travel_m)))


# --------------------------------------------------------------------------- case 1: raw SUMO


def raw_sumo_rate(n: int, steps: int, reps: int = 5) -> dict[str, float]:
    """libsumo steps/s with every vehicle's position, speed, acceleration and angle read and one
    ``setSpeed`` per vehicle per step; asserts all ``n`` vehicles are in the simulation throughout."""
    from roadsense_marl.sim import SumoSimulation, resolve_scenario

    scenario = resolve_scenario("highway", **highway_kwargs(n, travel_m=steps * 0.1 * HOLD_SPEED_MPS + 500.0))
    sim = SumoSimulation(scenario, backend="libsumo")
    counts: list[int] = []
    try:

        def run() -> float:
            sim.reset(seed=1)
            ls = sim.raw
            ls.simulationStep()  # every vehicle departs at t = 0 and is inserted in this step
            veh = ls.vehicle
            t0 = time.perf_counter()
            for _ in range(steps):
                ls.simulationStep()
                for v in veh.getIDList():
                    veh.getPosition(v)
                    veh.getSpeed(v)
                    veh.getAcceleration(v)
                    veh.getAngle(v)
                    veh.setSpeed(v, HOLD_SPEED_MPS)
            elapsed = time.perf_counter() - t0
            counts.append(veh.getIDCount())
            return elapsed

        med, times = median_time(run, reps=reps, warmup=1)
    finally:
        sim.close()
    if min(counts) != n:
        raise AssertionError(f"raw SUMO N={n}: only {min(counts)} vehicles in the simulation at the end of a run")
    return {"n": n, "steps_per_s": steps / med, "steps": steps, "reps": reps,
            "spread": (max(times) - min(times)) / med, "vehicles_at_end": min(counts)}


def raw_steps_for(n: int) -> int:
    """Steps per repetition: ~30-150 ms of raw stepping whatever N."""
    return int(min(2000, max(150, 20_000 // n)))


# --------------------------------------------------------------------------- case 2: env


def make_env(n: int | None, backend: str, max_steps: int, scenario: str = "highway", **extra: Any):
    """The parallel env as a user would build it: hazards on, measured radio."""
    from roadsense_marl import parallel_env

    kwargs: dict[str, Any] = dict(backend=backend, max_steps=max_steps, radio="measured", **extra)
    if scenario == "highway":
        kwargs["scenario_kwargs"] = highway_kwargs(int(n))
    return parallel_env(scenario=scenario, **kwargs)


def run_episode(env, seed: int, rng: np.random.Generator, steps: int) -> tuple[float, int, int]:
    """Reset (untimed), then up to ``steps`` steps with uniform random actions.

    Returns (seconds inside ``env.step``, env steps, agent steps).
    """
    env.reset(seed=seed)
    space = env.action_space(env.possible_agents[0])
    lo, hi = float(space.low[0]), float(space.high[0])
    inside, n_steps, agent_steps = 0.0, 0, 0
    for _ in range(steps):
        if not env.agents:
            break
        a = rng.uniform(lo, hi, size=(len(env.agents), 1)).astype(np.float32)
        actions = dict(zip(env.agents, a))
        agent_steps += len(actions)
        t0 = time.perf_counter()
        env.step(actions)
        inside += time.perf_counter() - t0
        n_steps += 1
    return inside, n_steps, agent_steps


def env_rate(n: int, backend: str, steps: int, reps: int = 3, **env_kwargs: Any) -> dict[str, float]:
    """env-steps/s and agent-steps/s of the full parallel env (median of ``reps`` episodes
    of ``steps`` steps; ``env_kwargs`` go to ``parallel_env``)."""
    env = make_env(n, backend, max_steps=steps, **env_kwargs)
    rng = np.random.default_rng(0)
    rates, agent_rates, live = [], [], []
    try:
        run_episode(env, seed=100, rng=rng, steps=20)  # warm-up: SUMO start, caches, imports
        for r in range(reps):
            inside, n_steps, agent_steps = run_episode(env, seed=r, rng=rng, steps=steps)
            rates.append(n_steps / inside)
            agent_rates.append(agent_steps / inside)
            live.append(agent_steps / max(n_steps, 1))
    finally:
        env.close()
    return {"n": n, "backend": backend, "env_steps_per_s": statistics.median(rates),
            "agent_steps_per_s": statistics.median(agent_rates), "mean_live_agents": statistics.median(live),
            "steps": steps, "reps": reps}


# --------------------------------------------------------------------------- case 3: radio


def radio_layout(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Vehicle positions (n, 2): ``convoy`` packs everyone inside a 20 m disc (every pair in the
    50 m range); ``highway`` spreads them 3 lanes wide, 30 m apart per lane (a few neighbours each)."""
    if kind == "convoy":
        r = 20.0 * np.sqrt(rng.random(n))
        a = rng.random(n) * 2 * np.pi
        return np.c_[r * np.cos(a), r * np.sin(a)]
    if kind == "highway":
        lane = np.arange(n) % LANES
        row = np.arange(n) // LANES
        return np.c_[row * 30.0 + rng.uniform(-3, 3, n), lane * 3.2]
    raise ValueError(f"radio layout {kind!r}: valid layouts are 'convoy' and 'highway'")


def radio_step_ms(n: int, kind: str, steps: int, warmup: int = 3, params: Any = "measured") -> dict[str, float]:
    """Median ms per radio step (beacon_due + broadcast + receive, 100 ms apart, every vehicle
    due, everyone moving ~2 m per step) in steady state, with the links it served.

    Timed as this thread's CPU time: the radio is single-threaded NumPy without I/O, so this is
    its cost without the time other work on a shared machine takes the core away.
    """
    from roadsense_marl.espnow import Radio

    rng = np.random.default_rng(n)
    radio = Radio(params, capacity=n)
    radio.reset(0)
    slots = np.arange(n)
    xy = radio_layout(n, kind, rng)
    pay = np.c_[xy, np.full(n, 20.0), np.full(n, 90.0), np.zeros(n)]
    times, links, rows = [], [], []
    t = 0.0
    for k in range(warmup + steps):
        t_prev, t = t, t + 100.0
        xy[:, 0] += 2.0
        pay[:, 0] = xy[:, 0]
        t0 = time.thread_time()
        due = radio.beacon_due(slots, t_prev, t)
        lb = radio.broadcast(t, slots[due], xy[due], pay[due], slots, xy)
        rx = radio.receive(t, slots)
        dt = time.thread_time() - t0
        if k >= warmup:
            times.append(dt)
            links.append(len(lb))
            rows.append(len(rx))
    return {"n": n, "layout": kind, "ms_per_step": 1000.0 * statistics.median(times),
            "links_per_step": statistics.median(links), "rx_rows": statistics.median(rows), "steps": steps}


# --------------------------------------------------------------------------- results files


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy

    from importlib import metadata

    try:
        sumo_version = metadata.version("eclipse-sumo")
    except metadata.PackageNotFoundError:  # pragma: no cover - SUMO is a dependency
        sumo_version = "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": numpy.__version__, "sumo": sumo_version, "platform": platform.platform(),
            "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


class Results:
    """The suite's results: ``record(case, figures, rows)`` per case; ``write()`` merges them into
    ``latest.json`` (other cases keep their last rows) and rewrites ``latest.md``.

    A row is ``(metric, value, unit, target, status)``; ``status`` is ``"met"``, ``"not met"``
    or ``""`` (no target).
    """

    def __init__(self, directory: Path = RESULTS_DIR) -> None:
        self.directory = Path(directory)
        self.cases: dict[str, dict[str, Any]] = {}

    def record(self, case: str, figures: dict[str, Any], rows: list[tuple[str, float, str, str, str]]) -> None:
        self.cases[case] = {
            "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "figures": figures,
            "rows": [dict(zip(("metric", "value", "unit", "target", "status"), r)) for r in rows],
        }
        print(f"\n[{case}]")
        for r in rows:
            print(f"  {r[0]:<52} {_fmt(r[1]):>12} {r[2]:<12} {r[3]} {('(' + r[4] + ')') if r[4] else ''}")

    def write(self) -> Path | None:
        if not self.cases:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "latest.json"
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        merged = dict(old.get("cases", {}))
        merged.update(self.cases)
        data = {"machine": machine(), "cases": dict(sorted(merged.items()))}
        path.write_text(json.dumps(data, indent=2, default=float) + "\n")
        (self.directory / "latest.md").write_text(markdown_table(data))
        return path


def _fmt(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def markdown_table(data: dict[str, Any]) -> str:
    """The results as a Markdown table, with the machine they ran on."""
    m = data["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, NumPy {m['numpy']}, SUMO {m['sumo']}"
        f" (load average {m['load_avg_1min']:.1f} when written).",
        "",
        "| case | metric | value | unit | target | status |",
        "|---|---|---:|---|---|---|",
    ]
    for case, body in data["cases"].items():
        for r in body["rows"]:
            lines.append(f"| {case} | {r['metric']} | {_fmt(r['value'])} | {r['unit']} | {r['target']} | {r['status']} |")
    return "\n".join(lines) + "\n"
