"""Per-episode variation of a scenario: perturbed vType attributes and dropped vehicles.

:func:`sample_variation` draws one episode's values; :func:`write_episode_routes` writes the
scenario's route files with them applied, for SUMO's ``--route-files``. Every ``<vType>`` of
the route files is perturbed, members of a ``<vTypeDistribution>`` included (each member on
its own); vTypes defined only in additional files are left as they are. SUMO's own default
type ids (``DEFAULT_VEHTYPE``, ...) are never defined twice.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from roadsense_marl.sim.registry import Scenario, parse_sumo_xml

__all__ = ["VTYPE_RANGES", "ScenarioVariation", "sample_variation", "write_episode_routes"]

#: Per-episode vType perturbation ranges (uniform), the ones the original project trained with.
VTYPE_RANGES: Mapping[str, tuple[float, float]] = {
    "speedFactor": (0.8, 1.2),
    "sigma": (0.0, 0.5),
    "decel": (3.5, 5.5),
    "tau": (0.5, 1.5),
}


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
    trees = [parse_sumo_xml(rf) for rf in scenario.route_files]
    # DEFAULT_VEHTYPE is in vtype_ids either because a route file defines it (perturbed there,
    # like any vType) or because no file does and some vehicle uses it: only then is it
    # defined, once, first thing in the first route file, before any use.
    defined = {el.attrib.get("id") for tree in trees for el in tree.getroot().iter("vType")}
    pending_default = "DEFAULT_VEHTYPE" in dict(variation.vtype_attrs) and "DEFAULT_VEHTYPE" not in defined
    out: list[Path] = []
    for k, (rf, tree) in enumerate(zip(scenario.route_files, trees)):
        root = tree.getroot()
        for el in root.iter("vType"):  # members of a vTypeDistribution too
            for attr, value in variation.attrs_for(el.attrib.get("id", "")).items():
                el.set(attr, _fmt(value))
        for el in list(root):
            if el.tag in ("vehicle", "trip") and el.attrib.get("id") in dropped:
                root.remove(el)
        if pending_default and k == 0:
            el = ET.Element("vType", {"id": "DEFAULT_VEHTYPE"})
            for attr, value in variation.attrs_for("DEFAULT_VEHTYPE").items():
                el.set(attr, _fmt(value))
            el.tail = "\n"
            root.insert(0, el)
            pending_default = False
        name = rf.name[:-3] if rf.suffix == ".gz" else rf.name  # written uncompressed
        path = Path(out_dir) / f"episode_{k}_{name}"
        # Absolute route references would survive a copy; relative ones are resolved by SUMO
        # against the file's folder, so only files without includes are supported (none here).
        tree.write(path, encoding="UTF-8", xml_declaration=True)
        out.append(path)
    return tuple(out)


def _fmt(value: float) -> str:
    return repr(float(value))
