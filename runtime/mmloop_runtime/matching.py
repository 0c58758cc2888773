"""KITTI's matching of one frame's predictions to its ground truth, in numpy: what a BEV picture counts.

``match_frame`` replays mmdet3d 1.4's ``kitti_utils/eval.py`` (``clean_data`` and
``compute_statistics_jit`` with ``compute_fp=True``) on one frame, class by class, at one setting:

- overlap: bird's-eye IoU of the rotated footprints (``nms.rotated_iou``, mmcv's kernel); a match
  needs IoU *above* the class's KITTI threshold (Car 0.7, Pedestrian 0.5, Cyclist 0.5). With the
  frame's calibration the footprints are KITTI's, in the camera frame (x, z, l, w, ry): lidar2cam
  turns centres by a fraction of a degree but not yaws, which moves IoUs by up to ~1e-4;
- difficulty "hard", KITTI's loosest level (it holds easy and moderate). Ground truth more than
  50 % truncated, occluded level 3 (unknown) or at most 25 px tall in the image is *ignored*, and
  so are Vans for Car and Person_sitting for Pedestrian: a prediction on one is neither a true nor
  a false positive, and finding none is no miss. Predictions under 25 px tall in the image are
  ignored the same way, and so are those KittiMetric never scores (outside the image or its range);
- score: predictions below ``score_thr`` take no part (KITTI's ``thresh``).

Each ground truth takes, in label order, the free prediction of its class with the highest IoU (an
ignored one only if no other overlaps enough); the rest are false positives. DontCare plays no part
(KITTI uses it for 2D boxes only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

from . import kitti  # its label_lines helpers: KittiMetric's image and range filter
from .kitti import KITTI_PCD_LIMIT_RANGE, Calib, camera_to_lidar, lidar_to_camera, read_text
from .nms import rotated_iou

#: KITTI's official ("strict") IoU thresholds; a class KITTI does not know gets 0.5.
KITTI_MIN_IOU = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}
#: Ground-truth types KITTI ignores for a class instead of leaving them out (a Car on a Van is no FP).
KITTI_NEIGHBOURS = {"Van": "Car", "Person_sitting": "Pedestrian"}
#: KITTI's "hard" level: the most a ground truth may be occluded (0-3) and truncated (0-1), and the
#: image height in pixels it must exceed; predictions must be at least that tall.
HARD_MAX_OCCLUSION = 2
HARD_MAX_TRUNCATION = 0.5
HARD_MIN_HEIGHT = 25.0


class Outcome(IntEnum):
    TP = 0  # a prediction that found a ground truth, or a ground truth that was found
    FP = 1
    MISS = 2  # a ground truth no prediction found
    IGNORED = 3  # counts neither way (module docstring)
    BELOW = 4  # a prediction under the score threshold


@dataclass(frozen=True)
class Truth:
    """One frame's ground truth: LiDAR boxes (N, 7) and class indices; ``ignored``, KITTI's flags
    (``kitti_truth``; None: none), and ``calib``, to measure overlaps in the camera frame as KITTI does."""

    boxes: np.ndarray
    labels: np.ndarray
    ignored: np.ndarray | None = None
    calib: Calib | None = None


@dataclass(frozen=True)
class FrameMatch:
    """The outcome of every prediction and ground truth of a frame (``Outcome`` values)."""

    predictions: np.ndarray
    truth: np.ndarray
    pred_labels: np.ndarray
    gt_labels: np.ndarray
    score_thr: float

    def counts(self, label: int | None = None) -> tuple[int, int, int]:
        """(true positives, false positives, misses), of one class index or of all."""
        pred = self.predictions if label is None else self.predictions[self.pred_labels == label]
        truth = self.truth if label is None else self.truth[self.gt_labels == label]
        return int((pred == Outcome.TP).sum()), int((pred == Outcome.FP).sum()), int((truth == Outcome.MISS).sum())

    def caption(self, class_names: Sequence[str]) -> str:
        tp, fp, misses = self.counts()
        thresholds = ", ".join(f"{KITTI_MIN_IOU.get(name, 0.5)} {name}" for name in class_names)
        return (
            f"score >= {self.score_thr:.2f}: {tp} TP, {fp} FP, {misses} missed "
            f"(KITTI hard, BEV IoU > {thresholds}; {int((self.truth == Outcome.IGNORED).sum())} GT ignored)"
        )


def match_frame(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    truth: Truth,
    class_names: Sequence[str],
    score_thr: float = 0.0,
    pred_ignored: np.ndarray | None = None,
) -> FrameMatch:
    """KITTI's outcome for each of a frame's predictions (LiDAR boxes (M, 7+), scores, class indices)
    and each ground truth, at BEV IoU, difficulty hard and ``score_thr`` (module docstring)."""
    scores, labels = np.asarray(scores, np.float64).reshape(-1), np.asarray(labels, np.int64).reshape(-1)
    gt_labels = np.asarray(truth.labels, np.int64).reshape(-1)
    ignored_pred = np.zeros(len(scores), bool) if pred_ignored is None else np.asarray(pred_ignored, bool)
    ignored_gt = np.zeros(len(gt_labels), bool) if truth.ignored is None else np.asarray(truth.ignored, bool)
    predictions = np.where(scores < score_thr, Outcome.BELOW, Outcome.IGNORED).astype(np.int64)
    outcomes = np.full(len(gt_labels), int(Outcome.IGNORED), np.int64)
    # KITTI compares float32 IoUs as float64 with its thresholds.
    overlaps = rotated_iou(_footprints(boxes, truth.calib), _footprints(truth.boxes, truth.calib)).astype(np.float64)
    taken = np.zeros(len(scores), bool)
    for label, min_iou in enumerate(KITTI_MIN_IOU.get(name, 0.5) for name in class_names):
        candidates = np.flatnonzero((labels == label) & (predictions != Outcome.BELOW))
        for gt in np.flatnonzero(gt_labels == label):
            best, best_iou, best_ignored = -1, 0.0, False
            for pred in candidates:
                iou = overlaps[pred, gt]
                if taken[pred] or iou <= min_iou:
                    continue
                if not ignored_pred[pred] and (iou > best_iou or best_ignored):
                    best, best_iou, best_ignored = pred, iou, False
                elif ignored_pred[pred] and best < 0:
                    best, best_ignored = pred, True
            if best < 0:
                outcomes[gt] = Outcome.IGNORED if ignored_gt[gt] else Outcome.MISS
                continue
            taken[best] = True
            if not (ignored_gt[gt] or ignored_pred[best]):
                outcomes[gt] = predictions[best] = Outcome.TP
        left_over = candidates[~taken[candidates] & ~ignored_pred[candidates]]
        predictions[left_over] = Outcome.FP
    return FrameMatch(predictions, outcomes, labels, gt_labels, float(score_thr))


def _footprints(boxes: np.ndarray, calib: Calib | None) -> np.ndarray:
    """The (x, y, w, h, angle) boxes rotated_iou takes (angles turning x towards y)."""
    lidar = kitti._as_boxes(boxes)
    if calib is None:
        return lidar[:, [0, 1, 3, 4, 6]]
    # KITTI's camera footprint (x, z, l, w, ry) turns the other way; mirrored in z it is rotated_iou's.
    cam = lidar_to_camera(lidar, calib)
    return np.column_stack([cam[:, 0], -cam[:, 2], cam[:, 3], cam[:, 5], cam[:, 6]])


def kitti_truth(
    names: Sequence[str],
    boxes_cam: np.ndarray,
    truncated: np.ndarray,
    occluded: np.ndarray,
    image_boxes: np.ndarray,
    calib: Calib,
    class_names: Sequence[str],
) -> Truth:
    """A frame's KITTI objects (label_2 fields: type, truncated, occluded, 2D box, camera box) as the
    ground truth ``match_frame`` takes: ``class_names`` and their KITTI neighbours, in label order."""
    rows, labels, ignored = [], [], []
    for i, name in enumerate(names):
        target = KITTI_NEIGHBOURS.get(name, name)
        if target not in class_names:
            continue  # DontCare, Truck, Misc, ...: KITTI leaves them out of every class
        height = image_boxes[i][3] - image_boxes[i][1]
        hard = occluded[i] > HARD_MAX_OCCLUSION or truncated[i] > HARD_MAX_TRUNCATION or height <= HARD_MIN_HEIGHT
        rows.append(i)
        labels.append(list(class_names).index(target))
        ignored.append(bool(hard or target != name))
    cam = np.asarray(boxes_cam, np.float64).reshape(-1, 7)[rows]
    return Truth(camera_to_lidar(cam, calib), np.array(labels, np.int64), np.array(ignored, bool), calib)


def read_label_truth(path: str | Path, calib: Calib, class_names: Sequence[str]) -> Truth:
    """``kitti_truth`` of a KITTI ``label_2/*.txt``."""
    path = Path(path)
    fields = [(number, line.split()) for number, line in enumerate(read_text(path).splitlines(), 1) if line.strip()]
    for number, row in fields:
        if len(row) < 15:
            raise ValueError(f"{path}:{number}: {len(row)} fields, a KITTI label line has 15; fix the label file")
    fields = [row for _, row in fields]
    values = np.array([[float(value) for value in row[1:15]] for row in fields], np.float64).reshape(-1, 14)
    height, width, length = values[:, 7], values[:, 8], values[:, 9]
    boxes_cam = np.column_stack([values[:, 10:13], length, height, width, values[:, 13]])
    names = [row[0] for row in fields]
    return kitti_truth(names, boxes_cam, values[:, 0], values[:, 1], values[:, 3:7], calib, class_names)


def kitti_ignored_predictions(
    boxes: np.ndarray,
    calib: Calib,
    image_shape: tuple[int, int] | None = None,
    pcd_limit_range: Sequence[float] = KITTI_PCD_LIMIT_RANGE,
) -> np.ndarray:
    """Which LiDAR-frame predictions KITTI (hard) does not score: outside KittiMetric's image and range
    filter, or under 25 px tall clipped to the image (no image shape: ``label_lines``' rule, unclipped)."""
    lidar = kitti._as_boxes(boxes)
    cam = lidar_to_camera(lidar, calib)
    image_boxes = kitti._image_boxes(cam, calib.P2)
    if image_shape is None:
        kept = cam[:, 2] > 0
    else:
        kept = kitti._in_image(image_boxes, image_shape) & kitti._in_range(lidar, pcd_limit_range)
        image_boxes[:, 1] = np.maximum(image_boxes[:, 1], 0)
        image_boxes[:, 3] = np.minimum(image_boxes[:, 3], image_shape[0])
    return ~kept | (image_boxes[:, 3] - image_boxes[:, 1] < HARD_MIN_HEIGHT)
