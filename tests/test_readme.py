"""The README's code runs as written."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- snippet: start -->\s*```python\n(.*?)```\s*<!-- snippet: end -->", text, re.S)
    assert block, "the README lost its tested snippet markers"
    return block.group(1)


def test_readme_snippet_runs_in_a_plain_torchrl_pipeline():
    result = subprocess.run([sys.executable, "-c", readme_snippet()], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loss_actor" in result.stdout and "loss_qvalue" in result.stdout


def test_readme_test_command_is_what_ci_runs():
    assert "bash scripts/test.sh" in (ROOT / "README.md").read_text()
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
