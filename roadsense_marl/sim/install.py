"""Where SUMO is: the real binaries of the ``eclipse-sumo`` wheel, their environment, and the
library's writable cache folder (generated scenarios, vehicle sets)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["cache_root", "sumo_binary", "sumo_env", "sumo_version"]


def sumo_binary(name: str) -> Path:
    """Path of a real SUMO binary shipped by the ``eclipse-sumo`` wheel (not the PATH wrapper).

    FileNotFoundError names the path looked at when the wheel lacks it."""
    import sumo  # noqa: PLC0415 - sets SUMO_HOME

    path = Path(sumo.SUMO_HOME) / "bin" / name
    if not path.is_file():
        raise FileNotFoundError(f"SUMO binary {name!r} not found at {path}; is eclipse-sumo installed?")
    return path


def sumo_env() -> dict[str, str]:
    """Environment for SUMO subprocesses: SUMO_HOME pointing into the eclipse-sumo wheel."""
    import sumo  # noqa: PLC0415

    return {**os.environ, "SUMO_HOME": str(sumo.SUMO_HOME)}


def sumo_version() -> str:
    """Version string of the installed SUMO (part of every cache key)."""
    import sumo  # noqa: PLC0415

    home = Path(sumo.SUMO_HOME)
    return f"{getattr(sumo, '__version__', '')}:{home}:{(home / 'bin' / 'sumo').stat().st_mtime_ns}"


def cache_root() -> Path:
    """Writable cache folder of the library (created if needed): ``$ROADSENSE_MARL_CACHE``, else
    ``$XDG_CACHE_HOME/roadsense_marl`` or ``~/.cache/roadsense_marl``, else the temp folder.
    OSError lists the folders tried when none is writable."""
    candidates = []
    if os.environ.get("ROADSENSE_MARL_CACHE"):
        candidates.append(Path(os.environ["ROADSENSE_MARL_CACHE"]))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidates.append(Path(xdg) / "roadsense_marl")
    candidates.append(Path(tempfile.gettempdir()) / f"roadsense_marl-{os.getuid() if hasattr(os, 'getuid') else 'user'}")
    for c in candidates:
        try:
            c.mkdir(parents=True, exist_ok=True)
            probe = Path(tempfile.mkstemp(dir=c)[1])
            probe.unlink()
            return c
        except OSError:
            continue
    raise OSError(f"no writable cache folder among {[str(c) for c in candidates]}")
