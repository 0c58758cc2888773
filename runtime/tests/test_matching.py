"""The BEV pictures' counts are KITTI's: true positives, false positives and misses per class as
mmdet3d's kitti_utils/eval.py counts them (BEV IoU, difficulty hard, a score threshold)."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import committed_output, kittimetric_for_frame

from mmloop_runtime import kitti, matching
from mmloop_runtime.matching import Outcome, Truth

FRAMES = [f"{i:06d}" for i in range(6)]
CLASS_NAMES = ["Pedestrian", "Cyclist", "Car"]
#: kitti_utils/eval.py's class indices (clean_data's CLASS_NAMES) and BEV thresholds (kitti_eval's overlap_0_7).
KITTI_CLASS = {"Car": 0, "Pedestrian": 1, "Cyclist": 2}
KITTI_BEV_IOU = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}
HARD = 2
BEV = 1
#: Extra objects for frame 000003 (a car 13 m ahead): a Van and a Person_sitting (ignored for Car and
#: Pedestrian), a car more than half truncated and one at most 25 px tall (ignored at hard), a
#: pedestrian occluded level 1 (counted at hard).
EXTRA_LABELS = """\
Van 0.00 0 1.55 300.00 170.00 380.00 230.00 2.10 1.90 4.80 -4.00 1.80 16.00 1.62
Person_sitting 0.00 0 1.55 700.00 170.00 730.00 230.00 1.20 0.60 0.80 3.00 1.60 9.00 0.20
Car 0.60 0 1.55 0.00 170.00 90.00 260.00 1.50 1.70 4.00 -8.00 1.70 20.00 1.57
Car 0.00 0 1.55 500.00 180.00 540.00 205.00 1.50 1.70 4.00 -2.00 1.70 30.00 1.57
Pedestrian 0.00 1 1.55 800.00 160.00 830.00 240.00 1.80 0.60 0.80 5.00 1.70 12.00 0.00
"""


def frame_calib(kitti_real: Path, frame_id: str) -> kitti.Calib:
    return kitti.read_calib(kitti_real / "training" / "calib" / f"{frame_id}.txt")


def image_shape(kitti_real: Path, frame_id: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(kitti_real / "training" / "image_2" / f"{frame_id}.png") as image:
        return image.height, image.width


def constructed_predictions(truth: Truth, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ground truth a close copy, a looser duplicate and a copy about a box width off (some with
    the wrong class), plus boxes all round the car: in and out of the image, near and far (small)."""
    rng = np.random.default_rng(seed)
    rows, scores, labels = [], [], []
    for box, label in zip(truth.boxes, truth.labels):
        for spread in (0.05, 0.3, 0.9):
            copy = box.copy()
            copy[:2] += rng.normal(0, spread, 2)
            copy[3:6] *= rng.uniform(0.85, 1.15, 3)
            copy[6] += rng.normal(0, 0.15 * spread)
            rows.append(copy)
            scores.append(rng.uniform(0.05, 1.0))
            labels.append(label if rng.random() > 0.2 else rng.integers(len(CLASS_NAMES)))
    count = 30
    scattered = np.column_stack(
        [
            rng.uniform(-10, 75, count),
            rng.uniform(-30, 30, count),
            rng.uniform(-2.5, -1.0, count),
            rng.uniform(0.5, 4.5, count),
            rng.uniform(0.5, 2.0, count),
            rng.uniform(1.2, 2.0, count),
            rng.uniform(-math.pi, math.pi, count),
        ]
    )
    boxes = np.concatenate([np.array(rows).reshape(-1, 7), scattered]).astype(np.float32)
    scores = np.concatenate([scores, rng.uniform(0, 1, count)]).astype(np.float32)
    labels = np.concatenate([labels, rng.integers(0, len(CLASS_NAMES), count)]).astype(np.int64)
    return boxes, scores, labels


def kittimetric_detections(boxes, scores, labels, calib: kitti.Calib, shape) -> dict:
    """The detection anno KittiMetric builds for one frame (bbox2result_kitti: image and range filter)."""
    metric, prediction = kittimetric_for_frame(boxes, scores, labels, calib, shape)
    return metric.bbox2result_kitti([prediction], [0], CLASS_NAMES)[0]


def kitti_counts(gt_anno: dict, dt_anno: dict, name: str, score_thr: float) -> tuple[int, int, int]:
    """(tp, fp, fn) of one class on one frame: eval_class's steps (clean_data at difficulty hard,
    BEV overlaps, compute_statistics_jit with compute_fp) as fused_compute_statistics runs them."""
    kitti_eval = importlib.import_module("mmdet3d.evaluation.functional.kitti_utils.eval")
    overlaps = kitti_eval.calculate_iou_partly([dt_anno], [gt_anno], BEV, num_parts=1)[0][0]
    gt_datas, dt_datas, ignored_gts, ignored_dets, dontcares, _, _ = kitti_eval._prepare_data(
        [gt_anno], [dt_anno], KITTI_CLASS[name], HARD
    )
    tp, fp, fn, _, _ = kitti_eval.compute_statistics_jit(
        overlaps,
        gt_datas[0],
        dt_datas[0],
        ignored_gts[0],
        ignored_dets[0],
        dontcares[0],
        BEV,
        min_overlap=KITTI_BEV_IOU[name],
        thresh=score_thr,
        compute_fp=True,
    )
    return int(tp), int(fp), int(fn)


def compare_with_kitti_eval(
    kitti_real: Path, frame: str, label_file: Path, predictions: tuple, thresholds: tuple[float, ...]
) -> np.ndarray:
    """Assert our counts equal mmdet3d's for each class and threshold; return the outcomes seen
    (tp, fp, misses, ignored GT, ignored predictions), summed."""
    from mmloop.openmmlab.tools import import_tool

    get_label_anno = import_tool("dataset_converters.kitti_data_utils").get_label_anno
    calib, shape = frame_calib(kitti_real, frame), image_shape(kitti_real, frame)
    truth = matching.read_label_truth(label_file, calib, CLASS_NAMES)
    boxes, scores, labels = predictions
    ignored = matching.kitti_ignored_predictions(boxes, calib, shape)
    gt_anno, dt_anno = get_label_anno(str(label_file)), kittimetric_detections(boxes, scores, labels, calib, shape)
    seen = np.zeros(5, int)
    for score_thr in thresholds:
        match = matching.match_frame(boxes, scores, labels, truth, CLASS_NAMES, score_thr, ignored)
        for label, name in enumerate(CLASS_NAMES):
            assert match.counts(label) == kitti_counts(gt_anno, dt_anno, name, score_thr), (frame, name, score_thr)
        seen[:3] += match.counts()
        seen[3] += (match.truth == Outcome.IGNORED).sum()
        seen[4] += (match.predictions == Outcome.IGNORED).sum()
    return seen


@pytest.mark.fixtures
def test_counts_equal_mmdet3d_kitti_eval_on_constructed_predictions(kitti_real: Path, tmp_path: Path) -> None:
    extra = tmp_path / "000003.txt"
    extra.write_text((kitti_real / "training" / "label_2" / "000003.txt").read_text() + EXTRA_LABELS)
    frames = [(frame, kitti_real / "training" / "label_2" / f"{frame}.txt") for frame in FRAMES] + [("000003", extra)]
    seen = np.zeros(5, int)
    for seed, (frame, label_file) in enumerate(frames):
        truth = matching.read_label_truth(label_file, frame_calib(kitti_real, frame), CLASS_NAMES)
        predictions = constructed_predictions(truth, seed)
        seen += compare_with_kitti_eval(kitti_real, frame, label_file, predictions, (0.0, 0.3, 0.6))
    assert (seen > 0).all(), seen  # every kind of outcome was compared


@pytest.mark.fixtures
def test_counts_equal_mmdet3d_kitti_eval_on_the_committed_model(kitti_real: Path, tmp_path: Path) -> None:
    """The model `dvc pull` brings (trained on the synthetic sample) on the real frames: mostly false
    positives, some misses, boxes KITTI ignores, a true positive."""
    config, weights = committed_output("models/model.py", tmp_path), committed_output("models/model.pth", tmp_path)
    from mmdet3d.apis import inference_detector, init_model

    from mmloop.core.checkpoint import allow_checkpoint_types

    allow_checkpoint_types()  # weights-only, as the stages load it

    model = init_model(str(config), str(weights), device="cpu")
    seen = np.zeros(5, int)
    for frame in FRAMES:
        result, _ = inference_detector(model, str(kitti_real / "training" / "velodyne" / f"{frame}.bin"))
        pred = result.pred_instances_3d
        predictions = (pred.bboxes_3d.tensor.numpy(), pred.scores_3d.numpy(), pred.labels_3d.numpy())
        label_file = kitti_real / "training" / "label_2" / f"{frame}.txt"
        seen += compare_with_kitti_eval(kitti_real, frame, label_file, predictions, (0.1, 0.3, 0.5))
    assert (seen > 0).all(), seen


# ---- the rules, on boxes one can check by eye (LiDAR footprints, no calibration) --------------------

CAR, PEDESTRIAN = 2, 0


def car(x: float, y: float = 0.0, yaw: float = 0.0) -> list[float]:
    return [x, y, -1.6, 4.0, 2.0, 1.5, yaw]


def test_each_ground_truth_takes_the_best_overlap_not_the_best_score() -> None:
    truth = Truth(np.array([car(20.0)]), np.array([CAR]))
    # 0.2 m off (IoU 0.90) with 0.6, 0.6 m off (IoU 0.74, also a match) with 0.9, and one far away
    boxes = np.array([car(20.2), car(20.6), car(35.0)])
    match = matching.match_frame(boxes, [0.6, 0.9, 0.5], [CAR, CAR, CAR], truth, CLASS_NAMES, score_thr=0.3)
    assert match.predictions.tolist() == [Outcome.TP, Outcome.FP, Outcome.FP]
    assert match.truth.tolist() == [Outcome.TP]
    assert match.counts() == (1, 2, 0) and match.counts(PEDESTRIAN) == (0, 0, 0)
    assert match.caption(CLASS_NAMES) == (
        "score >= 0.30: 1 TP, 2 FP, 0 missed (KITTI hard, BEV IoU > 0.5 Pedestrian, 0.5 Cyclist, 0.7 Car; 0 GT ignored)"
    )


def test_below_the_score_threshold_or_of_another_class_finds_nothing() -> None:
    truth = Truth(np.array([car(20.0), car(10.0, 5.0)]), np.array([CAR, CAR]))
    boxes = np.array([car(20.1), car(10.1, 5.0)])
    match = matching.match_frame(boxes, [0.2, 0.9], [CAR, PEDESTRIAN], truth, CLASS_NAMES, score_thr=0.3)
    assert match.predictions.tolist() == [Outcome.BELOW, Outcome.FP]  # a pedestrian where a car is
    assert match.truth.tolist() == [Outcome.MISS, Outcome.MISS]
    assert match.counts() == (0, 1, 2)


def test_ignored_ground_truth_and_predictions_count_neither_way() -> None:
    truth = Truth(
        np.array([car(20.0), car(10.0, 5.0), car(30.0, -5.0)]), np.array([CAR] * 3), np.array([1, 0, 1], bool)
    )
    boxes = np.array([car(20.1), car(10.1, 5.0), car(40.0, 10.0)])
    # on an ignored GT; an ignored (too small) prediction on a counted GT; an ignored one on nothing
    match = matching.match_frame(boxes, [0.9] * 3, [CAR] * 3, truth, CLASS_NAMES, pred_ignored=[False, True, True])
    assert match.predictions.tolist() == [Outcome.IGNORED] * 3
    assert match.truth.tolist() == [Outcome.IGNORED] * 3  # the third: ignored and not found, so no miss
    assert match.counts() == (0, 0, 0)
    # a counted prediction beats an ignored one on the same GT, whatever their order
    boxes = np.array([car(10.05, 5.0), car(10.3, 5.0)])
    match = matching.match_frame(boxes, [0.9, 0.8], [CAR] * 2, truth, CLASS_NAMES, pred_ignored=[True, False])
    assert match.truth[1] == Outcome.TP and match.predictions.tolist() == [Outcome.IGNORED, Outcome.TP]


def test_kitti_truth_reads_difficulty_and_neighbours(kitti_real: Path, tmp_path: Path) -> None:
    label_file = tmp_path / "000003.txt"
    label_file.write_text((kitti_real / "training" / "label_2" / "000003.txt").read_text() + EXTRA_LABELS)
    calib = frame_calib(kitti_real, "000003")
    truth = matching.read_label_truth(label_file, calib, CLASS_NAMES)
    # the real car, then the extras; DontCare lines are left out
    assert truth.labels.tolist() == [CAR, CAR, PEDESTRIAN, CAR, CAR, PEDESTRIAN]
    assert truth.ignored.tolist() == [False, True, True, True, True, False]
    camera = np.array([[1.00, 1.75, 13.22, 4.15, 1.57, 1.73, 1.62]])  # the real car's label_2 box
    np.testing.assert_allclose(truth.boxes[:1], kitti.camera_to_lidar(camera, calib))
    assert truth.calib is calib
    bad = tmp_path / "bad.txt"
    bad.write_text("Car 0.00 0 1.55 614.24\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: 5 fields, a KITTI label line has 15; fix the label file"):
        matching.read_label_truth(bad, calib, CLASS_NAMES)


def test_kitti_ignored_predictions_are_out_of_view_or_small(kitti_real: Path) -> None:
    calib, shape = frame_calib(kitti_real, "000003"), image_shape(kitti_real, "000003")
    boxes = np.array([car(15.0), car(-10.0), car(20.0, 30.0), car(65.0)])  # ahead; behind; far left; far ahead
    assert matching.kitti_ignored_predictions(boxes, calib, shape).tolist() == [False, True, True, True]
    # without the image: in front of the camera is enough, heights unclipped
    assert matching.kitti_ignored_predictions(boxes, calib).tolist() == [False, True, False, True]
    assert matching.kitti_ignored_predictions(np.zeros((0, 7)), calib, shape).shape == (0,)
