"""Benchmark suite set-up: ``--run-slow``, where results go (``--bench-out``, ``--bench-readme``)
and the shared results collector."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import README, RESULTS_DIR, Results, machine, rewrite_readme_performance

#: Cases the README's Performance table is made of; all must have run for it to be regenerated.
README_CASES = ("2 env vs raw SUMO", "3 radio", "4 reset", "5 training", "6 memory")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run benchmarks marked slow (learning-quality runs)")
    parser.addoption("--bench-out", default=None, metavar="DIR",
                     help="write latest.json/latest.md here (default: $ROADSENSE_MARL_BENCH_OUT or <cache>/bench)")
    parser.addoption("--bench-readme", action="store_true", default=False,
                     help="write the tracked benchmarks/results/latest.* and regenerate the README's "
                          "Performance table from this run (make bench-readme)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running benchmark, skipped unless --run-slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow benchmark: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def results_dir(config: pytest.Config) -> Path:
    """The run's output folder: the tracked one only with ``--bench-readme``."""
    if config.getoption("--bench-readme"):
        if config.getoption("--bench-out"):
            raise pytest.UsageError("--bench-readme writes benchmarks/results/; do not combine it with --bench-out")
        return RESULTS_DIR
    if config.getoption("--bench-out"):
        return Path(config.getoption("--bench-out")).expanduser().resolve()
    from roadsense_marl.bench import default_results_dir

    return default_results_dir()


@pytest.fixture(scope="session")
def results(pytestconfig: pytest.Config) -> Any:
    """Collects every case's figures; written at the end of the session (see :func:`results_dir`)."""
    res = Results(results_dir(pytestconfig))
    yield res
    path = res.write()
    if path is not None:
        print(f"\nbenchmark results written to {path} and {path.with_suffix('.md')}")
        if pytestconfig.getoption("--bench-readme"):
            missing = [c for c in README_CASES if c not in res.cases]
            if missing:
                print(f"README Performance table NOT regenerated: cases {missing} did not run in this session "
                      "(run the whole suite with --bench-readme)", file=sys.stderr)
            else:
                rewrite_readme_performance(README, res.cases, machine())
                print(f"README Performance table regenerated from this run: {README}", file=sys.stderr)


@pytest.fixture(autouse=True)
def collect_garbage_after_each_case():
    """An env or simulation a case forgot must not keep the process's one libsumo busy."""
    yield
    gc.collect()
