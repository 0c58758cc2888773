"""From the graph's head maps to boxes: anchors, box decoding, direction, score threshold, NMS.

The numpy twin of mmdet3d's Anchor3DHead.predict_by_feat (what mmdeploy's VoxelDetectionModel
runs after the graph): AlignedAnchor3DRangeGenerator anchors, DeltaXYZWLHRBBoxCoder decoding,
top-`nms_pre` anchors by their best class score, per-class rotated BEV NMS (box3d_multiclass_nms
with nms_bev), the best `max_num`, and the direction classifier's half-turn. float32 throughout,
as mmdet3d computes it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from mmloop_runtime.manifest import Anchors, Head, TestSettings
from mmloop_runtime.nms import nms_rotated


class Detections(NamedTuple):
    """One frame's boxes in the LiDAR frame: (x, y, z of the bottom centre, dx, dy, dz, yaw)."""

    boxes: np.ndarray  # (K, 7) float32
    scores: np.ndarray  # (K,) float32
    labels: np.ndarray  # (K,) int64, index into the manifest's class_names


def empty_detections() -> Detections:
    return Detections(np.zeros((0, 7), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def _centres(low: float, high: float, count: int, align_corner: bool) -> np.ndarray:
    centres = np.linspace(np.float32(low), np.float32(high), count + 1, dtype=np.float32)
    if not align_corner:  # anchors sit in the middle of their cells
        centres = centres + (centres[1] - centres[0]) / np.float32(2)
    return centres[:count]


def _single_range(
    feature_hw: tuple[int, int],
    anchor_range: tuple[float, ...],
    sizes: np.ndarray,
    rotations: np.ndarray,
    align_corner: bool,
) -> np.ndarray:
    """Anchors of one range, (1, H, W, sizes, rotations, 7), in mmdet3d's memory order."""
    height, width = feature_hw
    x = _centres(anchor_range[0], anchor_range[3], width, align_corner)
    y = _centres(anchor_range[1], anchor_range[4], height, align_corner)
    z = _centres(anchor_range[2], anchor_range[5], 1, align_corner)
    shape = (1, height, width, len(sizes), len(rotations))
    grid_z, grid_y, grid_x, grid_r = np.meshgrid(z, y, x, rotations, indexing="ij")  # (1, H, W, R)
    anchors = np.empty((*shape, 7), np.float32)
    for axis, values in ((0, grid_x), (1, grid_y), (2, grid_z), (6, grid_r)):
        anchors[..., axis] = values[:, :, :, None, :]
    anchors[..., 3:6] = sizes[None, None, None, :, None, :]
    return anchors


@lru_cache(maxsize=8)
def anchor_grid(anchors: Anchors, feature_hw: tuple[int, int]) -> np.ndarray:
    """Every anchor of the feature map, (H * W * sizes * rotations, 7): the order of the head's channels."""
    rotations = np.asarray(anchors.rotations, np.float32)
    sizes = np.asarray(anchors.sizes, np.float32).reshape(-1, 3) * np.float32(anchors.scale)
    if anchors.size_per_range:
        per_range = [
            _single_range(feature_hw, anchor_range, size[None], rotations, anchors.align_corner)
            for anchor_range, size in zip(anchors.ranges, sizes)
        ]
        grid = np.concatenate(per_range, axis=-3)
    else:
        grid = _single_range(feature_hw, anchors.ranges[0], sizes, rotations, anchors.align_corner)
    grid.setflags(write=False)  # cached: shared by every frame
    return grid.reshape(-1, 7)


def decode_boxes(anchors: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """DeltaXYZWLHRBBoxCoder.decode: offsets scaled by the anchor's diagonal, sizes by exp."""
    xa, ya, za, wa, la, ha, ra = anchors.T
    xt, yt, zt, wt, lt, ht, rt = deltas.T
    za = za + ha / np.float32(2)
    diagonal = np.sqrt(la**2 + wa**2)
    hg = np.exp(ht) * ha
    boxes = np.stack(
        [xt * diagonal + xa, yt * diagonal + ya, zt * ha + za, np.exp(wt) * wa, np.exp(lt) * la, hg, rt + ra], axis=1
    )
    boxes[:, 2] -= hg / np.float32(2)
    return boxes


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.float32(1) / (np.float32(1) + np.exp(-logits))


def limit_period(value: np.ndarray, offset: float = 0.5, period: float = np.pi) -> np.ndarray:
    """mmdet3d's limit_period: wrap into [-offset * period, (1 - offset) * period), in the array's
    own precision (float32 here, as mmdet3d's tensors; float64 for the KITTI writer)."""
    kind = value.dtype.type
    return value - np.floor(value / kind(period) + kind(offset)) * kind(period)


def bev_for_nms(boxes: np.ndarray) -> np.ndarray:
    """(x, y, dx, dy, yaw) as nms_bev sees it: mmdet3d goes to corners (xywhr2xyxyr) and back,
    and the round trip's float32 rounding is kept so borderline overlaps decide the same way."""
    x, y, dx, dy, yaw = boxes[:, 0], boxes[:, 1], boxes[:, 3], boxes[:, 4], boxes[:, 6]
    half_w, half_h = dx / np.float32(2), dy / np.float32(2)
    x1, y1, x2, y2 = x - half_w, y - half_h, x + half_w, y + half_h
    return np.stack([(x1 + x2) / np.float32(2), (y1 + y2) / np.float32(2), x2 - x1, y2 - y1, yaw], axis=1)


def top_anchors(best_logits: np.ndarray, nms_pre: int) -> np.ndarray:
    """Indices of the `nms_pre` anchors with the best class score, best first (all when fewer).

    mmdet3d ranks sigmoid scores; the sigmoid is monotonic, so ranking logits picks the same
    anchors without a sigmoid over the whole map."""
    if nms_pre <= 0 or len(best_logits) <= nms_pre:
        return np.arange(len(best_logits))
    candidates = np.argpartition(-best_logits, nms_pre - 1)[:nms_pre]
    return candidates[np.argsort(-best_logits[candidates], kind="stable")]


def multiclass_nms(
    boxes: np.ndarray, scores: np.ndarray, directions: np.ndarray, test: TestSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """box3d_multiclass_nms: per class, boxes over score_thr, rotated BEV NMS; then the best max_num."""
    candidates, labels = [], []
    for label in range(scores.shape[1]):
        over = np.flatnonzero(scores[:, label] > np.float32(test.score_thr))
        candidates.append(over)
        labels.append(np.full(len(over), label, np.int64))
    index, label = np.concatenate(candidates), np.concatenate(labels)
    # One NMS call for every class (each class suppressed on its own), class by class as mmdet3d.
    keep = nms_rotated(bev_for_nms(boxes[index]), scores[index, label], test.nms_thr, groups=label)
    index, label = index[keep], label[keep]
    score = scores[index, label]
    if len(index) > test.max_num:
        best = np.argsort(-score, kind="stable")[: test.max_num]
        index, label, score = index[best], label[best], score[best]
    return boxes[index], score, label, directions[index]


def head_rows(head_map: np.ndarray, anchors_per_cell: int, rows: np.ndarray) -> np.ndarray:
    """Rows of mmdet3d's (H * W * anchors, values) view of a (1, anchors * values, H, W) map, without
    transposing the whole map: row r is cell r // anchors, anchor r % anchors."""
    _, channels, height, width = head_map.shape
    per_anchor = head_map[0].reshape(anchors_per_cell, channels // anchors_per_cell, height * width)
    return per_anchor[rows % anchors_per_cell, :, rows // anchors_per_cell]


def predict(
    maps: dict[str, np.ndarray], outputs: tuple[str, ...], anchors: Anchors, head: Head, test: TestSettings
) -> Detections:
    """The graph's (cls_score, bbox_pred, dir_cls_pred) maps of one frame as detections."""
    cls_map, box_map, dir_map = (maps[name] for name in outputs)
    feature_hw = (int(cls_map.shape[-2]), int(cls_map.shape[-1]))
    priors = anchor_grid(anchors, feature_hw)
    per_cell = len(priors) // (feature_hw[0] * feature_hw[1])
    logits = cls_map[0].reshape(per_cell, head.num_classes, -1)
    best_logits = logits.max(axis=1).T.reshape(-1)  # (H * W * anchors,), mmdet3d's row order
    top = top_anchors(best_logits, test.nms_pre)
    scores = sigmoid(head_rows(cls_map, per_cell, top))
    deltas = head_rows(box_map, per_cell, top)
    directions = head_rows(dir_map, per_cell, top).argmax(axis=1)
    boxes = decode_boxes(priors[top], deltas)
    boxes, scores, labels, directions = multiclass_nms(boxes, scores, directions, test)
    if len(boxes):
        turned = limit_period(boxes[:, 6] - np.float32(head.dir_offset), head.dir_limit_offset, np.pi)
        boxes[:, 6] = turned + np.float32(head.dir_offset) + np.float32(np.pi) * directions.astype(np.float32)
    return Detections(boxes.astype(np.float32), scores.astype(np.float32), labels)
