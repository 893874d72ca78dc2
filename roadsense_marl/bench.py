"""``roadsense-marl bench``: run the benchmark suite (``pytest benchmarks/``) and print its table.

The suite lives in the repository's ``benchmarks/`` folder next to the package (a source
checkout); a wheel install does not ship it. Results are written to
``benchmarks/results/latest.json`` and ``latest.md`` by the suite itself.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

__all__ = ["add_arguments", "benchmarks_dir", "run"]


def benchmarks_dir(package_dir: Path | None = None) -> Path:
    """The ``benchmarks/`` folder of the checkout this package (or ``package_dir``) lives in."""
    root = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    folder = root.parent / "benchmarks"
    if not (folder / "test_scaling.py").is_file():
        raise FileNotFoundError(
            f"benchmark suite not found at {folder}: `roadsense-marl bench` runs from a source checkout "
            "(git clone the repository and `pip install -e .`); a wheel install does not ship benchmarks/"
        )
    return folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``roadsense-marl bench``."""
    parser.add_argument("-k", dest="keyword", metavar="EXPR", default=None,
                        help="only cases matching this pytest -k expression (e.g. 'radio or reset')")
    parser.add_argument("--run-slow", action="store_true", help="also run the slow (learning-quality) benchmarks")


def run(args: argparse.Namespace) -> int:
    """Run ``python -m pytest benchmarks/`` in the checkout, then print ``latest.md``."""
    folder = benchmarks_dir()
    cmd = [sys.executable, "-m", "pytest", str(folder), "-q", "-s", "-p", "no:cacheprovider"]
    if args.keyword:
        cmd += ["-k", args.keyword]
    if args.run_slow:
        cmd.append("--run-slow")
    code = subprocess.call(cmd, cwd=folder.parent)
    table = folder / "results" / "latest.md"
    if table.is_file():
        print(f"\n{table}:\n")
        print(table.read_text())
    return code
