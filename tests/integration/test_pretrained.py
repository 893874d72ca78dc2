"""`MODEL=pretrained`: the exported policy shipped in the package, and what happens while none is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from roadsense_marl import pretrained
from roadsense_marl.training.runs import is_exported_policy, read_exported_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(is_exported_policy(pretrained.SHIPPED_DIR), reason="a pretrained policy is shipped")
@pytest.mark.parametrize("command", ["evaluate", "record"])
def test_pretrained_without_a_shipped_policy_is_one_line_with_the_command_to_make_one(tmp_path, command):
    args = ["pretrained", "--episodes", "1"] + (["--out", str(tmp_path / "x.gif")] if command == "record" else ["--out", str(tmp_path)])
    res = subprocess.run([sys.executable, "-m", "roadsense_marl.cli", command, *args], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no pretrained policy is shipped" in lines[0] and "roadsense-marl export" in lines[0]


@pytest.mark.skipif(not is_exported_policy(pretrained.SHIPPED_DIR),
                    reason="no pretrained policy shipped yet (issue 15: trained once the env contract settles)")
def test_shipped_policy_was_trained_under_the_current_env_contract():
    from roadsense_marl.env import make_env_config
    from roadsense_marl.training.runs import check_contract, env_contract

    meta = read_exported_config(pretrained.SHIPPED_DIR)
    current = env_contract(make_env_config(**(meta.get("env") or {})))
    check_contract(meta["contract"], current, what="the shipped policy", recorded_as="policy", current_as="env")
