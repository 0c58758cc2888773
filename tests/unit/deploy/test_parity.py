"""The arithmetic of a deployed model's reports (mmloop.deploy.parity): mAP beside PyTorch's and
parity; latency and its ratio, apart; and the runtime's boxes against mmdeploy's, frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from mmloop.datasets.kitti.metric import PREFIX, kitti_summary
from mmloop.deploy.parity import Comparison, Side, comparison_report, detection_agreement, latency_report, significant
from mmloop_runtime import Detections


def kitti_metrics(map_3d: float, map_bev: float, car: float) -> dict[str, float]:
    metrics = {PREFIX + "Overall_3D_AP40_moderate": map_3d, PREFIX + "Overall_BEV_AP40_moderate": map_bev}
    for kind in ("3D", "BEV"):
        for level in ("easy", "moderate", "hard"):
            metrics[PREFIX + f"Car_{kind}_AP40_{level}_strict"] = car
    return metrics


def test_comparison_report_arithmetic() -> None:
    comparison = Comparison(
        frames=3,
        pytorch=Side(kitti_metrics(30.0, 35.0, 70.0), [0.040, 0.050, 0.060]),
        deployed=Side(kitti_metrics(29.5, 35.25, 69.0), [0.010, 0.030, 0.020]),
        max_abs_diff={"cls_score0": 2e-5, "bbox_pred0": 7.0312e-5, "dir_cls_pred0": 1e-6},
    )
    report = comparison_report(comparison, ["Car"], kitti_summary)
    assert report["mAP"] == 29.5 and report["mAP_pytorch"] == 30.0 and report["mAP_delta"] == -0.5
    assert report["mAP_bev_delta"] == 0.25
    assert report["max_abs_diff"] == 7.0e-5 and report["max_abs_diff_by_output"]["bbox_pred0"] == 7.0e-5
    assert report["ap_3d_moderate"] == {"Car": 69.0}
    assert not any("latency" in key for key in report)  # apart: it is what differs from run to run
    latency = latency_report(comparison)
    assert latency == {"latency_ms": 20.0, "latency_ms_pytorch": 50.0, "latency_ratio": 0.4}


def test_significant_keeps_two_digits_so_last_bit_noise_does_not_show() -> None:
    # The fp32 parity of one model measured with ONNX Runtime on 1 and on 2 threads.
    assert significant(1.9431114196777344e-05) == significant(1.9371509552001953e-05) == 1.9e-05
    assert significant(3.231062889099121) == significant(3.231062412261963) == 3.2
    assert significant(0.0) == 0.0 and significant(1.0e-4) == 1.0e-4


def frame(boxes: list[list[float]], scores: list[float], labels: list[int]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 7), np.array(scores, np.float32), np.array(labels))


def test_detection_agreement() -> None:
    box = [10.0, 2.0, -1.0, 4.0, 1.6, 1.5, 0.3]
    other = [20.0, -2.0, -1.0, 0.8, 0.6, 1.7, 1.2]
    mmdeploy = [
        frame([box, other], [0.9, 0.5], [2, 0]),
        frame([box], [0.9], [2]),
        frame([], [], []),
        frame([box], [0.7], [2]),
    ]
    shifted = [v + (5e-4 if i == 0 else 0) for i, v in enumerate(box)]
    runtime = [
        frame([other, shifted], [0.5, 0.9], [0, 2]),  # other order, within 1e-3: agrees
        frame([box], [0.9], [1]),  # another label
        frame([], [], []),  # nothing found by either: agrees
        frame([[v + 0.01 for v in box]], [0.7], [2]),
    ]  # a box 1 cm off
    agreement = detection_agreement(mmdeploy, runtime, 1e-3)
    assert agreement["frames_agreeing"] == 2 and agreement["frames_disagreeing"] == [1, 3]
    assert agreement["boxes"] == 4 and agreement["box_max_abs_diff"] == pytest.approx(0.01, abs=1e-6)
