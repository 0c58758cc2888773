"""The runtime's numpy KITTI code gives mmdet3d's numbers: box frames, corners, calib, KittiMetric result lines."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, kittimetric_for_frame

from mmloop_runtime import kitti

FRAMES = [f"{i:06d}" for i in range(6)]
CLASS_NAMES = ["Pedestrian", "Cyclist", "Car"]
#: The 3-class PointPillars config's range, to check a non-default pcd_limit_range is honoured too.
MODEL_RANGE = [0, -39.68, -3, 69.12, 39.68, 1]


def random_lidar_boxes(count: int, seed: int) -> np.ndarray:
    """Boxes all round the car, some outside the image and range, yaws well past +-pi."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.uniform(-15, 85, count),
            rng.uniform(-50, 50, count),
            rng.uniform(-3.5, 0.5, count),
            rng.uniform(0.4, 5.0, count),
            rng.uniform(0.4, 2.5, count),
            rng.uniform(1.0, 2.2, count),
            rng.uniform(-8, 8, count),
        ]
    ).astype(np.float32)  # the model's boxes are float32, and mmdet3d holds boxes as float32


def frame_calib(kitti_real: Path, frame_id: str) -> kitti.Calib:
    return kitti.read_calib(kitti_real / "training" / "calib" / f"{frame_id}.txt")


def image_shape(kitti_real: Path, frame_id: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(kitti_real / "training" / "image_2" / f"{frame_id}.png") as image:
        return image.height, image.width


# ---- box frames and corners ---------------------------------------------------------------------


@pytest.mark.fixtures
@pytest.mark.parametrize("frame_id", FRAMES)
def test_lidar_to_camera_matches_mmdet3d_convert_to(kitti_real: Path, frame_id: str) -> None:
    import torch
    from mmdet3d.structures import Box3DMode, LiDARInstance3DBoxes

    calib = frame_calib(kitti_real, frame_id)
    boxes = random_lidar_boxes(500, seed=int(frame_id))
    theirs = LiDARInstance3DBoxes(torch.from_numpy(boxes)).convert_to(Box3DMode.CAM, calib.lidar2cam).tensor.numpy()
    ours = kitti.lidar_to_camera(boxes, calib)
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
    assert ours[:, 6].min() >= -math.pi and ours[:, 6].max() < math.pi  # limit_period to [-pi, pi)


@pytest.mark.fixtures
@pytest.mark.parametrize("frame_id", FRAMES[:2])
def test_camera_to_lidar_matches_mmdet3d_and_inverts(kitti_real: Path, frame_id: str) -> None:
    import torch
    from mmdet3d.structures import Box3DMode, CameraInstance3DBoxes

    calib = frame_calib(kitti_real, frame_id)
    boxes = random_lidar_boxes(200, seed=10 + int(frame_id))
    cam = kitti.lidar_to_camera(boxes, calib).astype(np.float32)
    theirs = (
        CameraInstance3DBoxes(torch.from_numpy(cam))
        .convert_to(Box3DMode.LIDAR, np.linalg.inv(calib.lidar2cam))
        .tensor.numpy()
    )
    ours = kitti.camera_to_lidar(cam, calib)
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours[:, :6], boxes[:, :6], atol=1e-4)
    np.testing.assert_allclose(np.cos(ours[:, 6] - boxes[:, 6]), 1.0, atol=1e-6)  # same yaw up to 2 pi


def test_lidar_corners_match_mmdet3d() -> None:
    import torch
    from mmdet3d.structures import LiDARInstance3DBoxes

    boxes = random_lidar_boxes(300, seed=3)
    theirs = LiDARInstance3DBoxes(torch.from_numpy(boxes)).corners.numpy()
    np.testing.assert_allclose(kitti.lidar_corners(boxes), theirs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(kitti.lidar_corners_bev(boxes), theirs[:, [0, 3, 7, 4], :2], atol=1e-4, rtol=0)


def test_camera_corners_match_mmdet3d() -> None:
    import torch
    from mmdet3d.structures import CameraInstance3DBoxes

    rng = np.random.default_rng(4)
    cam = np.column_stack(
        [
            rng.uniform(-20, 20, 300),
            rng.uniform(0, 3, 300),
            rng.uniform(1, 70, 300),
            rng.uniform(0.4, 5, 300),
            rng.uniform(1, 2.2, 300),
            rng.uniform(0.4, 2.5, 300),
            rng.uniform(-4, 4, 300),
        ]
    ).astype(np.float32)
    theirs = CameraInstance3DBoxes(torch.from_numpy(cam)).corners.numpy()
    np.testing.assert_allclose(kitti.camera_corners(cam), theirs, atol=1e-4, rtol=0)


def test_bev_corners_go_round_the_box_with_the_front_edge_last() -> None:
    box = np.array([[10.0, 2.0, -1.0, 4.0, 2.0, 1.5, math.pi / 2]])  # facing +y (left)
    corners = kitti.lidar_corners_bev(box)[0]
    # rear-right, rear-left, front-left, front-right of a car facing left
    np.testing.assert_allclose(corners, [[11, 0], [9, 0], [9, 4], [11, 4]], atol=1e-12)


# ---- KITTI result lines -----------------------------------------------------------------------


def kittimetric_lines(tmp_path: Path, boxes, scores, labels, calib: kitti.Calib, shape, pcd_limit_range) -> list[str]:
    """What KittiMetric (format_only, submission_prefix) writes for one frame's predictions."""
    out = tmp_path / "submission"
    metric, prediction = kittimetric_for_frame(
        boxes,
        scores,
        labels,
        calib,
        shape,
        pcd_limit_range=list(pcd_limit_range),
        format_only=True,
        submission_prefix=str(out),
    )
    metric.bbox2result_kitti([prediction], [0], CLASS_NAMES, submission_prefix=str(out))
    return (out / "000000.txt").read_text().splitlines()


def assert_same_lines(ours: list[str], theirs: list[str]) -> None:
    assert len(ours) == len(theirs)
    assert [line.split()[:3] for line in ours] == [line.split()[:3] for line in theirs]
    numbers_ours = np.array([[float(v) for v in line.split()[3:]] for line in ours]).reshape(-1, 13)
    numbers_theirs = np.array([[float(v) for v in line.split()[3:]] for line in theirs]).reshape(-1, 13)
    # mmdet3d computes in float32, we in float64: the 4th decimal may differ by one, pixels (~1000) by two.
    pixels = slice(1, 5)
    np.testing.assert_allclose(numbers_ours[:, pixels], numbers_theirs[:, pixels], atol=3.01e-4, rtol=0)
    others = np.r_[0, 5:13]
    np.testing.assert_allclose(numbers_ours[:, others], numbers_theirs[:, others], atol=1.01e-4, rtol=0)


@pytest.mark.fixtures
@pytest.mark.parametrize("frame_id", FRAMES)
def test_label_lines_match_kittimetric(kitti_real: Path, tmp_path: Path, frame_id: str) -> None:
    calib = frame_calib(kitti_real, frame_id)
    shape = image_shape(kitti_real, frame_id)
    boxes = random_lidar_boxes(400, seed=100 + int(frame_id))
    rng = np.random.default_rng(int(frame_id))
    scores = rng.uniform(0, 1, len(boxes)).astype(np.float32)
    labels = rng.integers(0, len(CLASS_NAMES), len(boxes))

    theirs = kittimetric_lines(tmp_path, boxes, scores, labels, calib, shape, kitti.KITTI_PCD_LIMIT_RANGE)
    ours = kitti.label_lines(boxes, scores, labels, CLASS_NAMES, calib, image_shape=shape)
    assert 0 < len(ours) < len(boxes)  # the filters kept some and dropped some
    assert_same_lines(ours, theirs)


@pytest.mark.fixtures
def test_label_lines_honour_another_pcd_limit_range(kitti_real: Path, tmp_path: Path) -> None:
    calib = frame_calib(kitti_real, "000004")
    shape = image_shape(kitti_real, "000004")
    boxes = random_lidar_boxes(400, seed=7)
    scores = np.linspace(0.01, 0.99, len(boxes), dtype=np.float32)
    labels = np.arange(len(boxes)) % 3
    theirs = kittimetric_lines(tmp_path, boxes, scores, labels, calib, shape, MODEL_RANGE)
    ours = kitti.label_lines(boxes, scores, labels, CLASS_NAMES, calib, image_shape=shape, pcd_limit_range=MODEL_RANGE)
    default = kitti.label_lines(boxes, scores, labels, CLASS_NAMES, calib, image_shape=shape)
    assert len(ours) != len(default)
    assert_same_lines(ours, theirs)


@pytest.mark.fixtures
def test_label_lines_without_image_keep_boxes_in_front_of_the_camera(kitti_real: Path) -> None:
    calib = frame_calib(kitti_real, "000000")
    boxes = random_lidar_boxes(300, seed=9)
    scores = np.full(len(boxes), 0.5, dtype=np.float32)
    labels = np.full(len(boxes), 2)
    cam = kitti.lidar_to_camera(boxes, calib)
    lines = kitti.label_lines(boxes, scores, labels, CLASS_NAMES, calib)
    assert len(lines) == int((cam[:, 2] > 0).sum()) < len(boxes)
    depths = np.array([float(line.split()[13]) for line in lines])
    np.testing.assert_allclose(depths, cam[cam[:, 2] > 0, 2], atol=1e-4)
    # unclipped: some 2D boxes run past the 1242 x 375 image
    lefts_rights = np.array([[float(v) for v in line.split()[4:8]] for line in lines])
    assert (lefts_rights[:, 0] < 0).any() or (lefts_rights[:, 2] > 1242).any()


@pytest.mark.fixtures
def test_label_line_of_a_real_ground_truth_car(kitti_real: Path) -> None:
    """label_2 -> LiDAR -> label line gives back the label's own numbers (KITTI's alpha, ry, dims, place)."""
    calib = frame_calib(kitti_real, "000004")
    fields = (kitti_real / "training" / "label_2" / "000004.txt").read_text().splitlines()[0].split()
    h, w, length, x, y, z, ry = (float(v) for v in fields[8:15])
    lidar = kitti.camera_to_lidar(np.array([[x, y, z, length, h, w, ry]]), calib)
    line = kitti.label_lines(lidar, [0.9], [2], CLASS_NAMES, calib, image_shape=image_shape(kitti_real, "000004"))[0]
    ours = line.split()
    assert ours[:3] == ["Car", "-1", "-1"] and ours[15] == "0.9000"
    np.testing.assert_allclose([float(v) for v in ours[8:15]], [h, w, length, x, y, z, ry], atol=1e-4)
    np.testing.assert_allclose([float(v) for v in ours[4:8]], [float(v) for v in fields[4:8]], atol=3)  # 2D box
    assert abs(float(ours[3]) - float(fields[3])) < 0.02  # alpha from the LiDAR ray, close to the camera ray's


def test_label_lines_empty_and_bad_inputs() -> None:
    calib = kitti.Calib(P2=np.eye(4), R0_rect=np.eye(4), Tr_velo_to_cam=np.eye(4))
    assert kitti.label_lines(np.zeros((0, 7)), [], [], CLASS_NAMES, calib, image_shape=(375, 1242)) == []
    with pytest.raises(
        ValueError, match=r"^label_lines: 1 boxes, 2 scores, 1 labels; pass one score and label per box$"
    ):
        kitti.label_lines(np.ones((1, 7)), [0.1, 0.2], [0], CLASS_NAMES, calib)
    with pytest.raises(ValueError, match=r"^label_lines: labels span 0\.\.3 but there are 3 class names"):
        kitti.label_lines(np.ones((2, 7)), [0.1, 0.2], [0, 3], CLASS_NAMES, calib)
    with pytest.raises(ValueError, match=r"^boxes_lidar: shape \(2, 5\) is not \(N, 7\+\)"):
        kitti.label_lines(np.ones((2, 5)), [0.1, 0.2], [0, 1], CLASS_NAMES, calib)


# ---- files --------------------------------------------------------------------------------------


@pytest.mark.fixtures
@pytest.mark.parametrize("frame_id", FRAMES)
def test_read_cloud_on_real_frames(kitti_real: Path, frame_id: str) -> None:
    path = kitti_real / "training" / "velodyne" / f"{frame_id}.bin"
    cloud = kitti.read_cloud(path)
    assert cloud.dtype == np.float32 and cloud.shape == (path.stat().st_size // 16, 4)
    assert len(cloud) > 100_000
    np.testing.assert_array_equal(cloud, np.fromfile(path, dtype=np.float32).reshape(-1, 4))
    assert np.abs(cloud[:, :2]).max() < 130 and 0 <= cloud[:, 3].min() and cloud[:, 3].max() <= 1  # metres, reflectance


def test_read_cloud_bad_files(tmp_path: Path) -> None:
    wrong = tmp_path / "cloud.bin"
    wrong.write_bytes(b"\x00" * 1234)
    with pytest.raises(ValueError) as error:
        kitti.read_cloud(wrong)
    assert str(error.value) == (
        f"{wrong}: 1234 bytes is not a whole number of 4-float points (16 bytes each); "
        f"is it a KITTI velodyne .bin with 4 features?"
    )
    five = tmp_path / "cloud5.bin"
    five.write_bytes(b"\x00" * 32)  # two 4-float points, not whole 5-float ones
    with pytest.raises(ValueError) as error:
        kitti.read_cloud(five, features=5)
    assert str(error.value) == (
        f"{five}: 32 bytes is not a whole number of 5-float points (20 bytes each); "
        f"is it a KITTI velodyne .bin with 5 features?"
    )
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(ValueError) as error:
        kitti.read_cloud(empty)
    assert str(error.value) == f"{empty}: an empty cloud (0 bytes); remove it or re-export the frame"
    missing = tmp_path / "missing.bin"
    with pytest.raises(ValueError) as error:
        kitti.read_cloud(missing)
    assert str(error.value) == (
        f"{missing}: no such file; pass the frame's velodyne .bin (training/velodyne/<frame>.bin)"
    )


@pytest.mark.fixtures
@pytest.mark.parametrize("frame_id", FRAMES)
def test_read_calib_matches_mmdet3d_converter(kitti_real: Path, frame_id: str) -> None:
    from mmloop.openmmlab.tools import import_tool

    data_utils = import_tool("dataset_converters.kitti_data_utils")
    infos = data_utils.get_kitti_image_info(
        str(kitti_real),
        training=True,
        label_info=False,
        calib=True,
        image_ids=[int(frame_id)],
        extend_matrix=True,
        with_imageshape=False,
        num_worker=1,
    )
    theirs = infos[0]["calib"]
    ours = frame_calib(kitti_real, frame_id)
    for key in ("P2", "R0_rect", "Tr_velo_to_cam"):
        assert getattr(ours, key).shape == (4, 4)
        np.testing.assert_array_equal(getattr(ours, key), theirs[key])
    # mmdet3d's KITTI infos store lidar2cam = R0_rect @ Tr_velo_to_cam
    np.testing.assert_allclose(ours.lidar2cam, theirs["R0_rect"] @ theirs["Tr_velo_to_cam"], rtol=0, atol=0)


@pytest.mark.fixtures
def test_read_calib_bad_files(kitti_real: Path, tmp_path: Path) -> None:
    good_lines = (kitti_real / "training" / "calib" / "000000.txt").read_text().splitlines()
    calib_file = tmp_path / "000000.txt"

    def expect(lines: list[str], message: str) -> None:
        calib_file.write_text("\n".join(lines) + "\n")
        with pytest.raises(ValueError) as error:
            kitti.read_calib(calib_file)
        assert str(error.value) == f"{calib_file}: {message}"

    expect(
        [line for line in good_lines if not line.startswith("R0_rect")],
        "no 'R0_rect:' line; is it a KITTI object calib .txt (P0-P3, R0_rect, Tr_velo_to_cam)?",
    )
    expect(
        [line.rsplit(" ", 1)[0] if line.startswith("P2") else line for line in good_lines],
        "'P2:' has 11 numbers, expected 12 (3x4); fix or re-copy the calib file",
    )
    expect(
        [line.replace(line.split()[1], "x", 1) if line.startswith("Tr_velo_to_cam") else line for line in good_lines],
        "'Tr_velo_to_cam:' has a value that is not a number; fix or re-copy the calib file",
    )
    with pytest.raises(ValueError) as error:
        kitti.read_calib(tmp_path / "nope.txt")
    assert str(error.value) == (
        f"{tmp_path / 'nope.txt'}: no such file; pass the frame's calib .txt (training/calib/<frame>.txt)"
    )
    # key order and extra whitespace do not matter
    calib_file.write_text("\n".join(reversed(good_lines)).replace(": ", ":   ") + "\n")
    reordered = kitti.read_calib(calib_file)
    original = kitti.read_calib(kitti_real / "training" / "calib" / "000000.txt")
    np.testing.assert_array_equal(reordered.lidar2cam, original.lidar2cam)
    np.testing.assert_array_equal(reordered.P2, original.P2)


def test_runtime_imports_without_torch_or_pillow() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['PIL'] = None; "
        "import mmloop_runtime.kitti, mmloop_runtime.bev; "
        "bad = [m for m in ('mmcv', 'mmdet3d', 'mmengine') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO / "runtime")


@pytest.mark.fixtures
def test_label_boxes_are_the_ground_truth_mmdet3d_reads(kitti_real: Path, tmp_path: Path) -> None:
    """label_2 objects of the model's classes as camera boxes (DontCare and others left out), and in
    the LiDAR frame as mmdet3d's KITTI converter + dataset put them (CameraInstance3DBoxes.convert_to)."""
    import torch
    from mmdet3d.structures import Box3DMode, CameraInstance3DBoxes

    label_file = kitti_real / "training" / "label_2" / "000004.txt"
    boxes, labels = kitti.read_label_boxes(label_file, ["Pedestrian", "Cyclist", "Car"])
    assert labels.tolist() == [2, 2]  # two cars; five DontCare lines skipped
    np.testing.assert_allclose(boxes[0], [-15.71, 2.16, 38.26, 4.01, 1.49, 1.76, 1.57])
    calib = frame_calib(kitti_real, "000004")
    theirs = (
        CameraInstance3DBoxes(torch.from_numpy(boxes))
        .convert_to(Box3DMode.LIDAR, np.linalg.inv(calib.lidar2cam))
        .tensor.numpy()
    )
    np.testing.assert_allclose(kitti.camera_to_lidar(boxes, calib), theirs, atol=1e-4, rtol=0)
    short = tmp_path / "000004.txt"
    short.write_text("Car 0.00 0 1.96 280.38 185.10\n")
    with pytest.raises(ValueError, match=r"000004.txt:1: 6 fields, a KITTI label line has 15; fix the label file"):
        kitti.read_label_boxes(short, ["Car"])


def test_non_finite_rows_match_numpy_isfinite(tmp_path: Path) -> None:
    """The bit test finds exactly the rows numpy calls non-finite (NaN, +-inf; not huge or tiny
    finite values), and a cloud holding them fails check_finite_cloud in one line."""
    from mmloop_runtime.clouds import NonFiniteCloudError, check_finite_cloud, drop_non_finite, non_finite_rows

    rng = np.random.default_rng(0)
    points = rng.normal(size=(1000, 4)).astype(np.float32)
    special = [np.nan, np.inf, -np.inf, np.float32(3.4e38), np.float32(1e-45), -0.0]
    rows = rng.choice(1000, size=60, replace=False)
    for index, row in enumerate(rows):
        points[row, index % 4] = special[index % len(special)]
    assert (non_finite_rows(points) == ~np.isfinite(points).all(axis=1)).all()
    kept, dropped = drop_non_finite(points)
    assert dropped == 30 and np.isfinite(kept).all() and len(kept) == 970
    cloud = tmp_path / "000001.bin"
    points.tofile(cloud)
    first = int(np.flatnonzero(~np.isfinite(points).all(axis=1))[0])
    with pytest.raises(
        NonFiniteCloudError, match=rf"000001.bin: 30 point\(s\) with NaN or infinite fields \(first: point {first}\)"
    ):
        check_finite_cloud(cloud)
