"""The vehicle set of a scenario, asked from SUMO itself rather than parsed by hand.

PettingZoo needs every agent id before the first step; SUMO is the only authority on which
ids a ``.sumocfg`` produces (``<vehicle>``, ``<trip>``, ``<flow>`` with ``number`` / ``period``
/ ``vehsPerHour`` / ``probability``, route and vType distributions, vehicles in
``additional-files``, several route files, SUMO's rounding of flow counts). So the real
``sumo`` binary runs the scenario once, headless, from its begin time to the end of the
*horizon* (``begin + horizon_s``), with the options the env itself sets, and reports:

* every vehicle it inserted (``simulation.getDepartedIDList`` each step), in order of desired
  departure time (actual departure minus ``vehicle.getDepartDelay``; ties: insertion order);
* every vehicle whose departure time has come but that still waits for space
  (``simulation.getPendingVehicles`` at the horizon): another seed may insert it;
* for random flows, whose count depends on the seed, an upper bound: SUMO inserts at most one
  vehicle of a ``probability`` flow per step, so ids ``flow.0 .. flow.(n-1)`` with ``n`` the
  flow's steps inside the horizon; a Poisson flow (``period="exp(rate)"``) has no hard
  maximum, so ``n`` is the count its Poisson distribution exceeds with probability below
  :data:`POISSON_TAIL` (1e-12); both capped by the flow's ``number``.

Each vehicle's vType and vClass are SUMO's answers too (``vehicle.getTypeID`` and
``vehicletype.getVehicleClass``; for a random flow's bound ids that were not inserted: the
flow's ``type``, resolved through SUMO's loaded types, a ``<vTypeDistribution>`` to its first
member), so the env can choose its agents by vClass / vType (:mod:`roadsense_marl.env.agents`).

Vehicles departing after the horizon are not in the set, so a flow running to 90,000 s costs
only what it inserts within the episode. The answer is cached in the library's cache folder,
keyed by the files' paths and modification times, horizon, step length and SUMO version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from roadsense_marl.sim.install import cache_root, sumo_version
from roadsense_marl.sim.probe import sumo_session

__all__ = ["VehicleSet", "sumo_vehicle_set", "ENV_SUMO_OPTIONS"]

_CACHE_VERSION = 6

#: Options the env always runs SUMO with (they win over the ``.sumocfg``); the vehicle set is
#: asked under the same ones so it matches the real run.
ENV_SUMO_OPTIONS: tuple[tuple[str, str], ...] = (
    ("--collision.action", "remove"),
    ("--collision.check-junctions", "true"),
    ("--collision.mingap-factor", "0"),
    ("--time-to-teleport", "-1"),
)


@dataclass(frozen=True)
class VehicleSet:
    """What SUMO says a scenario produces within a horizon.

    :param vehicle_ids: every id SUMO can insert from ``begin_s`` to ``begin_s + horizon_s``:
        inserted ones by desired departure time (ties: insertion order), then pending ones, then the rest of the
        ``probability`` flows' upper bound.
    :param begin_s: the scenario's begin time in seconds as SUMO read it (``15:0:0`` -> 54000).
    :param horizon_s: the horizon in seconds after ``begin_s`` the set covers.
    :param inserted: how many of them SUMO inserted in the asking run (seed 0).
    :param vtypes: each vehicle's vType id as SUMO reports it (a distribution resolved to the member
        SUMO drew in the asking run), aligned with ``vehicle_ids``.
    :param vclasses: each vehicle's vClass (SUMO's names: ``passenger``, ``bicycle``, ``tram``, ...),
        aligned with ``vehicle_ids``.
    :param type_classes: ``((vType id, vClass), ...)`` of every vType SUMO loaded.
    :param type_alternatives: ``((vType id, (member, ...)), ...)``: for each member of a
        ``<vTypeDistribution>``, every member of the distributions it belongs to (a vehicle SUMO
        drew that type for may get any of them under another seed).
    """

    vehicle_ids: tuple[str, ...]
    begin_s: float
    horizon_s: float
    inserted: int
    vtypes: tuple[str, ...] = ()
    vclasses: tuple[str, ...] = ()
    type_classes: tuple[tuple[str, str], ...] = ()
    type_alternatives: tuple[tuple[str, tuple[str, ...]], ...] = ()


def sumo_vehicle_set(sumocfg: Path, files: Sequence[Path], horizon_s: float, step_length: float,
                     probability_files: Sequence[Path] = ()) -> VehicleSet:
    """Ask SUMO which vehicles ``sumocfg`` produces within ``horizon_s`` seconds of its begin.

    :param sumocfg: the ``.sumocfg`` (absolute path).
    :param files: every file SUMO reads for it (net, routes, additional), for the cache key.
    :param horizon_s: seconds after the scenario's begin (> 0).
    :param step_length: the step length (s) the env runs at (rounding of flows depends on it).
    :param probability_files: route/additional files whose ``probability`` flows get the upper bound.
    :raises SumoProbeError: (a ValueError) SUMO cannot run the scenario (its own message quoted).
    """
    if not (math.isfinite(horizon_s) and horizon_s > 0):
        raise ValueError(f"horizon_s must be a positive number of seconds, got {horizon_s!r}")
    stamp = [(str(p), p.stat().st_mtime_ns) for p in (Path(sumocfg), *map(Path, files)) if Path(p).exists()]
    key_text = json.dumps([_CACHE_VERSION, sumo_version(), stamp, repr(float(horizon_s)), repr(float(step_length))])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
    cache = cache_root() / "vehicle-sets" / f"{key}.json"
    if cache.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(cache.read_text())
            return VehicleSet(tuple(data["vehicle_ids"]), float(data["begin_s"]), float(data["horizon_s"]),
                              int(data["inserted"]), tuple(data["vtypes"]), tuple(data["vclasses"]),
                              tuple(map(tuple, data["type_classes"])),
                              tuple((t, tuple(m)) for t, m in data["type_alternatives"]))
    begin, inserted, pending, kinds, type_class = _run_sumo(Path(sumocfg), horizon_s, step_length)
    ids = dict.fromkeys([*inserted, *pending])
    flow_type: dict[str, str] = {}
    alternatives: dict[str, set[str]] = {}
    for path in probability_files:
        flow_type.update(_flow_types(path))
        for members in distribution_members(path).values():
            for m in members:
                alternatives.setdefault(m, set()).update(members)
    for path in probability_files:
        for vid in _random_flow_bound(path, begin, begin + horizon_s, step_length):
            ids.setdefault(vid)
    vtypes, vclasses = [], []
    for vid in ids:
        vtype, vclass = kinds.get(vid) or _bound_kind(vid, flow_type, type_class)
        vtypes.append(vtype)
        vclasses.append(vclass)
    result = VehicleSet(tuple(ids), begin, float(horizon_s), len(inserted), tuple(vtypes), tuple(vclasses),
                        tuple(sorted(type_class.items())),
                        tuple((t, tuple(sorted(m))) for t, m in sorted(alternatives.items()) if len(m) > 1))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkstemp(dir=cache.parent, suffix=".tmp")[1])
    tmp.write_text(json.dumps({"vehicle_ids": list(result.vehicle_ids), "begin_s": begin,
                               "horizon_s": result.horizon_s, "inserted": result.inserted,
                               "vtypes": list(result.vtypes), "vclasses": list(result.vclasses),
                               "type_classes": result.type_classes, "type_alternatives": result.type_alternatives}))
    os.replace(tmp, cache)
    return result


def _run_sumo(sumocfg: Path, horizon_s: float, step_length: float):
    """Run the real ``sumo`` under TraCI to the horizon: (begin, inserted ids, pending ids,
    {id: (vType, vClass)} of those, {vType id: vClass} of every type SUMO loaded)."""
    args = ["-c", str(sumocfg), "--step-length", repr(float(step_length)), "--seed", "0",
            "--no-step-log", "true", "--no-warnings", "true", "--duration-log.disable", "true"]
    for opt, value in ENV_SUMO_OPTIONS:
        args += [opt, value]
    inserted: list[str] = []
    kinds: dict[str, str] = {}
    intended: list[float] = []  # desired departure times: actual minus the insertion delay
    with sumo_session(args, str(sumocfg)) as conn:
        begin = float(conn.simulation.getTime())
        end = begin + float(horizon_s)
        # A vehicle departing at t is reported by the step that ends at t + step: run through the
        # step after the horizon so a departure exactly at the horizon counts (inclusive).
        while conn.simulation.getTime() < end + 0.5 * step_length:
            conn.simulationStep()
            now = conn.simulation.getTime()
            for vid in conn.simulation.getDepartedIDList():
                intended.append(now - conn.vehicle.getDepartDelay(vid))
                inserted.append(vid)
                kinds[vid] = conn.vehicle.getTypeID(vid)
        pending = tuple(conn.simulation.getPendingVehicles())
        for vid in pending:  # loaded, not yet inserted: SUMO knows their type already
            kinds[vid] = conn.vehicle.getTypeID(vid)
        type_class = {t: conn.vehicletype.getVehicleClass(t) for t in conn.vehicletype.getIDList()}
    order = sorted(range(len(inserted)), key=lambda k: (round(intended[k], 6), k))
    classes = {vid: (t, type_class.get(t, "passenger")) for vid, t in kinds.items()}
    return begin, [inserted[k] for k in order], pending, classes, type_class


def distribution_members(path: Path) -> dict[str, list[str]]:
    """``{vTypeDistribution id: its member vType ids}`` of a route/additional file (members from
    ``vTypes="a b"`` or child ``<vType>`` elements). SUMO draws one member per vehicle and
    seed, so a vehicle typed by a distribution has any member's vClass in some episode."""
    from roadsense_marl.sim.registry import parse_sumo_xml  # noqa: PLC0415 - registry imports this module

    try:
        root = parse_sumo_xml(path).getroot()
    except (ET.ParseError, OSError, EOFError):
        return {}
    out: dict[str, list[str]] = {}
    for dist in root.iter("vTypeDistribution"):
        members = dist.attrib.get("vTypes", "").replace(",", " ").split() or [
            v.attrib["id"] for v in dist.iter("vType") if "id" in v.attrib]
        if "id" in dist.attrib and members:
            out.setdefault(dist.attrib["id"], []).extend(members)
    return out


def _flow_types(path: Path) -> dict[str, str]:
    """``{flow id: its type attribute}`` for the flows of a route/additional file (missing type:
    SUMO's ``DEFAULT_VEHTYPE``); a ``<vTypeDistribution>`` id maps to its first member type."""
    from roadsense_marl.sim.registry import parse_sumo_xml  # noqa: PLC0415 - registry imports this module

    try:
        root = parse_sumo_xml(path).getroot()
    except (ET.ParseError, OSError, EOFError):
        return {}
    first_member = {d: m[0] for d, m in distribution_members(path).items()}
    out = {}
    for el in root.iter("flow"):
        if "id" in el.attrib:
            vtype = el.attrib.get("type", "DEFAULT_VEHTYPE")
            out[el.attrib["id"]] = first_member.get(vtype, vtype)
    return out


def _bound_kind(vid: str, flow_type: dict[str, str], type_class: dict[str, str]) -> tuple[str, str]:
    """(vType, vClass) of a random flow's bound id SUMO did not insert in the asking run."""
    vtype = flow_type.get(vid.rpartition(".")[0], "DEFAULT_VEHTYPE")
    return vtype, type_class.get(vtype, "passenger")


def _sumo_time(text: str | None, default: float) -> float:
    """A SUMO time value: seconds, or ``h:m:s`` / ``d:h:m:s``."""
    if text is None:
        return default
    parts = [float(p) for p in str(text).split(":")]
    value = 0.0
    for p, unit in zip(reversed(parts), (1.0, 60.0, 3600.0, 86400.0)):
        value += p * unit
    return value


#: Poisson flows (``period="exp(rate)"``) have no hard maximum; their bound is the count a
#: Poisson(rate x window) draw exceeds with probability below this (per flow and episode).
POISSON_TAIL = 1e-12


def _poisson_quantile(mean: float, tail: float = POISSON_TAIL) -> int:
    """Smallest n with P(N > n) < tail for N ~ Poisson(mean)."""
    if mean <= 0:
        return 0
    log_pmf = -mean  # log P(N = 0)
    cdf, n = math.exp(log_pmf), 0
    while 1.0 - cdf >= tail and n < 10 * mean + 1000:
        n += 1
        log_pmf += math.log(mean) - math.log(n)
        cdf += math.exp(log_pmf)
    return n


def _random_flow_bound(path: Path, begin: float, end: float, step_length: float) -> list[str]:
    """Upper bound on the ids of random flows in ``path``: a ``probability`` flow inserts at
    most one vehicle per step; a Poisson flow (``period="exp(rate)"``) at most the
    :data:`POISSON_TAIL` quantile of its count. Both are capped by the flow's ``number``."""
    from roadsense_marl.sim.registry import parse_sumo_xml  # noqa: PLC0415 - registry imports this module

    try:
        root = parse_sumo_xml(path).getroot()
    except (ET.ParseError, OSError, EOFError):
        return []  # SUMO loaded it; a file this parser cannot read simply adds no bound
    ids: list[str] = []
    for el in root.iter("flow"):
        period = el.attrib.get("period", "").strip()
        poisson = period.startswith("exp(") and period.endswith(")")
        if ("probability" not in el.attrib and not poisson) or "id" not in el.attrib:
            continue
        try:
            f_begin = max(_sumo_time(el.attrib.get("begin"), begin), begin)
            f_end = min(_sumo_time(el.attrib.get("end"), math.inf), end)
            number = int(el.attrib["number"]) if "number" in el.attrib else None
            rate = float(period[4:-1]) if poisson else 0.0
        except ValueError:
            continue
        if f_end < f_begin:
            continue
        if poisson:
            n = _poisson_quantile(rate * (f_end - f_begin + step_length))
        else:
            n = int(math.floor((f_end - f_begin) / step_length + 1e-9)) + 1
        if number is not None:
            n = min(n, number)
        ids.extend(f"{el.attrib['id']}.{k}" for k in range(n))
    return ids
