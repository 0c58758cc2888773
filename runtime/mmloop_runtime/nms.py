"""Rotated-box IoU and NMS in numpy, matching mmcv 2.1.0's CPU ops bit for bit.

``rotated_iou`` reproduces ``mmcv.ops.box_iou_rotated(a, b, mode='iou',
aligned=False, clockwise=True)`` and ``nms_rotated`` reproduces
``mmcv.ops.nms_rotated(dets, scores, thr)[1]``, so the torch-free runtime
keeps exactly the boxes mmdet3d's ``nms_bev`` would keep.

mmcv's kernel (``ops/csrc/common/box_iou_rotated_utils.hpp``) runs in float32
and its results depend on that rounding in ways a clean geometric IoU does
not reproduce: which candidate points on shared edges or corners it accepts,
and, through a tolerance in its hull sort's comparator, the hull itself (the
same footprint described as (w, h, a) and (h, w, a + pi/2) can score an IoU
of 0.65 or 3.0). So every step replays mmcv's float32 operations in mmcv's
order, vectorized over box pairs; the only loops are over the at most 24
point slots of a pair.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rotated_iou", "nms_rotated"]

_F32 = np.float32


def _f32_below(limit: float) -> np.float32:
    """Largest float32 below limit, for a limit float32 cannot represent.

    mmcv compares float values with double literals; then x < limit iff
    x <= this bound and x > limit iff x > it, so the test stays in float32.
    """
    bound = _F32(limit)
    if float(bound) == limit:
        raise ValueError(f"{limit} is a float32; compare against it directly")
    return bound if float(bound) < limit else np.nextafter(bound, _F32(-np.inf))


_NO_AREA = _f32_below(1e-14)  # w * h < 1e-14: IoU 0
_PARALLEL = _f32_below(1e-14)  # |det| <= 1e-14: edges do not cross
_SAME_ANGLE = _f32_below(1e-6)  # |cross| < 1e-6: hull sort compares distances
_SAME_POINT = _f32_below(1e-8)  # squared distance <= 1e-8: skipped by the hull

# Each pair carries 24 candidate points through a few dozen temporaries;
# chunking bounds peak memory to tens of MB for any number of boxes.
_CHUNK_PAIRS = 16384

_NEXT = np.array([1, 2, 3, 0])  # corner i -> corner i + 1, i.e. edge i


def _as_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    # mmcv's CPU IoU kernel exists for float only; casting here gives the
    # values it would see.
    arr = np.asarray(boxes, dtype=_F32)
    if arr.ndim != 2 or arr.shape[1] != 5:
        raise ValueError(f"{name} must have shape (N, 5), got {arr.shape}")
    return arr


# ---------------------------------------------------------------- corners


def _half_extents(boxes_t: np.ndarray) -> np.ndarray:
    """Per-box terms (sin*h, cos*w, cos*h, sin*w), shape (4, N), of mmcv's corner formula.

    mmcv takes cos/sin in double of the float angle, rounds to float, halves
    (exact), then multiplies by w or h in float.
    """
    theta = boxes_t[4].astype(np.float64)
    cos2 = np.cos(theta).astype(_F32) * _F32(0.5)
    sin2 = np.sin(theta).astype(_F32) * _F32(0.5)
    w, h = boxes_t[2], boxes_t[3]
    return np.stack([sin2 * h, cos2 * w, cos2 * h, sin2 * w])


def _shifted_centres(ca: np.ndarray, cb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One centre coordinate of both boxes, moved so the pair's midpoint is 0.

    mmcv adds in float, halves and subtracts in double and stores float; the
    shift keeps coordinates small so float32 keeps its precision far out.
    """
    shift = (ca + cb).astype(np.float64) / 2.0
    return (ca - shift).astype(_F32), (cb - shift).astype(_F32)


def _corners(x: np.ndarray, y: np.ndarray, ext: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corners (4, P) of boxes centred at the shifted (x, y).

    get_rotated_vertices' expression order, so each rounding matches;
    corners 2 and 3 are 0 and 1 reflected through the centre.
    """
    sh, cw, ch, sw = ext
    p0x = x - sh - cw
    p0y = y + ch - sw
    p1x = x + sh - cw
    p1y = y - ch - sw
    two = _F32(2)
    return (
        np.stack([p0x, p1x, two * x - p0x, two * x - p1x]),
        np.stack([p0y, p1y, two * y - p0y, two * y - p1y]),
    )


# ---------------------------------------------------------------- candidate points
#
# From here on the pair axis is last: numpy is many times faster on long
# contiguous inner loops than on (P, 4, 1) * (P, 1, 4) style broadcasts.


def _inside(
    px: np.ndarray, py: np.ndarray, qx: np.ndarray, qy: np.ndarray, ex: np.ndarray, ey: np.ndarray
) -> np.ndarray:
    """Which points (px, py) (4, P) lie in the rectangle with corners (qx, qy) and edges (ex, ey).

    mmcv's projection test onto edges 0 and 3, boundaries included.
    """
    abx, aby = ex[:1], ey[:1]
    dax, day = ex[3:], ey[3:]
    ab_ab = abx * abx + aby * aby
    ad_ad = dax * dax + day * day
    apx = px - qx[:1]
    apy = py - qy[:1]
    ap_ab = apx * abx + apy * aby
    ap_ad = -(apx * dax + apy * day)
    return (ap_ab >= 0) & (ap_ad >= 0) & (ap_ab <= ab_ab) & (ap_ad <= ad_ad)


def _candidate_points(
    ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 24 candidate points per pair (24, P) and which of them mmcv accepts.

    Same slots as get_intersection_points: crossings of A's edge i with B's
    edge j at 4 * i + j, then A's corners inside B, then B's inside A.
    """
    e1x, e1y = ax[_NEXT] - ax, ay[_NEXT] - ay
    e2x, e2y = bx[_NEXT] - bx, by[_NEXT] - by

    v1x, v1y = e1x[:, None], e1y[:, None]
    v2x, v2y = e2x[None], e2y[None]
    det = v2x * v1y - v1x * v2y
    dx = bx[None] - ax[:, None]
    dy = by[None] - ay[:, None]
    # Parallel edges divide by ~0; the mask rejects those slots anyway.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t1 = (v2x * dy - dx * v2y) / det
        t2 = (v1x * dy - dx * v1y) / det
        ix = ax[:, None] + v1x * t1
        iy = ay[:, None] + v1y * t1
    crosses = (np.abs(det) > _PARALLEL) & (t1 >= 0) & (t1 <= 1) & (t2 >= 0) & (t2 <= 1)

    n = ax.shape[1]
    xs = np.concatenate([ix.reshape(16, n), ax, bx])
    ys = np.concatenate([iy.reshape(16, n), ay, by])
    valid = np.concatenate(
        [crosses.reshape(16, n), _inside(ax, ay, bx, by, e2x, e2y), _inside(bx, by, ax, ay, e1x, e1y)]
    )
    return xs, ys, valid


# ---------------------------------------------------------------- mmcv's hull


def _compact(xs: np.ndarray, ys: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accepted points moved to the front in slot order, as mmcv stores them.

    Returns (W, R) x, y and the count per pair; W is the largest count. The
    padding is zeros, never read into a result.
    """
    count = valid.sum(axis=0)
    # Pair-major nonzero lists each pair's points contiguously, in slot order.
    pairs, slots = np.nonzero(valid.T)
    first = np.cumsum(count) - count
    dest = np.arange(pairs.shape[0]) - np.repeat(first, count)
    px = np.zeros((int(count.max()), xs.shape[1]), dtype=_F32)
    py = np.zeros_like(px)
    px[dest, pairs] = xs[slots, pairs]
    py[dest, pairs] = ys[slots, pairs]
    return px, py, count


def _from_lowest(px: np.ndarray, py: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points minus the lowest one (min y, then min x, first in slot order).

    convex_hull_graham steps 1-2, including the swap of that point (now the
    origin) into slot 0.
    """
    pairs = np.arange(px.shape[1])
    live = np.arange(px.shape[0])[:, None] < count
    low = live & (py == np.where(live, py, np.inf).min(axis=0))
    low &= px == np.where(low, px, np.inf).min(axis=0)
    t = low.argmax(axis=0)
    qx = px - px[t, pairs]
    qy = py - py[t, pairs]
    for q in (qx, qy):
        first = q[0].copy()
        q[0] = q[t, pairs]
        q[t, pairs] = first
    return qx, qy


def _less(ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """mmcv's CPU hull-sort comparator: by angle, by distance if |cross| < 1e-6.

    The tolerance makes it intransitive for near-duplicate or near-collinear
    points, which is why std::sort's sequence of comparisons is replayed
    rather than replaced by a true angular sort.
    """
    cross = ax * by - bx * ay
    closer = (ax * ax + ay * ay) < (bx * bx + by * by)
    return np.where(np.abs(cross) <= _SAME_ANGLE, closer, cross > 0)


def _insertion_sort(qx: np.ndarray, qy: np.ndarray, count: np.ndarray) -> None:
    """Sort slots 1..count-1 in place the way libstdc++'s std::sort does.

    Up to 16 elements std::sort is an insertion sort: an element less than
    the first goes to the front, otherwise it slides left while less than its
    left neighbour. Nothing is less than the origin in slot 0, so the slide
    always stops in range. With 18 or more points (only pairs whose corners
    or edges coincide) std::sort partitions first; that gives the same order
    unless the comparator is intransitive on those points.
    """
    for i in range(2, qx.shape[0]):
        vx, vy = qx[i : i + 1].copy(), qy[i : i + 1].copy()
        less = _less(vx, vy, qx[1:i], qy[1:i])
        tail = less[::-1]
        slide = np.where(tail.all(axis=0), i - 1, tail.argmin(axis=0))
        pos = np.where(less[0], 1, i - slide)
        pos = np.where(i < count, pos, i)
        slots = np.arange(1, i + 1)[:, None]
        for q, v in ((qx, vx), (qy, vy)):
            q[1 : i + 1] = np.where(slots < pos, q[1 : i + 1], np.where(slots == pos, v, q[:i]))


def _graham_area(qx: np.ndarray, qy: np.ndarray, count: np.ndarray) -> np.ndarray:
    """convex_hull_graham steps 4-5 on sorted points, then polygon_area (float32).

    Overwrites qx, qy with the hull stack, as mmcv does.
    """
    pairs = np.arange(qx.shape[1])
    slots = np.arange(qx.shape[0])[:, None]
    # Points within 1e-4 of the start are skipped; none left: a one-point hull.
    far = ((qx * qx + qy * qy) > _SAME_POINT) & (slots >= 1) & (slots < count)
    hull = far.any(axis=0)
    k = np.where(hull, far.argmax(axis=0), 1)
    qx[1], qy[1] = qx[k, pairs], qy[k, pairs]

    m = np.full(qx.shape[1], 2)
    for i in range(2, qx.shape[0]):
        push = hull & (i > k) & (i < count)
        while True:
            ox, oy = qx[m - 2, pairs], qy[m - 2, pairs]
            ax, ay = qx[i] - ox, qy[i] - oy
            bx, by = qx[m - 1, pairs] - ox, qy[m - 1, pairs] - oy
            pop = push & (m > 1) & (ax * by - bx * ay >= 0)
            if not pop.any():
                break
            m -= pop
        qx[m[push], pairs[push]] = qx[i, push]
        qy[m[push], pairs[push]] = qy[i, push]
        m += push

    # Fan of triangles from slot 0, each taken absolute and summed in float32
    # in mmcv's order (a mis-sorted hull then overcounts, as in mmcv).
    area = np.zeros(qx.shape[1], dtype=_F32)
    for i in range(1, qx.shape[0] - 1):
        ax, ay = qx[i] - qx[0], qy[i] - qy[0]
        bx, by = qx[i + 1] - qx[0], qy[i + 1] - qy[0]
        area = np.where(i < m - 1, area + np.abs(ax * by - bx * ay), area)
    return np.where(hull & (m > 2), area / _F32(2), _F32(0))


def _intersection_area(xs: np.ndarray, ys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """rotated_boxes_intersection: float32 area of mmcv's hull of the accepted points."""
    area = np.zeros(xs.shape[1], dtype=_F32)
    count = valid.sum(axis=0)
    # Two rectangles' intersection has at most 8 vertices; more points mean
    # duplicates from coincident edges or corners. Grouping keeps the common
    # pairs from being padded to a rare pair's 24 slots.
    for group in (count > 2) & (count <= 8), count > 8:
        if group.any():
            px, py, n = _compact(xs[:, group], ys[:, group], valid[:, group])
            qx, qy = _from_lowest(px, py, n)
            _insertion_sort(qx, qy, n)
            area[group] = _graham_area(qx, qy, n)
    return area


# ---------------------------------------------------------------- IoU


def _pair_iou(a: np.ndarray, b: np.ndarray, ext_a: np.ndarray, ext_b: np.ndarray) -> np.ndarray:
    """single_box_iou_rotated (float32) of boxes a[:, k], b[:, k] given as (5, P) columns."""
    xa, xb = _shifted_centres(a[0], b[0])
    ya, yb = _shifted_centres(a[1], b[1])
    ax, ay = _corners(xa, ya, ext_a)
    bx, by = _corners(xb, yb, ext_b)
    inter = _intersection_area(*_candidate_points(ax, ay, bx, by))

    area_a = a[2] * a[3]
    area_b = b[2] * b[3]
    empty = (area_a <= _NO_AREA) | (area_b <= _NO_AREA)
    union = np.where(empty, _F32(1), area_a + area_b - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(empty, _F32(0), iou)


def _maybe_overlapping(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) mask of pairs whose circumscribed circles meet.

    mmcv finds no candidate point, so IoU 0, for boxes that cannot touch; the
    margin is far above float32 rounding of the corners.
    """
    ra = 0.5 * np.hypot(a[:, 2].astype(np.float64), a[:, 3].astype(np.float64))
    rb = 0.5 * np.hypot(b[:, 2].astype(np.float64), b[:, 3].astype(np.float64))
    dx = a[:, None, 0].astype(np.float64) - b[None, :, 0]
    dy = a[:, None, 1].astype(np.float64) - b[None, :, 1]
    reach = (ra[:, None] + rb[None, :]) * (1 + 1e-4) + 1e-4
    return dx * dx + dy * dy <= reach * reach


def _iou_at(a: np.ndarray, b: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """IoU of a[rows[k]] with b[cols[k]] for every k, in chunks."""
    a_t, b_t = a.T.copy(), b.T.copy()
    ext_a, ext_b = _half_extents(a_t), _half_extents(b_t)
    out = np.empty(rows.shape[0], dtype=_F32)
    for start in range(0, rows.shape[0], _CHUNK_PAIRS):
        r = rows[start : start + _CHUNK_PAIRS]
        c = cols[start : start + _CHUNK_PAIRS]
        out[start : start + _CHUNK_PAIRS] = _pair_iou(a_t[:, r], b_t[:, c], ext_a[:, r], ext_b[:, c])
    return out


def rotated_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (N, M), float32, of rotated boxes (x_ctr, y_ctr, w, h, angle_rad).

    Equals ``mmcv.ops.box_iou_rotated(a, b, mode='iou', aligned=False,
    clockwise=True)`` on CPU: w lies along x at angle 0 and positive angles
    turn x towards y. Boxes with w * h < 1e-14 have IoU 0 with everything.
    """
    a = _as_boxes(boxes_a, "boxes_a")
    b = _as_boxes(boxes_b, "boxes_b")
    ious = np.zeros((a.shape[0], b.shape[0]), dtype=_F32)
    if ious.size == 0:
        return ious
    rows, cols = np.nonzero(_maybe_overlapping(a, b))
    ious[rows, cols] = _iou_at(a, b, rows, cols)
    return ious


# ---------------------------------------------------------------- NMS


def nms_rotated(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, groups: np.ndarray | None = None
) -> np.ndarray:
    """Indices (int64) of the boxes rotated NMS keeps, highest score first.

    Equals ``mmcv.ops.nms_rotated(dets, scores, iou_threshold)[1]`` on CPU:
    greedy in descending score order, dropping every box whose IoU with a
    kept box is >= iou_threshold (both as float32). With ``groups`` (a class
    index per box), each group is suppressed on its own, as one call per
    group would, but with one IoU pass for all of them; the result is group
    by group (ascending), highest score first within each.
    """
    dets = _as_boxes(boxes, "boxes")
    score = np.asarray(scores).reshape(-1)
    if score.shape[0] != dets.shape[0]:
        raise ValueError(f"{dets.shape[0]} boxes but {score.shape[0]} scores")
    if dets.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    group = np.zeros(dets.shape[0], np.int64) if groups is None else np.asarray(groups).reshape(-1)

    # Stable: tied scores keep input order. torch's sort agrees up to 16
    # boxes; beyond that its order among ties is unspecified.
    order = np.lexsort((-score.astype(np.float64), group))
    ranked, ranked_group = dets[order], group[order]
    # mmcv only ever measures IoU(kept, later candidate), in that argument
    # order (float32 IoU is not exactly symmetric), so only i < j is needed.
    same_group = ranked_group[:, None] == ranked_group[None, :]
    rows, cols = np.nonzero(np.triu(_maybe_overlapping(ranked, ranked) & same_group, k=1))
    hit = _iou_at(ranked, ranked, rows, cols) >= _F32(iou_threshold)

    n = ranked.shape[0]
    suppresses = np.zeros((n, n), dtype=bool)
    suppresses[rows[hit], cols[hit]] = True
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= suppresses[i]
    return order[np.asarray(keep, dtype=np.int64)]
