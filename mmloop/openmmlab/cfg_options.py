"""From params.yaml to an mmengine config: check the params, then translate them to cfg-options.

The `model` and `train` params are applied to any mmdet3d config as mmengine cfg-options (the
same dotted keys `tools/train.py --cfg-options` takes). mmdet3d configs repeat a value such as
the point cloud range in many places (voxel layer, pillar encoder, range filters, anchors), so a
param becomes one option per place the config uses the value; the options are printed, so a run
can be repeated with mmdet3d's own tools. What depends on the model family (anchors, assigners,
the BEV grid a backbone needs) comes from its module under mmloop/models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mmloop.core.checkpoint import check_load_from
from mmloop.core.determinism import host_params
from mmloop.core.stage import StageError, check_number
from mmloop.models import family_of

KeyPath = tuple[str, ...]  # a dotted cfg-options key, split


def check_params(model: dict[str, Any], train: dict[str, Any], cfg: Any, class_counts: dict[str, int]) -> None:
    """Every params mistake we can see before training, as one-line StageErrors."""
    check_number("train", "epochs", train["epochs"], 0, whole=True)
    check_number("train", "batch_size", train["batch_size"], 1, whole=True)
    check_number("train", "lr", train["lr"], 0, inclusive=False)
    check_number("train", "weight_decay", train["weight_decay"], 0)
    check_number("train", "seed", train["seed"], 0, whole=True)
    check_number("train", "val_interval", train["val_interval"], 1, whole=True)
    check_number("train", "log_interval", train["log_interval"], 1, whole=True)
    family_of(cfg).check_params(model, cfg)
    config_classes = list(cfg.class_names)
    for name in model["classes"]:
        if name not in config_classes:
            raise StageError(
                f"params.yaml: model.classes has '{name}', which {model['config']} has no anchors "
                f"for; pick from {', '.join(config_classes)}"
            )
        if not class_counts.get(name):
            present = ", ".join(f"{k} ({v})" for k, v in sorted(class_counts.items())) or "none"
            raise StageError(
                f"params.yaml: model.classes has '{name}', but the train split has no '{name}' "
                f"objects (it has: {present}); remove it from model.classes"
            )
    check_load_from(model.get("load_from"))


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
    return (
        isinstance(a, (list, tuple))
        and len(a) == len(b)
        and all(isinstance(x, (int, float)) and math.isclose(x, y) for x, y in zip(a, b))
    )


def get(tree: Any, path: KeyPath) -> Any:
    for key in path:
        tree = tree[int(key)] if isinstance(tree, (list, tuple)) else tree[key]
    return tree


def replace_everywhere(tree: dict[str, Any], old: Any, new: Any) -> dict[str, Any]:
    """An option for each place the config holds `old` (a range, a voxel size, a path prefix)."""
    if isinstance(old, str):
        return {
            ".".join(p): new + get(tree, p)[len(old) :]
            for p in find(tree, lambda v: isinstance(v, str) and v.startswith(old))
        }
    if all(isinstance(item, str) for item in old):
        return {".".join(p): new for p in find(tree, lambda v: isinstance(v, (list, tuple)) and list(v) == old)}
    return {".".join(p): new for p in find(tree, lambda v: same_numbers(v, old))}


def data_options(tree: dict[str, Any], prepared: Path) -> dict[str, Any]:
    """Point every dataset, GT database and evaluator path at what `prepare` wrote."""
    old = tree.get("data_root")
    if not old:
        raise StageError("the model config defines no data_root; mmloop needs a config with a data_root")
    new = str(prepared).rstrip("/") + "/"
    return {} if old == new else replace_everywhere(tree, old, new)


def class_options(tree: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """Train on a subset of the config's classes: the class lists and ObjectSample's per-class
    settings here, the head's per-class parts (anchors, assigners) from the model family."""
    config_classes = list(tree["class_names"])
    if classes == config_classes:
        return {}
    keep = [config_classes.index(name) for name in classes]
    options = replace_everywhere(tree, config_classes, classes)
    options.update(family_of(tree).class_options(tree, keep))
    for path in find(tree, lambda v: isinstance(v, dict) and "sample_groups" in v):
        sampler = get(tree, path)
        prefix = ".".join(path)
        # `_delete_`: cfg-options merge dicts key by key; these must lose the dropped classes.
        options[f"{prefix}.sample_groups"] = {
            "_delete_": True,
            **{k: v for k, v in sampler["sample_groups"].items() if k in classes},
        }
        by_points = sampler.get("prepare", {}).get("filter_by_min_points")
        if by_points:
            options[f"{prefix}.prepare.filter_by_min_points"] = {
                "_delete_": True,
                **{k: v for k, v in by_points.items() if k in classes},
            }
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


def cfg_options(
    cfg: Any, model: dict[str, Any], train: dict[str, Any], prepared: Path, device: str = "cpu"
) -> dict[str, Any]:
    """All params as cfg-options for `cfg` (only what differs from the config itself)."""
    tree = cfg.to_dict()
    options = data_options(tree, prepared)
    options.update(family_of(tree).grid_options(tree, model["point_cloud_range"], model["voxel_size"]))
    options.update(class_options(tree, model["classes"]))
    options.update(schedule_options(tree, int(train["epochs"]), float(train["lr"])))
    options.update(
        {
            "train_dataloader.batch_size": int(train["batch_size"]),
            "optim_wrapper.optimizer.weight_decay": float(train["weight_decay"]),
            "train_cfg.val_interval": int(train["val_interval"]),
            # deterministic: cuDNN's and torch's deterministic algorithms, on a GPU. The CPU's
            # kernels are pinned before torch loads (mmloop.core.determinism); there torch's
            # switch only costs time (5 % of a step, benchmarks/deterministic_step.py).
            "randomness": {
                "seed": int(train["seed"]),
                "deterministic": device == "cuda" and host_params(train)[0],
            },
        }
    )
    return options
