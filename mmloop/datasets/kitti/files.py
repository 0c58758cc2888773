"""Reading and writing the KITTI object-detection layout: clouds, calibration, labels, splits.

The parsers are strict on purpose: `validate` turns every `KittiFileError` into a one-line error
that names the file and line, so a bad frame is caught before `prepare` or training touch it.
Clouds and calibration are read by the torch-free runtime's reader (mmloop_runtime.kitti), in its
strict mode here, so the validator and the deployed runtime read a frame the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmloop_runtime.kitti import CALIB_SHAPES, KittiFileError, read_calib_matrices, read_text
from mmloop_runtime.kitti import read_cloud as read_runtime_cloud

#: Classes of the KITTI object benchmark, as they appear in `label_2` files.
KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare")

#: x, y, z, intensity as float32: 16 bytes per LiDAR point.
POINT_FEATURES = 4
POINT_BYTES = POINT_FEATURES * 4

#: Sub-folders of `training/` that every frame needs, with the file suffix of each.
FRAME_FILES = {"velodyne": ".bin", "calib": ".txt", "label_2": ".txt", "image_2": ".png"}


@dataclass(frozen=True)
class Calib:
    """One frame's calibration; matrices as float64 in KITTI's shapes (P: 3x4, R0_rect: 3x3)."""

    P0: np.ndarray
    P1: np.ndarray
    P2: np.ndarray
    P3: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray
    Tr_imu_to_velo: np.ndarray

    def lidar_to_rect(self, points: np.ndarray) -> np.ndarray:
        """LiDAR xyz (N, 3) to rectified camera xyz (N, 3)."""
        homogeneous = np.hstack([points[:, :3], np.ones((len(points), 1))])
        return (self.R0_rect @ (self.Tr_velo_to_cam @ homogeneous.T)).T

    def rect_to_lidar(self, points: np.ndarray) -> np.ndarray:
        """Rectified camera xyz (N, 3) to LiDAR xyz (N, 3)."""
        velo_to_rect = np.eye(4)
        velo_to_rect[:3, :3] = self.R0_rect @ self.Tr_velo_to_cam[:, :3]
        velo_to_rect[:3, 3] = self.R0_rect @ self.Tr_velo_to_cam[:, 3]
        homogeneous = np.hstack([points[:, :3], np.ones((len(points), 1))])
        return (np.linalg.inv(velo_to_rect) @ homogeneous.T).T[:, :3]

    def project_rect_to_image(self, points: np.ndarray) -> np.ndarray:
        """Rectified camera xyz (N, 3) to pixel uv (N, 2) in image_2 (points must have z > 0)."""
        homogeneous = np.hstack([points[:, :3], np.ones((len(points), 1))])
        uvw = (self.P2 @ homogeneous.T).T
        return uvw[:, :2] / uvw[:, 2:3]


@dataclass(frozen=True)
class Label:
    """One line of a `label_2` file, in KITTI's field order and units (metres, radians, pixels)."""

    type: str
    truncated: float
    occluded: int
    alpha: float
    bbox: tuple[float, float, float, float]  # left, top, right, bottom in image_2 pixels
    dimensions: tuple[float, float, float]  # height, width, length
    location: tuple[float, float, float]  # bottom centre, rectified camera frame
    rotation_y: float
    score: float | None = None

    def to_line(self) -> str:
        """The label as KITTI writes it: 15 fields, 16 with a score."""
        fields = [
            self.type,
            f"{self.truncated:.2f}",
            str(self.occluded),
            f"{self.alpha:.2f}",
            *(f"{v:.2f}" for v in self.bbox),
            *(f"{v:.2f}" for v in self.dimensions),
            *(f"{v:.2f}" for v in self.location),
            f"{self.rotation_y:.2f}",
        ]
        if self.score is not None:
            fields.append(f"{self.score:.4f}")
        return " ".join(fields)


def label_box_mask(points: np.ndarray, label: Label, calib: Calib) -> np.ndarray:
    """Which LiDAR points (N, >=3) lie inside a label's 3D box (bottom-centre origin, yaw about z)."""
    centre = calib.rect_to_lidar(np.array([label.location]))[0]
    height, width, length = label.dimensions
    yaw = -label.rotation_y - math.pi / 2  # KITTI's rotation_y in the camera frame -> yaw in the LiDAR frame
    offset = points[:, :2] - centre[:2]
    along = offset[:, 0] * math.cos(yaw) + offset[:, 1] * math.sin(yaw)
    across = -offset[:, 0] * math.sin(yaw) + offset[:, 1] * math.cos(yaw)
    up = points[:, 2] - centre[2]
    return (np.abs(along) <= length / 2) & (np.abs(across) <= width / 2) & (up >= 0) & (up <= height)


def image_mask(points: np.ndarray, calib: Calib, width: int, height: int, min_depth: float = 0.1) -> np.ndarray:
    """Which LiDAR points (N, >=3) project into image_2 (width x height pixels) in front of the camera."""
    rect = calib.lidar_to_rect(points)
    mask = rect[:, 2] > min_depth
    uv = calib.project_rect_to_image(np.where(mask[:, None], rect, 1.0))
    return mask & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)


def frame_path(root: Path, folder: str, frame_id: str) -> Path:
    """Path of one frame's file under `training/<folder>`."""
    return Path(root) / "training" / folder / f"{frame_id}{FRAME_FILES[folder]}"


def read_cloud(path: Path) -> np.ndarray:
    """A velodyne `.bin` as an (N, 4) float32 array of x, y, z, intensity in the LiDAR frame."""
    return read_runtime_cloud(path, POINT_FEATURES)


def write_cloud(path: Path, points: np.ndarray) -> None:
    np.ascontiguousarray(points[:, :POINT_FEATURES], dtype=np.float32).tofile(path)


def read_calib(path: Path) -> Calib:
    """A `calib/*.txt` file, read as strictly as mmdet3d's converter reads it (by line position,
    values split on single spaces)."""
    return Calib(**read_calib_matrices(path, strict=True))


def write_calib(path: Path, calib: Calib) -> None:
    lines = []
    for key in CALIB_SHAPES:
        values = getattr(calib, key).reshape(-1)
        lines.append(f"{key}: " + " ".join(f"{v:.12e}" for v in values))
    Path(path).write_text("\n".join(lines) + "\n\n")


def parse_label_line(text: str, path: Path, number: int, known_classes: tuple[str, ...] = KITTI_CLASSES) -> Label:
    """One `label_2` line; fields separated by single spaces, as mmdet3d's converter splits them."""
    fields = text.strip().split(" ")
    if fields == [""]:
        raise KittiFileError(path, number, "blank line (mmdet3d's label reader fails on it); delete it")
    if "" in fields:
        raise KittiFileError(path, number, "fields must be separated by single spaces")
    if len(fields) not in (15, 16):
        raise KittiFileError(path, number, f"expected 15 fields (16 with score), got {len(fields)}")
    name = fields[0]
    if name not in known_classes:
        raise KittiFileError(path, number, f"unknown class {name!r} (known: {', '.join(known_classes)})")
    try:
        values = [float(v) for v in fields[1:]]
    except ValueError:
        raise KittiFileError(path, number, "a field after the class name is not a number") from None
    if not all(math.isfinite(v) for v in values):
        raise KittiFileError(path, number, "a field is NaN or infinite")
    label = Label(
        type=name,
        truncated=values[0],
        occluded=int(values[1]),
        alpha=values[2],
        bbox=(values[3], values[4], values[5], values[6]),
        dimensions=(values[7], values[8], values[9]),
        location=(values[10], values[11], values[12]),
        rotation_y=values[13],
        score=values[14] if len(values) == 15 else None,
    )
    # DontCare regions carry -1 dimensions by definition; every real object needs a positive size.
    if name != "DontCare" and min(label.dimensions) <= 0:
        raise KittiFileError(path, number, f"dimensions (h, w, l) must be positive, got {label.dimensions}")
    return label


def read_labels(path: Path, known_classes: tuple[str, ...] = KITTI_CLASSES) -> list[Label]:
    """All objects of a `label_2/*.txt` file (an empty file is a frame with no objects)."""
    lines = read_text(path).splitlines()
    return [parse_label_line(text, path, number, known_classes) for number, text in enumerate(lines, start=1)]


def write_labels(path: Path, labels: list[Label]) -> None:
    Path(path).write_text("".join(label.to_line() + "\n" for label in labels))


def is_frame_id(text: str) -> bool:
    """KITTI frame ids are 6-digit numbers; mmdet3d's converter rebuilds file names as `%06d`."""
    return len(text) == 6 and text.isdigit()


def read_split(path: Path) -> list[str]:
    """Frame ids listed in an `ImageSets/<split>.txt` file, one per line."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def write_split(path: Path, frame_ids: list[str]) -> None:
    Path(path).write_text("".join(f"{frame_id}\n" for frame_id in frame_ids))
