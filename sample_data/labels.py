"""Labels: the KITTI label of each object image_2 sees, its 2D box the clipped projection of its 3D box."""

from __future__ import annotations

import math

import numpy as np

from mmloop.datasets.kitti.files import Calib, Label
from sample_data.scene import footprint, street_to_lidar, wrap_angle
from sample_data.world import GROUND_Z, IMAGE_HEIGHT, IMAGE_WIDTH, NEAR_PLANE, SceneObject, Street

# Corner order of a box: the bottom rectangle counter-clockwise from front-left, then the top one.
BOX_EDGES = np.array([(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)])


def box_corners(bottom_centre: np.ndarray, length: float, width: float, height: float, yaw: float) -> np.ndarray:
    """Eight LiDAR-frame corners (8, 3) of an upright box, in BOX_EDGES order."""
    xy = footprint(bottom_centre[0], bottom_centre[1], yaw, length, width)
    bottom = np.column_stack([xy, np.full(4, bottom_centre[2])])
    return np.vstack([bottom, bottom + np.array([0.0, 0.0, height])])


def image_box(corners_rect: np.ndarray, calib: Calib) -> tuple[np.ndarray, float] | None:
    """2D box (left, top, right, bottom) clipped to image_2 and its truncation, or None if not in view.

    The box is cut at the near plane first, so objects beside the camera project to a finite,
    heavily truncated box instead of wrapping around.
    """
    in_front = corners_rect[:, 2] >= NEAR_PLANE
    if not in_front.any():
        return None
    a, b = corners_rect[BOX_EDGES[:, 0]], corners_rect[BOX_EDGES[:, 1]]
    cut = (a[:, 2] >= NEAR_PLANE) != (b[:, 2] >= NEAR_PLANE)
    fraction = (NEAR_PLANE - a[cut, 2]) / (b[cut, 2] - a[cut, 2])
    visible = np.vstack([corners_rect[in_front], a[cut] + fraction[:, None] * (b[cut] - a[cut])])
    uv = calib.project_rect_to_image(visible)
    full = np.concatenate([uv.min(axis=0), uv.max(axis=0)])
    limits = np.array([IMAGE_WIDTH - 1, IMAGE_HEIGHT - 1] * 2, dtype=float)
    clipped = np.clip(full, 0.0, limits)
    full_area = (full[2] - full[0]) * (full[3] - full[1])
    clipped_area = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
    if clipped_area <= 0 or full_area <= 0:
        return None
    return clipped, float(np.clip(1.0 - clipped_area / full_area, 0.0, 1.0))


def occlusion_level(rays: int, first: int) -> int:
    """KITTI's 0 / 1 / 2 from the share of the object's rays that something else stopped first."""
    hidden = 1.0 - first / rays if rays else 1.0
    return 0 if hidden < 0.1 else 1 if hidden < 0.5 else 2


def make_label(obj: SceneObject, street: Street, calib: Calib, occluded: int) -> Label | None:
    """The KITTI label of an object image_2 sees, values rounded as they will be written."""
    x, y = street_to_lidar(np.array([[obj.s, obj.u]]), street)[0]
    bottom_centre = np.array([x, y, GROUND_Z + obj.bottom])
    yaw = obj.yaw - street.heading
    corners = calib.lidar_to_rect(box_corners(bottom_centre, obj.length, obj.width, obj.height, yaw))
    projected = image_box(corners, calib)
    if projected is None:
        return None
    bbox, truncated = projected
    location = calib.lidar_to_rect(bottom_centre[None, :])[0]
    rotation_y = wrap_angle(-yaw - math.pi / 2)
    alpha = wrap_angle(rotation_y - math.atan2(location[0], location[2]))
    return Label(
        type=obj.kind,
        truncated=round(truncated, 2),
        occluded=occluded,
        alpha=round(alpha, 2),
        bbox=tuple(round(float(v), 2) for v in bbox),
        dimensions=(round(obj.height, 2), round(obj.width, 2), round(obj.length, 2)),
        location=tuple(round(float(v), 2) for v in location),
        rotation_y=round(rotation_y, 2),
    )
