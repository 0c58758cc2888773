"""Model families: what mmloop knows about a kind of detector beyond its mmdet3d config.

A family is a module here (`anchor3d` first: PointPillars, SECOND) with the same few functions:
- `HEADS`: the mmdet3d head types it covers, which is how a config finds its family;
- `check_params(model, cfg)`, `grid_options(tree, point_cloud_range, voxel_size)` and
  `class_options(tree, keep)`: the `model` params as cfg-options where they touch the head;
- `head_outputs(model, voxels, output_names)`: the PyTorch head's raw maps, named like the graph's;
- `runtime_unsupported(cfg)` and `runtime_manifest(cfg, inputs, outputs)`: what the torch-free
  runtime needs to run the exported graph, or why it cannot.
A new family is a new module listed in FAMILIES.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from mmloop.core.stage import StageError

#: Family modules, by name (mmloop.models.<name>).
FAMILIES = ("anchor3d",)


def head_type(cfg: Any) -> str | None:
    """The type of the config's 3D head (single-stage detectors' `bbox_head`)."""
    model = cfg["model"]
    head = model.get("bbox_head") or {}
    return head.get("type")


def family_of(cfg: Any) -> ModuleType:
    """The family module whose HEADS has the config's head type, or one line naming those known."""
    head = head_type(cfg)
    known = []
    for name in FAMILIES:
        module = importlib.import_module(f"mmloop.models.{name}")
        if head in module.HEADS:
            return module
        known += module.HEADS
    raise StageError(
        f"params.yaml: model.config has head {head!r}, which no mmloop model family covers "
        f"(known: {', '.join(known)}); add a module under mmloop/models"
    )


def voxel_layout(model_cfg: Any) -> tuple[int, int, int]:
    """(max points per voxel, features per point, test-time max voxels) of the model's voxelizer."""
    layer = model_cfg.model.data_preprocessor.voxel_layer
    max_voxels = layer.max_voxels
    test_max = max_voxels[1] if isinstance(max_voxels, (list, tuple)) else max_voxels
    features = model_cfg.model.get("voxel_encoder", {}).get("in_channels", 4)
    return int(layer.max_num_points), int(features), int(test_max)
