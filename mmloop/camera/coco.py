"""KITTI `label_2` + `image_2` as COCO annotation files, one per split, for mmdet's CocoDataset and CocoMetric.

What goes in (`annotations`):
- an object of a `model.classes` class: a box (`iscrowd: 0`), with KITTI's `truncated`, `occluded`,
  the box `height` in pixels and the KITTI `difficulty` it counts in (0 easy, 1 moderate, 2 hard,
  -1 none), so KITTI's 2D AP can be computed from this file alone (mmloop.camera.metric);
- a `DontCare` region: one `iscrowd: 1` box per category. mmdet trains on none of them (CocoDataset
  makes crowd boxes ignored instances) and COCOeval matches a detection inside one to nothing, which
  is what KITTI's evaluation does with DontCare regions, for every class;
- KITTI's similar classes (a `Van` for `Car`, a `Person_sitting` for `Pedestrian`): an `iscrowd: 1`
  box of the class they resemble, never a box of it. KITTI's evaluation counts a Car detection on a
  Van neither as a hit nor as a false positive; a crowd box does the same in COCOeval.
Every other class (Truck, Tram, Misc, ...) is left out, as KITTI's evaluation ignores it.

Images are named by their path relative to the dataset root (`training/image_2/<id>.png`, which the
config's `data_prefix` completes), with their size and md5: a changed image changes the file, so DVC
retrains and a resumed run never mixes images.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mmloop.core.stage import StageError, built_whole
from mmloop.datasets.kitti.files import KittiFileError, Label, frame_path, read_labels, read_split

#: KITTI's similar classes: neither a hit nor a miss for the class they resemble.
SIMILAR = {"Van": "Car", "Person_sitting": "Pedestrian"}
DONT_CARE = "DontCare"
DIFFICULTIES = ("easy", "moderate", "hard")
#: KITTI's difficulty limits (devkit, and mmdet3d's clean_data): minimum box height in pixels,
#: maximum occlusion level and truncation, per level.
MIN_HEIGHT = (40, 25, 25)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)


def ann_file(prepared: Path, split: str) -> Path:
    """The COCO annotation file of a split (`prepare_2d` writes one per `data.splits` entry)."""
    return Path(prepared) / f"{split}.json"


def difficulty(height: float, occluded: int, truncated: float) -> int:
    """The easiest KITTI difficulty an object counts in (0 easy, 1 moderate, 2 hard), -1 for none.
    Each level includes the easier ones: a moderate AP scores easy and moderate objects."""
    for level in range(len(DIFFICULTIES)):
        if height > MIN_HEIGHT[level] and occluded <= MAX_OCCLUSION[level] and truncated <= MAX_TRUNCATION[level]:
            return level
    return -1


def check_classes(classes: list[str], known_classes: list[str]) -> None:
    """`model.classes`: KITTI classes of `data.known_classes`, none twice, DontCare never."""
    if not isinstance(classes, list) or not classes or not all(isinstance(name, str) for name in classes):
        raise StageError(f"params.yaml: model.classes is {classes!r}; list the class names, e.g. [Car, Pedestrian]")
    pickable = [name for name in known_classes if name != DONT_CARE]
    for name in classes:
        if name not in pickable:
            raise StageError(f"params.yaml: model.classes has unknown class '{name}'; pick from {', '.join(pickable)}")
    if len(set(classes)) != len(classes):
        raise StageError(f"params.yaml: model.classes {classes} names a class twice; list each once")


def box(label: Label) -> list[float]:
    """KITTI's (left, top, right, bottom) as COCO's [x, y, width, height]."""
    left, top, right, bottom = label.bbox
    return [left, top, round(right - left, 2), round(bottom - top, 2)]


def annotations(labels: list[Label], classes: list[str], image_id: int) -> list[dict[str, Any]]:
    """One frame's labels as COCO annotations (ids are set by the caller)."""
    category = {name: index + 1 for index, name in enumerate(classes)}
    out: list[dict[str, Any]] = []
    for label in labels:
        if label.type in category:
            targets, crowd = [category[label.type]], 0
        elif label.type == DONT_CARE:
            targets, crowd = list(category.values()), 1
        elif SIMILAR.get(label.type) in category:
            targets, crowd = [category[SIMILAR[label.type]]], 1
        else:
            continue
        xywh = box(label)
        for category_id in targets:
            out.append(
                {
                    "image_id": image_id,
                    "category_id": category_id,
                    "bbox": xywh,
                    "area": round(xywh[2] * xywh[3], 2),
                    "iscrowd": crowd,
                    "kitti_type": label.type,
                    "truncated": label.truncated,
                    "occluded": label.occluded,
                    "height": xywh[3],
                    "difficulty": difficulty(xywh[3], label.occluded, label.truncated),
                }
            )
    return out


def image_record(root: Path, frame_id: str) -> dict[str, Any]:
    """A frame's image: id, path relative to the dataset root, size (read from the PNG header), md5."""
    from PIL import Image

    path = frame_path(root, "image_2", frame_id)
    if not path.is_file():
        raise StageError(f"{path}: not found; the camera loop needs image_2 for every frame (run validate)")
    with Image.open(path) as image:
        width, height = image.size
    return {
        "id": int(frame_id),
        "file_name": str(path.relative_to(root)),
        "width": width,
        "height": height,
        "frame_id": frame_id,
        "md5": hashlib.md5(path.read_bytes()).hexdigest(),
    }


def split_frames(root: Path, split: str) -> list[str]:
    path = Path(root) / "ImageSets" / f"{split}.txt"
    if not path.is_file():
        raise StageError(f"{path}: not found; remove '{split}' from data.splits or add the split file")
    return read_split(path)


def coco_split(root: Path, split: str, classes: list[str], known_classes: list[str]) -> dict[str, Any]:
    """The COCO dict of one split."""
    images, anns = [], []
    for frame_id in split_frames(root, split):
        image = image_record(root, frame_id)
        try:
            labels = read_labels(frame_path(root, "label_2", frame_id), tuple(known_classes))
        except KittiFileError as error:
            raise StageError(f"{error}; run the validate stage to see every problem") from None
        images.append(image)
        anns += annotations(labels, classes, image["id"])
    for number, ann in enumerate(anns, start=1):
        ann["id"] = number
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(classes)]
    return {
        "info": {"description": f"KITTI {split} split of {root}, classes {classes}", "split": split},
        "images": images,
        "annotations": anns,
        "categories": categories,
    }


def split_summary(coco: dict[str, Any]) -> dict[str, Any]:
    """What prepare_2d reports of a split: images, objects per class and difficulty, ignore regions."""
    names = {category["id"]: category["name"] for category in coco["categories"]}
    objects = {name: 0 for name in names.values()}
    levels = {name: {level: 0 for level in DIFFICULTIES} for name in names.values()}
    ignored: dict[str, int] = {}
    for ann in coco["annotations"]:
        name = names[ann["category_id"]]
        if ann["iscrowd"]:
            ignored[ann["kitti_type"]] = ignored.get(ann["kitti_type"], 0) + 1
            continue
        objects[name] += 1
        if ann["difficulty"] >= 0:
            for level in DIFFICULTIES[ann["difficulty"] :]:  # a level counts the easier ones too
                levels[name][level] += 1
    return {"images": len(coco["images"]), "objects": objects, "difficulty": levels, "ignore_regions": ignored}


def prepare(root: Path, splits: list[str], classes: list[str], known_classes: list[str], out: Path) -> dict[str, Any]:
    """Write `<out>/<split>.json` for every split (the folder swapped in whole); returns the report."""
    check_classes(classes, known_classes)
    summary: dict[str, Any] = {"classes": list(classes), "splits": {}}
    with built_whole(Path(out)) as building:
        for split in splits:
            coco = coco_split(Path(root), split, classes, known_classes)
            (building / f"{split}.json").write_text(json.dumps(coco, indent=1) + "\n")
            summary["splits"][split] = split_summary(coco)
    return summary


def read_coco(path: Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise StageError(f"{path}: not found; run `dvc repro prepare_2d` (with the split in data.splits)")
    return json.loads(Path(path).read_text())


def class_counts(path: Path) -> dict[str, int]:
    """Boxes per class of a COCO file (crowd regions not counted)."""
    coco = read_coco(path)
    names = {category["id"]: category["name"] for category in coco["categories"]}
    counts = {name: 0 for name in names.values()}
    for ann in coco["annotations"]:
        if not ann["iscrowd"]:
            counts[names[ann["category_id"]]] += 1
    return counts
