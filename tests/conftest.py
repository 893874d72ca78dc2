"""Suite-wide guards: no SUMO process may outlive the test module that started it."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest


def sumo_children() -> set[int]:
    """PIDs of live SUMO processes whose parent is this test process."""
    me = os.getpid()
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        # /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces, so split at the last ')'.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == me and comm.startswith("sumo") and state != "Z":
            found.add(int(proc.name))
    return found


@pytest.fixture(autouse=True, scope="module")
def no_leaked_sumo():
    before = sumo_children()
    yield
    gc.collect()
    leaked = sumo_children() - before
    assert not leaked, f"SUMO processes left running after this module: {sorted(leaked)}"


@pytest.fixture(autouse=True)
def collect_garbage_after_each_test():
    """A test that forgets close() must not keep the process's one libsumo simulation busy."""
    yield
    gc.collect()
