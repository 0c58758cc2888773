"""Dataset formats: one package per format (`kitti` first), each with the same small interface.

A format module exposes:
- `validate(root, params) -> report`: every check `validate` runs; the report has `problems`,
  `warnings`, `error_lines()` and `summary()` (a JSON-able dict with `frames` and `objects`);
- `prepare(root, splits, out) -> summary`: the conversion `prepare` runs into the folder `out`;
- `info_file(prepared, split)`: the mmdet3d info file of a prepared split;
- `first_cloud(prepared, split)`: the prepared cloud of a split's first frame (export traces on it);
- `metric_summary(metrics, classes)` and `metric_bars(summary, classes)`: the evaluator's flat
  results as the summary every evaluating stage reports, and as plot rows;
- `pr_evaluator(evaluator_cfg)` and `pr_curves(evaluator, classes)`: the model config's test
  evaluator swapped for one that also keeps the precision-recall curves it computes anyway, and
  after `Runner.test()` those curves as plot rows (one per recall point, a precision per class);
- `bev_truth(info, categories, classes, boxes, evaluator_cfg) -> (truth, pred_ignored)`: an info
  file frame's ground truth (`mmloop_runtime.matching.Truth`) and which predicted boxes the metric
  would not score, so the BEV pictures count true and false positives and misses as it does.
A new format is a new package listed in FORMATS; `data.format` in params.yaml picks one.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from types import ModuleType
from typing import Any

from mmloop.core.stage import StageError

#: Format packages, by name (mmloop.datasets.<name>).
FORMATS = ("kitti",)


def dataset_format(data: dict[str, Any]) -> ModuleType:
    """The format package params.yaml `data.format` names, or one line listing the known ones."""
    name = data.get("format")
    if name not in FORMATS:
        raise StageError(f"params.yaml: data.format is {name!r}; use one of {', '.join(FORMATS)}")
    return importlib.import_module(f"mmloop.datasets.{name}")


def class_counts(info_file: Path) -> dict[str, int]:
    """Objects per class in an mmdet3d (v2) info file (ignored labels excluded)."""
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
