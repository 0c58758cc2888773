"""The camera loop's params as mmengine cfg-options on an mmdet config, and the checks before training.

Like the LiDAR loop (mmloop/openmmlab/cfg_options.py, whose helpers this reuses) every param becomes
one option per place the config uses it: the classes in each dataset's metainfo and the head, the
COCO files and image root in each dataset and evaluator, the input size in every Resize and Pad of
the train/val/test pipelines, and the schedule stretched to `train.epochs` with its lr targets moved
with `train.lr`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmloop.camera.coco import ann_file
from mmloop.core.checkpoint import check_load_from
from mmloop.core.determinism import host_params
from mmloop.core.stage import StageError, check_number
from mmloop.openmmlab.cfg_options import find, schedule_options

#: The detector's largest stride (YOLOX, RTMDet: 32): each input side must be a multiple of it.
STRIDE = 32
LOADERS = {"train_dataloader": "train", "val_dataloader": "val", "test_dataloader": "val"}
DATASETS = ("CocoDataset",)


def input_size(model: dict[str, Any]) -> tuple[int, int]:
    """`model.input_size` as (height, width), each a positive multiple of the stride."""
    size = model.get("input_size")
    ok = isinstance(size, (list, tuple)) and len(size) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % STRIDE == 0 for v in size)
    if not ok:
        raise StageError(
            f"params.yaml: model.input_size is {size!r}; it must be [height, width], each a positive multiple of "
            f"{STRIDE} (the detector's largest stride), e.g. [192, 640]"
        )
    return int(size[0]), int(size[1])


def check_params(model: dict[str, Any], train: dict[str, Any], class_counts: dict[str, int]) -> None:
    """Every params mistake we can see before training, as one-line StageErrors."""
    check_number("train", "epochs", train["epochs"], 0, whole=True)
    check_number("train", "batch_size", train["batch_size"], 1, whole=True)
    check_number("train", "lr", train["lr"], 0, inclusive=False)
    check_number("train", "weight_decay", train["weight_decay"], 0)
    check_number("train", "seed", train["seed"], 0, whole=True)
    check_number("train", "val_interval", train["val_interval"], 1, whole=True)
    check_number("train", "log_interval", train["log_interval"], 1, whole=True)
    input_size(model)
    for name in model["classes"]:
        if not class_counts.get(name):
            present = ", ".join(f"{k} ({v})" for k, v in sorted(class_counts.items()) if v) or "none"
            raise StageError(
                f"params.yaml: model.classes has '{name}', but the train split has no '{name}' boxes "
                f"(it has: {present}); remove it from model.classes"
            )
    check_load_from(model.get("load_from"))


def dataset_paths(tree: dict[str, Any]) -> dict[str, str]:
    """The dotted path of each loader's COCO dataset, with the split it reads."""
    found: dict[str, str] = {}
    for loader, split in LOADERS.items():
        for path in find(tree[loader], lambda v: isinstance(v, dict) and v.get("type") in DATASETS, (loader,)):
            found[".".join(path)] = split
    if not any(path.startswith("train_dataloader.") for path in found):
        raise StageError("the model config's train_dataloader has no CocoDataset; the camera loop trains on COCO files")
    return found


def data_options(tree: dict[str, Any], classes: list[str], data_root: str, prepared: Path) -> dict[str, Any]:
    """Each dataset and evaluator at prepare_2d's COCO files and the dataset's images, with the classes."""
    image_root = str(data_root).rstrip("/") + "/"
    options: dict[str, Any] = {"classes": tuple(classes), "model.bbox_head.num_classes": len(classes)}
    for path, split in dataset_paths(tree).items():
        options[f"{path}.data_root"] = ""
        options[f"{path}.ann_file"] = str(ann_file(prepared, split))
        options[f"{path}.data_prefix"] = {"img": image_root}
        options[f"{path}.metainfo"] = {"classes": tuple(classes)}
    for evaluator in ("val_evaluator", "test_evaluator"):
        if isinstance(tree.get(evaluator), dict) and "ann_file" in tree[evaluator]:
            options[f"{evaluator}.ann_file"] = str(ann_file(prepared, "val"))
    if "image_root" in tree:  # the config's own variables, kept in step for models/model.py's reader
        options["image_root"] = image_root
    return options


def size_options(tree: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """The input size in every Resize (scale) and Pad (size) of the loaders' pipelines."""
    scale = (width, height)  # mmdet's transforms take (width, height)
    options: dict[str, Any] = {"input_size": (height, width), "img_scale": scale}
    for loader in LOADERS:
        for path in find(tree[loader], lambda v: isinstance(v, dict) and v.get("type") in ("Resize", "Pad"), (loader,)):
            step = tree
            for key in path:
                step = step[int(key)] if isinstance(step, list) else step[key]
            options[".".join(path) + (".scale" if step["type"] == "Resize" else ".size")] = scale
    return options


def cfg_options(
    cfg: Any,
    model: dict[str, Any],
    train: dict[str, Any],
    data_root: str,
    prepared: Path,
    device: str = "cpu",
) -> dict[str, Any]:
    """All params as cfg-options for `cfg` (printed by train_2d, so a run can be repeated with mmdet's tools)."""
    tree = cfg.to_dict()
    options = data_options(tree, list(model["classes"]), data_root, prepared)
    options.update(size_options(tree, *input_size(model)))
    options.update(schedule_options(tree, int(train["epochs"]), float(train["lr"])))
    options.update(
        {
            "train_dataloader.batch_size": int(train["batch_size"]),
            "optim_wrapper.optimizer.weight_decay": float(train["weight_decay"]),
            "train_cfg.val_interval": int(train["val_interval"]),
            # As in the LiDAR loop: CUDA's deterministic kernels on a GPU; the CPU's are pinned
            # before torch loads (mmloop.core.determinism).
            "randomness": {"seed": int(train["seed"]), "deterministic": device == "cuda" and host_params(train)[0]},
        }
    )
    return {key: value for key, value in options.items() if _differs(tree, key, value)}


def _differs(tree: dict[str, Any], key: str, value: Any) -> bool:
    """Only what the params change: an option equal to the config's own value is left out."""
    node: Any = tree
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return True
    normal = list(value) if isinstance(value, tuple) else value
    current = list(node) if isinstance(node, tuple) else node
    return normal != current
