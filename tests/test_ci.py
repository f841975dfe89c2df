"""The README's test command (what .ci/run calls) fails when a test fails and passes when tests pass."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_run_is_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]
    script = [line.split("#")[0].strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
              if line and not line.startswith("#")]
    # the README's two commands, the demo first: the demo test reads the run it made (UNIQA_DEMO_RUN)
    assert script[-2:] == ["make demo", "UNIQA_DEMO_RUN=runs/demo make test"] and "set -euo pipefail" in script


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("body, ok", [("assert 1 + 1 == 3", False), ("assert 1 + 1 == 2", True)])
def test_make_test_exit_code_follows_the_tests(tmp_path, body, ok):
    test_file = tmp_path / "test_probe.py"
    test_file.write_text(f"def test_probe():\n    {body}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    result = subprocess.run(
        ["make", "-s", "test", f"PYTEST_ARGS={test_file} -p no:cacheprovider --rootdir={tmp_path}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=220,
    )
    assert (result.returncode == 0) is ok, result.stdout[-2000:] + result.stderr[-2000:]
    assert ("1 passed" if ok else "1 failed") in result.stdout
