"""Bird's-eye-view pictures of a frame: the cloud, ground truth and predictions, as a driver would see the road.

Picture axes: LiDAR x (forward) points up, LiDAR y (left) points left, the ego car sits at the bottom
centre when the range starts at x = 0. Pixel (row, col) of a LiDAR point (x, y) is
``(floor((x_max - x) * ppm), floor((y_max - y) * ppm))`` with ppm = pixels_per_metre.

Pillow is imported inside ``render_bev`` only, so the runtime itself runs without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .kitti import lidar_corners_bev

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
TEXT_COLOUR = (235, 235, 235)
#: Grey levels of the lowest and highest points of the range: higher points are brighter.
POINT_GREY = (60, 200)

_PILLOW_MISSING = "BEV pictures need Pillow: pip install 'mmloop-runtime[render]'"


def class_colour(label: int) -> tuple[int, int, int]:
    return CLASS_COLOURS[int(label) % len(CLASS_COLOURS)]


def _gt_colour(label: int | None) -> tuple[int, int, int]:
    # Mostly white with a hint of the class colour: light enough never to be mistaken for a prediction.
    if label is None:
        return GT_COLOUR
    return tuple(int(0.75 * g + 0.25 * c) for g, c in zip(GT_COLOUR, class_colour(label)))  # type: ignore[return-value]


def picture_size(point_cloud_range: Sequence[float], pixels_per_metre: float = 8.0) -> tuple[int, int]:
    """(width, height) in pixels of the picture for a range [x_min, y_min, z_min, x_max, y_max, z_max]."""
    x_min, y_min, _, x_max, y_max, _ = point_cloud_range
    return int(round((y_max - y_min) * pixels_per_metre)), int(round((x_max - x_min) * pixels_per_metre))


def lidar_to_pixel(xy: np.ndarray, point_cloud_range: Sequence[float], pixels_per_metre: float = 8.0) -> np.ndarray:
    """LiDAR (..., 2) x/y to picture (..., 2) col/row as floats (col = across, row = down)."""
    x_max, y_max = point_cloud_range[3], point_cloud_range[4]
    col = (y_max - xy[..., 1]) * pixels_per_metre
    row = (x_max - xy[..., 0]) * pixels_per_metre
    return np.stack([col, row], axis=-1)


def _raster_points(
    points: np.ndarray, point_cloud_range: Sequence[float], pixels_per_metre: float, size: tuple[int, int]
) -> np.ndarray:
    """(height, width, 3) uint8 picture of the cloud on the background; the highest point wins a pixel."""
    width, height = size
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    pixels = np.floor(lidar_to_pixel(points[:, :2], point_cloud_range, pixels_per_metre)).astype(np.int64)
    cols, rows = pixels[:, 0], pixels[:, 1]
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    z_min, z_max = point_cloud_range[2], point_cloud_range[5]
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
    gt_boxes: np.ndarray | None = None,
    gt_labels: np.ndarray | None = None,
    title: str = "",
    pixels_per_metre: float = 8.0,
) -> PILImage.Image:
    """A bird's-eye picture of one frame, cropped to ``point_cloud_range``'s x/y.

    ``points`` (N, >=3) LiDAR x, y, z; ``boxes``/``gt_boxes`` (M, >=7) LiDAR boxes (x, y, z bottom
    centre, dx, dy, dz, yaw) as mmdet3d's LiDARInstance3DBoxes; ``labels``/``gt_labels`` index
    ``class_names``. Predictions are outlined in their class colour with a tick from the centre to the
    front edge and the score beside them; ground truth in thin near-white outlines (tinted by class
    when ``gt_labels`` is given). The title and legend sit over the far end of the range.
    """
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise RuntimeError(_PILLOW_MISSING) from None

    cloud = np.asarray(points, dtype=np.float32)
    if cloud.ndim != 2 or cloud.shape[1] < 3:
        raise ValueError(f"render_bev: points of shape {cloud.shape} are not (N, 3+); pass x, y, z per point")
    size = picture_size(point_cloud_range, pixels_per_metre)
    image = Image.fromarray(_raster_points(cloud, point_cloud_range, pixels_per_metre, size))
    draw = ImageDraw.Draw(image)
    font = _default_font(ImageFont)

    def to_pixels(xy: np.ndarray) -> list[tuple[float, float]]:
        return [tuple(p) for p in lidar_to_pixel(xy, point_cloud_range, pixels_per_metre)]

    if gt_boxes is not None and len(gt_boxes):
        for i, corners in enumerate(lidar_corners_bev(gt_boxes)):
            label = None if gt_labels is None else int(gt_labels[i])
            outline = to_pixels(corners)
            draw.line(outline + outline[:1], fill=_gt_colour(label), width=1)

    if boxes is not None and len(boxes):
        boxes = np.asarray(boxes, dtype=np.float64)
        labels_ = np.zeros(len(boxes), dtype=np.int64) if labels is None else np.asarray(labels).astype(np.int64)
        for box, corners, label, score in zip(boxes, lidar_corners_bev(boxes), labels_, _scores(scores, len(boxes))):
            colour = class_colour(label)
            outline = to_pixels(corners)
            draw.line(outline + outline[:1], fill=colour, width=2)
            front = (corners[2] + corners[3]) / 2  # corners 2, 3 are the front edge
            draw.line(to_pixels(np.stack([box[:2], front])), fill=colour, width=2)
            if score is not None:
                _label_box(draw, font, outline, f"{score:.2f}", colour)

    _draw_header(draw, font, title, class_names, show_gt=gt_boxes is not None)
    return image


def _default_font(image_font):
    # Pillow's own font; 12 px when FreeType is there (Pillow >= 10.1), else its fixed bitmap font.
    try:
        return image_font.load_default(size=12)
    except (TypeError, ImportError, OSError):
        return image_font.load_default()


def _scores(scores: np.ndarray | None, count: int) -> list[float | None]:
    if scores is None:
        return [None] * count
    return [float(s) for s in np.asarray(scores).reshape(-1)]


def _label_box(draw, font, outline: list[tuple[float, float]], text: str, colour: tuple[int, int, int]) -> None:
    # Just right of the box, level with its centre, so the text never sits on the outline.
    right = max(col for col, _ in outline)
    middle = sum(row for _, row in outline) / len(outline)
    _, top, _, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text((right + 3, middle - (bottom + top) / 2), text, fill=colour, font=font)


def _draw_header(draw, font, title: str, class_names: Sequence[str], show_gt: bool) -> None:
    """Title top-left, legend under it: a swatch and name per class, then GT when ground truth is drawn."""
    line_height = _text_height(draw, font) + 4
    swatch = line_height - 6
    entries = [(name, class_colour(i)) for i, name in enumerate(class_names)]
    if show_gt:
        entries.append(("GT", GT_COLOUR))
    widths = [swatch + 5 + int(math.ceil(draw.textlength(name, font=font))) + 12 for name, _ in entries]
    title_width = int(math.ceil(draw.textlength(title, font=font))) if title else 0
    # A backing panel keeps the text readable over far-range points.
    panel_width = max(title_width, sum(widths) - 12) + 8
    panel_height = line_height * (2 if title else 1) + 4
    draw.rectangle((2, 2, 2 + panel_width, 2 + panel_height), fill=BACKGROUND)
    col, row = 6, 4
    if title:
        draw.text((col, row), title, fill=TEXT_COLOUR, font=font)
        row += line_height
    for (name, colour), width in zip(entries, widths):
        draw.rectangle((col, row + 2, col + swatch, row + 2 + swatch), fill=colour)
        draw.text((col + swatch + 5, row), name, fill=TEXT_COLOUR, font=font)
        col += width


def _text_height(draw, font) -> int:
    _, top, _, bottom = draw.textbbox((0, 0), "Ag", font=font)
    return int(bottom - top)


def save_bev(image: PILImage.Image, path: str | Path) -> Path:
    """Write the picture as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
