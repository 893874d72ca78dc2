"""Suite-wide guards: no SUMO process may outlive the test module that started it."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest


def sumo_children() -> set[int]:
    """PIDs of live SUMO processes started by this test process, directly or by its workers."""
    me = os.getpid()
    parent_of: dict[int, int] = {}
    sumo: set[int] = set()
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
        pid = int(proc.name)
        parent_of[pid] = int(fields[1])
        if comm.startswith("sumo") and fields[0] != "Z":
            sumo.add(pid)

    def descends_from_me(pid: int) -> bool:
        seen = set()
        while pid > 1 and pid not in seen:
            seen.add(pid)
            pid = parent_of.get(pid, 0)
            if pid == me:
                return True
        return False

    return {pid for pid in sumo if descends_from_me(pid)}


@pytest.fixture(autouse=True, scope="session")
def sb3_logs_in_pytest_tmp(tmp_path_factory):
    """SB3 writes a default log folder (``/tmp/SB3-<date>``) for every PPO without a logger; keep them in pytest's tmp."""
    previous = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3_logs"))
    yield
    if previous is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = previous


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
