"""scripts/progress.py: `make setup`'s mmcv build shows it is alive (elapsed time and ninja's
latest step), stays quiet otherwise, and shows the build's last lines only when it fails."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO

PROGRESS = REPO / "scripts" / "progress.py"


def run(every: float, script: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        str(PROGRESS),
        "--label",
        "mmcv 2.1.0",
        "--every",
        str(every),
        "--",
        "bash",
        "-c",
        script,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_progress_lines_while_it_runs_then_done() -> None:
    result = run(0.3, 'for i in 1 2 3; do echo "[$i/3] c++ -c op$i.cpp"; sleep 0.5; done')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 3 and all(line.startswith("  mmcv 2.1.0: ") for line in lines)
    assert any(", compiled " in line and line.endswith("/3") for line in lines[:-1])
    assert lines[-1].startswith("  mmcv 2.1.0: done in 0 min ")
    assert "c++ -c" not in result.stdout  # the build's own lines stay out of the way


def test_a_failed_build_shows_its_last_lines_and_its_exit_status() -> None:
    result = run(10, "echo compiling op.cpp; echo 'fatal error: Python.h: No such file'; exit 3")
    assert result.returncode == 3
    assert "fatal error: Python.h" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("  mmcv 2.1.0: failed after 0 min ")
