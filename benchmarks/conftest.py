"""Benchmark suite set-up: ``--run-slow``, the shared results file, and the raw SUMO ceiling
(case 1) cached for the session so the env case measures it in the same run even alone."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from harness import Results, raw_steps_for, raw_sumo_rate


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run benchmarks marked slow (learning-quality runs)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running benchmark, skipped unless --run-slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow benchmark: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def results() -> Any:
    """Collects every case's figures; written to benchmarks/results/ at the end of the session."""
    res = Results()
    yield res
    path = res.write()
    if path is not None:
        print(f"\nbenchmark results written to {path} and {path.with_suffix('.md')}")


class RawSumoCache:
    """Raw SUMO steps/s per N, measured at most once per session (libsumo, one simulation at a time)."""

    def __init__(self) -> None:
        self._rates: dict[int, dict[str, float]] = {}

    def get(self, n: int) -> dict[str, float]:
        if n not in self._rates:
            self._rates[n] = raw_sumo_rate(n, steps=raw_steps_for(n), reps=7)
        return self._rates[n]


@pytest.fixture(scope="session")
def raw_sumo() -> RawSumoCache:
    return RawSumoCache()


@pytest.fixture(autouse=True)
def collect_garbage_after_each_case():
    """An env or simulation a case forgot must not keep the process's one libsumo busy."""
    yield
    gc.collect()
