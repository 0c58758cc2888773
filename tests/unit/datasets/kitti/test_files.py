"""Our KITTI readers and writers agree with mmdet3d's own parsers, on written and on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmloop.datasets.kitti import files as kitti
from mmloop.openmmlab.tools import import_tool


@pytest.fixture(scope="module")
def mmdet3d_kitti():
    return import_tool("dataset_converters.kitti_data_utils")


def mmdet3d_calib(data_utils, root: Path, frame_id: str) -> dict[str, np.ndarray]:
    infos = data_utils.get_kitti_image_info(
        str(root),
        training=True,
        label_info=False,
        calib=True,
        image_ids=[int(frame_id)],
        extend_matrix=False,
        with_imageshape=False,
        num_worker=1,
    )
    return infos[0]["calib"]


def assert_labels_match(data_utils, path: Path) -> None:
    ours = kitti.read_labels(path)
    theirs = data_utils.get_label_anno(str(path))
    assert list(theirs["name"]) == [label.type for label in ours]
    np.testing.assert_allclose(theirs["bbox"], [label.bbox for label in ours])
    h, w, length = np.array([label.dimensions for label in ours]).reshape(-1, 3).T
    np.testing.assert_allclose(theirs["dimensions"], np.stack([length, h, w], axis=1))  # mmdet3d keeps l, h, w
    np.testing.assert_allclose(theirs["location"], [label.location for label in ours])
    np.testing.assert_allclose(theirs["rotation_y"], [label.rotation_y for label in ours])
    np.testing.assert_allclose(theirs["alpha"], [label.alpha for label in ours])
    np.testing.assert_allclose(theirs["truncated"], [label.truncated for label in ours])
    np.testing.assert_array_equal(theirs["occluded"], [label.occluded for label in ours])


def test_written_labels_and_calib_read_back_by_mmdet3d(tmp_path: Path, mmdet3d_kitti) -> None:
    root = tmp_path / "kitti"
    for folder in ("calib", "label_2", "image_2"):
        (root / "training" / folder).mkdir(parents=True)
    kitti.frame_path(root, "image_2", "000042").touch()  # mmdet3d checks it exists, never reads it here
    rng = np.random.default_rng(3)
    calib = kitti.Calib(**{key: rng.normal(size=shape) for key, shape in kitti.CALIB_SHAPES.items()})
    kitti.write_calib(kitti.frame_path(root, "calib", "000042"), calib)
    labels = [
        kitti.Label("Car", 0.12, 1, -1.57, (10.5, 150.25, 300.0, 220.75), (1.52, 1.63, 3.88), (-3.1, 1.7, 22.4), -1.62),
        kitti.Label(
            "Pedestrian", 0.0, 0, 0.35, (600.0, 160.0, 640.5, 240.0), (1.76, 0.66, 0.84), (1.2, 1.65, 12.0), 0.45
        ),
        kitti.Label("DontCare", -1, -1, -10, (1.0, 2.0, 3.0, 4.0), (-1, -1, -1), (-1000, -1000, -1000), -10),
    ]
    label_file = kitti.frame_path(root, "label_2", "000042")
    kitti.write_labels(label_file, labels)

    assert kitti.read_labels(label_file) == labels
    assert_labels_match(mmdet3d_kitti, label_file)
    theirs = mmdet3d_calib(mmdet3d_kitti, root, "000042")
    ours = kitti.read_calib(kitti.frame_path(root, "calib", "000042"))
    for key in kitti.CALIB_SHAPES:
        np.testing.assert_allclose(theirs[key], getattr(calib, key), rtol=1e-11)
        np.testing.assert_allclose(getattr(ours, key), getattr(calib, key), rtol=1e-11)


@pytest.mark.fixtures
def test_real_kitti_files_parse_like_mmdet3d(kitti_real: Path, mmdet3d_kitti) -> None:
    for frame_id in kitti.read_split(kitti_real / "ImageSets" / "train.txt") + kitti.read_split(
        kitti_real / "ImageSets" / "val.txt"
    ):
        assert_labels_match(mmdet3d_kitti, kitti.frame_path(kitti_real, "label_2", frame_id))
        theirs = mmdet3d_calib(mmdet3d_kitti, kitti_real, frame_id)
        ours = kitti.read_calib(kitti.frame_path(kitti_real, "calib", frame_id))
        for key in kitti.CALIB_SHAPES:
            np.testing.assert_array_equal(getattr(ours, key), theirs[key])
        cloud = kitti.read_cloud(kitti.frame_path(kitti_real, "velodyne", frame_id))
        assert cloud.shape[1] == 4 and len(cloud) > 100_000


def test_calib_transforms_are_inverse() -> None:
    rng = np.random.default_rng(0)
    angle = 0.1
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    velo_to_cam = np.hstack([np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]]) @ rotation, [[0.01], [-0.07], [-0.3]]])
    calib = kitti.Calib(
        P0=np.eye(3, 4),
        P1=np.eye(3, 4),
        P2=np.eye(3, 4),
        P3=np.eye(3, 4),
        R0_rect=np.eye(3) + 0.001 * rng.normal(size=(3, 3)),
        Tr_velo_to_cam=velo_to_cam,
        Tr_imu_to_velo=np.eye(3, 4),
    )
    points = rng.uniform(-50, 50, size=(100, 3))
    np.testing.assert_allclose(calib.rect_to_lidar(calib.lidar_to_rect(points)), points, atol=1e-9)


def test_strict_parsing_errors_name_file_and_line(tmp_path: Path) -> None:
    label_file = tmp_path / "000000.txt"
    label_file.write_text("Car 0.00 0 -1.57 599.41 156.40 629.75 189.25 2.85 2.63 12.34 0.47 1.49 69.44 -1.56\n\n")
    with pytest.raises(kitti.KittiFileError, match=r"000000.txt:2: blank line"):
        kitti.read_labels(label_file)
    label_file.write_text("Car  0.00 0 -1.57 599.41 156.40 629.75 189.25 2.85 2.63 12.34 0.47 1.49 69.44 -1.56\n")
    with pytest.raises(kitti.KittiFileError, match=r"000000.txt:1: fields must be separated by single spaces"):
        kitti.read_labels(label_file)
    label_file.write_text("Car 0.00 0 -1.57 599.41 156.40 629.75 189.25 2.85 0 12.34 0.47 1.49 69.44 -1.56\n")
    with pytest.raises(kitti.KittiFileError, match=r"dimensions \(h, w, l\) must be positive"):
        kitti.read_labels(label_file)
    cloud = tmp_path / "000000.bin"
    cloud.write_bytes(b"\x00" * 17)
    with pytest.raises(kitti.KittiFileError) as error:
        kitti.read_cloud(cloud)
    assert str(error.value) == (
        f"{cloud}: 17 bytes is not a whole number of 4-float points (16 bytes each); "
        "is it a KITTI velodyne .bin with 4 features?"
    )
    cloud.write_bytes(b"")
    with pytest.raises(kitti.KittiFileError, match=r"000000.bin: an empty cloud \(0 bytes\); "):
        kitti.read_cloud(cloud)


def written_calib(path: Path) -> list[str]:
    """A calib file as KITTI writes it (random matrices), returned as its lines."""
    rng = np.random.default_rng(5)
    kitti.write_calib(path, kitti.Calib(**{key: rng.normal(size=shape) for key, shape in kitti.CALIB_SHAPES.items()}))
    return path.read_text().splitlines()


def test_strict_calib_errors_name_file_and_line(tmp_path: Path) -> None:
    """Calibration is read as mmdet3d's converter reads it: by line position, single spaces."""
    path = tmp_path / "000000.txt"
    lines = written_calib(path)
    kitti.read_calib(path)  # as written, it reads
    cases = [
        (
            [line for line in lines if not line.startswith("Tr_velo_to_cam")],
            f"{path}: no 'Tr_velo_to_cam:' line; is it a KITTI object calib .txt (P0-P3, R0_rect, Tr_velo_to_cam)?",
        ),
        (
            [line.rsplit(" ", 1)[0] if line.startswith("P2:") else line for line in lines],
            f"{path}:3: 'P2:' has 11 numbers, expected 12 (3x4); fix or re-copy the calib file",
        ),
        (
            [lines[2], lines[1], lines[0], *lines[3:]],
            f"{path}:1: expected P0 on line 1, found 'P2' (mmdet3d reads calib keys by position, in KITTI's order)",
        ),
        (
            ["P2: " + "  ".join(line.split()[1:]) if line.startswith("P2:") else line for line in lines],
            f"{path}:3: 'P2:' values must be separated by single spaces",
        ),
    ]
    for broken, message in cases:
        path.write_text("\n".join(broken) + "\n")
        with pytest.raises(kitti.KittiFileError) as error:
            kitti.read_calib(path)
        assert str(error.value) == message
        assert isinstance(error.value, ValueError) and "\n" not in message
