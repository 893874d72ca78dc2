"""The generated ``highway`` scenario: a straight multi-lane road built with ``netconvert``,
vehicles on it at t = 0 and more joining, cached by its parameters and the SUMO version."""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from roadsense_marl.sim.install import cache_root, sumo_binary, sumo_env
from roadsense_marl.sim.registry import DEFAULT_HORIZON_S, DEFAULT_STEP_LENGTH, Scenario, ScenarioError, load_scenario

__all__ = ["highway_scenario", "write_straight_road"]

_HIGHWAY_VERSION = 2  # bump when the generator's output changes, so caches are rebuilt


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
    root = Path(cache_dir) if cache_dir is not None else cache_root()
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
    last_depart = (n_vehicles - n_initial) * float(depart_interval_s)
    return load_scenario(cfg, name="highway", ego_id=None, params=params,
                         horizon_s=max(DEFAULT_HORIZON_S, last_depart + 1.0))


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
