"""`prepare` stage: the dataset as mmdet3d trains on it, in one declared out folder.

The conversion is the dataset format's (`data.format`; for KITTI, mmdet3d's own converters:
info files, reduced clouds and the GT database). It never writes inside the pulled dataset, and
a failed run leaves the previous output as it was (it builds beside it and swaps at the end).
"""

from __future__ import annotations

from mmloop.core.paths import load_paths
from mmloop.core.stage import dataset_root, load_params, run_stage, write_json
from mmloop.datasets import dataset_format


def main() -> None:
    params = load_params("data")
    paths = load_paths()
    root = dataset_root(params)
    summary = dataset_format(params).prepare(root, list(params["splits"]), paths.prepared)
    write_json(paths.prepare_report, summary)
    frames = ", ".join(f"{split} {info['frames']}" for split, info in summary["splits"].items())
    objects = ", ".join(f"{count} {name}" for name, count in summary["gt_database"].items())
    print(
        f"mmloop prepare: wrote {paths.prepared} (frames: {frames}; GT database: {objects}); "
        f"report: {paths.prepare_report}"
    )


if __name__ == "__main__":
    run_stage("prepare", main)
