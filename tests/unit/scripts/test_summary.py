"""scripts/summary.py, what `make demo` ends with: the committed metrics in a terminal's width."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

SCRIPT = REPO / "scripts" / "summary.py"


def summary(root: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root)], capture_output=True, text=True)


def test_the_summary_fits_a_terminal_and_has_the_committed_figures() -> None:
    result = summary()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, lines
    metrics = json.loads((REPO / "metrics" / "eval.json").read_text())
    for name in ("Pedestrian", "Cyclist", "Car"):
        row = next(line.split() for line in lines if line.split()[:1] == [name])
        assert row[1:] == [f"{metrics[name]['3d']['moderate']:.2f}", f"{metrics[name]['bev']['moderate']:.2f}"]
    for path in sorted((REPO / "metrics" / "deploy").glob("*.json")):
        if "." in path.stem:
            continue
        report = json.loads(path.read_text())
        row = next(line.split() for line in lines if line.split()[:1] == [path.stem])
        assert row[1:3] == [f"{report['mAP']:.2f}", f"{report['mAP_delta']:+.2f}"]
    assert any("metrics/bev/" in line for line in lines) and any("dvc_plots/index.html" in line for line in lines)


def test_missing_metrics_fail_in_one_line(tmp_path: Path) -> None:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    result = summary(tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert (
        result.stderr.strip()
        == "mmloop summary: error: metrics/eval.json: not found; run `dvc repro` (or `dvc pull`) first"
    )
