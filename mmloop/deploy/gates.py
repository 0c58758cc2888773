"""How far a deployed model may drift, and the checks that fail a deploy stage when it does:
against PyTorch (`deploy.tolerance`), and the torch-free runtime against mmdeploy's backend model
on the same file (`deploy.runtime_tolerance`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmloop.core.stage import StageError


@dataclass(frozen=True)
class Tolerances:
    """A target's bars: mAP points and head-output difference against PyTorch (None: not checked),
    and the runtime's mAP points and box value difference against mmdeploy's backend model."""

    map_delta: float
    max_abs_diff: float | None
    runtime_map_delta: float
    runtime_box_abs_diff: float


def tolerances(params: dict[str, Any], precision: str) -> Tolerances:
    """params.yaml `deploy.tolerance.<precision>` and `deploy.runtime_tolerance`, checked."""
    map_delta, max_abs_diff = check_tolerance(precision, params["tolerance"])
    runtime_map_delta, runtime_box_abs_diff = runtime_tolerance(params.get("runtime_tolerance"))
    return Tolerances(map_delta, max_abs_diff, runtime_map_delta, runtime_box_abs_diff)


def check_report(report: dict[str, Any], metrics: Path, precision: str, limits: Tolerances) -> None:
    """Every gate of a deploy stage on its written report: parity with PyTorch, then the runtime."""
    check_parity(report, metrics, precision, limits.map_delta, limits.max_abs_diff)
    check_runtime(metrics, report, limits.runtime_map_delta, limits.runtime_box_abs_diff)


def check_tolerance(precision: str, tolerance: dict[str, Any]) -> tuple[float, float | None]:
    """(max mAP delta, max head-output difference or None) for the target's precision."""
    limits = tolerance.get(precision)
    if not isinstance(limits, dict) or not isinstance(limits.get("map_delta"), (int, float)):
        raise StageError(
            f"params.yaml: deploy.tolerance.{precision}.map_delta is missing; "
            f"add it (mAP points the {precision} model may lose)"
        )
    max_abs = limits.get("max_abs_diff")
    return float(limits["map_delta"]), None if max_abs is None else float(max_abs)


def runtime_tolerance(tolerance: Any) -> tuple[float, float]:
    """(max mAP delta, max box value difference) between the runtime and mmdeploy's backend model."""
    if not isinstance(tolerance, dict) or not all(
        isinstance(tolerance.get(key), (int, float)) for key in ("map_delta", "box_abs_diff")
    ):
        raise StageError(
            "params.yaml: deploy.runtime_tolerance needs map_delta and box_abs_diff numbers "
            "(e.g. {map_delta: 0.1, box_abs_diff: 1.0e-3})"
        )
    return float(tolerance["map_delta"]), float(tolerance["box_abs_diff"])


def check_parity(
    report: dict[str, Any], metrics: Path, precision: str, map_delta: float, max_abs_diff: float | None
) -> None:
    """The deployed model is as accurate as PyTorch, within `deploy.tolerance.<precision>`."""
    if abs(report["mAP_delta"]) > map_delta:
        raise StageError(
            f"{metrics}: mAP delta {report['mAP_delta']:+.3f} exceeds deploy.tolerance."
            f"{precision}.map_delta {map_delta}; the deployed model is not accurate enough"
        )
    if max_abs_diff is not None and report["max_abs_diff"] > max_abs_diff:
        raise StageError(
            f"{metrics}: head outputs differ from PyTorch by up to {report['max_abs_diff']:.2e}, "
            f"over deploy.tolerance.{precision}.max_abs_diff {max_abs_diff:g}"
        )


def runtime_detector(target_name: str, onnx_dir: Path, out: Path, threads: int = 0) -> Any | None:
    """mmloop_runtime's Detector on the built folder (None when the export wrote no manifest),
    running `threads` intra-op threads (0: one per core)."""
    from mmloop_runtime import Detector
    from mmloop_runtime.manifest import MANIFEST

    if not (onnx_dir / MANIFEST).is_file():
        print(
            f"mmloop deploy@{target_name}: {onnx_dir / MANIFEST} missing (see metrics/export.json): "
            f"the runtime is not checked",
            flush=True,
        )
        return None
    shutil.copyfile(onnx_dir / MANIFEST, out / MANIFEST)
    try:
        return Detector(out, threads=threads)
    except RuntimeError as error:  # TensorRT targets: the runtime's own engine loader
        raise StageError(f"deploy target {target_name}: mmloop_runtime cannot run the engine: {error}") from None


def check_runtime(metrics: Path, report: dict[str, Any], map_delta: float, box_abs_diff: float) -> None:
    """The runtime gives the same boxes as mmdeploy's backend model, and the same mAP."""
    if "runtime_mAP" not in report:
        return
    disagreeing = report["runtime_frames_disagreeing"]
    if disagreeing:
        raise StageError(
            f"{metrics}: mmloop_runtime's boxes differ from mmdeploy's on {len(disagreeing)} of "
            f"{report['frames']} frames (split indices {disagreeing}: another box count or label, or a "
            f"box value off by more than deploy.runtime_tolerance.box_abs_diff {box_abs_diff:g})"
        )
    if abs(report["runtime_mAP_delta"]) > map_delta:
        raise StageError(
            f"{metrics}: mmloop_runtime's mAP differs from mmdeploy's by "
            f"{report['runtime_mAP_delta']:+.3f}, over deploy.runtime_tolerance.map_delta {map_delta:g}"
        )


def summary_lines(name: str, report: dict[str, Any], out: Path, metrics: Path) -> list[str]:
    """What the deploy stage prints: the deployed model beside PyTorch, and the runtime beside it."""
    lines = [
        f"mmloop deploy@{name}: mAP {report['mAP']:.2f} (PyTorch {report['mAP_pytorch']:.2f}, "
        f"delta {report['mAP_delta']:+.2f}), max |d| of head outputs {report['max_abs_diff']:.2e}, "
        f"latency {report['latency_ms']:.1f} ms vs {report['latency_ms_pytorch']:.1f} ms "
        f"(ratio {report['latency_ratio']:.2f}); wrote {out}/ and {metrics}"
    ]
    if "runtime_mAP" in report:
        steps = ", ".join(f"{step} {ms:.1f}" for step, ms in report["runtime_latency_ms"].items())
        lines.append(
            f"mmloop deploy@{name}: mmloop_runtime mAP {report['runtime_mAP']:.2f} (delta "
            f"{report['runtime_mAP_delta']:+.2f} vs mmdeploy), {report['runtime_frames_agreeing']}/"
            f"{report['frames']} frames with the same boxes (max |d| {report['runtime_box_max_abs_diff']:.1e}), "
            f"latency ms: {steps} (ratio {report['runtime_latency_ratio']:.2f} vs mmdeploy)"
        )
    return lines
