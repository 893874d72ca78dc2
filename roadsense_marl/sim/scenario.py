"""Scenarios: which SUMO files to run, which vehicles they produce, and per-episode variation.

A :class:`Scenario` is a plain, picklable description of a ``.sumocfg`` and what can be
read from its files without starting SUMO (the vehicle ids in departure order, the vTypes,
the step length). Three are shipped:

* ``convoy_3``: 3 cars on a straight 2-lane 2.5 km road, V001 (rear, the ego) at 0 m,
  V002 at 30 m, V003 (leader) at 60 m, all departing at 15 m/s.
* ``convoy_6``: the real 6-car convoy recording's layout, V001..V006 at 0..125 m every
  25 m on a single-lane 785 m road limited to 13.89 m/s, departing at 2 m/s.
* ``highway``: generated on demand (see :func:`highway_scenario`): N vehicles on a straight
  multi-lane road, some on the road at t = 0, the rest joining at the road start one by one,
  all leaving at the road end.

Any other ``.sumocfg`` can be used by passing its path to :func:`resolve_scenario`.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from roadsense_marl.paths import scenarios_dir

__all__ = [
    "Scenario",
    "ScenarioError",
    "ScenarioVariation",
    "VTYPE_RANGES",
    "cache_root",
    "highway_scenario",
    "list_scenarios",
    "resolve_scenario",
    "sample_variation",
    "write_episode_routes",
]

#: Per-episode vType perturbation ranges (uniform), the ones the original project trained with.
VTYPE_RANGES: Mapping[str, tuple[float, float]] = {
    "speedFactor": (0.8, 1.2),
    "sigma": (0.0, 0.5),
    "decel": (3.5, 5.5),
    "tau": (0.5, 1.5),
}

#: Step length used when a ``.sumocfg`` does not set one (SUMO's own default is 1 s; this
#: project works at 0.1 s everywhere, matching the recorded convoy data).
DEFAULT_STEP_LENGTH = 0.1

_GENERATED = ("highway",)
_HIGHWAY_VERSION = 2  # bump when the generator's output changes, so caches are rebuilt
_VEHICLE_TAGS = ("vehicle", "trip")


class ScenarioError(ValueError):
    """A scenario name, path, file or parameter is invalid; the message lists what is valid."""


@dataclass(frozen=True)
class Scenario:
    """A SUMO scenario: its config file and what is known about it without running SUMO.

    :param name: short name (``"convoy_6"``) or the config file's stem for custom scenarios.
    :param sumocfg: absolute path of the ``.sumocfg``.
    :param vehicle_ids: every vehicle id the scenario can produce (flows expanded, ids as
        SUMO names them, ``flowid.k``), in departure order (ties: file order).
    :param ego_id: the designated ego vehicle (never dropped by variation), or ``None``.
    :param default_step_length: step length in seconds from the config, else 0.1.
    :param route_files: absolute paths of the route files named by the config.
    :param vtype_ids: ids of the vTypes the variation perturbs (defined in the route files, plus
        ``DEFAULT_VEHTYPE`` when some vehicle uses no explicit type).
    :param droppable_ids: vehicles that variation may drop (individually defined, not the ego).
    :param params: generator parameters (``highway``), empty otherwise.
    :param net_file: absolute path of the network file named by the config.
    :param begin_s: simulation begin time from the config (0 if unset).
    """

    name: str
    sumocfg: Path
    vehicle_ids: tuple[str, ...]
    ego_id: str | None
    default_step_length: float
    route_files: tuple[Path, ...]
    vtype_ids: tuple[str, ...]
    droppable_ids: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    net_file: Path | None = None
    begin_s: float = 0.0

    @property
    def n_vehicles(self) -> int:
        """Number of vehicles the scenario can produce."""
        return len(self.vehicle_ids)


@dataclass(frozen=True)
class ScenarioVariation:
    """One episode's perturbation of a scenario: vType attributes and dropped vehicles.

    :param scenario_name: the scenario it was sampled for (checked when applied).
    :param vtype_attrs: ``((vtype_id, ((attr, value), ...)), ...)`` sorted, hashable.
    :param dropped: ids of vehicles removed from this episode.
    """

    scenario_name: str
    vtype_attrs: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]
    dropped: tuple[str, ...] = ()

    def attrs_for(self, vtype_id: str) -> dict[str, float]:
        """Attributes set on ``vtype_id`` this episode (empty if untouched)."""
        return dict(dict(self.vtype_attrs).get(vtype_id, ()))


# --------------------------------------------------------------------------- resolution


def list_scenarios() -> list[str]:
    """Names accepted by :func:`resolve_scenario`: the shipped folders plus generated ones."""
    root = scenarios_dir()
    shipped = [p.name for p in root.iterdir() if p.is_dir() and (p / f"{p.name}.sumocfg").is_file()]
    return sorted(set(shipped) | set(_GENERATED))


def resolve_scenario(name_or_path: str | os.PathLike[str], **kwargs: Any) -> Scenario:
    """Scenario by shipped name (``"convoy_6"``), generator name (``"highway"``, with its
    keyword arguments, see :func:`highway_scenario`) or path to a ``.sumocfg``."""
    if isinstance(name_or_path, Scenario):
        if kwargs:
            raise ScenarioError(f"resolve_scenario got a Scenario and keyword arguments {sorted(kwargs)}")
        return name_or_path
    text = os.fspath(name_or_path)
    if text == "highway":
        valid = [p for p in inspect.signature(highway_scenario).parameters]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ScenarioError(f"unknown highway parameter(s) {unknown}; valid: {', '.join(valid)}")
        try:
            return highway_scenario(**kwargs)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ScenarioError):
                raise
            raise ScenarioError(f"bad highway parameters {kwargs!r}: {exc}") from exc
    if kwargs:
        raise ScenarioError(
            f"scenario {text!r} takes no parameters (got {sorted(kwargs)}); only 'highway' is parameterised"
        )
    path = Path(text)
    if path.suffix == ".sumocfg" or os.sep in text or (os.altsep and os.altsep in text):
        if not path.is_file():
            raise ScenarioError(
                f"scenario file {str(path)!r} does not exist; give an existing .sumocfg or one of "
                f"the available scenarios: {', '.join(list_scenarios())}"
            )
        return load_scenario(path.resolve())
    cfg = scenarios_dir() / text / f"{text}.sumocfg"
    if not cfg.is_file():
        raise ScenarioError(
            f"unknown scenario {text!r}; available scenarios: {', '.join(list_scenarios())} "
            "(or a path to a .sumocfg file)"
        )
    return load_scenario(cfg, name=text, ego_id="V001" if text.startswith("convoy") else None)


def load_scenario(sumocfg: Path, name: str | None = None, ego_id: str | None = None,
                  params: Mapping[str, Any] | None = None) -> Scenario:
    """Read a ``.sumocfg`` and its route files into a :class:`Scenario` (no SUMO started)."""
    sumocfg = Path(sumocfg).resolve()
    root = _parse_xml(sumocfg, "SUMO config")
    cfg_dir = sumocfg.parent

    def option(*names: str) -> str | None:
        for el in root.iter():
            if el.tag in names and "value" in el.attrib:
                return el.attrib["value"]
        return None

    net = option("net-file", "n")
    if net is None:
        raise ScenarioError(f"{sumocfg}: no <net-file value=...> in the config")
    net_path = cfg_dir / net
    if not net_path.is_file():
        raise ScenarioError(f"{sumocfg}: its net file {str(net_path)!r} does not exist")
    routes = option("route-files", "r")
    route_files = tuple(cfg_dir / r.strip() for r in routes.split(",") if r.strip()) if routes else ()
    for rf in route_files:
        if not rf.is_file():
            raise ScenarioError(f"{sumocfg}: its route file {str(rf)!r} does not exist")
    step, begin = option("step-length"), option("begin", "b")
    try:
        step_length = float(step) if step is not None else DEFAULT_STEP_LENGTH
        begin_s = float(begin) if begin is not None else 0.0
    except ValueError:
        raise ScenarioError(f"{sumocfg}: step-length {step!r} or begin {begin!r} is not a number") from None

    departures: list[tuple[float, int, str]] = []
    vtypes: list[str] = []
    individual: list[str] = []
    uses_default_type = False
    order = 0
    for rf in route_files:
        rroot = _parse_xml(rf, "SUMO route file")
        for el in rroot:
            if el.tag == "vType":
                vtypes.append(el.attrib["id"])
            elif el.tag in _VEHICLE_TAGS:
                vid = el.attrib["id"]
                departures.append((_depart_time(el, rf), order, vid))
                individual.append(vid)
                uses_default_type |= "type" not in el.attrib
            elif el.tag == "flow":
                for k, t in enumerate(_flow_departures(el, rf)):
                    departures.append((t, order, f"{el.attrib['id']}.{k}"))
                uses_default_type |= "type" not in el.attrib
            order += 1
    departures.sort()
    vehicle_ids = tuple(vid for _, _, vid in departures)
    if len(set(vehicle_ids)) != len(vehicle_ids):
        raise ScenarioError(f"{sumocfg}: duplicate vehicle ids in its route files")
    if ego_id is not None and ego_id not in vehicle_ids:
        raise ScenarioError(f"{sumocfg}: ego vehicle {ego_id!r} is not in its route files")
    if uses_default_type and "DEFAULT_VEHTYPE" not in vtypes:
        vtypes.append("DEFAULT_VEHTYPE")
    return Scenario(
        name=name or sumocfg.stem,
        sumocfg=sumocfg,
        vehicle_ids=vehicle_ids,
        ego_id=ego_id,
        default_step_length=step_length,
        route_files=route_files,
        vtype_ids=tuple(sorted(set(vtypes))),
        droppable_ids=tuple(v for v in individual if v != ego_id),
        params=dict(params or {}),
        net_file=net_path,
        begin_s=begin_s,
    )


def _parse_xml(path: Path, what: str) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ScenarioError(
            f"{what} {str(path)!r} is not valid XML: {exc}; available scenarios: {', '.join(list_scenarios())}"
        ) from None


def _depart_time(el: ET.Element, source: Path) -> float:
    depart = el.attrib.get("depart", "0")
    try:
        return float(depart)
    except ValueError:
        raise ScenarioError(
            f"{source}: vehicle {el.attrib.get('id')!r} departs at {depart!r}; only numeric "
            "departure times can be enumerated"
        ) from None


def _flow_departures(el: ET.Element, source: Path) -> list[float]:
    """Departure times SUMO gives the vehicles of a ``<flow>`` (deterministic flows only)."""
    fid = el.attrib.get("id")
    try:
        begin = float(el.attrib.get("begin", "0"))
        end = float(el.attrib["end"]) if "end" in el.attrib else math.inf
        if "probability" in el.attrib or str(el.attrib.get("period", "")).startswith("exp"):
            raise ScenarioError(
                f"{source}: flow {fid!r} is random (probability / exp period); its vehicles cannot "
                "be enumerated in advance: use number, period or vehsPerHour"
            )
        period = None
        if "period" in el.attrib:
            period = float(el.attrib["period"])
        elif "vehsPerHour" in el.attrib:
            period = 3600.0 / float(el.attrib["vehsPerHour"])
        number = int(el.attrib["number"]) if "number" in el.attrib else None
    except (KeyError, ValueError) as exc:
        raise ScenarioError(f"{source}: flow {fid!r} has an invalid attribute: {exc}") from None
    if period is None:
        if number is None or not math.isfinite(end):
            raise ScenarioError(f"{source}: flow {fid!r} needs number with end, or period / vehsPerHour")
        period = (end - begin) / number if number else 0.0
    if number is None:
        if not math.isfinite(end):
            raise ScenarioError(f"{source}: flow {fid!r} has neither number nor end: it never ends")
        number = int(math.floor((end - begin) / period + 1e-9))
    return [begin + k * period for k in range(number)]


# --------------------------------------------------------------------------- variation


def sample_variation(
    scenario: Scenario,
    rng: np.random.Generator,
    drop_peer_prob: float = 0.0,
    ranges: Mapping[str, tuple[float, float]] = VTYPE_RANGES,
) -> ScenarioVariation:
    """Draw one episode's variation: every vType attribute in ``ranges`` uniformly, and each
    droppable vehicle dropped with probability ``drop_peer_prob`` (never ``scenario.ego_id``).

    The number of draws does not depend on ``drop_peer_prob``, so the vType values for a given
    generator state are the same whatever the drop probability.
    """
    if not 0.0 <= float(drop_peer_prob) <= 1.0:
        raise ValueError(f"drop_peer_prob must be in [0, 1], got {drop_peer_prob!r}")
    for attr, (lo, hi) in ranges.items():
        if not lo <= hi:
            raise ValueError(f"range for {attr!r} is empty: ({lo}, {hi})")
    attrs = sorted(ranges)
    lows = np.array([ranges[a][0] for a in attrs], dtype=float)
    highs = np.array([ranges[a][1] for a in attrs], dtype=float)
    values = rng.uniform(lows, highs, size=(len(scenario.vtype_ids), len(attrs)))
    drops = rng.random(len(scenario.droppable_ids)) < drop_peer_prob
    return ScenarioVariation(
        scenario_name=scenario.name,
        vtype_attrs=tuple(
            (vt, tuple((a, float(v)) for a, v in zip(attrs, row)))
            for vt, row in zip(scenario.vtype_ids, values)
        ),
        dropped=tuple(v for v, d in zip(scenario.droppable_ids, drops) if d and v != scenario.ego_id),
    )


def write_episode_routes(scenario: Scenario, variation: ScenarioVariation, out_dir: Path) -> tuple[Path, ...]:
    """Write the scenario's route files with ``variation`` applied into ``out_dir``.

    A pure function of (scenario, variation): the same inputs give byte-identical files.
    Returns the written paths, in the config's order, for ``--route-files``.
    """
    if variation.scenario_name != scenario.name:
        raise ValueError(
            f"variation was sampled for scenario {variation.scenario_name!r}, not {scenario.name!r}"
        )
    unknown_types = set(dict(variation.vtype_attrs)) - set(scenario.vtype_ids)
    if unknown_types:
        raise ValueError(f"variation names vTypes {sorted(unknown_types)} not in {scenario.vtype_ids}")
    dropped = set(variation.dropped)
    bad = dropped - set(scenario.droppable_ids)
    if bad:
        raise ValueError(
            f"variation drops {sorted(bad)}, which cannot be dropped (ego or not individually defined)"
        )
    pending_default = "DEFAULT_VEHTYPE" in dict(variation.vtype_attrs)
    out: list[Path] = []
    for k, rf in enumerate(scenario.route_files):
        tree = ET.parse(rf)
        root = tree.getroot()
        for el in list(root):
            if el.tag == "vType":
                if el.attrib["id"] == "DEFAULT_VEHTYPE":
                    pending_default = False
                for attr, value in variation.attrs_for(el.attrib["id"]).items():
                    el.set(attr, _fmt(value))
            elif el.tag in _VEHICLE_TAGS and el.attrib.get("id") in dropped:
                root.remove(el)
        if pending_default and k == 0:
            # Redefining SUMO's default type once, before any vehicle uses it, is allowed.
            el = ET.Element("vType", {"id": "DEFAULT_VEHTYPE"})
            for attr, value in variation.attrs_for("DEFAULT_VEHTYPE").items():
                el.set(attr, _fmt(value))
            el.tail = "\n"
            root.insert(0, el)
            pending_default = False
        path = Path(out_dir) / f"episode_{k}_{rf.name}"
        # Absolute route references would survive a copy; relative ones are resolved by SUMO
        # against the file's folder, so only files without includes are supported (none here).
        tree.write(path, encoding="UTF-8", xml_declaration=True)
        out.append(path)
    return tuple(out)


def _fmt(value: float) -> str:
    return repr(float(value))


# --------------------------------------------------------------------------- generation


def sumo_binary(name: str) -> Path:
    """Path of a real SUMO binary shipped by the ``eclipse-sumo`` wheel (not the PATH wrapper)."""
    import sumo  # noqa: PLC0415 - sets SUMO_HOME

    path = Path(sumo.SUMO_HOME) / "bin" / name
    if not path.is_file():
        raise FileNotFoundError(f"SUMO binary {name!r} not found at {path}; is eclipse-sumo installed?")
    return path


def sumo_env() -> dict[str, str]:
    """Environment for SUMO subprocesses: SUMO_HOME pointing into the eclipse-sumo wheel."""
    import sumo  # noqa: PLC0415

    return {**os.environ, "SUMO_HOME": str(sumo.SUMO_HOME)}


def write_straight_road(out_dir: Path, stem: str, length_m: float, lanes: int, speed_mps: float) -> Path:
    """Build ``<stem>.net.xml``: one straight edge ``road`` from x=0 to x=length_m.

    Plain XML through ``netconvert``; the generated-on comment (a timestamp) is removed so
    the file is a pure function of the arguments and the SUMO version.
    """
    out_dir = Path(out_dir)
    nod = out_dir / f"{stem}.nod.xml"
    edg = out_dir / f"{stem}.edg.xml"
    net = out_dir / f"{stem}.net.xml"
    nod.write_text(
        "<nodes>\n"
        '    <node id="start" x="0.00" y="0.00"/>\n'
        f'    <node id="end" x="{length_m:.2f}" y="0.00"/>\n'
        "</nodes>\n"
    )
    edg.write_text(
        "<edges>\n"
        f'    <edge id="road" from="start" to="end" numLanes="{lanes}" speed="{speed_mps:.2f}"/>\n'
        "</edges>\n"
    )
    cmd = [str(sumo_binary("netconvert")), "--node-files", nod.name, "--edge-files", edg.name,
           "-o", net.name, "--no-turnarounds", "true", "--no-warnings", "true"]
    proc = subprocess.run(cmd, cwd=out_dir, env=sumo_env(), capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"netconvert failed ({' '.join(cmd)}): {proc.stderr.strip()}")
    text = net.read_text()
    net.write_text(re.sub(r"<!-- generated on.*?-->\n*", "", text, count=1, flags=re.S))
    return net


def cache_root() -> Path:
    """Writable cache folder of the library (created if needed): ``$ROADSENSE_MARL_CACHE``, else
    ``$XDG_CACHE_HOME/roadsense_marl`` or ``~/.cache/roadsense_marl``, else the temp folder.
    OSError lists the folders tried when none is writable."""
    return _cache_root()


def _cache_root() -> Path:
    """Writable cache folder: $ROADSENSE_MARL_CACHE, else $XDG_CACHE_HOME or ~/.cache, else tmp."""
    candidates = []
    if os.environ.get("ROADSENSE_MARL_CACHE"):
        candidates.append(Path(os.environ["ROADSENSE_MARL_CACHE"]))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidates.append(Path(xdg) / "roadsense_marl")
    candidates.append(Path(tempfile.gettempdir()) / f"roadsense_marl-{os.getuid() if hasattr(os, 'getuid') else 'user'}")
    for c in candidates:
        try:
            c.mkdir(parents=True, exist_ok=True)
            probe = Path(tempfile.mkstemp(dir=c)[1])
            probe.unlink()
            return c
        except OSError:
            continue
    raise OSError(f"no writable cache folder among {[str(c) for c in candidates]}")


def highway_scenario(
    n_vehicles: int = 20,
    lanes: int = 3,
    length_m: float = 2000.0,
    spacing_m: float = 50.0,
    n_initial: int | None = None,
    depart_interval_s: float = 2.0,
    speed_limit_mps: float = 33.33,
    depart_speed_mps: float = 25.0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Scenario:
    """Generate (or reuse from the cache) a straight multi-lane highway scenario.

    ``n_initial`` vehicles (default: half, rounded up) are on the road at t = 0, spread
    round-robin over the lanes, ``spacing_m`` apart (front to front) along each lane from
    the road start. The others enter at the road start one every ``depart_interval_s``
    seconds, lanes round-robin, so agents join mid-episode; every vehicle leaves at the
    road end. Ids ``H000, H001, ...`` in departure order; no ego. Vehicles depart at
    ``depart_speed_mps``; the initial ones at most at ``0.9 * (spacing_m - 7.5) / 1.5`` so that
    SUMO's insertion check (gap >= speed * tau, tau up to 1.5 s under variation) lets all of
    them onto the road in the first step.

    The files depend only on these parameters (and the SUMO version) and are cached under
    ``cache_dir`` (default: ``$ROADSENSE_MARL_CACHE``, ``$XDG_CACHE_HOME/roadsense_marl``,
    ``~/.cache/roadsense_marl`` or the temp folder, whichever is writable).
    """
    n_vehicles, lanes = int(n_vehicles), int(lanes)
    if n_vehicles < 1:
        raise ScenarioError(f"highway: n_vehicles must be >= 1, got {n_vehicles}")
    if not 1 <= lanes <= 8:
        raise ScenarioError(f"highway: lanes must be in 1..8, got {lanes}")
    n_initial = math.ceil(n_vehicles / 2) if n_initial is None else int(n_initial)
    if not 0 <= n_initial <= n_vehicles:
        raise ScenarioError(f"highway: n_initial must be in 0..n_vehicles={n_vehicles}, got {n_initial}")
    if spacing_m < 7.5:
        raise ScenarioError(f"highway: spacing_m must be >= 7.5 (5 m car + 2.5 m minGap), got {spacing_m}")
    if depart_interval_s <= 0 or speed_limit_mps <= 0 or depart_speed_mps < 0:
        raise ScenarioError(
            "highway: depart_interval_s and speed_limit_mps must be > 0 and depart_speed_mps >= 0, got "
            f"{depart_interval_s}, {speed_limit_mps}, {depart_speed_mps}"
        )
    per_lane = math.ceil(n_initial / lanes) if n_initial else 0
    head = 5.0 + max(per_lane - 1, 0) * spacing_m
    if length_m < max(200.0, head + 100.0):
        raise ScenarioError(
            f"highway: length_m={length_m} too short for {n_initial} initial vehicles on {lanes} lanes "
            f"{spacing_m} m apart (needs >= {max(200.0, head + 100.0):.0f})"
        )
    params = dict(n_vehicles=n_vehicles, lanes=lanes, length_m=float(length_m), spacing_m=float(spacing_m),
                  n_initial=n_initial, depart_interval_s=float(depart_interval_s),
                  speed_limit_mps=float(speed_limit_mps), depart_speed_mps=float(depart_speed_mps))
    import sumo  # noqa: PLC0415

    key_text = repr((_HIGHWAY_VERSION, getattr(sumo, "__version__", ""), sorted(params.items())))
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else _cache_root()
    folder = root / "scenarios" / f"highway-{key}"
    cfg = folder / "highway.sumocfg"
    if not cfg.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".highway-", dir=folder.parent))
        try:
            _write_highway(tmp, **params)
            try:
                tmp.rename(folder)  # atomic; another process may have won the race
            except OSError:
                if not cfg.is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return load_scenario(cfg, name="highway", ego_id=None, params=params)


def _write_highway(out: Path, n_vehicles: int, lanes: int, length_m: float, spacing_m: float,
                   n_initial: int, depart_interval_s: float, speed_limit_mps: float,
                   depart_speed_mps: float) -> None:
    write_straight_road(out, "highway", length_m, lanes, speed_limit_mps)
    per_lane = math.ceil(n_initial / lanes) if n_initial else 0
    lines = [
        "<routes>",
        '    <vType id="car" accel="2.6" decel="4.5" sigma="0.5" tau="1.0" length="5.0" minGap="2.5"/>',
        '    <route id="r0" edges="road"/>',
    ]
    for i in range(n_vehicles):
        if i < n_initial:
            # Initial vehicles: frontmost first is not needed, SUMO checks both neighbours;
            # row r of lane l sits (per_lane - 1 - r) spacings from the start, rear first.
            lane, row = i % lanes, i // lanes
            pos = 5.0 + (per_lane - 1 - row) * spacing_m
            depart, speed = 0.0, min(depart_speed_mps, 0.9 * (spacing_m - 7.5) / 1.5)
        else:
            j = i - n_initial
            lane, pos = j % lanes, 5.0
            depart, speed = (j + 1) * depart_interval_s, depart_speed_mps
        lines.append(
            f'    <vehicle id="H{i:03d}" type="car" route="r0" depart="{depart:.2f}" departLane="{lane}" '
            f'departPos="{pos:.2f}" departSpeed="{speed:.2f}"/>'
        )
    lines.append("</routes>")
    (out / "highway.rou.xml").write_text("\n".join(lines) + "\n")
    (out / "highway.sumocfg").write_text(
        "<configuration>\n"
        "    <input>\n"
        '        <net-file value="highway.net.xml"/>\n'
        '        <route-files value="highway.rou.xml"/>\n'
        "    </input>\n"
        "    <time>\n"
        '        <begin value="0"/>\n'
        f'        <step-length value="{DEFAULT_STEP_LENGTH}"/>\n'
        "    </time>\n"
        "</configuration>\n"
    )
