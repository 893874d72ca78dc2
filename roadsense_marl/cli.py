"""``roadsense-marl``: the command line (train, evaluate, record, export, bench, scenarios, demo).

Each subcommand lives with the code it drives and exposes ``add_arguments(parser)`` and
``run(args) -> int``; this module only dispatches. Nothing ends in a traceback:

- mistakes a user can fix (a missing file, an unknown scenario, a bad option or config value,
  a folder that cannot be written): one line, exit 2;
- Ctrl-C: one line starting ``interrupted`` (saying what was saved, if anything), exit 130;
- a failure that is not the input's fault (a worker process died, SUMO crashed): one line,
  exit 1. Set ``ROADSENSE_TRACEBACK=1`` to see the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import traceback
from typing import Sequence

from roadsense_marl import __version__

SUBCOMMANDS = {
    "train": ("roadsense_marl.training.train", "train the shared Deep Sets PPO policy (SuperSuit + SB3)"),
    "evaluate": ("roadsense_marl.evaluation.cli", "evaluate a model or a baseline: metrics.json, summary, plots"),
    "record": ("roadsense_marl.evaluation.record", "record episodes of a model or a baseline as GIF or MP4"),
    "export": ("roadsense_marl.training.export", "export a trained policy as weights + JSON that load without running code"),
    "bench": ("roadsense_marl.bench", "run the benchmark suite (pytest benchmarks/) and print its table"),
    "scenarios": ("roadsense_marl.cli", "list the scenarios with their vehicle counts"),
    "demo": ("roadsense_marl.demo", "short shared-policy training run followed by evaluation"),
}


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


class RunFailure(Exception):
    """A failure that is not the user's input (a worker died, ...); printed as one line, exit 1."""


# Errors that mean "the input was wrong", printed without a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, FileNotFoundError, KeyError, PermissionError,
                                                NotADirectoryError, IsADirectoryError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``scenarios`` takes no options."""
    parser.epilog = (
        "Columns: scenario name, vehicles it inserts, the single-ego view's default ego vehicle, and its .sumocfg. "
        "A .sumocfg path works wherever a scenario name does: any scenario plain `sumo` runs "
        "(see the notes printed below the table)."
    )


def run(args: argparse.Namespace) -> int:
    """``roadsense-marl scenarios``: every scenario name with its vehicle count."""
    from roadsense_marl.sim import list_scenarios, resolve_scenario

    rows = []
    for name in list_scenarios():
        scenario = resolve_scenario(name)
        rows.append((name, scenario.n_vehicles, scenario.ego_id or "-", str(scenario.sumocfg)))
    width = max(len(r[0]) for r in rows)
    print(f"{'scenario':<{width}}  vehicles  ego   config")
    for name, n, ego, cfg in rows:
        print(f"{name:<{width}}  {n:>8}  {ego:<4}  {cfg}")
    print("highway takes parameters: parallel_env(scenario='highway', scenario_kwargs={'n_vehicles': 200, ...})")
    print(BRING_YOUR_OWN)
    return 0


#: How to run your own SUMO scenario, printed by ``roadsense-marl scenarios``.
BRING_YOUR_OWN = """
Your own scenario: give the path of any .sumocfg that plain `sumo` runs, wherever a name goes:
  roadsense-marl evaluate --policy rule-v2v --scenario path/to/my.sumocfg
  parallel_env(scenario="path/to/my.sumocfg", scenario_kwargs={"horizon_s": 120}, max_vehicles=64)
- Agents: every motor vehicle SUMO inserts within horizon_s seconds of the config's begin (default
  300, capped by its end). SUMO itself is asked once (cached per file version): vehicles, trips, flows
  (number/period/vehsPerHour; probability and exp() flows get an upper bound), distributions,
  vehicles in additional files, several route files. Persons, bicycles, trams and trains are driven
  by SUMO; choose agents with agents={"vclass": [...], "vtype": [...], "id": [...]} (globs) and the
  share of vehicles with a radio with penetration_rate=0.5.
- max_vehicles: slots for the most vehicles present at once (default: one per possible agent).
- The env sets collision detection (--collision.action remove, junctions, mingap-factor 0),
  --time-to-teleport -1, the step length and the seed; these win over the .sumocfg, and another
  value for them in sumo_args is an error naming both. Every other option of the .sumocfg is kept.
- step_length: the config's (0.1 s if unset), or set step_length=...
- Per-episode vType randomisation perturbs every vType of the route files (distribution members too)."""


def plain_text(doc: str) -> str:
    """First paragraph of a docstring as plain text for ``--help`` (reST roles and literals unwrapped)."""
    para = doc.strip().split("\n\n")[0]
    para = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", para)  # :func:`~a.b` -> a.b
    para = re.sub(r"``([^`]+)``", r"\1", para)
    para = re.sub(r"^roadsense-marl [a-z]+:\s*", "", para)
    return " ".join(para.split())


def _version() -> str:
    from roadsense_marl.env.version import ENV_VERSION

    return f"roadsense-marl {__version__} (env contract v{ENV_VERSION}, Python {sys.version.split()[0]})"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (so ``--help`` and each command start fast)."""
    parser = argparse.ArgumentParser(
        prog="roadsense-marl",
        description="Multi-agent RL for V2V cooperative collision avoidance on SUMO with an emulated ESP-NOW radio.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            mod = importlib.import_module(module)
            # This module's docstring is about the whole CLI; the others describe their command.
            if module != "roadsense_marl.cli" and mod.__doc__:
                p.description = plain_text(mod.__doc__)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    show_tb = os.environ.get("ROADSENSE_TRACEBACK", "") not in ("", "0")
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        if show_tb:
            traceback.print_exc()
        print(f"roadsense-marl {args.command}: error: {_one_line(msg)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        detail = _one_line(exc)
        print(f"roadsense-marl {args.command}: interrupted" + (f": {detail}" if detail else ""), file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the command line never ends in a traceback
        if isinstance(exc.__cause__, KeyboardInterrupt):
            # Ctrl-C landing inside a compiled (numba) call surfaces as SystemError("... returned a
            # result with an exception set") caused by the KeyboardInterrupt: it is still Ctrl-C.
            print(f"roadsense-marl {args.command}: interrupted", file=sys.stderr)
            return 130
        if show_tb:
            traceback.print_exc()
        kind = "" if isinstance(exc, RunFailure) else f"{type(exc).__name__}: "
        print(f"roadsense-marl {args.command}: failed: {kind}{_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(msg: object) -> str:
    return " ".join(str(msg).split())


if __name__ == "__main__":
    # Run the importable module's main, so that the exception classes raised by the commands
    # (imported as roadsense_marl.cli) are the ones caught here, not __main__'s copies.
    from roadsense_marl.cli import main as _main

    sys.exit(_main())
