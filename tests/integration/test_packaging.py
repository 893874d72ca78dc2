"""scenarios/ and configs/ are found from the source checkout and from a built wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import roadsense_marl, roadsense_marl.paths as p
from roadsense_marl.sim import resolve_scenario, list_scenarios
from roadsense_marl.espnow import load_params
print(roadsense_marl.__file__)
print(p.scenarios_dir())
print(resolve_scenario("convoy_6").sumocfg)
print(load_params(p.config_path("espnow", "measured.json")).latency_base_ms)
print(",".join(list_scenarios()))
"""


def _probe(pythonpath: str | None, cwd: Path) -> list[str]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()


def test_data_found_from_the_source_checkout(tmp_path):
    lines = _probe(None, tmp_path)
    assert Path(lines[1]) == REPO / "scenarios"
    assert lines[3] == "3.84"
    assert "convoy_6" in lines[4].split(",")


@pytest.mark.timeout(300)
def test_data_found_from_a_built_wheel(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True, text=True, timeout=280,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("roadsense_marl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "roadsense_marl/_data/scenarios/convoy_6/convoy_6.sumocfg" in names
    assert "roadsense_marl/_data/configs/espnow/measured.json" in names
    # Type checkers read the annotations (PEP 561), and the wheel carries the MIT licence text.
    assert "roadsense_marl/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names), names
    metadata = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "MIT" in metadata
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    lines = _probe(str(site), tmp_path)
    assert lines[0].startswith(str(site)), "the probe must import the wheel's copy, not the checkout"
    assert lines[1] == str(site / "roadsense_marl" / "_data" / "scenarios")
    assert lines[2].startswith(str(site))
    assert lines[3] == "3.84"


def test_citation_licence_and_changelog_agree_with_the_package():
    import yaml

    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

    import roadsense_marl

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["title"] and cff["authors"]
    assert cff["version"] == project["version"] == roadsense_marl.__version__
    assert cff["license"] == project["license"] == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert "## Unreleased" in (REPO / "CHANGELOG.md").read_text()
    assert (REPO / "roadsense_marl" / "py.typed").is_file()
