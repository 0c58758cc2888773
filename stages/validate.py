"""`validate` stage: check the raw dataset before any compute touches it.

The checks are the dataset format's (`data.format`, e.g. mmloop/datasets/kitti/checks.py). Every
problem is grouped by kind; the stage prints one line per kind (the first file and line at fault,
how many more, and the fix), writes nothing and exits 1. A clean dataset gets a JSON report
(frames, objects per class, points and boxes per frame, warnings) that DVC tracks as metrics.
"""

from __future__ import annotations

import sys

from mmloop.core.paths import load_paths
from mmloop.core.stage import StageError, dataset_root, load_params, run_stage, write_json
from mmloop.datasets import dataset_format


def main() -> None:
    params = load_params("data")
    report_file = load_paths().data_report
    root = dataset_root(params)
    report = dataset_format(params).validate(root, params)
    if report.problems:
        for line in report.error_lines():
            print(f"mmloop validate: error: {line}", file=sys.stderr)
        raise StageError(f"{root}: {len(report.problems)} problem(s) found; nothing written, fix them and run again")
    summary = report.summary()
    write_json(report_file, summary)
    print(
        f"mmloop validate: {summary['frames']} frames ok in {root} "
        f"({', '.join(f'{n} {c}' for c, n in summary['objects'].items())}); report: {report_file}"
    )
    for warning in report.warnings:
        print(f"mmloop validate: warning: {warning}")


if __name__ == "__main__":
    run_stage("validate", main)
