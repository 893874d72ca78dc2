"""Every code block of README.md runs: python blocks as scripts, bash blocks line by line.

``make`` lines are checked with a dry run (``make -n``): running them for real is what CI
itself does (``make test``), and ``make demo`` / ``make bench`` take minutes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```(python|bash)\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MPLBACKEND"] = "Agg"
    return env


def test_readme_has_code_blocks():
    kinds = [k for k, _ in BLOCKS]
    assert kinds.count("python") >= 4 and kinds.count("bash") >= 2


@pytest.mark.timeout(600)
def test_readme_blocks_run_in_order(tmp_path):
    """Blocks run in README order in one folder, so later blocks can use what earlier ones wrote."""
    for i, (kind, code) in enumerate(BLOCKS):
        if kind == "python":
            script = tmp_path / f"block_{i}.py"
            script.write_text(code)
            out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, f"README python block {i} failed:\n{code}\n{out.stderr[-3000:]}"
            continue
        for line in code.splitlines():
            command = line.split("#", 1)[0].strip()
            if not command:
                continue
            argv = shlex.split(command)
            if argv[0] == "make":
                argv = ["make", "-n", "-C", str(REPO), *argv[1:]]
            out = subprocess.run(argv, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, f"README command failed: {command}\n{out.stderr[-3000:]}"
    assert (tmp_path / "runs" / "quick" / "final_model.zip").is_file()
    assert (tmp_path / "runs" / "quick" / "eval" / "metrics.json").is_file()
    assert (tmp_path / "runs" / "readme" / "model.zip").is_file()


def test_readme_image_exists():
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (REPO / "README.md").read_text()):
        assert (REPO / target).is_file(), target
