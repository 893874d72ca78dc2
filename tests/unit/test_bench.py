"""``roadsense-marl bench`` plumbing, the results files, the README table and the measurement
helpers of the benchmark suite (no benchmark is run here)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_results_go_outside_the_source_tree_by_default(monkeypatch, tmp_path):
    monkeypatch.delenv(bench.BENCH_OUT_ENV, raising=False)
    monkeypatch.setenv("ROADSENSE_MARL_CACHE", str(tmp_path / "cache"))
    assert bench.default_results_dir() == tmp_path / "cache" / "bench"
    monkeypatch.setenv(bench.BENCH_OUT_ENV, str(tmp_path / "out"))
    assert bench.default_results_dir() == tmp_path / "out"
    repo = bench.benchmarks_dir().parent
    assert repo not in bench.default_results_dir().parents


def test_bench_command_passes_the_output_folder_to_the_suite(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, cwd: calls.append(cmd) or 0)
    args = argparse.Namespace(keyword="radio", run_slow=False, out=str(tmp_path), readme=False)
    assert bench.run(args) == 0
    assert calls[-1][-2:] == ["--bench-out", str(tmp_path)] and "-k" in calls[-1]
    bench.run(argparse.Namespace(keyword=None, run_slow=False, out=None, readme=True))
    assert "--bench-readme" in calls[-1] and "--bench-out" not in calls[-1]


def test_results_of_a_case_rerun_alone_replace_only_that_case(tmp_path, capsys):
    res = harness.Results(tmp_path)
    res.record("1 raw SUMO", {"10": 1.0}, [("raw SUMO steps/CPU-s, N=10", 25000.0, "steps/CPU-s", "", "")])
    res.record("3 radio", {}, [("radio ms/step convoy, N=100", 0.8, "ms", "<= 0.5 ms", "MISSED")],
               {"radio ms/step convoy, N=100": "80 ns per link"})
    res.write()
    assert "MISSED: radio ms/step convoy, N=100: 80 ns per link" in capsys.readouterr().out
    again = harness.Results(tmp_path)
    again.record("3 radio", {}, [("radio ms/step convoy, N=100", 0.4, "ms", "<= 0.5 ms", "met")])
    again.write()
    data = json.loads((tmp_path / "latest.json").read_text())
    data["cases"]["2 parallel env"] = data["cases"]["1 raw SUMO"]  # a case of an older suite
    (tmp_path / "latest.json").write_text(json.dumps(data))
    third = harness.Results(tmp_path)
    third.record("4 reset", {}, [("reset() convoy_6 libsumo", 6.0, "ms", "<= 20 ms", "met")])
    third.write()
    data = json.loads((tmp_path / "latest.json").read_text())
    assert set(data["cases"]) == {"1 raw SUMO", "3 radio", "4 reset"}  # the renamed case is dropped
    assert data["cases"]["3 radio"]["rows"][0]["value"] == 0.4
    assert data["cases"]["3 radio"]["missed"] == {}
    assert data["cases"]["1 raw SUMO"]["rows"][0]["value"] == 25000.0
    table = (tmp_path / "latest.md").read_text()
    assert "| 3 radio | radio ms/step convoy, N=100 | 0.4 | ms | <= 0.5 ms | met |" in table
    assert "| 1 raw SUMO | raw SUMO steps/CPU-s, N=10 | 25,000 | steps/CPU-s |  |  |" in table
    assert table.startswith("Machine: ")


def _cases() -> dict:
    res = harness.Results(Path("unused"))
    res.record("2 env vs raw SUMO", {}, [
        ("env / env-reads ceiling, N=10", 0.04, "ratio", ">= 0.20", "MISSED"),
        ("env / env-reads ceiling, N=50", 0.35, "ratio", ">= 0.33", "met"),
    ], {"env / env-reads ceiling, N=10": "552 us of env work per step"})
    res.record("3 radio", {}, [("radio ms/step convoy, N=100 (9900 links)", 0.4, "ms", "<= 0.5 ms", "met")])
    return res.cases


def test_readme_performance_table_is_regenerated_between_its_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n\n{harness.README_START}\nold table\n{harness.README_END}\n\n## Layout\nrest\n")
    m = {"cpu": "CPU", "cores": 2, "python": "3.11", "numpy": "2", "sumo": "1.28", "load_avg_1min": 1.0}
    harness.rewrite_readme_performance(readme, _cases(), m)
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nintro\n") and text.endswith("## Layout\nrest\n")
    assert ("| PettingZoo parallel env / env-reads ceiling (hazards, measured radio, driving actions) | "
            "0.04 ratio (N=10); 0.35 ratio (N=50) | >= 0.20; >= 0.33 | MISSED (N=10), met (N=50) |") in text
    assert "- env / env-reads ceiling, N=10: 552 us of env work per step" in text
    assert "| radio alone, link model (shared channel off), all pairs in range | 0.4 ms (N=100, 9,900 links) | <= 0.5 ms | met |" in text
    assert "training" not in text  # cases that did not run are left out, not invented
    harness.rewrite_readme_performance(readme, _cases(), m)
    assert readme.read_text() == text  # idempotent: one table between the markers


def test_readme_without_markers_is_refused_and_left_alone(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n")
    with pytest.raises(ValueError, match="performance table markers are missing"):
        harness.rewrite_readme_performance(readme, _cases(), harness.machine())
    assert readme.read_text() == "# x\n"


def test_the_repository_readme_has_the_performance_markers():
    text = harness.README.read_text()
    assert text.index(harness.README_START) < text.index(harness.README_END)


def test_driving_actions_mostly_follow_with_occasional_light_brakes():
    a = harness.driving_actions(np.random.default_rng(0), 100_000)
    assert a.dtype == np.float32 and a.shape == (100_000,)
    braking = a > 0
    assert braking.mean() == pytest.approx(harness.BRAKE_PROB, abs=0.005)
    lo, hi = harness.BRAKE_RANGE
    assert a[braking].min() >= lo and a[braking].max() <= hi
    # Mean deceleration commanded at max_decel 8 m/s^2: a fraction of what uniform actions ask (4 m/s^2).
    assert 8.0 * a.mean() < 0.1


def test_process_tree_cpu_counts_child_processes():
    before = harness.process_tree_cpu_s()
    burn = ("import sys, time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
            "print('burnt', flush=True)\nsys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "burnt"
        alive = harness.process_tree_cpu_s() - before  # counted while alive, from /proc
    finally:
        child.communicate("")
    ended = harness.process_tree_cpu_s() - before  # reaped: counted through RUSAGE_CHILDREN
    assert alive >= 0.35 and ended >= alive - 0.02
    assert ended < 0.4 + 1.0  # this process only waited meanwhile


def test_growth_exponent_is_the_log_log_slope():
    ns = [10, 100, 1000]
    assert harness.loglog_slope(ns, [3.0 * n**2 for n in ns]) == pytest.approx(2.0)
    assert harness.loglog_slope(ns, [0.5 * n for n in ns]) == pytest.approx(1.0)


def test_core_round_is_skipped_with_a_reason_while_the_core_is_absent():
    module, why = harness.core_module()
    if module is not None:
        assert why == "" and hasattr(module, "ConvoyCore")
    else:
        assert "roadsense_marl.env.core" in why
        with pytest.raises(RuntimeError, match="roadsense_marl.env.core"):
            harness.core_round(10, 5, seed=0, rng=np.random.default_rng(0))
