"""KITTI labels as COCO (mmloop.camera.coco): which boxes go in as what, and the files prepare_2d writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmloop.camera.coco import annotations, check_classes, class_counts, difficulty, prepare, read_coco
from mmloop.core.stage import StageError
from mmloop.datasets.kitti.files import KITTI_CLASSES, Label, read_labels, read_split

CLASSES = ["Car", "Pedestrian", "Cyclist"]


def label(kind: str, bbox: tuple[float, float, float, float], truncated: float = 0.0, occluded: int = 0) -> Label:
    return Label(kind, truncated, occluded, 0.0, bbox, (1.5, 1.6, 3.9), (1.0, 1.5, 20.0), 0.0)


def test_kitti_difficulty_levels() -> None:
    assert difficulty(41, 0, 0.1) == 0  # easy: > 40 px, fully visible, truncated <= 15 %
    assert difficulty(40, 0, 0.0) == 1  # KITTI's limits are strict on the height
    assert difficulty(30, 1, 0.3) == 1
    assert difficulty(30, 2, 0.5) == 2
    assert difficulty(25, 0, 0.0) == -1 and difficulty(100, 3, 0.0) == -1 and difficulty(100, 0, 0.6) == -1


def test_classes_dont_care_and_similar_classes() -> None:
    labels = [
        label("Car", (10, 20, 110, 80), truncated=0.2, occluded=1),
        label("Van", (200, 20, 300, 90)),
        label("Truck", (400, 20, 500, 120)),
        label("DontCare", (600, 30, 640, 50)),
        label("Person_sitting", (700, 30, 720, 80)),
        label("Cyclist", (800, 30, 830, 90)),
    ]
    anns = annotations(labels, CLASSES, image_id=7)
    boxes = [(a["kitti_type"], a["category_id"], a["iscrowd"]) for a in anns]
    assert ("Car", 1, 0) in boxes and ("Cyclist", 3, 0) in boxes
    assert ("Van", 1, 1) in boxes  # never a Car box: a Car ignore region, as KITTI scores it
    assert ("Person_sitting", 2, 1) in boxes
    assert [b for b in boxes if b[0] == "DontCare"] == [("DontCare", 1, 1), ("DontCare", 2, 1), ("DontCare", 3, 1)]
    assert not [b for b in boxes if b[0] == "Truck"]
    car = next(a for a in anns if a["kitti_type"] == "Car")
    assert car["bbox"] == [10, 20, 100, 60] and car["area"] == 6000 and car["image_id"] == 7
    assert (car["truncated"], car["occluded"], car["height"], car["difficulty"]) == (0.2, 1, 60, 1)
    # Without Car among the classes, a Van is nothing at all.
    assert not [a for a in annotations(labels, ["Pedestrian"], 1) if a["kitti_type"] == "Van"]


def test_unknown_or_repeated_classes_fail_in_one_line() -> None:
    with pytest.raises(StageError, match=r"model.classes has unknown class 'Bus'; pick from Car, Van") as error:
        check_classes(["Car", "Bus"], list(KITTI_CLASSES))
    assert "\n" not in str(error.value)
    with pytest.raises(StageError, match="unknown class 'DontCare'"):
        check_classes(["DontCare"], list(KITTI_CLASSES))
    with pytest.raises(StageError, match="twice"):
        check_classes(["Car", "Car"], list(KITTI_CLASSES))


def test_prepare_writes_a_coco_file_per_split(small_sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "coco"
    summary = prepare(small_sample, ["train", "val"], ["Pedestrian", "Car"], list(KITTI_CLASSES), out)
    assert sorted(p.name for p in out.iterdir()) == ["train.json", "val.json"]
    for split in ("train", "val"):
        coco = read_coco(out / f"{split}.json")
        frames = read_split(small_sample / "ImageSets" / f"{split}.txt")
        assert [image["frame_id"] for image in coco["images"]] == frames
        assert [c["name"] for c in coco["categories"]] == ["Pedestrian", "Car"]  # the order of model.classes
        for image in coco["images"]:
            path = small_sample / image["file_name"]  # relative to the dataset root
            assert path.is_file() and image["file_name"].startswith("training/image_2/")
            assert (image["width"], image["height"]) == (1242, 375)
        expected = {"Pedestrian": 0, "Car": 0}
        for frame in frames:
            for item in read_labels(small_sample / "training" / "label_2" / f"{frame}.txt"):
                if item.type in expected:
                    expected[item.type] += 1
        assert class_counts(out / f"{split}.json") == expected == summary["splits"][split]["objects"]
        assert summary["splits"][split]["images"] == len(frames)
        ids = [a["id"] for a in coco["annotations"]]
        assert len(set(ids)) == len(ids)


def test_prepare_fails_before_writing_on_a_missing_split(small_sample: Path, tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"ImageSets/test.txt: not found; remove 'test' from data.splits"):
        prepare(small_sample, ["train", "test"], CLASSES, list(KITTI_CLASSES), tmp_path / "coco")
    assert not (tmp_path / "coco").exists()
