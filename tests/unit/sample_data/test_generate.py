"""The synthetic KITTI sample: reproducible, within budget, parseable, and labels that match the clouds."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmloop.datasets.kitti import files as kitti
from sample_data import generate_dataset
from tests.conftest import tree_md5

REPO = Path(__file__).resolve().parents[3]
BUDGET_BYTES = 17_000_000  # the demo remote carries it (40 MB in all, tests/unit/test_demo_remote.py)
IMAGE_BYTES = 150_000  # rendered street scenes, yet small: textures fade with distance, no pixel noise
IMAGE_SIZE = (1242, 375)
CLASS_MEANS = {"Car": (1.52, 1.63, 3.88), "Pedestrian": (1.76, 0.66, 0.84), "Cyclist": (1.74, 0.60, 1.76)}


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def default_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The dataset as `dvc` tracks it: default frame count and seed (about 10 s)."""
    root = tmp_path_factory.mktemp("default") / "kitti-sample"
    return root, generate_dataset(root, log=quiet)


def frame_ids(root: Path) -> list[str]:
    return sorted(path.stem for path in (root / "training" / "velodyne").glob("*.bin"))


def wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def in_box(points: np.ndarray, label: kitti.Label, calib: kitti.Calib, margin: float = 0.0) -> np.ndarray:
    """Points (N, >=3) inside the label's box, read back as mmdet3d does (LiDAR bottom centre, yaw)."""
    bottom = calib.rect_to_lidar(np.array([label.location], dtype=float))[0]
    height, width, length = label.dimensions
    yaw = -label.rotation_y - math.pi / 2
    dx, dy = points[:, 0] - bottom[0], points[:, 1] - bottom[1]
    along = dx * math.cos(yaw) + dy * math.sin(yaw)
    across = -dx * math.sin(yaw) + dy * math.cos(yaw)
    up = points[:, 2] - bottom[2]
    return (
        (np.abs(along) <= length / 2 + margin)
        & (np.abs(across) <= width / 2 + margin)
        & (up >= -margin)
        & (up <= height + margin)
    )


def test_same_seed_gives_identical_bytes_and_another_seed_other_data(tmp_path: Path) -> None:
    first = generate_dataset(tmp_path / "a", frames=3, seed=0, log=quiet)
    generate_dataset(tmp_path / "b", frames=3, seed=0, log=quiet)
    generate_dataset(tmp_path / "c", frames=3, seed=1, log=quiet)
    a, b, c = tree_md5(tmp_path / "a"), tree_md5(tmp_path / "b"), tree_md5(tmp_path / "c")
    assert len(a) == 3 * 4 + 2 and a == b
    assert set(c) == set(a)
    for frame_id in ("000000", "000001", "000002"):
        for folder in ("velodyne", "label_2", "image_2"):
            name = str(kitti.frame_path(Path("."), folder, frame_id))
            assert a[name] != c[name], f"seed 1 repeated seed 0's {name}"
    assert first["frames"] == 3
    assert first["bytes"] == sum(path.stat().st_size for path in (tmp_path / "a").rglob("*") if path.is_file())


def test_layout_sizes_and_splits(default_sample: tuple[Path, dict]) -> None:
    root, summary = default_sample
    ids = frame_ids(root)
    assert ids == [f"{index:06d}" for index in range(48)] and summary["frames"] == 48
    for frame_id in ids:
        for folder in kitti.FRAME_FILES:
            assert kitti.frame_path(root, folder, frame_id).is_file(), (folder, frame_id)
        size = kitti.frame_path(root, "velodyne", frame_id).stat().st_size
        assert size > 0 and size % kitti.POINT_BYTES == 0
    train = kitti.read_split(root / "ImageSets" / "train.txt")
    val = kitti.read_split(root / "ImageSets" / "val.txt")
    assert train and val and not set(train) & set(val)
    assert sorted(train + val) == ids
    assert len(val) == 12 and summary["splits"] == {"train": 36, "val": 12}


def test_default_dataset_fits_the_budget(default_sample: tuple[Path, dict]) -> None:
    root, summary = default_sample
    # What `du -sb` counts: every file and folder, apparent size.
    on_disk = sum(os.lstat(path).st_size for path in [root, *root.rglob("*")])
    assert on_disk <= BUDGET_BYTES, f"{on_disk / 1e6:.2f} MB > {BUDGET_BYTES / 1e6:.0f} MB"
    assert summary["bytes"] <= on_disk
    for frame_id in frame_ids(root):
        assert kitti.frame_path(root, "image_2", frame_id).stat().st_size < IMAGE_BYTES


def test_clouds_look_like_a_roof_lidar(default_sample: tuple[Path, dict]) -> None:
    root, _ = default_sample
    for frame_id in frame_ids(root)[::8]:
        cloud = kitti.read_cloud(kitti.frame_path(root, "velodyne", frame_id)).astype(float)
        x, y, z, intensity = cloud.T
        distance = np.linalg.norm(cloud[:, :3], axis=1)
        flat = np.hypot(x, y)
        assert 15_000 <= len(cloud) <= 20_000
        assert distance.max() < 80.2 and 0.0 <= intensity.min() and intensity.max() <= 1.0
        elevation = np.degrees(np.arcsin(z / distance))
        assert -25.1 < elevation.min() and elevation.max() < 2.2
        # Most returns are road 1.73 m below the sensor or kerb-high sidewalk; the lowest beam
        # leaves a blind ring of ~3.7 m around the car.
        ground = (z > -1.8) & (z < -1.55)
        assert ground.mean() > 0.6 and flat[ground].min() > 3.4
        counts, edges = np.histogram(z, bins=np.arange(-3.0, 3.01, 0.25))
        assert edges[counts.argmax()] <= -1.73 < edges[counts.argmax() + 1]
        for quadrant in range(4):  # 360 deg sweep
            azimuth = np.arctan2(y, x)
            sector = (azimuth >= -np.pi + quadrant * np.pi / 2) & (azimuth < -np.pi / 2 + quadrant * np.pi / 2)
            assert sector.sum() > 2_000
        # Something stands up out of the road: facades, poles, trees, vehicles.
        assert (z > 0.0).sum() > 500


def test_labels_and_calibration_follow_kitti(default_sample: tuple[Path, dict]) -> None:
    root, summary = default_sample
    width, height = IMAGE_SIZE
    counts: dict[str, int] = {}
    occlusion = set()
    for frame_id in frame_ids(root):
        calib = kitti.read_calib(kitti.frame_path(root, "calib", frame_id))
        # LiDAR forward, left, up become camera forward (z), left (-x), up (-y).
        lidar_to_rect = calib.R0_rect @ calib.Tr_velo_to_cam[:, :3]
        assert np.allclose(lidar_to_rect, [[0, -1, 0], [0, 0, -1], [1, 0, 0]], atol=0.02)
        with Image.open(kitti.frame_path(root, "image_2", frame_id)) as image:
            assert image.size == IMAGE_SIZE and image.mode == "RGB"
        labels = kitti.read_labels(kitti.frame_path(root, "label_2", frame_id))
        assert labels, f"frame {frame_id} has no labelled object"
        for label in labels:
            counts[label.type] = counts.get(label.type, 0) + 1
            occlusion.add(label.occluded)
            left, top, right, bottom = label.bbox
            assert 0 <= left <= right <= width - 1 and 0 <= top <= bottom <= height - 1, label
            assert 0.0 <= label.truncated <= 1.0 and label.occluded in (0, 1, 2)
            assert all(v > 0 for v in label.dimensions)
            assert np.allclose(label.dimensions, CLASS_MEANS[label.type], rtol=0.15), label
            assert label.location[2] > 0, "a labelled object must be in front of the camera"
            assert -math.pi <= label.rotation_y <= math.pi and -math.pi <= label.alpha <= math.pi
            ray_angle = math.atan2(label.location[0], label.location[2])
            assert abs(wrap(label.rotation_y - ray_angle - label.alpha)) < 0.02, label
            # Objects stand on the road (z = -1.73 in the LiDAR frame) or on the 14 cm kerb.
            bottom_z = calib.rect_to_lidar(np.array([label.location], dtype=float))[0, 2]
            assert -1.78 < bottom_z < -1.53, label
            # The 2D box is where the 3D box projects (it is the projection, clipped to the image).
            centre = calib.rect_to_lidar(np.array([label.location], dtype=float))[0] + [0, 0, label.dimensions[0] / 2]
            rect = calib.lidar_to_rect(centre[None, :])
            u, v = calib.project_rect_to_image(rect)[0]
            if label.truncated == 0:
                assert left - 1 <= u <= right + 1 and top - 1 <= v <= bottom + 1, label
    assert counts == summary["objects"]
    assert set(counts) == {"Car", "Pedestrian", "Cyclist"}
    frames = summary["frames"]
    assert 3 <= counts["Car"] / frames <= 10 and counts["Pedestrian"] >= frames // 2 and counts["Cyclist"] >= 5
    assert occlusion == {0, 1, 2}


def test_every_label_has_points_and_density_falls_with_range(default_sample: tuple[Path, dict]) -> None:
    root, _ = default_sample
    near, far = [], []
    for frame_id in frame_ids(root):
        cloud = kitti.read_cloud(kitti.frame_path(root, "velodyne", frame_id)).astype(float)
        calib = kitti.read_calib(kitti.frame_path(root, "calib", frame_id))
        for label in kitti.read_labels(kitti.frame_path(root, "label_2", frame_id)):
            points = int(in_box(cloud, label, calib).sum())
            assert points >= 1, f"{frame_id}: {label.to_line()} has no point in its box"
            distance = math.hypot(label.location[0], label.location[2])
            if label.type == "Car" and distance < 20:
                near.append(points)
            elif label.type == "Car" and distance > 40:
                far.append(points)
    assert len(near) >= 20 and len(far) >= 20
    assert np.mean(near) > 5 * np.mean(far), (np.mean(near), np.mean(far))


def test_labelled_boxes_do_not_overlap_in_bev(default_sample: tuple[Path, dict]) -> None:
    root, _ = default_sample
    for frame_id in frame_ids(root):
        calib = kitti.read_calib(kitti.frame_path(root, "calib", frame_id))
        labels = kitti.read_labels(kitti.frame_path(root, "label_2", frame_id))
        for i, a in enumerate(labels):
            # A grid over box a's footprint, lifted into box b's height range, must stay out of b.
            bottom = calib.rect_to_lidar(np.array([a.location], dtype=float))[0]
            _, width, length = a.dimensions
            yaw = -a.rotation_y - math.pi / 2
            along, across = np.meshgrid(np.linspace(-length, length, 12) / 2, np.linspace(-width, width, 6) / 2)
            xy = np.column_stack(
                [
                    bottom[0] + along.ravel() * math.cos(yaw) - across.ravel() * math.sin(yaw),
                    bottom[1] + along.ravel() * math.sin(yaw) + across.ravel() * math.cos(yaw),
                ]
            )
            for b in labels[i + 1 :]:
                b_bottom_z = calib.rect_to_lidar(np.array([b.location], dtype=float))[0, 2]
                grid = np.column_stack([xy, np.full(len(xy), b_bottom_z + 0.5)])
                overlap = in_box(grid, b, calib, margin=-0.05).any()
                assert not overlap, f"{frame_id}: {a.to_line()} overlaps {b.to_line()}"


def test_refuses_a_non_empty_folder_and_leaves_it_alone(tmp_path: Path) -> None:
    out = tmp_path / "kitti-sample"
    (out / "training").mkdir(parents=True)
    (out / "notes.txt").write_text("my own labels\n")
    before = tree_md5(out)
    with pytest.raises(FileExistsError, match=re.escape(str(out))):
        generate_dataset(out, frames=2, log=quiet)
    assert tree_md5(out) == before and sorted(p.name for p in out.iterdir()) == ["notes.txt", "training"]
    assert not any((out / "training").iterdir())
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError, match=re.escape(str(a_file))):
        generate_dataset(a_file, frames=2, log=quiet)
    assert a_file.read_text() == "x"


def test_command_line_writes_into_an_empty_folder_then_refuses(tmp_path: Path) -> None:
    out = tmp_path / "kitti-sample"
    out.mkdir()
    command = [sys.executable, "-m", "sample_data", "--out", str(out), "--frames", "3", "--seed", "5"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("mmloop sample_data: frame 3/3: ")
    assert lines[-1].startswith(f"mmloop sample_data: wrote 3 frames (2 train, 1 val) to {out}")
    assert frame_ids(out) == ["000000", "000001", "000002"]
    before = tree_md5(out)
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.strip() == (
        f"mmloop sample_data: error: {out}: exists and is not an empty folder; sample_data never "
        "overwrites, pick a new --out or empty the folder yourself"
    )
    assert tree_md5(out) == before
