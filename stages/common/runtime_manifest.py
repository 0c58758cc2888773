"""The runtime's manifest (runtime/mmloop_runtime/manifest.py) from the model config as trained.

Values are read from the head and voxelizer mmdet3d builds from the config, not from the config
text, so mmdet3d's defaults (dir_offset, align_corner, scales, ...) land in the manifest too.
"""
from __future__ import annotations

from typing import Any

from stages.common.deploy_target import INPUTS, OUTPUTS, voxel_layout
from stages.common.stage import StageError

#: What mmloop_runtime decodes: mmdeploy's single-level anchor heads (PointPillars, SECOND).
HEADS = ("Anchor3DHead",)
ANCHOR_GENERATORS = ("AlignedAnchor3DRangeGenerator",)
BOX_CODERS = ("DeltaXYZWLHRBBoxCoder",)


def unsupported(model_cfg: Any) -> str | None:
    """Why the runtime cannot run this model (None when it can)."""
    model = model_cfg.model
    head = model.get("bbox_head") or {}
    preprocessor = model.get("data_preprocessor", {})
    checks = (
        (head.get("type") in HEADS, f"bbox_head {head.get('type')!r} (the runtime decodes {', '.join(HEADS)})"),
        (head.get("anchor_generator", {}).get("type") in ANCHOR_GENERATORS,
         f"anchor generator {head.get('anchor_generator', {}).get('type')!r} (supported: {', '.join(ANCHOR_GENERATORS)})"),
        (head.get("bbox_coder", {}).get("type") in BOX_CODERS,
         f"box coder {head.get('bbox_coder', {}).get('type')!r} (supported: {', '.join(BOX_CODERS)})"),
        (head.get("use_direction_classifier", True), "no direction classifier"),
        (preprocessor.get("voxel_type", "hard") == "hard", f"voxel_type {preprocessor.get('voxel_type')!r} (hard only)"),
        (model.get("test_cfg", {}).get("use_rotate_nms", False), "test_cfg.use_rotate_nms is false (rotated NMS only)"),
    )
    reasons = [reason for ok, reason in checks if not ok]
    return "; ".join(reasons) or None


def runtime_manifest(model_cfg: Any) -> dict[str, Any]:
    """The manifest as JSON-ready data, checked by the runtime's own reader."""
    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope

    from mmloop_runtime.manifest import check, from_dict

    reason = unsupported(model_cfg)
    if reason:
        raise StageError(f"models/model.py: the runtime cannot run this model: {reason}")
    init_default_scope("mmdet3d")
    head = MODELS.build(model_cfg.model.bbox_head)
    generator = head.prior_generator
    if len(generator.scales) != 1 or generator.custom_values:
        raise StageError("models/model.py: the runtime decodes one feature level without custom anchor values")
    layer = model_cfg.model.data_preprocessor.voxel_layer
    max_points, features, max_voxels = voxel_layout(model_cfg)
    test_cfg = model_cfg.model.test_cfg
    data = {
        "format": "mmloop-runtime/1",
        "class_names": list(model_cfg.class_names),
        "inputs": list(INPUTS),
        "outputs": list(OUTPUTS),
        "voxelizer": {"point_cloud_range": list(layer.point_cloud_range), "voxel_size": list(layer.voxel_size),
                      "max_points": max_points, "max_voxels": max_voxels, "point_features": features},
        "anchors": {"ranges": [list(r) for r in generator.ranges], "sizes": [list(s) for s in generator.sizes],
                    "rotations": list(generator.rotations), "size_per_range": bool(generator.size_per_range),
                    "align_corner": bool(generator.align_corner), "scale": float(generator.scales[0])},
        "head": {"num_classes": int(head.num_classes), "use_sigmoid_cls": bool(head.use_sigmoid_cls),
                 "box_code_size": int(head.box_code_size), "dir_offset": float(head.dir_offset),
                 "dir_limit_offset": float(head.dir_limit_offset)},
        "test": {"nms_pre": int(test_cfg.get("nms_pre", -1)), "score_thr": float(test_cfg.get("score_thr", 0)),
                 "nms_thr": float(test_cfg.nms_thr), "max_num": int(test_cfg.max_num),
                 "use_rotate_nms": bool(test_cfg.use_rotate_nms)},
    }
    try:
        check(from_dict(data), "models/model.py")
    except ValueError as error:
        raise StageError(str(error).replace("rerun `dvc repro export`", "the runtime cannot run this model")) from None
    return data
