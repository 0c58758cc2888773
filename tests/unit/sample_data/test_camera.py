"""The sample's image_2: rendered objects where their labels say, per-instance colours, and a LiDAR side
that the camera leaves bit for bit as it was."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmloop.datasets.kitti import files as kitti
from sample_data import dataset
from sample_data.calib import make_calib
from sample_data.camera import render_camera
from tests.conftest import tree_md5

FRAMES, SEED = 4, 0
#: md5 of what main's generator (commit e23ea70, before the camera renderer) wrote for
#: `python -m sample_data --frames 4 --seed 0`; they also equal the first four frames of the
#: committed data/kitti-sample. Change them only for a deliberate change of the LiDAR side.
MAIN_MD5 = {
    "ImageSets/train.txt": "461c0015a8cbe9354cf63c7bd7b58e30",
    "ImageSets/val.txt": "ffe44190d3a908a74a71a00835ed93c9",
    "training/calib/000000.txt": "d4f82683b42524718dccf787b9c8efdd",
    "training/calib/000001.txt": "d4f82683b42524718dccf787b9c8efdd",
    "training/calib/000002.txt": "d4f82683b42524718dccf787b9c8efdd",
    "training/calib/000003.txt": "d4f82683b42524718dccf787b9c8efdd",
    "training/label_2/000000.txt": "8d8a309d208fff173bb861d9266c28cb",
    "training/label_2/000001.txt": "0fe37c1e967c594b1a4d07199c774a47",
    "training/label_2/000002.txt": "695480fb8592ccbd8b226bbddc72e3cc",
    "training/label_2/000003.txt": "d11936be946b3ae231e88de8ab7b0163",
    "training/velodyne/000000.bin": "820742ec5918eb494903e3bf136d5330",
    "training/velodyne/000001.bin": "2649044ba15a5f6e291636cc893cc3c4",
    "training/velodyne/000002.bin": "b7fceb911a6ead82cbbbcb2bdcf81896",
    "training/velodyne/000003.bin": "0bdce9d2b0d405a84286fc73ad196d89",
}


def quiet(_: str) -> None:
    pass


def lidar_side(tree: dict[str, str]) -> dict[str, str]:
    return {name: md5 for name, md5 in tree.items() if "image_2" not in name}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("camera") / "kitti-sample"
    dataset.generate_dataset(root, frames=FRAMES, seed=SEED, log=quiet)
    return root


@pytest.fixture(scope="module")
def frames(sample: Path) -> list[tuple[np.ndarray, np.ndarray, list[kitti.Label]]]:
    """Per frame: the image as written, the same frame rendered without its objects, and the labels."""
    calib = make_calib()
    result = []
    for index in range(FRAMES):
        frame_id = f"{index:06d}"
        with Image.open(kitti.frame_path(sample, "image_2", frame_id)) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=float)
        scene = dataset.make_scene(dataset.frame_rng(SEED, index))
        empty = render_camera(SEED, index, scene.street, scene.structure, {}, calib)
        labels = kitti.read_labels(kitti.frame_path(sample, "label_2", frame_id))
        result.append((pixels, np.asarray(empty, dtype=float), labels))
    return result


def box_pixels(pixels: np.ndarray, label: kitti.Label) -> np.ndarray:
    left, top, right, bottom = (round(v) for v in label.bbox)
    return pixels[top : bottom + 1, left : right + 1]


def test_the_lidar_side_is_mains_bit_for_bit(sample: Path) -> None:
    assert lidar_side(tree_md5(sample)) == MAIN_MD5


def test_the_camera_draws_nothing_from_the_frames_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever the renderer does, the cloud, labels, calib and splits are those of a run without it.
    dataset.generate_dataset(tmp_path / "with", frames=2, seed=3, log=quiet)
    monkeypatch.setattr(dataset, "render_camera", lambda *args: Image.new("RGB", (1242, 375)))
    dataset.generate_dataset(tmp_path / "without", frames=2, seed=3, log=quiet)
    with_camera, without = tree_md5(tmp_path / "with"), tree_md5(tmp_path / "without")
    assert lidar_side(with_camera) == lidar_side(without)
    assert with_camera != without  # the stub's black images differ from the rendered ones


def test_same_seed_same_image_bytes_other_seed_other_image() -> None:
    calib = make_calib()

    def image_md5(seed: int, index: int) -> str:
        return hashlib.md5(dataset.generate_frame(seed, index, calib).image.tobytes()).hexdigest()

    first = image_md5(0, 1)
    assert image_md5(0, 1) == first
    assert image_md5(1, 1) != first and image_md5(0, 2) != first


def test_every_labelled_object_is_drawn_where_its_box_says(frames: list) -> None:
    # The least share of an unoccluded box the object covers: boxes seen at an angle have empty corners
    # (and the label box has slack), a person is narrower than the box, a bicycle is see-through.
    least_cover = {"Car": 0.55, "Pedestrian": 0.5, "Cyclist": 0.3}
    car_cover = []
    for pixels, empty, labels in frames:
        assert pixels.shape == (375, 1242, 3)
        for label in labels:
            difference = np.abs(box_pixels(pixels, label) - box_pixels(empty, label))
            changed = difference.sum(axis=-1) > 12
            if label.occluded:
                assert changed.mean() > 0.2, label.to_line()  # partly hidden, by other objects mostly
                continue
            assert changed.mean() > least_cover[label.type], (label.to_line(), changed.mean())
            assert difference.mean() > 12, (label.to_line(), difference.mean())
            if label.type == "Car":
                car_cover.append(changed.mean())
            # What the object changed reaches the box's edges: the box is the drawn object's extent.
            rows, cols = np.nonzero(changed)
            height, width = changed.shape
            assert rows.min() <= 0.15 * height and cols.min() <= 0.15 * width, label.to_line()
            assert rows.max() >= 0.85 * (height - 1) and cols.max() >= 0.85 * (width - 1), label.to_line()
    assert len(car_cover) >= 8 and np.mean(car_cover) > 0.7, car_cover


def test_instances_of_a_class_get_their_own_colours(frames: list) -> None:
    # Mean colour of each well-visible car and pedestrian box: instances of one class must differ.
    colours: dict[str, list[np.ndarray]] = {"Car": [], "Pedestrian": []}
    for pixels, _, labels in frames:
        for label in labels:
            if label.type in colours and label.occluded == 0 and label.truncated == 0:
                colours[label.type].append(box_pixels(pixels, label).reshape(-1, 3).mean(axis=0))
    for kind, means in colours.items():
        assert len(means) >= 3, kind
        distances = [np.linalg.norm(a - b) for a, b in itertools.combinations(means, 2)]
        # One colour per class would leave only the background's share to tell boxes apart.
        assert max(distances) > 40 and np.median(distances) > 15, (kind, max(distances), np.median(distances))
