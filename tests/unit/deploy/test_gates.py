"""The gates that fail a deploy stage (mmloop.deploy.gates): the tolerance per precision, the
deployed model against PyTorch, and the torch-free runtime against mmdeploy's backend model."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmloop.core.stage import StageError
from mmloop.deploy import gates

METRICS = Path("metrics/deploy/onnxruntime-int8.json")


def test_tolerance_per_precision() -> None:
    tolerance = {"fp32": {"map_delta": 0.1, "max_abs_diff": 1e-4}, "int8": {"map_delta": 1.0, "max_abs_diff": None}}
    assert gates.check_tolerance("fp32", tolerance) == (0.1, 1e-4)
    assert gates.check_tolerance("int8", tolerance) == (1.0, None)
    with pytest.raises(StageError, match="deploy.tolerance.fp16.map_delta"):
        gates.check_tolerance("fp16", tolerance)


def test_parity_gate() -> None:
    report = {"mAP_delta": -0.05, "max_abs_diff": 5e-5}
    gates.check_parity(report, METRICS, "fp32", 0.1, 1e-4)  # within both: passes
    gates.check_parity({"mAP_delta": 0.5, "max_abs_diff": 3.0}, METRICS, "int8", 1.0, None)  # no max_abs_diff bar
    with pytest.raises(StageError) as error:
        gates.check_parity({"mAP_delta": -0.25, "max_abs_diff": 5e-5}, METRICS, "fp32", 0.1, 1e-4)
    assert str(error.value) == (
        f"{METRICS}: mAP delta -0.250 exceeds deploy.tolerance.fp32.map_delta 0.1; "
        "the deployed model is not accurate enough"
    )
    with pytest.raises(StageError) as error:
        gates.check_parity({"mAP_delta": 0.0, "max_abs_diff": 2.5e-4}, METRICS, "fp32", 0.1, 1e-4)
    assert str(error.value) == (
        f"{METRICS}: head outputs differ from PyTorch by up to 2.50e-04, over deploy.tolerance.fp32.max_abs_diff 0.0001"
    )


def test_runtime_gate() -> None:
    report = {"frames": 4, "runtime_mAP": 30.0, "runtime_mAP_delta": 0.0, "runtime_frames_disagreeing": [1, 3]}
    with pytest.raises(
        StageError,
        match=r"^metrics/deploy/onnxruntime-int8.json: mmloop_runtime's boxes differ "
        r"from mmdeploy's on 2 of 4 frames \(split indices \[1, 3\]",
    ):
        gates.check_runtime(METRICS, report, 0.1, 1e-3)
    report["runtime_frames_disagreeing"], report["runtime_mAP_delta"] = [], -0.2
    with pytest.raises(StageError, match=r"mAP differs from mmdeploy's by -0.200, over deploy.runtime_tolerance"):
        gates.check_runtime(METRICS, report, 0.1, 1e-3)
    report["runtime_mAP_delta"] = 0.05
    gates.check_runtime(METRICS, report, 0.1, 1e-3)
    gates.check_runtime(METRICS, {"frames": 4}, 0.1, 1e-3)  # no runtime columns: nothing to check
    assert gates.runtime_tolerance({"map_delta": 0.1, "box_abs_diff": 1e-3}) == (0.1, 1e-3)
    with pytest.raises(StageError, match=r"deploy.runtime_tolerance needs map_delta and box_abs_diff"):
        gates.runtime_tolerance(None)


def test_no_manifest_means_no_runtime_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    onnx_dir, out = tmp_path / "onnx", tmp_path / "out"
    onnx_dir.mkdir()
    out.mkdir()
    assert gates.runtime_detector("onnxruntime-fp32", onnx_dir, out) is None
    assert "manifest.json missing" in capsys.readouterr().out and not list(out.iterdir())
