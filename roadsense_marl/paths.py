"""Where the shipped data lives: ``scenarios/`` and ``configs/``.

In a source checkout (editable install) they sit at the top of the repository, next to
the package. A built wheel carries them inside the package as ``roadsense_marl/_data/``.
Both layouts are looked up, the packaged one first, so code never depends on the
current working directory.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"roadsense_marl data folder {name!r} not found: looked in "
        f"{_PACKAGE_DIR / '_data' / name} (wheel) and {_PACKAGE_DIR.parent / name} (source checkout). "
        "Reinstall the package."
    )


def scenarios_dir() -> Path:
    """Folder holding the shipped SUMO scenarios."""
    return _data_dir("scenarios")


def configs_dir() -> Path:
    """Folder holding the shipped configuration files (``espnow/``, ``env/``, ``train/``)."""
    return _data_dir("configs")


def config_path(*parts: str) -> Path:
    """Path of a shipped config file, e.g. ``config_path("espnow", "measured.json")``."""
    return configs_dir().joinpath(*parts)
