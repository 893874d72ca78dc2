"""Shared helpers for the simulation-layer integration tests (real SUMO)."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator

from roadsense_marl.sim import SumoSimulation

BACKENDS = ("libsumo", "traci")


def process_alive(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_gone(pid: int, timeout_s: float = 5.0) -> bool:
    """Wait until ``pid`` has exited; True if it did within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.02)
    return not process_alive(pid)


@contextmanager
def running(*args, **kwargs) -> Iterator[SumoSimulation]:
    """A :class:`SumoSimulation` that is closed whatever the test does."""
    sim = SumoSimulation(*args, **kwargs)
    try:
        yield sim
    finally:
        sim.close()


def step_until_present(sim: SumoSimulation, n: int, max_steps: int = 50):
    """Step until ``n`` vehicles are on the road; returns that state."""
    for _ in range(max_steps):
        states = sim.step()
        if states.n >= n:
            return states
    raise AssertionError(f"{n} vehicles never on the road within {max_steps} steps")


def my_pid() -> int:
    return os.getpid()
