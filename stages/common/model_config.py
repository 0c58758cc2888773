"""From params.yaml to an mmengine config: check the params, then translate them to cfg-options.

The `model` and `train` params are applied to any mmdet3d config as mmengine cfg-options (the
same dotted keys `tools/train.py --cfg-options` takes). mmdet3d configs repeat a value such as
the point cloud range in many places (voxel layer, pillar encoder, range filters, anchors), so a
param becomes one option per place the config uses the value; the options are printed, so a run
can be repeated with mmdet3d's own tools.
"""
from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stages.common.stage import StageError

CONFIG_DIR = Path("configs/models")
PREPARED = Path("work/prepared")
#: What `train` writes and `evaluate` (and mmdet3d's own tools) read: weights and the config as trained.
MODEL = Path("models/model.pth")
MODEL_CONFIG = Path("models/model.py")
MMDET3D_SCOPE = "mmdet3d::"

KeyPath = tuple[str, ...]  # a dotted cfg-options key, split


def config_path(name: str) -> Path:
    """The config file `model.config` names: a file under configs/models, or `mmdet3d::<path>`."""
    if name.startswith(MMDET3D_SCOPE):
        from stages.common.mmdet3d_tools import mim_dir

        path = mim_dir() / "configs" / name[len(MMDET3D_SCOPE):]
    else:
        path = Path(name)
    if not path.is_file():
        known = ", ".join(str(p) for p in sorted(CONFIG_DIR.glob("*.py")))
        raise StageError(
            f"params.yaml: model.config '{name}' not found; use one of {known} "
            f"or a shipped config as 'mmdet3d::pointpillars/<name>.py'")
    return path


def load_config(name: str) -> Any:
    """The mmengine Config of `model.config`, inheritance resolved."""
    from mmengine.config import Config

    path = config_path(name)
    try:
        return Config.fromfile(str(path))
    except Exception as error:  # syntax errors, a missing _base_, ...: mmengine's own message
        message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise StageError(f"{path}: cannot load the config ({message}); fix it or pick another model.config") from None


def require_trained_model(split: str) -> Path:
    """The info file of `split`, once the model `train` wrote and the split `prepare` wrote exist."""
    info_file = PREPARED / f"kitti_infos_{split}.pkl"
    for path, fix in ((MODEL, "run `dvc repro train`"), (MODEL_CONFIG, "run `dvc repro train`"),
                      (info_file, f"add '{split}' to data.splits and run `dvc repro prepare`")):
        if not path.is_file():
            raise StageError(f"{path}: not found; {fix}")
    return info_file


def check_number(section: str, key: str, value: Any, minimum: float, whole: bool = False,
                 inclusive: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= minimum if inclusive else value > minimum)
    ok = ok and (not whole or float(value).is_integer())
    if not ok:
        kind = "a whole number" if whole else "a number"
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise StageError(f"params.yaml: {section}.{key} is {value!r}; it must be {kind} {bound}")


def check_grid(point_cloud_range: Any, voxel_size: Any, stride: int) -> tuple[int, int, int]:
    """Voxels per axis (x, y, z); the range must be a whole number of voxels, the BEV grid a
    whole number of backbone strides (else the neck's upsampled maps do not line up)."""
    if not (isinstance(point_cloud_range, list) and len(point_cloud_range) == 6
            and isinstance(voxel_size, list) and len(voxel_size) == 3):
        raise StageError(
            "params.yaml: model.point_cloud_range needs 6 numbers [x0, y0, z0, x1, y1, z1] and "
            "model.voxel_size 3 numbers [dx, dy, dz]")
    cells = []
    for axis, name in enumerate("xyz"):
        extent = point_cloud_range[axis + 3] - point_cloud_range[axis]
        size = voxel_size[axis]
        if size <= 0 or extent <= 0:
            raise StageError(f"params.yaml: model.point_cloud_range/voxel_size: {name} extent "
                             f"{extent:g} and voxel size {size:g} must both be positive")
        count = extent / size
        if abs(count - round(count)) > 1e-6:
            raise StageError(
                f"params.yaml: model.voxel_size {name}={size:g} does not divide the point cloud "
                f"range's {name} extent {extent:g} ({count:.3f} voxels); pick a size that gives a "
                f"whole number")
        cells.append(round(count))
    for count, name in zip(cells[:2], "xy"):
        if count % stride:
            raise StageError(
                f"params.yaml: model.point_cloud_range/voxel_size give {count} voxels along {name}, "
                f"not a multiple of the backbone's total stride {stride}; adjust the range")
    return cells[0], cells[1], cells[2]


def train_class_counts(prepared: Path = PREPARED) -> dict[str, int]:
    """Objects per class in the train info file `prepare` wrote (ignored labels excluded)."""
    info_file = prepared / "kitti_infos_train.pkl"
    if not info_file.is_file():
        raise StageError(f"{info_file}: not found; run `dvc repro prepare` first")
    with info_file.open("rb") as handle:
        infos = pickle.load(handle)
    names = {index: name for name, index in infos["metainfo"]["categories"].items()}
    counts: dict[str, int] = {}
    for frame in infos["data_list"]:
        for instance in frame["instances"]:
            name = names.get(instance["bbox_label_3d"])  # -1 (ignored) has no name
            if name is not None:
                counts[name] = counts.get(name, 0) + 1
    return counts


def check_params(model: dict[str, Any], train: dict[str, Any], cfg: Any,
                 class_counts: dict[str, int]) -> None:
    """Every params mistake we can see before training, as one-line StageErrors."""
    check_number("train", "epochs", train["epochs"], 0, whole=True)
    check_number("train", "batch_size", train["batch_size"], 1, whole=True)
    check_number("train", "lr", train["lr"], 0, inclusive=False)
    check_number("train", "weight_decay", train["weight_decay"], 0)
    check_number("train", "seed", train["seed"], 0, whole=True)
    check_number("train", "val_interval", train["val_interval"], 1, whole=True)
    check_number("train", "log_interval", train["log_interval"], 1, whole=True)
    stride = math.prod(cfg.model.get("backbone", {}).get("layer_strides", [1]))
    check_grid(model["point_cloud_range"], model["voxel_size"], stride)
    config_classes = list(cfg.class_names)
    for name in model["classes"]:
        if name not in config_classes:
            raise StageError(
                f"params.yaml: model.classes has '{name}', which {model['config']} has no anchors "
                f"for; pick from {', '.join(config_classes)}")
        if not class_counts.get(name):
            present = ", ".join(f"{k} ({v})" for k, v in sorted(class_counts.items())) or "none"
            raise StageError(
                f"params.yaml: model.classes has '{name}', but the train split has no '{name}' "
                f"objects (it has: {present}); remove it from model.classes")
    load_from = model.get("load_from")
    if load_from and not Path(load_from).is_file():
        raise StageError(
            f"params.yaml: model.load_from '{load_from}' not found; run `dvc pull checkpoints.dvc` "
            f"or set model.load_from: null to train from scratch")


def find(node: Any, match: Callable[[Any], bool], path: KeyPath = ()) -> Iterator[KeyPath]:
    """Dotted paths (list indices as digits, as cfg-options take them) of values that match."""
    if match(node):
        yield path
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from find(value, match, (*path, str(key)))
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from find(value, match, (*path, str(index)))


def same_numbers(a: Any, b: Any) -> bool:
    return (isinstance(a, (list, tuple)) and len(a) == len(b)
            and all(isinstance(x, (int, float)) and math.isclose(x, y) for x, y in zip(a, b)))


def get(tree: Any, path: KeyPath) -> Any:
    for key in path:
        tree = tree[int(key)] if isinstance(tree, (list, tuple)) else tree[key]
    return tree


def replace_everywhere(tree: dict[str, Any], old: Any, new: Any) -> dict[str, Any]:
    """An option for each place the config holds `old` (a range, a voxel size, a path prefix)."""
    if isinstance(old, str):
        return {".".join(p): new + get(tree, p)[len(old):]
                for p in find(tree, lambda v: isinstance(v, str) and v.startswith(old))}
    if all(isinstance(item, str) for item in old):
        return {".".join(p): new for p in find(tree, lambda v: isinstance(v, (list, tuple)) and list(v) == old)}
    return {".".join(p): new for p in find(tree, lambda v: same_numbers(v, old))}


def data_options(tree: dict[str, Any], prepared: Path) -> dict[str, Any]:
    """Point every dataset, GT database and evaluator path at what `prepare` wrote."""
    old = tree.get("data_root")
    if not old:
        raise StageError("the model config defines no data_root; mmloop needs a KITTI-style config")
    new = str(prepared).rstrip("/") + "/"
    return {} if old == new else replace_everywhere(tree, old, new)


def grid_options(tree: dict[str, Any], point_cloud_range: list[float],
                 voxel_size: list[float]) -> dict[str, Any]:
    """Range and voxel size everywhere the config uses them, plus the BEV grid and anchor extents."""
    old_range = tree["model"]["data_preprocessor"]["voxel_layer"]["point_cloud_range"]
    old_voxel = tree["model"]["data_preprocessor"]["voxel_layer"]["voxel_size"]
    options: dict[str, Any] = {}
    if not same_numbers(point_cloud_range, old_range):
        options.update(replace_everywhere(tree, old_range, point_cloud_range))
        ranges = tree["model"]["bbox_head"]["anchor_generator"]["ranges"]
        # Anchors cover the new BEV extent at their own per-class heights.
        options["model.bbox_head.anchor_generator.ranges"] = [
            [point_cloud_range[0], point_cloud_range[1], r[2], point_cloud_range[3],
             point_cloud_range[4], r[5]] for r in ranges]
    if not same_numbers(voxel_size, old_voxel):
        options.update(replace_everywhere(tree, old_voxel, voxel_size))
    if options and "output_shape" in tree["model"].get("middle_encoder", {}):
        nx, ny, _ = check_grid(point_cloud_range, voxel_size, stride=1)
        options["model.middle_encoder.output_shape"] = [ny, nx]
    return options


def class_options(tree: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """Train on a subset of the config's classes: keep their anchors, assigners and sampling."""
    config_classes = list(tree["class_names"])
    if classes == config_classes:
        return {}
    keep = [config_classes.index(name) for name in classes]
    options: dict[str, Any] = {"model.bbox_head.num_classes": len(classes)}
    options.update(replace_everywhere(tree, config_classes, classes))
    generator = tree["model"]["bbox_head"]["anchor_generator"]
    for key in ("ranges", "sizes"):
        if len(generator.get(key, [])) == len(config_classes):
            options[f"model.bbox_head.anchor_generator.{key}"] = [generator[key][i] for i in keep]
    assigners = tree["model"].get("train_cfg", {}).get("assigner")
    if isinstance(assigners, list) and len(assigners) == len(config_classes):
        options["model.train_cfg.assigner"] = [assigners[i] for i in keep]
    for path in find(tree, lambda v: isinstance(v, dict) and "sample_groups" in v):
        sampler = get(tree, path)
        prefix = ".".join(path)
        # `_delete_`: cfg-options merge dicts key by key; these must lose the dropped classes.
        options[f"{prefix}.sample_groups"] = {
            "_delete_": True, **{k: v for k, v in sampler["sample_groups"].items() if k in classes}}
        by_points = sampler.get("prepare", {}).get("filter_by_min_points")
        if by_points:
            options[f"{prefix}.prepare.filter_by_min_points"] = {
                "_delete_": True, **{k: v for k, v in by_points.items() if k in classes}}
    return options


def schedule_options(tree: dict[str, Any], epochs: int, lr: float) -> dict[str, Any]:
    """Epochs and lr, with the config's epoch-based schedulers stretched to the new length and
    their lr targets (eta_min) moved with the lr, so the schedule keeps its shape."""
    old_epochs = tree["train_cfg"]["max_epochs"]
    old_lr = tree["optim_wrapper"]["optimizer"]["lr"]
    options: dict[str, Any] = {"train_cfg.max_epochs": epochs, "optim_wrapper.optimizer.lr": lr}
    schedulers = tree.get("param_scheduler") or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    # epochs=0 (evaluate the initial weights) never steps the schedule: leave it as it is.
    stretch = epochs / old_epochs if old_epochs and epochs else 1.0
    for index, scheduler in enumerate(schedulers):
        prefix = f"param_scheduler.{index}" if isinstance(tree["param_scheduler"], list) else "param_scheduler"
        if scheduler.get("by_epoch", True) and stretch != 1.0:
            for key in ("begin", "end", "T_max"):
                if key in scheduler:
                    options[f"{prefix}.{key}"] = scheduler[key] * stretch
        if "LR" in scheduler["type"] and "eta_min" in scheduler and lr != old_lr:
            options[f"{prefix}.eta_min"] = scheduler["eta_min"] * lr / old_lr
    return options


def cfg_options(cfg: Any, model: dict[str, Any], train: dict[str, Any],
                prepared: Path = PREPARED) -> dict[str, Any]:
    """All params as cfg-options for `cfg` (only what differs from the config itself)."""
    tree = cfg.to_dict()
    options = data_options(tree, prepared)
    options.update(grid_options(tree, model["point_cloud_range"], model["voxel_size"]))
    options.update(class_options(tree, model["classes"]))
    options.update(schedule_options(tree, int(train["epochs"]), float(train["lr"])))
    options.update({
        "train_dataloader.batch_size": int(train["batch_size"]),
        "optim_wrapper.optimizer.weight_decay": float(train["weight_decay"]),
        "train_cfg.val_interval": int(train["val_interval"]),
        "randomness": {"seed": int(train["seed"]), "deterministic": False},
    })
    return options
