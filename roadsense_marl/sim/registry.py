"""Scenarios by name or path: the shipped ones, generated ones, and any ``.sumocfg``.

A :class:`Scenario` is a plain, picklable description of a ``.sumocfg``: its files, step
length, begin time, the vehicle ids SUMO produces within the episode horizon (asked from SUMO,
see :mod:`roadsense_marl.sim.vehicles`) and the vTypes per-episode variation perturbs.
Shipped: ``convoy_3``, ``convoy_6`` (folders under the package's scenarios dir) and
``highway`` (generated, see :func:`roadsense_marl.sim.highway.highway_scenario`).
"""

from __future__ import annotations

import gzip
import inspect
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from roadsense_marl.paths import scenarios_dir
from roadsense_marl.sim.vehicles import _sumo_time, sumo_vehicle_set

__all__ = [
    "DEFAULT_HORIZON_S",
    "DEFAULT_STEP_LENGTH",
    "SUMO_DEFAULT_TYPE_IDS",
    "Scenario",
    "ScenarioError",
    "list_scenarios",
    "load_scenario",
    "resolve_scenario",
]

#: Step length used when a ``.sumocfg`` does not set one (SUMO's own default is 1 s; this
#: project works at 0.1 s everywhere, matching the recorded convoy data).
DEFAULT_STEP_LENGTH = 0.1

#: Seconds after the scenario's begin within which departing vehicles are possible agents,
#: unless ``horizon_s`` is given (capped by the config's ``end``). Covers the env's default
#: 500 steps at step lengths up to 0.6 s; pass ``horizon_s=`` for longer episodes.
DEFAULT_HORIZON_S = 300.0

#: vType ids SUMO defines itself; a scenario may redefine each once, before any use.
SUMO_DEFAULT_TYPE_IDS = ("DEFAULT_VEHTYPE", "DEFAULT_PEDTYPE", "DEFAULT_BIKETYPE", "DEFAULT_CONTAINERTYPE",
                         "DEFAULT_TAXITYPE", "DEFAULT_RAILTYPE")

_GENERATED = ("highway",)
_VEHICLE_TAGS = ("vehicle", "trip", "flow")


class ScenarioError(ValueError):
    """A scenario name, path, file or parameter is invalid; the message lists what is valid."""


@dataclass(frozen=True)
class Scenario:
    """A SUMO scenario: its config file and the vehicles SUMO produces within the horizon.

    :param name: short name (``"convoy_6"``) or the config file's stem for custom scenarios.
    :param sumocfg: absolute path of the ``.sumocfg``.
    :param vehicle_ids: every vehicle id SUMO can insert from ``begin_s`` to
        ``begin_s + horizon_s`` (ids as SUMO names them, ``flowid.k``), by desired departure time
        (ties: SUMO's insertion order), then vehicles still waiting for space, then the rest of any ``probability``
        flow's upper bound (see :mod:`roadsense_marl.sim.vehicles`).
    :param ego_id: the designated ego vehicle (never dropped by variation), or ``None``.
    :param default_step_length: step length in seconds from the config, else 0.1.
    :param route_files: absolute paths of the route files named by the config.
    :param vtype_ids: ids of the vTypes the variation perturbs: every ``<vType>`` in the route
        files, members of ``<vTypeDistribution>`` included, plus ``DEFAULT_VEHTYPE`` when some
        route-file vehicle uses no explicit type, no file defines that id and no vehicle of an
        additional file (loaded first) already uses SUMO's built-in one.
    :param droppable_ids: vehicles that variation may drop (``<vehicle>``/``<trip>`` in the
        route files, within the horizon, not the ego).
    :param params: generator parameters (``highway``), empty otherwise.
    :param net_file: absolute path of the network file named by the config.
    :param begin_s: simulation begin time in seconds (SUMO's reading of the config).
    :param additional_files: absolute paths of the config's additional files.
    :param horizon_s: seconds after ``begin_s`` that ``vehicle_ids`` covers.
    :param vehicle_types: each vehicle's vType id as SUMO reports it, aligned with ``vehicle_ids``.
    :param vehicle_classes: each vehicle's vClass as SUMO reports it (``passenger``, ``bicycle``,
        ``tram``, ...), aligned with ``vehicle_ids``; the env chooses its agents by these
        (:mod:`roadsense_marl.env.agents`).
    :param vtype_classes: ``((vType id, vClass), ...)`` of every vType SUMO loaded.
    :param vtype_alternatives: ``((vType id, (member, ...)), ...)`` for members of a
        ``<vTypeDistribution>``: the types a vehicle drawn as that type may get in another episode
        (see :class:`~roadsense_marl.sim.vehicles.VehicleSet`).
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
    additional_files: tuple[Path, ...] = ()
    horizon_s: float = DEFAULT_HORIZON_S
    vehicle_types: tuple[str, ...] = ()
    vehicle_classes: tuple[str, ...] = ()
    vtype_classes: tuple[tuple[str, str], ...] = ()
    vtype_alternatives: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def n_vehicles(self) -> int:
        """Number of vehicles the scenario can produce within the horizon."""
        return len(self.vehicle_ids)


def list_scenarios() -> list[str]:
    """Names accepted by :func:`resolve_scenario`: the shipped folders plus generated ones."""
    root = scenarios_dir()
    shipped = [p.name for p in root.iterdir() if p.is_dir() and (p / f"{p.name}.sumocfg").is_file()]
    return sorted(set(shipped) | set(_GENERATED))


_FILE_KWARGS = ("horizon_s", "step_length", "episode_steps")


def resolve_scenario(name_or_path: str | os.PathLike[str] | Scenario, **kwargs: Any) -> Scenario:
    """Scenario by shipped name (``"convoy_6"``), generator name (``"highway"``, with its
    keyword arguments, see :func:`~roadsense_marl.sim.highway.highway_scenario`) or path to a
    ``.sumocfg``.

    Shipped names and paths take ``horizon_s`` (seconds after the begin time within which
    departing vehicles are possible agents; default :data:`DEFAULT_HORIZON_S` capped by the
    config's ``end``), ``step_length`` (seconds; default the config's) and ``episode_steps`` (see
    :func:`load_scenario`; the env passes its ``max_steps``). Raises
    :class:`ScenarioError` naming the bad name, path or keyword and what is valid.
    """
    if isinstance(name_or_path, Scenario):
        if kwargs:
            raise ScenarioError(f"resolve_scenario got a Scenario and keyword arguments {sorted(kwargs)}")
        return name_or_path
    text = os.fspath(name_or_path)
    if text == "highway":
        from roadsense_marl.sim.highway import highway_scenario  # noqa: PLC0415 - it imports this module

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
    unknown = sorted(set(kwargs) - set(_FILE_KWARGS))
    if unknown:
        raise ScenarioError(
            f"scenario {text!r} takes no parameter(s) {unknown}; valid: {', '.join(_FILE_KWARGS)} "
            "(only 'highway' has generator parameters)"
        )
    path = Path(text)
    if path.suffix == ".sumocfg" or os.sep in text or (os.altsep and os.altsep in text):
        if not path.is_file():
            raise ScenarioError(
                f"scenario file {str(path)!r} does not exist; give an existing .sumocfg or one of "
                f"the available scenarios: {', '.join(list_scenarios())}"
            )
        return load_scenario(path.resolve(), **kwargs)
    cfg = scenarios_dir() / text / f"{text}.sumocfg"
    if not cfg.is_file():
        raise ScenarioError(
            f"unknown scenario {text!r}; available scenarios: {', '.join(list_scenarios())} "
            "(or a path to a .sumocfg file)"
        )
    return load_scenario(cfg, name=text, ego_id="V001" if text.startswith("convoy") else None, **kwargs)


def _file_list(value: str | None, cfg_dir: Path) -> tuple[Path, ...]:
    if not value:
        return ()
    return tuple(cfg_dir / r.strip() for r in value.replace(" ", ",").split(",") if r.strip())


def load_scenario(sumocfg: Path, name: str | None = None, ego_id: str | None = None,
                  params: Mapping[str, Any] | None = None, horizon_s: float | None = None,
                  step_length: float | None = None, episode_steps: int | None = None) -> Scenario:
    """Read a ``.sumocfg`` into a :class:`Scenario`, asking SUMO for its vehicle set (cached).

    :param horizon_s: seconds after the begin time; ``None``: :data:`DEFAULT_HORIZON_S`,
        capped by the config's ``end``.
    :param step_length: seconds per step for the vehicle set; ``None``: the config's (0.1 if unset).
    :param episode_steps: an env episode's ``max_steps``: with ``horizon_s`` unset the horizon is
        the warm-up allowance :data:`DEFAULT_HORIZON_S` plus ``episode_steps`` steps (the env's
        reset waits at most that allowance for the first vehicle).
    :raises ScenarioError: a missing or invalid file, a bad number, or SUMO refusing the scenario.
    """
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
    route_files = _file_list(option("route-files", "r"), cfg_dir)
    additional_files = _file_list(option("additional-files", "a"), cfg_dir)
    for kind, paths in (("route", route_files), ("additional", additional_files)):
        for rf in paths:
            if not rf.is_file():
                raise ScenarioError(f"{sumocfg}: its {kind} file {str(rf)!r} does not exist")
    step, begin, end = option("step-length"), option("begin", "b"), option("end", "e")
    try:
        cfg_step = float(step) if step is not None else DEFAULT_STEP_LENGTH
        begin_s = _sumo_time(begin, 0.0)
        end_s = _sumo_time(end, -1.0)
    except ValueError:
        raise ScenarioError(
            f"{sumocfg}: step-length {step!r}, begin {begin!r} or end {end!r} is not a number"
        ) from None
    step_length = cfg_step if step_length is None else float(step_length)
    if not (math.isfinite(step_length) and step_length > 0):
        raise ScenarioError(f"{sumocfg}: step_length must be a positive number of seconds, got {step_length!r}")
    if horizon_s is None:
        horizon = DEFAULT_HORIZON_S
        if episode_steps is not None:
            if isinstance(episode_steps, bool) or not isinstance(episode_steps, int) or episode_steps < 1:
                raise ScenarioError(f"{sumocfg}: episode_steps must be a whole number >= 1, got {episode_steps!r}")
            horizon += episode_steps * step_length
    else:
        try:
            horizon = float(horizon_s)
        except (TypeError, ValueError):
            horizon = math.nan
        if not (math.isfinite(horizon) and horizon > 0):
            raise ScenarioError(f"{sumocfg}: horizon_s must be a positive number of seconds, got {horizon_s!r}")
    if end_s > begin_s:  # SUMO stops at the config's end: nothing departs after it
        horizon = min(horizon, end_s - begin_s)

    vtypes: list[str] = []
    defined: set[str] = set()
    individual: list[str] = []
    uses_default_type = default_type_fixed = False
    trees = {}
    for rf in (*route_files, *additional_files):
        trees[rf] = _parse_xml(rf, "SUMO route file" if rf in route_files else "SUMO additional file")
        for el in trees[rf].iter():
            if el.tag in ("vType", "vTypeDistribution") and "id" in el.attrib:
                defined.add(el.attrib["id"])
            if el.tag in _VEHICLE_TAGS and "type" not in el.attrib:
                if rf in route_files:
                    uses_default_type = True
                else:  # additional files load first: their vehicles fix SUMO's default type
                    default_type_fixed = True
    for rf in route_files:
        for el in trees[rf].iter("vType"):
            if "id" in el.attrib:
                vtypes.append(el.attrib["id"])
        for el in trees[rf]:
            if el.tag in ("vehicle", "trip") and "id" in el.attrib:
                individual.append(el.attrib["id"])
    try:
        vset = sumo_vehicle_set(sumocfg, (net_path, *route_files, *additional_files), horizon, step_length,
                                probability_files=(*route_files, *additional_files))
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    vehicle_ids = vset.vehicle_ids
    if not vehicle_ids:
        raise ScenarioError(
            f"{sumocfg}: SUMO inserts no vehicle within {horizon:g} s of the begin time (persons and "
            "containers are not agents); give a larger horizon_s or a scenario with vehicles"
        )
    if ego_id is not None and ego_id not in vehicle_ids:
        raise ScenarioError(f"{sumocfg}: ego vehicle {ego_id!r} is not among the vehicles SUMO inserts")
    if uses_default_type and not default_type_fixed and "DEFAULT_VEHTYPE" not in defined:
        vtypes.append("DEFAULT_VEHTYPE")
    known = set(vehicle_ids)
    return Scenario(
        name=name or sumocfg.stem,
        sumocfg=sumocfg,
        vehicle_ids=vehicle_ids,
        ego_id=ego_id,
        default_step_length=cfg_step,
        route_files=route_files,
        vtype_ids=tuple(sorted(set(vtypes))),
        droppable_ids=tuple(v for v in individual if v != ego_id and v in known),
        params=dict(params or {}),
        net_file=net_path,
        begin_s=vset.begin_s,
        additional_files=additional_files,
        horizon_s=horizon,
        vehicle_types=vset.vtypes,
        vehicle_classes=vset.vclasses,
        vtype_classes=vset.type_classes,
        vtype_alternatives=vset.type_alternatives,
    )


def parse_sumo_xml(path: Path) -> ET.ElementTree:
    """Parse a SUMO XML file, gzip-compressed ones (``.gz``, as SUMO reads them) included."""
    if Path(path).suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            return ET.parse(fh)
    return ET.parse(path)


def _parse_xml(path: Path, what: str) -> ET.Element:
    try:
        return parse_sumo_xml(path).getroot()
    except (ET.ParseError, OSError, EOFError) as exc:
        raise ScenarioError(
            f"{what} {str(path)!r} is not valid XML: {exc}; available scenarios: {', '.join(list_scenarios())}"
        ) from None
