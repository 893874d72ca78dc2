"""``roadsense-marl bench``: run the benchmark suite (``pytest benchmarks/``) and print its table.

The suite lives in the repository's ``benchmarks/`` folder next to the package (a source
checkout); a wheel install does not ship it. A run writes ``latest.json`` and ``latest.md``
outside the source tree, to :func:`default_results_dir` (``$ROADSENSE_MARL_BENCH_OUT``, else
``<cache>/bench``), or to ``--out``. Only ``--readme`` (``make bench-readme``) rewrites the
tracked ``benchmarks/results/latest.*`` and regenerates the README's Performance table from
that run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["BENCH_OUT_ENV", "add_arguments", "benchmarks_dir", "default_results_dir", "run"]

#: Environment variable naming the folder a benchmark run writes its results to.
BENCH_OUT_ENV = "ROADSENSE_MARL_BENCH_OUT"


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


def default_results_dir() -> Path:
    """Where a benchmark run writes ``latest.json``/``latest.md`` unless told otherwise:
    ``$ROADSENSE_MARL_BENCH_OUT`` if set, else ``bench/`` in the library's cache folder
    (``$ROADSENSE_MARL_CACHE``, ``$XDG_CACHE_HOME/roadsense_marl`` or ``~/.cache/roadsense_marl``)."""
    if os.environ.get(BENCH_OUT_ENV):
        return Path(os.environ[BENCH_OUT_ENV]).expanduser()
    from roadsense_marl.sim.scenario import cache_root  # noqa: PLC0415

    return cache_root() / "bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``roadsense-marl bench``."""
    parser.add_argument("-k", dest="keyword", metavar="EXPR", default=None,
                        help="only cases matching this pytest -k expression (e.g. 'radio or reset')")
    parser.add_argument("--run-slow", action="store_true", help="also run the slow (learning-quality) benchmarks")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help=f"write latest.json/latest.md here (default: ${BENCH_OUT_ENV} or <cache>/bench)")
    parser.add_argument("--readme", action="store_true",
                        help="rewrite the tracked benchmarks/results/latest.* and the README's Performance table")


def run(args: argparse.Namespace) -> int:
    """Run ``python -m pytest benchmarks/`` in the checkout, then print the run's ``latest.md``."""
    folder = benchmarks_dir()
    cmd = [sys.executable, "-m", "pytest", str(folder), "-q", "-s", "-p", "no:cacheprovider"]
    if args.keyword:
        cmd += ["-k", args.keyword]
    if args.run_slow:
        cmd.append("--run-slow")
    if getattr(args, "readme", False):
        out = folder / "results"
        cmd.append("--bench-readme")
    else:
        out = Path(args.out).expanduser().resolve() if getattr(args, "out", None) else default_results_dir()
        cmd += ["--bench-out", str(out)]
    code = subprocess.call(cmd, cwd=folder.parent)
    table = out / "latest.md"
    if table.is_file():
        print(f"\n{table}:\n")
        print(table.read_text())
    return code
