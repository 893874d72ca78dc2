"""The command line's own texts: --version and every command's --help, in plain words."""

from __future__ import annotations

import re

import pytest

import roadsense_marl
from roadsense_marl.cli import SUBCOMMANDS, build_parser, main, plain_text
from roadsense_marl.env.version import ENV_VERSION


def test_version_names_package_and_env_contract(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"roadsense-marl {roadsense_marl.__version__} ")
    assert f"env contract v{ENV_VERSION}" in out


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_help_text_is_plain_and_about_its_command(command):
    text = build_parser(command)._subparsers._group_actions[0].choices[command].format_help()
    assert "``" not in text and ":func:" not in text and ":class:" not in text, text
    assert "the command line (train, evaluate" not in text  # the CLI module's own docstring
    description = text.split("\n\n")[1]
    assert len(description.split()) >= 4, description


def test_scenarios_explains_how_to_use_your_own_sumocfg(capsys):
    from roadsense_marl.cli import run

    assert run(build_parser("scenarios").parse_args(["scenarios"])) == 0
    out = capsys.readouterr().out
    assert "--scenario path/to/my.sumocfg" in out and "horizon_s" in out and "max_vehicles" in out


def test_scenarios_help_explains_its_columns():
    text = build_parser("scenarios")._subparsers._group_actions[0].choices["scenarios"].format_help()
    assert "list the scenarios" in text and "ego" in text and ".sumocfg" in text


def test_plain_text_unwraps_rest_markup():
    doc = "``roadsense-marl bench``: run :func:`~a.b.c` on ``x``.\n\nSecond paragraph."
    assert plain_text(doc) == "run a.b.c on x."
    assert not re.search(r"[`:]func", plain_text(doc))


def test_ctrl_c_inside_a_compiled_call_is_still_an_interrupt(monkeypatch, capsys):
    """SIGINT during a numba call surfaces as SystemError caused by KeyboardInterrupt (seen under load in CI)."""
    import roadsense_marl.cli as cli

    def interrupted_in_numba(args):
        raise SystemError("CPUDispatcher(<function f>) returned a result with an exception set") from KeyboardInterrupt()

    monkeypatch.setattr(cli, "run", interrupted_in_numba)
    assert cli.main(["scenarios"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["roadsense-marl scenarios: interrupted"]
