"""The manifest: everything the runtime needs to know about a deployed model, in one JSON file.

mmloop's `export` stage writes `manifest.json` beside `end2end.onnx` from the model config as
trained, and every `deploy/<target>/` folder carries a copy. The runtime reads only this file,
never an mmdet3d config: voxelizer, anchors, box coder and test-time NMS settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT = "mmloop-runtime/1"


@dataclass(frozen=True)
class Voxelizer:
    point_cloud_range: tuple[float, ...]  # x0, y0, z0, x1, y1, z1 (LiDAR frame, metres)
    voxel_size: tuple[float, ...]  # x, y, z
    max_points: int  # points kept per voxel
    max_voxels: int  # voxels kept per frame (the test-time value)
    point_features: int  # x, y, z, intensity, ...


@dataclass(frozen=True)
class Anchors:
    ranges: tuple[tuple[float, ...], ...]  # one (x0, y0, z0, x1, y1, z1) per size (size_per_range)
    sizes: tuple[tuple[float, ...], ...]  # (dx, dy, dz) per anchor size
    rotations: tuple[float, ...]
    size_per_range: bool
    align_corner: bool
    scale: float


@dataclass(frozen=True)
class Head:
    num_classes: int
    use_sigmoid_cls: bool
    box_code_size: int
    dir_offset: float
    dir_limit_offset: float


@dataclass(frozen=True)
class TestSettings:
    nms_pre: int
    score_thr: float
    nms_thr: float
    max_num: int
    use_rotate_nms: bool


@dataclass(frozen=True)
class Manifest:
    class_names: tuple[str, ...]
    inputs: tuple[str, ...]  # voxels, num_points, coors
    outputs: tuple[str, ...]  # cls_score0, bbox_pred0, dir_cls_pred0
    voxelizer: Voxelizer
    anchors: Anchors
    head: Head
    test: TestSettings


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(value) for value in values)


def from_dict(data: dict[str, Any]) -> Manifest:
    """A Manifest from the JSON layout `to_dict` writes (KeyError/TypeError on a malformed one)."""
    voxelizer, anchors, head, test = data["voxelizer"], data["anchors"], data["head"], data["test"]
    # One line per section, as the JSON reads; the formatter would give every field its own line.
    # fmt: off
    return Manifest(
        class_names=tuple(str(name) for name in data["class_names"]),
        inputs=tuple(data["inputs"]),
        outputs=tuple(data["outputs"]),
        voxelizer=Voxelizer(_floats(voxelizer["point_cloud_range"]), _floats(voxelizer["voxel_size"]),
                            int(voxelizer["max_points"]), int(voxelizer["max_voxels"]),
                            int(voxelizer["point_features"])),
        anchors=Anchors(tuple(_floats(r) for r in anchors["ranges"]), tuple(_floats(s) for s in anchors["sizes"]),
                        _floats(anchors["rotations"]), bool(anchors["size_per_range"]),
                        bool(anchors["align_corner"]), float(anchors["scale"])),
        head=Head(int(head["num_classes"]), bool(head["use_sigmoid_cls"]), int(head["box_code_size"]),
                  float(head["dir_offset"]), float(head["dir_limit_offset"])),
        test=TestSettings(int(test["nms_pre"]), float(test["score_thr"]), float(test["nms_thr"]),
                          int(test["max_num"]), bool(test["use_rotate_nms"])),
    )
    # fmt: on


def load_manifest(model_dir: str | Path) -> Manifest:
    """The manifest of a deployed-model folder, with a one-line error naming what is wrong."""
    path = Path(model_dir) / MANIFEST
    if not Path(model_dir).is_dir():
        raise FileNotFoundError(
            f"{model_dir}: not a folder; pass a deployed model folder such as "
            f"deploy/onnxruntime-fp32 (fetch one with `dvc pull` or `dvc artifacts get`)"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found; {model_dir} is not a deployed model folder written by "
            f"mmloop's export/deploy stages (rerun `dvc repro export`)"
        )
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text (byte at offset {error.start}); the file is damaged, rerun `dvc repro export` "
            "or fetch the model folder again"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); rerun `dvc repro export`") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a JSON {type(data).__name__}, not the manifest's object; rerun `dvc repro export`")
    if data.get("format") != FORMAT:
        raise ValueError(
            f"{path}: format {data.get('format')!r}, this runtime reads {FORMAT!r}; "
            f"re-export with the same mmloop version as the runtime"
        )
    try:
        manifest = from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{path}: malformed manifest ({type(error).__name__}: {error}); rerun `dvc repro export`"
        ) from None
    check(manifest, path)
    return manifest


def check(manifest: Manifest, path: Path | str) -> None:
    """Consistency the decoder relies on, checked once instead of failing deep inside numpy."""
    anchors, head = manifest.anchors, manifest.head
    problems = []
    if len(manifest.class_names) != head.num_classes:
        problems.append(f"{len(manifest.class_names)} class names for {head.num_classes} classes")
    if anchors.size_per_range and len(anchors.ranges) != len(anchors.sizes):
        problems.append(f"{len(anchors.ranges)} anchor ranges for {len(anchors.sizes)} sizes")
    if not head.use_sigmoid_cls:
        problems.append("a softmax classifier (the runtime decodes sigmoid heads, as mmdet3d's LiDAR configs use)")
    if not manifest.test.use_rotate_nms:
        problems.append("test.use_rotate_nms false (the runtime implements rotated BEV NMS only)")
    if head.box_code_size != 7:
        problems.append(f"box_code_size {head.box_code_size} (the runtime decodes 7: x y z dx dy dz yaw)")
    if len(manifest.voxelizer.point_cloud_range) != 6 or len(manifest.voxelizer.voxel_size) != 3:
        problems.append("point_cloud_range needs 6 numbers and voxel_size 3")
    if problems:
        raise ValueError(f"{path}: {'; '.join(problems)}; rerun `dvc repro export`")
