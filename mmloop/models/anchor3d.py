"""The anchor-head family (mmdet3d's Anchor3DHead: PointPillars, SECOND).

Params as cfg-options where they touch the head (anchor ranges follow the point cloud range,
anchors and assigners follow the classes), the head's raw maps for parity checks, and the
torch-free runtime's manifest. Manifest values are read from the head and voxelizer mmdet3d
builds from the config, not from the config text, so mmdet3d's defaults (dir_offset,
align_corner, scales, ...) land in the manifest too.
"""

from __future__ import annotations

import math
from typing import Any

from mmloop.core.stage import StageError
from mmloop.models import voxel_layout

#: What mmloop_runtime decodes: mmdeploy's single-level anchor heads (PointPillars, SECOND).
HEADS = ("Anchor3DHead",)
ANCHOR_GENERATORS = ("AlignedAnchor3DRangeGenerator",)
BOX_CODERS = ("DeltaXYZWLHRBBoxCoder",)


def runtime_unsupported(model_cfg: Any) -> str | None:
    """Why the runtime cannot run this model (None when it can)."""
    model = model_cfg.model
    head = model.get("bbox_head") or {}
    preprocessor = model.get("data_preprocessor", {})
    checks = (
        (head.get("type") in HEADS, f"bbox_head {head.get('type')!r} (the runtime decodes {', '.join(HEADS)})"),
        (
            head.get("anchor_generator", {}).get("type") in ANCHOR_GENERATORS,
            f"anchor generator {head.get('anchor_generator', {}).get('type')!r} (supported: {', '.join(ANCHOR_GENERATORS)})",
        ),
        (
            head.get("bbox_coder", {}).get("type") in BOX_CODERS,
            f"box coder {head.get('bbox_coder', {}).get('type')!r} (supported: {', '.join(BOX_CODERS)})",
        ),
        (head.get("use_direction_classifier", True), "no direction classifier"),
        (
            preprocessor.get("voxel_type", "hard") == "hard",
            f"voxel_type {preprocessor.get('voxel_type')!r} (hard only)",
        ),
        (model.get("test_cfg", {}).get("use_rotate_nms", False), "test_cfg.use_rotate_nms is false (rotated NMS only)"),
    )
    reasons = [reason for ok, reason in checks if not ok]
    return "; ".join(reasons) or None


def runtime_manifest(model_cfg: Any, inputs: list[str], outputs: list[str]) -> dict[str, Any]:
    """The manifest as JSON-ready data, checked by the runtime's own reader."""
    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope

    from mmloop_runtime.manifest import check, from_dict

    source = model_cfg.filename or "the model config"  # the file mmengine loaded it from
    reason = runtime_unsupported(model_cfg)
    if reason:
        raise StageError(f"{source}: the runtime cannot run this model: {reason}")
    init_default_scope("mmdet3d")
    head = MODELS.build(model_cfg.model.bbox_head)
    generator = head.prior_generator
    if len(generator.scales) != 1 or generator.custom_values:
        raise StageError(f"{source}: the runtime decodes one feature level without custom anchor values")
    layer = model_cfg.model.data_preprocessor.voxel_layer
    max_points, features, max_voxels = voxel_layout(model_cfg)
    test_cfg = model_cfg.model.test_cfg
    data = {
        "format": "mmloop-runtime/1",
        "class_names": list(model_cfg.class_names),
        "inputs": list(inputs),
        "outputs": list(outputs),
        "voxelizer": {
            "point_cloud_range": list(layer.point_cloud_range),
            "voxel_size": list(layer.voxel_size),
            "max_points": max_points,
            "max_voxels": max_voxels,
            "point_features": features,
        },
        "anchors": {
            "ranges": [list(r) for r in generator.ranges],
            "sizes": [list(s) for s in generator.sizes],
            "rotations": list(generator.rotations),
            "size_per_range": bool(generator.size_per_range),
            "align_corner": bool(generator.align_corner),
            "scale": float(generator.scales[0]),
        },
        "head": {
            "num_classes": int(head.num_classes),
            "use_sigmoid_cls": bool(head.use_sigmoid_cls),
            "box_code_size": int(head.box_code_size),
            "dir_offset": float(head.dir_offset),
            "dir_limit_offset": float(head.dir_limit_offset),
        },
        "test": {
            "nms_pre": int(test_cfg.get("nms_pre", -1)),
            "score_thr": float(test_cfg.get("score_thr", 0)),
            "nms_thr": float(test_cfg.nms_thr),
            "max_num": int(test_cfg.max_num),
            "use_rotate_nms": bool(test_cfg.use_rotate_nms),
        },
    }
    try:
        check(from_dict(data), source)
    except ValueError as error:
        raise StageError(str(error).replace("rerun `dvc repro export`", "the runtime cannot run this model")) from None
    return data


def check_params(model: dict[str, Any], cfg: Any) -> None:
    """The BEV grid `model.point_cloud_range` and `model.voxel_size` give fits the backbone."""
    stride = math.prod(cfg.model.get("backbone", {}).get("layer_strides", [1]))
    check_grid(model["point_cloud_range"], model["voxel_size"], stride)


def check_grid(point_cloud_range: Any, voxel_size: Any, stride: int) -> tuple[int, int, int]:
    """Voxels per axis (x, y, z); the range must be a whole number of voxels, the BEV grid a
    whole number of backbone strides (else the neck's upsampled maps do not line up)."""
    if not (
        isinstance(point_cloud_range, list)
        and len(point_cloud_range) == 6
        and isinstance(voxel_size, list)
        and len(voxel_size) == 3
    ):
        raise StageError(
            "params.yaml: model.point_cloud_range needs 6 numbers [x0, y0, z0, x1, y1, z1] and "
            "model.voxel_size 3 numbers [dx, dy, dz]"
        )
    cells = []
    for axis, name in enumerate("xyz"):
        extent = point_cloud_range[axis + 3] - point_cloud_range[axis]
        size = voxel_size[axis]
        if size <= 0 or extent <= 0:
            raise StageError(
                f"params.yaml: model.point_cloud_range/voxel_size: {name} extent "
                f"{extent:g} and voxel size {size:g} must both be positive"
            )
        count = extent / size
        if abs(count - round(count)) > 1e-6:
            raise StageError(
                f"params.yaml: model.voxel_size {name}={size:g} does not divide the point cloud "
                f"range's {name} extent {extent:g} ({count:.3f} voxels); pick a size that gives a "
                f"whole number"
            )
        cells.append(round(count))
    for count, name in zip(cells[:2], "xy"):
        if count % stride:
            raise StageError(
                f"params.yaml: model.point_cloud_range/voxel_size give {count} voxels along {name}, "
                f"not a multiple of the backbone's total stride {stride}; adjust the range"
            )
    return cells[0], cells[1], cells[2]


def grid_options(tree: dict[str, Any], point_cloud_range: list[float], voxel_size: list[float]) -> dict[str, Any]:
    """Range and voxel size everywhere the config uses them, plus the BEV grid and anchor extents."""
    from mmloop.openmmlab.cfg_options import replace_everywhere, same_numbers

    old_range = tree["model"]["data_preprocessor"]["voxel_layer"]["point_cloud_range"]
    old_voxel = tree["model"]["data_preprocessor"]["voxel_layer"]["voxel_size"]
    options: dict[str, Any] = {}
    if not same_numbers(point_cloud_range, old_range):
        options.update(replace_everywhere(tree, old_range, point_cloud_range))
        ranges = tree["model"]["bbox_head"]["anchor_generator"]["ranges"]
        # Anchors cover the new BEV extent at their own per-class heights.
        options["model.bbox_head.anchor_generator.ranges"] = [
            [point_cloud_range[0], point_cloud_range[1], r[2], point_cloud_range[3], point_cloud_range[4], r[5]]
            for r in ranges
        ]
    if not same_numbers(voxel_size, old_voxel):
        options.update(replace_everywhere(tree, old_voxel, voxel_size))
    if options and "output_shape" in tree["model"].get("middle_encoder", {}):
        nx, ny, _ = check_grid(point_cloud_range, voxel_size, stride=1)
        options["model.middle_encoder.output_shape"] = [ny, nx]
    return options


def class_options(tree: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    """The head's per-class parts for the kept class indices: its class count, anchors, assigners."""
    config_classes = list(tree["class_names"])
    options: dict[str, Any] = {"model.bbox_head.num_classes": len(keep)}
    generator = tree["model"]["bbox_head"]["anchor_generator"]
    for key in ("ranges", "sizes"):
        if len(generator.get(key, [])) == len(config_classes):
            options[f"model.bbox_head.anchor_generator.{key}"] = [generator[key][i] for i in keep]
    assigners = tree["model"].get("train_cfg", {}).get("assigner")
    if isinstance(assigners, list) and len(assigners) == len(config_classes):
        options["model.train_cfg.assigner"] = [assigners[i] for i in keep]
    return options


def head_outputs(model: Any, voxels: dict[str, Any], output_names: list[str]) -> dict[str, Any]:
    """The PyTorch model's raw head maps on `voxels` (class scores, box deltas, directions: the
    order mmdeploy's VoxelDetection export gives them), named like the graph's outputs."""
    # mmdet3d's PillarFeatureNet (legacy=True, the default) writes the pillar-centre offsets into
    # its input in place: give it copies, or the deployed model would then see altered voxels.
    copies = {name: tensor.clone() for name, tensor in voxels.items()}
    maps = model._forward({"voxels": copies})
    if len(maps) != len(output_names):
        raise StageError(
            f"the head gives {len(maps)} outputs but the deploy config names "
            f"{len(output_names)} ({', '.join(output_names)}); fix onnx_config.output_names"
        )
    return {name: level[0] for name, level in zip(output_names, maps)}
