"""Bird's-eye-view pictures of a frame: the cloud, ground truth and predictions, as a driver would see the road.

Picture axes: LiDAR x (forward) points up, LiDAR y (left) points left, the ego car sits at the bottom
centre when the range starts at x = 0. Pixel (row, col) of a LiDAR point (x, y) is
``(floor((x_max - x) * ppm), floor((y_max - y) * ppm))`` with ppm = pixels_per_metre; a caption
strip of ``CAPTION_HEIGHT`` pixels below the range holds the title, the counts and the legend, so
no text covers the scene. Grid lines every ``GRID_METRES`` (labelled with x on the left) give the scale.

Given the ground truth (``matching.Truth``), ``matching.match_frame`` decides what each box is
(KITTI's rules, difficulty hard, BEV IoU): ground truth is a filled translucent underlay with a thick
outline (red when missed, thin grey without fill when KITTI ignores it); predictions are thinner
outlines on top (thinnest when KITTI ignores them), dashed with a red cross when false positives.
Predictions under ``score_thr`` are neither drawn nor counted.

Pillow is imported inside ``render_bev`` only, so the runtime itself runs without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .kitti import _as_boxes, lidar_corners_bev
from .matching import FrameMatch, Outcome, Truth, match_frame

if TYPE_CHECKING:
    from PIL import Image as PILImage

#: Per-class outline colours, by class index (wrapping round); saturated so they read on the dark background.
CLASS_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 176, 0),  # amber
    (0, 200, 255),  # sky blue
    (255, 70, 200),  # magenta
    (120, 230, 60),  # green
    (255, 90, 60),  # red-orange
    (170, 130, 255),  # violet
    (255, 240, 90),  # yellow
    (60, 230, 200),  # teal
)
BACKGROUND = (18, 18, 24)
GT_COLOUR = (235, 235, 235)
#: Misses (their outline) and false positives (a cross on them): the two kinds of error.
ERROR_COLOUR = (255, 40, 40)
#: Ground truth KITTI ignores (too hard, or a Van for Car): neither found nor missed.
IGNORED_COLOUR = (120, 120, 130)
TEXT_COLOUR = (235, 235, 235)
GRID_COLOUR = (44, 44, 58)
GRID_TEXT_COLOUR = (120, 120, 140)
#: Grey levels of the lowest and highest points of the range: higher points are brighter.
POINT_GREY = (60, 200)
GRID_METRES = 10.0
#: Ground-truth outlines are thicker than predictions' (2 px), so they show round a prediction on top.
GT_WIDTH = 4
#: Opacity (0-255) of the ground-truth underlay: the points inside stay visible.
GT_FILL_ALPHA = 80
#: The strip under the range: three lines (title, counts, legend).
CAPTION_HEIGHT = 60
DEFAULT_PIXELS_PER_METRE = 20.0

_PILLOW_MISSING = "BEV pictures need Pillow: pip install 'mmloop-runtime[render]'"


def class_colour(label: int) -> tuple[int, int, int]:
    return CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]


def _gt_colour(label: int | None) -> tuple[int, int, int]:
    # Mostly white with a hint of the class colour: light enough never to be mistaken for a prediction.
    if label is None:
        return GT_COLOUR
    return tuple(int(0.75 * g + 0.25 * c) for g, c in zip(GT_COLOUR, class_colour(label)))  # type: ignore[return-value]


def picture_size(
    point_cloud_range: Sequence[float], pixels_per_metre: float = DEFAULT_PIXELS_PER_METRE
) -> tuple[int, int]:
    """(width, height) in pixels of the picture for a range [x_min, y_min, z_min, x_max, y_max, z_max],
    caption strip included."""
    width, height = _range_size(point_cloud_range, pixels_per_metre)
    return width, height + CAPTION_HEIGHT


def _range_size(point_cloud_range: Sequence[float], pixels_per_metre: float) -> tuple[int, int]:
    x_min, y_min, _, x_max, y_max, _ = point_cloud_range
    return int(round((y_max - y_min) * pixels_per_metre)), int(round((x_max - x_min) * pixels_per_metre))


def lidar_to_pixel(
    xy: np.ndarray, point_cloud_range: Sequence[float], pixels_per_metre: float = DEFAULT_PIXELS_PER_METRE
) -> np.ndarray:
    """LiDAR (..., 2) x/y to picture (..., 2) col/row as floats (col = across, row = down)."""
    x_max, y_max = point_cloud_range[3], point_cloud_range[4]
    col = (y_max - xy[..., 1]) * pixels_per_metre
    row = (x_max - xy[..., 0]) * pixels_per_metre
    return np.stack([col, row], axis=-1)


def grid_lines(low: float, high: float) -> list[float]:
    """The multiples of GRID_METRES strictly inside (low, high)."""
    first = math.floor(low / GRID_METRES) + 1
    return [k * GRID_METRES for k in range(first, math.ceil(high / GRID_METRES)) if low < k * GRID_METRES < high]


def _raster(
    points: np.ndarray, point_cloud_range: Sequence[float], pixels_per_metre: float, size: tuple[int, int]
) -> np.ndarray:
    """(height, width, 3) uint8 picture of the grid and the cloud; the highest point wins a pixel."""
    width, height = size
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    x_min, y_min, z_min, x_max, y_max, z_max = point_cloud_range
    for x in grid_lines(x_min, x_max):
        canvas[min(int((x_max - x) * pixels_per_metre), height - 1), :] = GRID_COLOUR
    for y in grid_lines(y_min, y_max):
        canvas[:, min(int((y_max - y) * pixels_per_metre), width - 1)] = GRID_COLOUR
    pixels = np.floor(lidar_to_pixel(points[:, :2], point_cloud_range, pixels_per_metre)).astype(np.int64)
    cols, rows = pixels[:, 0], pixels[:, 1]
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    shade = np.clip((points[inside, 2] - z_min) / max(z_max - z_min, 1e-6), 0.0, 1.0)
    grey = (POINT_GREY[0] + shade * (POINT_GREY[1] - POINT_GREY[0])).astype(np.uint8)
    flat = rows[inside] * width + cols[inside]
    if flat.size == 0:
        return canvas
    # Sort by pixel then brightness and keep the last of each pixel, so overlaps resolve the same every run.
    order = np.lexsort((grey, flat))
    flat, grey = flat[order], grey[order]
    last = np.append(flat[1:] != flat[:-1], True)
    canvas.reshape(-1, 3)[flat[last]] = grey[last, None]
    return canvas


def render_bev(
    points: np.ndarray,
    point_cloud_range: Sequence[float],
    class_names: Sequence[str],
    boxes: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    truth: Truth | None = None,
    title: str = "",
    pixels_per_metre: float = DEFAULT_PIXELS_PER_METRE,
    score_thr: float = 0.0,
    pred_ignored: np.ndarray | None = None,
) -> PILImage.Image:
    """A bird's-eye picture of one frame, cropped to ``point_cloud_range``'s x/y, with a caption strip.

    ``points`` (N, >=3) LiDAR x, y, z; ``boxes`` (M, >=7) LiDAR boxes (x, y, z bottom centre, dx, dy,
    dz, yaw) as mmdet3d's LiDARInstance3DBoxes, ``labels`` indexing ``class_names``. Predictions
    scoring at least ``score_thr`` are outlined in their class colour with a tick from the centre to
    the front edge and the score beside them. With ``truth`` (``matching.Truth``: from
    ``matching.kitti_truth`` for KITTI's ignored flags), each box is matched as KITTI would
    (``matching.match_frame``, with ``pred_ignored`` from ``matching.kitti_ignored_predictions``) and
    the caption counts true positives, false positives and misses.
    """
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise RuntimeError(_PILLOW_MISSING) from None

    cloud = np.asarray(points, dtype=np.float32)
    if cloud.ndim != 2 or cloud.shape[1] < 3:
        raise ValueError(f"render_bev: points of shape {cloud.shape} are not (N, 3+); pass x, y, z per point")
    width, height = _range_size(point_cloud_range, pixels_per_metre)
    canvas = np.empty((height + CAPTION_HEIGHT, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    canvas[:height] = _raster(cloud, point_cloud_range, pixels_per_metre, (width, height))
    image = Image.fromarray(canvas)

    def to_pixels(xy: np.ndarray) -> list[tuple[float, float]]:
        return [tuple(p) for p in lidar_to_pixel(xy, point_cloud_range, pixels_per_metre)]

    boxes_ = _as_boxes(np.zeros((0, 7)) if boxes is None else boxes)
    labels_ = np.zeros(len(boxes_), np.int64) if labels is None else np.asarray(labels).astype(np.int64).reshape(-1)
    scores_ = np.ones(len(boxes_)) if scores is None else np.asarray(scores, np.float64).reshape(-1)
    match = None
    if truth is not None:
        match = match_frame(boxes_, scores_, labels_, truth, class_names, score_thr, pred_ignored)
        image = _gt_underlay(image, truth, match, to_pixels)
    draw = ImageDraw.Draw(image)
    font = _default_font(ImageFont)
    _grid_labels(draw, font, point_cloud_range, pixels_per_metre)
    if truth is not None and match is not None:
        _draw_truth(draw, truth, match, to_pixels)
    keep = scores_ >= score_thr
    outcomes = None if match is None else match.predictions[keep]
    show_scores = scores is not None
    _draw_predictions(draw, font, boxes_[keep], scores_[keep], labels_[keep], outcomes, show_scores, to_pixels)
    if match is not None:
        caption = match.caption(class_names)
    else:
        caption = f"score >= {score_thr:.2f}: {int(keep.sum())} predictions (no ground truth to match)"
    _draw_caption(draw, font, height, [title, caption], class_names, show_gt=truth is not None)
    return image


def _gt_underlay(image, truth: Truth, match: FrameMatch, to_pixels) -> PILImage.Image:
    # Translucent fills under everything else, so predictions drawn on top never hide the ground truth.
    from PIL import Image, ImageDraw

    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for corners, label, outcome in zip(lidar_corners_bev(truth.boxes), truth.labels, match.truth):
        if outcome != Outcome.IGNORED:
            draw.polygon(to_pixels(corners), fill=(*_gt_colour(int(label)), GT_FILL_ALPHA))
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def _draw_truth(draw, truth: Truth, match: FrameMatch, to_pixels) -> None:
    for corners, label, outcome in zip(lidar_corners_bev(truth.boxes), truth.labels, match.truth):
        outline = to_pixels(corners)
        if outcome == Outcome.IGNORED:
            draw.line(outline + outline[:1], fill=IGNORED_COLOUR, width=1)
        else:
            colour = ERROR_COLOUR if outcome == Outcome.MISS else _gt_colour(int(label))
            draw.line(outline + outline[:1], fill=colour, width=GT_WIDTH, joint="curve")


def _draw_predictions(draw, font, boxes, scores, labels, outcomes, show_scores: bool, to_pixels) -> None:
    """Outlines and heading ticks, thin when KITTI ignores the box, dashed with a cross when a false positive."""
    for i, (box, corners) in enumerate(zip(boxes, lidar_corners_bev(boxes))):
        colour = class_colour(labels[i])
        outcome = None if outcomes is None else outcomes[i]
        outline = to_pixels(corners)
        width = 1 if outcome == Outcome.IGNORED else 2
        if outcome == Outcome.FP:
            _dashed(draw, outline + outline[:1], colour, width)
            _cross(draw, outline)
        else:
            draw.line(outline + outline[:1], fill=colour, width=width)
        front = (corners[2] + corners[3]) / 2  # corners 2, 3 are the front edge
        draw.line(to_pixels(np.stack([box[:2], front])), fill=colour, width=width)
    # Scores after every outline, so a neighbouring box never covers one.
    placed: list[tuple[float, float, float, float]] = []
    for i, corners in enumerate(lidar_corners_bev(boxes) if show_scores else []):
        _label_box(draw, font, to_pixels(corners), f"{scores[i]:.2f}", class_colour(labels[i]), placed)


def _cross(draw, outline: list[tuple[float, float]]) -> None:
    # At the centre, sized to the box's shorter side so it reads on a pedestrian and a car alike.
    corners = np.asarray(outline)
    col, row = corners.mean(axis=0)
    shorter = min(np.hypot(*(corners[1] - corners[0])), np.hypot(*(corners[2] - corners[1])))
    half = max(3.0, 0.35 * shorter)
    for sign in (1, -1):
        draw.line([(col - half, row - sign * half), (col + half, row + sign * half)], fill=ERROR_COLOUR, width=2)


def _dashed(draw, polyline: list[tuple[float, float]], colour, width: int, dash: float = 5.0) -> None:
    for (c0, r0), (c1, r1) in zip(polyline, polyline[1:]):
        steps = max(1, int(math.hypot(c1 - c0, r1 - r0) // dash))
        for k in range(0, steps, 2):
            t0, t1 = k / steps, (k + 1) / steps
            start, end = (c0 + (c1 - c0) * t0, r0 + (r1 - r0) * t0), (c0 + (c1 - c0) * t1, r0 + (r1 - r0) * t1)
            draw.line([start, end], fill=colour, width=width)


def _default_font(image_font):
    # Pillow's own font; 12 px when FreeType is there (Pillow >= 10.1), else its fixed bitmap font.
    try:
        return image_font.load_default(size=12)
    except (TypeError, ImportError, OSError):
        return image_font.load_default()


def _label_box(draw, font, outline: list[tuple[float, float]], text: str, colour, placed: list) -> None:
    """Just right of the box, level with its centre, on a dark patch; moved down past the labels
    ``placed`` before it (boxes on one object would stack their scores unreadably)."""
    right = max(col for col, _ in outline)
    middle = sum(row for _, row in outline) / len(outline)
    _, top, _, bottom = draw.textbbox((0, 0), text, font=font)
    origin = (right + 3, middle - (bottom + top) / 2)
    patch = _padded(draw.textbbox(origin, text, font=font))
    while any(_overlap(patch, other) for other in placed):
        origin = (origin[0], origin[1] + patch[3] - patch[1])
        patch = _padded(draw.textbbox(origin, text, font=font))
    placed.append(patch)
    draw.rectangle(patch, fill=BACKGROUND)
    draw.text(origin, text, fill=colour, font=font)


def _padded(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    return box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _grid_labels(draw, font, point_cloud_range: Sequence[float], pixels_per_metre: float) -> None:
    # Forward distance beside each grid line, at the left edge where the range is usually empty.
    for x in grid_lines(point_cloud_range[0], point_cloud_range[3]):
        row = (point_cloud_range[3] - x) * pixels_per_metre
        draw.text((3, row - _text_height(draw, font) - 3), f"{x:g} m", fill=GRID_TEXT_COLOUR, font=font)


def _draw_caption(draw, font, top: int, lines: list[str], class_names: Sequence[str], show_gt: bool) -> None:
    """The strip under the range: title, counts, then a legend of swatches."""
    pitch = (CAPTION_HEIGHT - 6) // 3
    row = top + 3
    for text in lines:
        if text:
            draw.text((6, row), text, fill=TEXT_COLOUR, font=font)
        row += pitch
    entries: list[tuple[str, str, tuple[int, int, int]]] = [
        ("fill", n, class_colour(i)) for i, n in enumerate(class_names)
    ]
    if show_gt:
        entries += [("gt", "GT", GT_COLOUR), ("outline", "missed", ERROR_COLOUR), ("cross", "FP", ERROR_COLOUR)]
        entries += [("outline", "ignored (KITTI hard)", IGNORED_COLOUR)]
    entries.append(("none", f"grid {GRID_METRES:g} m", GRID_TEXT_COLOUR))
    swatch = pitch - 6
    col = 6
    for kind, name, colour in entries:
        box = (col, row + 2, col + swatch, row + 2 + swatch)
        if kind == "fill":
            draw.rectangle(box, fill=colour)
        elif kind == "gt":
            draw.rectangle(box, fill=_gt_colour(None), outline=colour, width=2)
        elif kind == "outline":
            draw.rectangle(box, outline=colour, width=2)
        elif kind == "cross":
            draw.line([box[:2], box[2:]], fill=colour, width=2)
            draw.line([(box[0], box[3]), (box[2], box[1])], fill=colour, width=2)
        text_col = col if kind == "none" else col + swatch + 5
        draw.text((text_col, row), name, fill=TEXT_COLOUR if kind != "none" else colour, font=font)
        col = text_col + int(math.ceil(draw.textlength(name, font=font))) + 14


def _text_height(draw, font) -> int:
    _, top, _, bottom = draw.textbbox((0, 0), "Ag", font=font)
    return int(bottom - top)


def save_bev(image: PILImage.Image, path: str | Path) -> Path:
    """Write the picture as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
