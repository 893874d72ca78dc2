"""`MODEL=pretrained`: the exported policy shipped in the package, and what happens without one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from roadsense_marl import pretrained
from roadsense_marl.training.runs import is_exported_policy, read_exported_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = is_exported_policy(pretrained.SHIPPED_DIR)


@pytest.mark.parametrize("command", ["evaluate", "record"])
def test_pretrained_without_a_shipped_policy_is_one_line_with_the_command_to_make_one(tmp_path, command, monkeypatch,
                                                                                       capsys):
    from roadsense_marl.cli import main

    monkeypatch.setattr(pretrained, "SHIPPED_DIR", tmp_path / "none")
    out = ["--out", str(tmp_path / "x.gif")] if command == "record" else ["--out", str(tmp_path / "eval")]
    assert main([command, "pretrained", "--episodes", "1", *out]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no pretrained policy is shipped" in lines[0] and "roadsense-marl export" in lines[0]


@pytest.mark.skipif(not SHIPPED, reason="no pretrained policy shipped")
def test_shipped_policy_was_trained_under_the_current_env_contract():
    from roadsense_marl.env import make_env_config
    from roadsense_marl.training.runs import check_contract, env_contract

    meta = read_exported_config(pretrained.SHIPPED_DIR)
    current = env_contract(make_env_config(**(meta.get("env") or {})))
    check_contract(meta["contract"], current, what="the shipped policy", recorded_as="policy", current_as="env")
    assert (pretrained.SHIPPED_DIR / "metrics.json").is_file(), "its evaluation metrics lie beside it"


@pytest.mark.skipif(not SHIPPED, reason="no pretrained policy shipped")
def test_pretrained_evaluates_and_records_from_the_command_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "roadsense_marl.cli", "evaluate", "pretrained", "--episodes", "1",
                          "--no-baselines", "--no-plots", "--no-progress", "--out", str(tmp_path / "eval")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "eval" / "metrics.json").is_file()
    res = subprocess.run([sys.executable, "-m", "roadsense_marl.cli", "record", "pretrained", "--max-steps", "20",
                          "--out", str(tmp_path / "ep.gif")], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert "21 frames" in res.stdout and (tmp_path / "ep.gif").stat().st_size > 1000
