"""The deploy stage's fast failures (`python -m stages.deploy`): a TensorRT target without TensorRT
fails at once, in one line, before any model or deploy param is read (only the host settings every
stage pins first, params.yaml `train`); an unknown target names the known ones."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO


def run_deploy(target: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    (cwd / "params.yaml").write_text("train: {deterministic: true, threads: 2}\n")
    return subprocess.run(
        [sys.executable, "-m", "stages.deploy", "--target", target],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_tensorrt_target_without_tensorrt_fails_at_once_in_one_line(tmp_path: Path) -> None:
    """No TensorRT here (CI, this CPU machine): one line saying what to install, nothing written.
    (tests/unit/deploy/tensorrt/test_engine.py covers the no-GPU and too-old-TensorRT lines with fake modules.)"""
    pytest.importorskip("torch")
    if subprocess.run([sys.executable, "-c", "import tensorrt"], capture_output=True).returncode == 0:
        pytest.skip("TensorRT is installed here")
    start = time.monotonic()
    result = run_deploy("tensorrt-fp16", tmp_path)  # no deploy params, no model: it must not get that far
    assert time.monotonic() - start < 60
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mmloop deploy: error: deploy target tensorrt-fp16: TensorRT is not installed")
    assert "pip install tensorrt-cu12" in lines[0]
    assert [path.name for path in tmp_path.iterdir()] == ["params.yaml"]


def test_unknown_target_fails_in_one_line(tmp_path: Path) -> None:
    result = run_deploy("onnxruntime-fp16", tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "mmloop deploy: error: params.yaml: deploy.targets has 'onnxruntime-fp16'; use some of "
        "onnxruntime-fp32, onnxruntime-int8, openvino-fp32, openvino-int8, tensorrt-fp32, tensorrt-fp16, tensorrt-int8"
    ]
