"""The Helm chart, checked by scripts/check-helm (a real helm and kubernetes-validate)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check-helm"
# scripts/check-helm exits with this when it cannot fetch its tools (offline, nothing cached).
EXIT_TOOLS = 3
TIMEOUT_SECONDS = 600


def test_check_helm_passes() -> None:
    """scripts/check-helm passes: lint, renderings validated, config loads, bad values refused."""
    result = subprocess.run(
        [str(SCRIPT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    output = result.stdout + result.stderr
    if result.returncode == EXIT_TOOLS:
        reason = "scripts/check-helm could not fetch helm or its tools: " + output.strip()
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: the chart check may not be skipped)")
        pytest.skip(reason)
    assert result.returncode == 0, output
