"""``roadsense-marl bench`` plumbing and the benchmark results table (no benchmark is run here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from roadsense_marl import bench

sys.path.insert(0, str(Path(bench.__file__).resolve().parent.parent / "benchmarks"))
import harness  # noqa: E402


def test_bench_finds_the_suite_of_this_checkout():
    assert (bench.benchmarks_dir() / "test_scaling.py").is_file()


def test_bench_without_a_checkout_says_where_it_looked_and_why(tmp_path):
    pkg = tmp_path / "site-packages" / "roadsense_marl"
    pkg.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"benchmark suite not found at .*site-packages/benchmarks.*wheel"):
        bench.benchmarks_dir(pkg)


def test_results_of_a_case_rerun_alone_replace_only_that_case(tmp_path):
    res = harness.Results(tmp_path)
    res.record("1 raw SUMO", {"10": 1.0}, [("raw SUMO steps/s, N=10", 25000.0, "steps/s", "", "")])
    res.record("3 radio", {}, [("radio ms/step convoy, N=100", 0.8, "ms", "<= 0.5 ms", "not met")])
    res.write()
    again = harness.Results(tmp_path)
    again.record("3 radio", {}, [("radio ms/step convoy, N=100", 0.4, "ms", "<= 0.5 ms", "met")])
    again.write()
    data = json.loads((tmp_path / "latest.json").read_text())
    assert set(data["cases"]) == {"1 raw SUMO", "3 radio"}
    assert data["cases"]["3 radio"]["rows"][0]["value"] == 0.4
    assert data["cases"]["1 raw SUMO"]["rows"][0]["value"] == 25000.0
    table = (tmp_path / "latest.md").read_text()
    assert "| 3 radio | radio ms/step convoy, N=100 | 0.4 | ms | <= 0.5 ms | met |" in table
    assert "| 1 raw SUMO | raw SUMO steps/s, N=10 | 25,000 | steps/s |  |  |" in table
    assert table.startswith("Machine: ")


def test_growth_exponent_is_the_log_log_slope():
    ns = [10, 100, 1000]
    assert harness.loglog_slope(ns, [3.0 * n**2 for n in ns]) == pytest.approx(2.0)
    assert harness.loglog_slope(ns, [0.5 * n for n in ns]) == pytest.approx(1.0)
