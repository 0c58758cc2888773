"""KITTI frames in and KITTI results out, with numpy only: clouds, calibration, box frames, label_2 lines.

Every conversion here reproduces what mmdet3d 1.4 does for the same inputs (``LiDARInstance3DBoxes``,
``Box3DMode.convert``, ``KittiMetric.bbox2result_kitti``), so results written by the runtime score the
same as results written by the training repo. The tests compare against mmdet3d itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmloop_runtime.head import limit_period

#: KittiMetric's default ``pcd_limit_range`` (x, y, z min then max, LiDAR frame): predictions whose
#: bottom centre falls outside it are dropped from KITTI results.
KITTI_PCD_LIMIT_RANGE: tuple[float, ...] = (0.0, -40.0, -3.0, 70.4, 40.0, 0.0)

#: The seven lines of a KITTI object ``calib/*.txt`` with their (rows, cols), in the order KITTI
#: writes them and mmdet3d's converter reads them (by position).
CALIB_SHAPES: dict[str, tuple[int, int]] = {
    "P0": (3, 4),
    "P1": (3, 4),
    "P2": (3, 4),
    "P3": (3, 4),
    "R0_rect": (3, 3),
    "Tr_velo_to_cam": (3, 4),
    "Tr_imu_to_velo": (3, 4),
}
#: The lines the runtime needs, before extension to 4x4.
RUNTIME_CALIB_KEYS = ("P2", "R0_rect", "Tr_velo_to_cam")

_FLOAT_BYTES = 4


class KittiFileError(ValueError):
    """A KITTI file that does not parse: ``path``, the 1-based ``line`` (0 for the whole file) and
    the ``problem``; the message is ``path[:line]: problem``."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        super().__init__(f"{self.path}:{line}: {problem}" if line else f"{self.path}: {problem}")


class UndecodableTextError(KittiFileError):
    """A text file (label, calib, split) that is not UTF-8."""


def check_cloud_file(path: str | Path, features: int = 4) -> None:
    """A missing, wrong-size or empty ``.bin`` fails here, from its size alone: the CLI checks every
    cloud this way before running the first one, and mmloop's ``validate`` stage every frame."""
    path = Path(path)
    if not path.is_file():
        raise KittiFileError(path, 0, "no such file; pass the frame's velodyne .bin (training/velodyne/<frame>.bin)")
    size = path.stat().st_size
    point_bytes = _FLOAT_BYTES * features
    if size == 0:
        raise KittiFileError(path, 0, "an empty cloud (0 bytes); remove it or re-export the frame")
    if size % point_bytes:
        raise KittiFileError(
            path,
            0,
            f"{size} bytes is not a whole number of {features}-float points "
            f"({point_bytes} bytes each); is it a KITTI velodyne .bin with {features} features?",
        )


def read_cloud(path: str | Path, features: int = 4) -> np.ndarray:
    """A KITTI velodyne ``.bin`` as float32 (N, features): x, y, z, intensity for the usual 4."""
    check_cloud_file(path, features)
    return np.fromfile(path, dtype=np.float32).reshape(-1, features)


def read_text(path: str | Path) -> str:
    """A KITTI text file (label_2, calib, ImageSets) as UTF-8 (ASCII in practice), or a
    ``KittiFileError`` naming the file and the first undecodable byte instead of a traceback."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UndecodableTextError(
            path,
            line,
            f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "is it a binary file or another encoding? re-export it as plain ASCII",
        ) from None


@dataclass(frozen=True)
class Calib:
    """One frame's calibration, each matrix extended to 4x4 the way mmdet3d's KITTI converter does."""

    P2: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray

    @property
    def lidar2cam(self) -> np.ndarray:
        """LiDAR to rectified camera-2 frame: the ``lidar2cam`` mmdet3d stores in its KITTI infos."""
        return self.R0_rect @ self.Tr_velo_to_cam


def read_calib(path: str | Path) -> Calib:
    """A KITTI object ``calib/*.txt``; lines are found by key, so their order does not matter."""
    path = Path(path)
    if not path.is_file():
        raise KittiFileError(path, 0, "no such file; pass the frame's calib .txt (training/calib/<frame>.txt)")
    matrices = read_calib_matrices(path, RUNTIME_CALIB_KEYS)
    return Calib(
        P2=_extend_matrix(matrices["P2"]),
        R0_rect=_extend_rect(matrices["R0_rect"]),
        Tr_velo_to_cam=_extend_matrix(matrices["Tr_velo_to_cam"]),
    )


def read_calib_matrices(
    path: str | Path, keys: Sequence[str] = tuple(CALIB_SHAPES), strict: bool = False
) -> dict[str, np.ndarray]:
    """The ``keys`` of a calib file as float64 matrices in KITTI's shapes (P: 3x4, R0_rect: 3x3).

    Lenient (the runtime): each line found by its key, values split on any whitespace. ``strict``
    reads as mmdet3d's converter does, which takes the matrices by line position (P0, P1, P2, P3,
    R0_rect, Tr_velo_to_cam, Tr_imu_to_velo on lines 1-7) and splits values on single spaces: a
    file a looser reader accepts can still be misread there, so mmloop's ``validate`` refuses it.
    """
    path = Path(path)
    lines = read_text(path).splitlines()
    by_key = {}
    for number, text in enumerate(lines, start=1):
        key, colon, rest = text.partition(":")
        if colon:
            by_key.setdefault(key.strip(), (number, rest))
    matrices = {}
    for key in keys:
        if key not in by_key:
            raise KittiFileError(
                path, 0, f"no '{key}:' line; is it a KITTI object calib .txt (P0-P3, R0_rect, Tr_velo_to_cam)?"
            )
        number, rest = by_key[key]
        line = 0
        if strict:
            line = list(CALIB_SHAPES).index(key) + 1
            text = lines[line - 1] if line <= len(lines) else ""
            found = text.partition(":")[0].strip()
            if found != key:
                raise KittiFileError(
                    path,
                    line,
                    f"expected {key} on line {line}, found {found or 'a blank line'!r} "
                    "(mmdet3d reads calib keys by position, in KITTI's order)",
                )
            if "" in rest.rstrip().split(" ")[1:]:
                raise KittiFileError(path, line, f"'{key}:' values must be separated by single spaces")
        matrices[key] = _calib_matrix(path, line, key, rest, CALIB_SHAPES[key])
    return matrices


def _calib_matrix(path: Path, line: int, key: str, text: str, shape: tuple[int, int]) -> np.ndarray:
    expected = shape[0] * shape[1]
    try:
        numbers = [float(token) for token in text.split()]
    except ValueError:
        raise KittiFileError(
            path, line, f"'{key}:' has a value that is not a number; fix or re-copy the calib file"
        ) from None
    if len(numbers) != expected:
        raise KittiFileError(
            path,
            line,
            f"'{key}:' has {len(numbers)} numbers, expected {expected} "
            f"({shape[0]}x{shape[1]}); fix or re-copy the calib file",
        )
    return np.array(numbers, dtype=np.float64).reshape(shape)


def _extend_matrix(mat: np.ndarray) -> np.ndarray:
    # mmdet3d's converter appends [0, 0, 0, 1] to 3x4 matrices; lidar2cam and cam2img are built from these.
    return np.concatenate([mat, np.array([[0.0, 0.0, 0.0, 1.0]])], axis=0)


def _extend_rect(rect: np.ndarray) -> np.ndarray:
    rect_4x4 = np.zeros((4, 4), dtype=np.float64)
    rect_4x4[3, 3] = 1.0
    rect_4x4[:3, :3] = rect
    return rect_4x4


def _as_boxes(boxes: np.ndarray | Sequence[Sequence[float]], what: str = "boxes") -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, 7), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 7:
        raise ValueError(f"{what}: shape {array.shape} is not (N, 7+); pass x, y, z, dx, dy, dz, yaw per box")
    # Extra columns (e.g. velocities) play no part in KITTI geometry.
    return array[:, :7]


def lidar_to_camera(boxes: np.ndarray, calib: Calib) -> np.ndarray:
    """LiDAR boxes (x, y, z bottom centre, dx, dy, dz, yaw) to camera boxes (x, y, z bottom centre, l, h, w, ry).

    Same numbers as ``LiDARInstance3DBoxes(boxes).convert_to(Box3DMode.CAM, calib.lidar2cam)``: the
    centre goes through lidar2cam, sizes are reordered (dx, dz, dy), and the yaw is *not* rotated by
    the matrix (mmdet3d's default ``correct_yaw=False``) but mapped as ``-yaw - pi/2`` and wrapped to
    [-pi, pi). For KITTI's nearly axis-aligned lidar2cam that is what KITTI's ``rotation_y`` means.
    """
    lidar = _as_boxes(boxes)
    homogeneous = np.concatenate([lidar[:, :3], np.ones((len(lidar), 1))], axis=1)
    xyz = (homogeneous @ calib.lidar2cam.T)[:, :3]
    sizes = lidar[:, [3, 5, 4]]
    ry = limit_period(-lidar[:, 6:7] - math.pi / 2, period=2 * math.pi)
    return np.concatenate([xyz, sizes, ry], axis=1)


def camera_to_lidar(boxes_cam: np.ndarray, calib: Calib) -> np.ndarray:
    """Camera boxes (x, y, z bottom centre, l, h, w, ry) to LiDAR boxes: the inverse of ``lidar_to_camera``.

    Same numbers as ``CameraInstance3DBoxes(boxes).convert_to(Box3DMode.LIDAR, inv(calib.lidar2cam))``,
    which is how mmdet3d turns ``label_2`` ground truth into LiDAR boxes.
    """
    cam = _as_boxes(boxes_cam, "boxes_cam")
    homogeneous = np.concatenate([cam[:, :3], np.ones((len(cam), 1))], axis=1)
    xyz = (homogeneous @ np.linalg.inv(calib.lidar2cam).T)[:, :3]
    sizes = cam[:, [3, 5, 4]]
    yaw = limit_period(-cam[:, 6:7] - math.pi / 2, period=2 * math.pi)
    return np.concatenate([xyz, sizes, yaw], axis=1)


def read_label_boxes(path: str | Path, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth of a KITTI ``label_2/*.txt``: camera boxes (x, y, z bottom centre, l, h, w, ry)
    and class indices, for the objects whose type is one of ``class_names`` (others, DontCare
    among them, are left out, as mmdet3d leaves them out of its evaluation)."""
    path = Path(path)
    boxes, labels = [], []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] not in class_names:
            continue
        if len(fields) < 15:
            raise ValueError(f"{path}:{number}: {len(fields)} fields, a KITTI label line has 15; fix the label file")
        height, width, length, x, y, z, ry = (float(value) for value in fields[8:15])
        boxes.append([x, y, z, length, height, width, ry])
        labels.append(list(class_names).index(fields[0]))
    return np.array(boxes, np.float64).reshape(-1, 7), np.array(labels, np.int64)


def _rotate_about_z(corners: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    cos, sin = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x, y = corners[..., 0], corners[..., 1]
    rotated = corners.copy()
    rotated[..., 0] = x * cos - y * sin
    rotated[..., 1] = x * sin + y * cos
    return rotated


def _rotate_about_y(corners: np.ndarray, ry: np.ndarray) -> np.ndarray:
    # mmdet3d's rotation_3d_in_axis(axis=1): x' = x cos + z sin, z' = -x sin + z cos.
    cos, sin = np.cos(ry)[:, None], np.sin(ry)[:, None]
    x, z = corners[..., 0], corners[..., 2]
    rotated = corners.copy()
    rotated[..., 0] = x * cos + z * sin
    rotated[..., 2] = -x * sin + z * cos
    return rotated


def _unit_corners(origin: tuple[float, float, float]) -> np.ndarray:
    # mmdet3d's corner order: (x0y0z0, x0y0z1, x0y1z1, x0y1z0, x1y0z0, x1y0z1, x1y1z1, x1y1z0).
    bits = np.stack(np.unravel_index(np.arange(8), [2] * 3), axis=1)[[0, 1, 3, 2, 4, 5, 7, 6]]
    return bits - np.asarray(origin)


def lidar_corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 8, 3) corners of LiDAR boxes, in ``LiDARInstance3DBoxes.corners`` order (origin (0.5, 0.5, 0))."""
    lidar = _as_boxes(boxes)
    corners = lidar[:, None, 3:6] * _unit_corners((0.5, 0.5, 0.0))[None]
    return _rotate_about_z(corners, lidar[:, 6]) + lidar[:, None, :3]


def camera_corners(boxes_cam: np.ndarray) -> np.ndarray:
    """(N, 8, 3) corners of camera boxes, in ``CameraInstance3DBoxes.corners`` order (origin (0.5, 1, 0.5))."""
    cam = _as_boxes(boxes_cam)
    corners = cam[:, None, 3:6] * _unit_corners((0.5, 1.0, 0.5))[None]
    return _rotate_about_y(corners, cam[:, 6]) + cam[:, None, :3]


def lidar_corners_bev(boxes: np.ndarray) -> np.ndarray:
    """(N, 4, 2) bird's-eye corners (x, y) of LiDAR boxes, going round the box.

    Order: rear-right, rear-left, front-left, front-right (x0y0, x0y1, x1y1, x1y0 of mmdet3d's
    corners), so corners 2 and 3 are the front edge, the one the yaw points through.
    """
    return lidar_corners(boxes)[:, [0, 3, 7, 4], :2]


def project_to_image(points_cam: np.ndarray, P2: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) to pixels (..., 2) with the 4x4 P2, like mmdet3d's ``points_cam2img``."""
    homogeneous = np.concatenate([points_cam, np.ones(points_cam.shape[:-1] + (1,))], axis=-1)
    projected = homogeneous @ P2.T
    return projected[..., :2] / projected[..., 2:3]


def _image_boxes(boxes_cam: np.ndarray, P2: np.ndarray) -> np.ndarray:
    pixels = project_to_image(camera_corners(boxes_cam), P2)
    return np.concatenate([pixels.min(axis=1), pixels.max(axis=1)], axis=1)


def label_lines(
    boxes_lidar: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    calib: Calib,
    image_shape: tuple[int, int] | None = None,
    pcd_limit_range: Sequence[float] = KITTI_PCD_LIMIT_RANGE,
) -> list[str]:
    """KITTI ``label_2`` result lines for one frame, as mmdet3d's KittiMetric writes its submission files.

    Each line is ``name -1 -1 alpha left top right bottom h w l x y z ry score`` with 4 decimals,
    where alpha = -arctan2(-y_lidar, x_lidar) + ry and the 2D box is the min/max of the 8 box
    corners projected with P2 (KittiMetric's ``convert_valid_bboxes`` + ``bbox2result_kitti``).

    Which boxes are kept:

    - ``image_shape=(height, width)`` given: exactly KittiMetric's filter. A box is kept when its
      projected 2D box overlaps the image (left < width, top < height, right > 0, bottom > 0) and its
      LiDAR bottom centre is strictly inside ``pcd_limit_range`` (KittiMetric's default range unless
      the model config sets another). The 2D box is then clipped as mmdet3d clips it: left/top to
      >= 0, right/bottom to <= width/height (width and height themselves, not width - 1).
    - no image shape: the image test is impossible, so keep the boxes whose bottom centre is in front
      of the camera (camera z > 0), unclipped; ``pcd_limit_range`` is not applied either.

    Yaws are wrapped to [-pi, pi) first, as KittiMetric does with ``limit_yaw`` before converting.
    """
    lidar = _as_boxes(boxes_lidar, "boxes_lidar")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if not len(lidar) == len(scores) == len(labels):
        raise ValueError(
            f"label_lines: {len(lidar)} boxes, {len(scores)} scores, {len(labels)} labels; "
            "pass one score and label per box"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(
            f"label_lines: labels span {labels.min()}..{labels.max()} but there are {len(class_names)} class names; "
            "pass the model's class_names"
        )
    lidar = lidar.copy()
    lidar[:, 6] = limit_period(lidar[:, 6], period=2 * math.pi)
    cam = lidar_to_camera(lidar, calib)
    image_boxes = _image_boxes(cam, calib.P2)

    if image_shape is not None:
        keep = _in_image(image_boxes, image_shape) & _in_range(lidar, pcd_limit_range)
        height, width = image_shape
        image_boxes[:, 2:] = np.minimum(image_boxes[:, 2:], [width, height])
        image_boxes[:, :2] = np.maximum(image_boxes[:, :2], [0, 0])
    else:
        keep = cam[:, 2] > 0

    alpha = -np.arctan2(-lidar[:, 1], lidar[:, 0]) + cam[:, 6]
    return [
        _format_line(class_names[labels[i]], alpha[i], image_boxes[i], cam[i], scores[i]) for i in np.flatnonzero(keep)
    ]


def _in_image(image_boxes: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    height, width = image_shape
    return (
        (image_boxes[:, 0] < width) & (image_boxes[:, 1] < height) & (image_boxes[:, 2] > 0) & (image_boxes[:, 3] > 0)
    )


def _in_range(lidar: np.ndarray, pcd_limit_range: Sequence[float]) -> np.ndarray:
    limits = np.asarray(pcd_limit_range, dtype=np.float64)
    centre = lidar[:, :3]
    return ((centre > limits[:3]) & (centre < limits[3:])).all(axis=1)


def _format_line(name: str, alpha: float, image_box: np.ndarray, cam: np.ndarray, score: float) -> str:
    left, top, right, bottom = image_box
    x, y, z, length, height, width, ry = cam
    # KITTI writes dimensions as h, w, l; truncated and occluded are unknown for predictions.
    return (
        f"{name} -1 -1 {alpha:.4f} {left:.4f} {top:.4f} {right:.4f} {bottom:.4f} "
        f"{height:.4f} {width:.4f} {length:.4f} {x:.4f} {y:.4f} {z:.4f} {ry:.4f} {score:.4f}"
    )
