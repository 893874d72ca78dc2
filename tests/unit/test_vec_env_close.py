"""Closing SuperSuit's multi-process vector env after Ctrl-C, an interrupted step or a dead worker.

The close path must stop every worker without raising over the interrupt that led to it
(issue 14: a Ctrl-C ended in a double traceback from "closing the vector env's workers failed").
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from test_vec_env import toy_vec_env


def _workers(venv):
    return list(venv.venv.venv.venv.procs)


def _wait_dead(proc, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while proc.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.01)


def test_close_after_the_workers_got_ctrl_c_raises_nothing_and_stops_them(tmp_path):
    venv = toy_vec_env(num_envs=2, num_cpus=2, marker_dir=str(tmp_path))
    workers = _workers(venv)
    venv.reset()
    for proc in workers:  # the terminal sends SIGINT to the whole process group
        os.kill(proc.pid, signal.SIGINT)
    for proc in workers:
        _wait_dead(proc)
    venv.close()
    assert not any(proc.is_alive() for proc in workers)


def test_close_after_an_interrupted_step_closes_every_env_in_every_worker(tmp_path):
    venv = toy_vec_env(num_envs=4, num_cpus=2, marker_dir=str(tmp_path))
    workers = _workers(venv)
    venv.reset()
    venv.step_async(np.full((venv.num_envs, 1), 0.5, np.float32))  # Ctrl-C before step_wait: replies pending
    time.sleep(0.2)
    venv.close()
    assert len(list(tmp_path.glob("closed-*"))) == 4
    assert not any(proc.is_alive() for proc in workers)


def test_close_with_a_killed_worker_closes_the_other_workers_envs(tmp_path):
    venv = toy_vec_env(num_envs=4, num_cpus=2, marker_dir=str(tmp_path))
    workers = _workers(venv)
    venv.reset()
    os.kill(workers[0].pid, signal.SIGKILL)
    _wait_dead(workers[0])
    venv.close()
    markers = list(tmp_path.glob("closed-*"))
    assert {int(m.name.split("-")[1]) for m in markers} == {workers[1].pid} and len(markers) == 2
    assert not any(proc.is_alive() for proc in workers)


def _interrupted_worker(conn, linger_s: float) -> None:
    """What SuperSuit's worker loop does on Ctrl-C: reply (exception, traceback), then exit (a moment later)."""
    conn.send((KeyboardInterrupt(), "Traceback ...\nKeyboardInterrupt"))
    time.sleep(linger_s)


def test_close_while_an_interrupted_worker_is_still_exiting_is_not_a_close_failure():
    import multiprocessing as mp
    from types import SimpleNamespace

    from roadsense_marl.training import close_proc_concat_vec

    ctx = mp.get_context("fork")
    parents, procs = [], []
    for _ in range(2):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_interrupted_worker, args=(child, 1.0), daemon=True)
        proc.start()
        parents.append(parent)
        procs.append(proc)
    time.sleep(0.1)  # the replies are in the pipes, the processes still alive
    assert all(p.is_alive() for p in procs)
    fake = SimpleNamespace(pipes=parents, procs=procs)  # fault injection: SuperSuit's ProcConcatVec fields
    close_proc_concat_vec(fake, timeout_s=5.0)
    assert not any(p.is_alive() for p in procs) and fake.procs == []
