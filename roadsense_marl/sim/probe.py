"""Run the real ``sumo`` binary in a subprocess under TraCI, to ask it something about a
scenario (its vehicle set, whether it loads under the env's options) without risking this
process: a SUMO crash there is an exit code, not a dead Python."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import tempfile
from itertools import count
from pathlib import Path
from typing import Any, Iterator, Sequence

from roadsense_marl.sim.install import sumo_binary, sumo_env

__all__ = ["SumoProbeError", "sumo_session"]

_labels = count()


class SumoProbeError(ValueError):
    """The real ``sumo`` refused or crashed on a scenario; the message quotes SUMO."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def what_sumo_said(proc: subprocess.Popen[bytes], log: Path) -> str:
    """SUMO's own error lines (last 5, from ``--error-log``, else its stderr), or how it ended."""
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    stderr = log.with_name("stderr.txt")
    if not lines and stderr.exists():
        lines = [ln for ln in stderr.read_text(errors="replace").strip().splitlines() if ln.startswith("Error")]
    if lines:
        return " ".join(lines[-5:])
    code = proc.returncode
    if code is not None and code < 0:
        return f"SUMO crashed (signal {-code}) without a message; check the network and route files"
    return f"SUMO exited with code {code} without a message"


@contextlib.contextmanager
def sumo_session(args: Sequence[str], what: str) -> Iterator[Any]:
    """A TraCI connection to a fresh ``sumo`` run with ``args`` (no binary name, no port).

    Any TraCI failure inside the ``with`` block (SUMO refusing the files, crashing, closing)
    becomes :class:`SumoProbeError` ``"SUMO <fails on> <what>: <SUMO's message>"``. The process
    is stopped when the block ends.
    """
    import traci  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="roadsense-probe-") as tmp:
        log = Path(tmp) / "errors.log"
        cmd = [str(sumo_binary("sumo")), *args, "--error-log", str(log)]
        stderr_path = Path(tmp) / "stderr.txt"  # errors before the log opens (a bad option) go here
        proc: subprocess.Popen[bytes] | None = None
        conn = None
        label = f"roadsense-probe-{os.getpid()}-{next(_labels)}"
        try:
            for _attempt in range(3):  # a port can be taken between choosing and binding it
                port = _free_port()
                with open(stderr_path, "ab") as err:
                    proc = subprocess.Popen([*cmd, "--remote-port", str(port)], env=sumo_env(),
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
                try:
                    with contextlib.redirect_stdout(io.StringIO()):  # traci prints each retry
                        conn = traci.connect(port, numRetries=6000, proc=proc, waitBetweenRetries=0.01,
                                             label=label)
                    break
                except (traci.TraCIException, traci.FatalTraCIError):
                    said = what_sumo_said(proc, log)
                    if "address" in said.lower() and "use" in said.lower():
                        continue
                    raise SumoProbeError(f"SUMO cannot load {what}: {said}") from None
            if conn is None:
                raise SumoProbeError(f"SUMO could not get a free port to run {what}")
            try:
                yield conn
            except (traci.TraCIException, traci.FatalTraCIError):
                raise SumoProbeError(f"SUMO failed while running {what}: {what_sumo_said(proc, log)}") from None
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close(wait=False)
                with contextlib.suppress(Exception):
                    traci.connection._connections.pop(label, None)
            if proc is not None and proc.poll() is None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
