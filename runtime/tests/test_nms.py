"""mmloop_runtime.nms against mmcv 2.1.0's CPU box_iou_rotated / nms_rotated.

The runtime must keep exactly the boxes mmdet3d's nms_bev keeps, so every
comparison here is with the real mmcv op: IoU within 1e-5, keep indices equal.
torch and mmcv are imported inside the tests only; the runtime never sees them.
"""

from __future__ import annotations

import subprocess
import sys
import timeit
import warnings

import numpy as np
import pytest
from conftest import REPO

from mmloop_runtime import nms as rt_nms

THRESHOLDS = (0.01, 0.1, 0.5, 0.7)
IOU_TOL = 1e-5


def _mmcv_ops():
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("mmcv.ops")
    return torch, ops


def mmcv_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    torch, ops = _mmcv_ops()
    return ops.box_iou_rotated(
        torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)),
        mode="iou",
        aligned=False,
        clockwise=True,
    ).numpy()


def mmcv_keep(boxes: np.ndarray, scores: np.ndarray, thr: float) -> np.ndarray:
    torch, ops = _mmcv_ops()
    _, keep = ops.nms_rotated(
        torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)),
        thr,
    )
    return keep.numpy()


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """LiDAR-like BEV boxes: centres in 0..50 m, sides 0.5-5 m, any angle."""
    return np.stack(
        [
            rng.uniform(0, 50, n),
            rng.uniform(0, 50, n),
            rng.uniform(0.5, 5, n),
            rng.uniform(0.5, 5, n),
            rng.uniform(-np.pi, 2 * np.pi, n),
        ],
        axis=1,
    ).astype(np.float32)


def clustered_boxes(rng: np.random.Generator, objects: int, per_object: int) -> np.ndarray:
    """Detector-like output: several jittered proposals around each object."""
    base = np.repeat(random_boxes(rng, objects), per_object, axis=0)
    jitter = rng.normal(0, [0.4, 0.4, 0.2, 0.2, 0.15], base.shape)
    boxes = base + jitter.astype(np.float32)
    boxes[:, 2:4] = np.clip(boxes[:, 2:4], 0.5, 5)
    return boxes.astype(np.float32)


def distinct_scores(rng: np.random.Generator, n: int) -> np.ndarray:
    # Distinct by construction: tie order is a separate test.
    return (rng.permutation(n) + rng.uniform(0.05, 0.95, n)).astype(np.float32) / n


def hard_case_boxes() -> np.ndarray:
    """Boxes whose candidate points sit exactly on edges and corners."""
    half_pi = np.pi / 2
    rows = [
        # identical boxes at several angles
        (10, 10, 4, 2, 0),
        (10, 10, 4, 2, 0),
        (20, 5, 1.6, 3.9, 0.7),
        (20, 5, 1.6, 3.9, 0.7),
        (30, 30, 2, 2, np.pi),
        (30, 30, 2, 2, np.pi),
        # nested: small box inside a big one, same and different angles
        (40, 40, 5, 5, 0),
        (40, 40, 1, 1, 0),
        (40.5, 39.5, 1, 2, 0.3),
        # touching along an edge (axis aligned and rotated), and at a corner
        (5, 40, 2, 2, 0),
        (7, 40, 2, 2, 0),
        (5, 42, 2, 2, 0),
        (7, 42, 2, 2, 0),
        (15, 40, 2, 1, np.pi / 4),
        (15 + np.cos(np.pi / 4) * 2, 40 + np.sin(np.pi / 4) * 2, 2, 1, np.pi / 4),
        # rotated by exactly 90 deg: same footprint as the w/h swapped box
        (25, 15, 4, 1.5, 0),
        (25, 15, 1.5, 4, half_pi),
        (25, 15, 4, 1.5, np.pi),
        (25, 15, 4, 1.5, half_pi),
        (25, 15, 3, 3, half_pi),
        (25, 15, 3, 3, 0),
        # well separated
        (0.5, 0.5, 0.5, 0.5, 0),
        (49.5, 49.5, 0.5, 0.5, 1.0),
        # zero-size: no width, no height, a point, and one on top of a real box
        (10, 10, 0, 2, 0),
        (10, 10, 4, 0, 0),
        (10, 10, 0, 0, 0),
        (40, 40, 0, 5, 0.2),
    ]
    return np.asarray(rows, dtype=np.float32)


# ---------------------------------------------------------------- IoU


def test_iou_matches_mmcv_on_random_lidar_boxes() -> None:
    rng = np.random.default_rng(20240501)
    a = random_boxes(rng, 150)
    b = np.concatenate([clustered_boxes(rng, 30, 4), random_boxes(rng, 30)])
    # Put half of b on top of a so plenty of pairs really overlap.
    b[:75, :2] = a[:75, :2] + rng.normal(0, 1.0, (75, 2)).astype(np.float32)

    ours = rt_nms.rotated_iou(a, b)
    ref = mmcv_iou(a, b)

    assert ours.shape == (150, 150) and ours.dtype == np.float32
    assert (ref > 0).sum() > 100, "the set should contain many overlapping pairs"
    np.testing.assert_allclose(ours, ref, rtol=0, atol=IOU_TOL)
    # Pairs mmcv calls disjoint are disjoint here too (the circle pre-filter).
    assert np.array_equal(ours > 0, ref > 0)


def test_iou_matches_mmcv_on_clustered_boxes() -> None:
    rng = np.random.default_rng(7)
    boxes = clustered_boxes(rng, 25, 8)
    ours = rt_nms.rotated_iou(boxes, boxes)
    ref = mmcv_iou(boxes, boxes)
    assert (ref > 0.5).sum() > 200
    np.testing.assert_allclose(ours, ref, rtol=0, atol=IOU_TOL)


def test_iou_hard_cases_match_mmcv() -> None:
    boxes = hard_case_boxes()
    ours = rt_nms.rotated_iou(boxes, boxes)
    ref = mmcv_iou(boxes, boxes)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=IOU_TOL)


def test_iou_hard_cases_geometry() -> None:
    """Values the geometry dictates, independent of mmcv."""
    iou = rt_nms.rotated_iou(hard_case_boxes(), hard_case_boxes())
    assert iou[0, 1] == pytest.approx(1.0, abs=1e-6)  # identical
    assert iou[2, 3] == pytest.approx(1.0, abs=1e-6)
    assert iou[6, 7] == pytest.approx(1 / 25, abs=1e-6)  # 1x1 nested in 5x5
    assert iou[9, 10] == pytest.approx(0.0, abs=1e-6)  # shared edge, no area
    assert iou[9, 12] == pytest.approx(0.0, abs=1e-6)  # shared corner
    assert iou[15, 16] == pytest.approx(1.0, abs=1e-6)  # 90 deg + swapped w/h
    assert iou[15, 17] == pytest.approx(1.0, abs=1e-6)  # 180 deg
    assert iou[15, 18] == pytest.approx(1.5 * 1.5 / (2 * 6 - 1.5 * 1.5), abs=1e-6)  # cross
    assert iou[19, 20] == pytest.approx(1.0, abs=1e-6)  # square turned 90 deg
    assert iou[21, 22] == 0.0  # far apart
    # Zero-size boxes overlap nothing, not even a box they lie on.
    assert not iou[23:27].any() and not iou[:, 23:27].any()


def degenerate_constructions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Boxes placed exactly against random boxes: every pair is a boundary case.

    Shared edges and corners, half overlaps, and the same footprint written
    as (w, h, a), (h, w, a + pi/2) and (w, h, a + pi). Their float32
    candidate points nearly coincide, where mmcv's hull sort misbehaves.
    """
    base = random_boxes(rng, n).astype(np.float64)
    x, y, w, h, a = base.T
    c, s = np.cos(a), np.sin(a)
    variants = [base]
    for dx, dy in ((w, 0 * w), (w, h), (w / 2, 0 * w)):
        moved = base.copy()
        moved[:, 0] += c * dx - s * dy
        moved[:, 1] += s * dx + c * dy
        variants.append(moved)
    variants.append(np.stack([x, y, h, w, a + np.pi / 2], axis=1))
    variants.append(np.stack([x, y, w, h, a + np.pi], axis=1))
    square = np.stack([x, y, w, w, a], axis=1)
    variants += [square, square + [0, 0, 0, 0, np.pi / 2]]
    return np.concatenate(variants).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_iou_matches_mmcv_on_degenerate_constructions(seed: int) -> None:
    boxes = degenerate_constructions(np.random.default_rng(seed), 20)
    ours = rt_nms.rotated_iou(boxes, boxes)
    ref = mmcv_iou(boxes, boxes)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=IOU_TOL)


def test_iou_reproduces_mmcv_hull_sort_quirk() -> None:
    """The same footprint as (w, h, a) and (h, w, a + pi/2): mmcv's hull sort
    compares near-duplicate points by distance (|cross| < 1e-6), loses the
    angular order and reports IoUs far from 1. The runtime must agree."""
    pairs = np.array(
        [
            [
                [48.499004, 38.854755, 4.873563, 2.8386033, 4.9922905],
                [48.499004, 38.854755, 2.8386033, 4.873563, 6.563087],
            ],
            [
                [10.676061, 29.645666, 3.4230354, 4.886466, 3.4121084],
                [10.676061, 29.645666, 4.886466, 3.4230354, 1.8413122],
            ],
        ],
        dtype=np.float32,
    )
    for a, b in pairs:
        ref = mmcv_iou(a[None], b[None])[0, 0]
        assert abs(ref - 1.0) > 0.5, "mmcv 2.1.0 is expected to mis-measure this pair"
        assert rt_nms.rotated_iou(a[None], b[None])[0, 0] == ref


def test_iou_far_from_origin_uses_center_shift() -> None:
    """Large coordinates: mmcv re-centres each pair, so must we."""
    rng = np.random.default_rng(3)
    boxes = clustered_boxes(rng, 10, 5)
    boxes[:, :2] += np.float32(4000.0)
    np.testing.assert_allclose(rt_nms.rotated_iou(boxes, boxes), mmcv_iou(boxes, boxes), rtol=0, atol=IOU_TOL)


def test_iou_accepts_float64_and_empty() -> None:
    rng = np.random.default_rng(11)
    boxes = random_boxes(rng, 20)
    np.testing.assert_array_equal(rt_nms.rotated_iou(boxes.astype(np.float64), boxes), rt_nms.rotated_iou(boxes, boxes))
    assert rt_nms.rotated_iou(np.zeros((0, 5)), boxes).shape == (0, 20)
    assert rt_nms.rotated_iou(boxes, np.zeros((0, 5))).shape == (20, 0)
    with pytest.raises(ValueError):
        rt_nms.rotated_iou(np.zeros((3, 4)), boxes)


def test_degenerate_boxes_raise_no_numpy_warnings() -> None:
    boxes = hard_case_boxes()
    scores = np.linspace(1, 0.1, len(boxes)).astype(np.float32)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        iou = rt_nms.rotated_iou(boxes, boxes)
        keep = rt_nms.nms_rotated(boxes, scores, 0.5)
    assert np.isfinite(iou).all()
    assert keep.dtype == np.int64


# ---------------------------------------------------------------- NMS


@pytest.mark.parametrize("thr", THRESHOLDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_mmcv_on_clustered_detections(seed: int, thr: float) -> None:
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([clustered_boxes(rng, 20, 6), random_boxes(rng, 40)])
    scores = distinct_scores(rng, len(boxes))

    ours = rt_nms.nms_rotated(boxes, scores, thr)
    ref = mmcv_keep(boxes, scores, thr)

    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours, ref)
    assert 0 < len(ours) < len(boxes), "NMS should suppress some and keep some"
    assert np.all(np.diff(scores[ours]) <= 0), "kept boxes come highest score first"


@pytest.mark.parametrize("thr", THRESHOLDS)
def test_nms_matches_mmcv_on_hard_cases(thr: float) -> None:
    rng = np.random.default_rng(5)
    for boxes in hard_case_boxes(), degenerate_constructions(rng, 15):
        scores = distinct_scores(rng, len(boxes))
        np.testing.assert_array_equal(rt_nms.nms_rotated(boxes, scores, thr), mmcv_keep(boxes, scores, thr))


def test_nms_suppresses_at_equal_iou() -> None:
    """mmcv suppresses when IoU >= threshold (not >): IoU of exactly 0.5 goes."""
    # Two axis-aligned 2x1 boxes overlapping by 2/3 of their area: IoU = 0.5.
    boxes = np.array([[0, 0, 3, 1, 0], [1, 0, 3, 1, 0]], dtype=np.float32)
    scores = np.array([0.9, 0.8], dtype=np.float32)
    assert rt_nms.rotated_iou(boxes, boxes)[0, 1] == np.float32(0.5)
    assert mmcv_iou(boxes, boxes)[0, 1] == np.float32(0.5)
    for keep in (rt_nms.nms_rotated(boxes, scores, 0.5), mmcv_keep(boxes, scores, 0.5)):
        np.testing.assert_array_equal(keep, [0])
    np.testing.assert_array_equal(rt_nms.nms_rotated(boxes, scores, 0.5001), [0, 1])


def test_nms_ties_small_sets_match_mmcv() -> None:
    """Tied scores keep input order (stable sort). torch's sort agrees up to
    16 elements only (insertion sort); beyond that its tie order is arbitrary."""
    rng = np.random.default_rng(9)
    boxes = clustered_boxes(rng, 3, 5)
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.9] * 3, dtype=np.float32)
    for thr in THRESHOLDS:
        np.testing.assert_array_equal(rt_nms.nms_rotated(boxes, scores, thr), mmcv_keep(boxes, scores, thr))
    # Two identical boxes with the same score: the earlier index survives.
    same = np.array([[3, 3, 2, 1, 0.2]] * 2, dtype=np.float32)
    np.testing.assert_array_equal(rt_nms.nms_rotated(same, np.ones(2, np.float32), 0.5), [0])


def test_nms_ties_keep_input_order_beyond_16_boxes() -> None:
    """Our contract where torch's order is unspecified: ties stay in input order."""
    grid = np.arange(40, dtype=np.float32)
    boxes = np.stack([grid % 8 * 6, grid // 8 * 6, np.ones(40), np.ones(40), np.zeros(40)], axis=1)
    scores = np.array([0.3, 0.7, 0.5, 0.7] * 10, dtype=np.float32)
    keep = rt_nms.nms_rotated(boxes.astype(np.float32), scores, 0.1)  # nothing overlaps
    expected = [i for s in (0.7, 0.5, 0.3) for i in range(40) if scores[i] == np.float32(s)]
    np.testing.assert_array_equal(keep, expected)


def test_nms_empty_and_single() -> None:
    keep = rt_nms.nms_rotated(np.zeros((0, 5), np.float32), np.zeros(0, np.float32), 0.1)
    assert keep.dtype == np.int64 and keep.shape == (0,)
    keep = rt_nms.nms_rotated(np.array([[1, 1, 1, 1, 0]], np.float32), np.array([0.3]), 0.1)
    assert keep.tolist() == [0] and keep.dtype == np.int64


def test_nms_is_fast_enough() -> None:
    rng = np.random.default_rng(4)
    boxes = clustered_boxes(rng, 50, 6)
    scores = distinct_scores(rng, len(boxes))
    seconds = min(timeit.repeat(lambda: rt_nms.nms_rotated(boxes, scores, 0.1), number=3, repeat=3)) / 3
    # Vectorized: a few ms on 300 boxes; a per-pair Python loop would take ~1 s.
    assert seconds < 0.1, f"nms_rotated on 300 boxes took {seconds * 1e3:.1f} ms"


# ---------------------------------------------------------------- isolation


def test_import_does_not_pull_torch() -> None:
    code = (
        "import sys; sys.path.insert(0, 'runtime'); import mmloop_runtime.nms; "
        "bad = [m for m in ('torch', 'mmcv', 'mmdet3d') if m in sys.modules]; "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_grouped_nms_equals_one_mmcv_call_per_group() -> None:
    """multiclass NMS runs every class in one call; each class must be suppressed as on its own."""
    rng = np.random.default_rng(11)
    boxes = clustered_boxes(rng, objects=12, per_object=15)
    scores = distinct_scores(rng, len(boxes))
    groups = rng.integers(0, 3, len(boxes))
    keep = rt_nms.nms_rotated(boxes, scores, 0.01, groups=groups)
    expected = [np.flatnonzero(groups == g)[mmcv_keep(boxes[groups == g], scores[groups == g], 0.01)] for g in range(3)]
    assert keep.tolist() == np.concatenate(expected).tolist()
