"""What `make demo` ends with: the evaluation per class and each deployed model, in a terminal's width.

`dvc metrics show` prints every metric of a file on one line (22 columns for metrics/eval.json) and
`dvc exp show` a column per metric; this prints the few figures a person reads after a run, from the
same files (metrics/eval.json, metrics/deploy/), at most 80 characters a line, and where the
pictures and the plots page are.

    python scripts/summary.py [--root DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from write_docs import REPO, DocsError, deploy_reports, read_json


def columns(rows: list[list[str]]) -> list[str]:
    """Left-aligned first column, right-aligned others, two spaces apart."""
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            cell.ljust(width) if index == 0 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(row, widths))
        )
        for row in rows
    ]


def eval_lines(metrics: dict[str, Any]) -> list[str]:
    classes = [key for key, value in metrics.items() if isinstance(value, dict) and "3d" in value]
    rows = [["class", "3D AP", "BEV AP"]]
    rows += [
        [name, f"{metrics[name]['3d']['moderate']:.2f}", f"{metrics[name]['bev']['moderate']:.2f}"] for name in classes
    ]
    rows.append(["mAP", f"{metrics['mAP_3d_moderate']:.2f}", f"{metrics['mAP_bev_moderate']:.2f}"])
    title = f"evaluate: AP (R40, moderate) on the '{metrics['split']}' split, {metrics['frames']} frames"
    return [title, *columns(rows)]


def deploy_lines(reports: list[tuple[str, dict[str, Any] | None]]) -> list[str]:
    rows = [["target", "mAP 3D", "delta", "ms/frame", "x PyTorch", "runtime ms"]]
    for name, report in reports:
        if report is None:
            rows.append([name, "not built", "", "", "", ""])
            continue
        runtime = report.get("runtime_latency_ms", {}).get("total")
        rows.append(
            [
                name,
                f"{report['mAP']:.2f}",
                f"{report['mAP_delta']:+.2f}",
                f"{report['latency_ms']:.1f}",
                f"{report['latency_ratio']:.2f}",
                "" if runtime is None else f"{runtime:.1f}",
            ]
        )
    return ["deploy: mAP and latency per target, against PyTorch on the same frames", *columns(rows)]


def where_lines(root: Path) -> list[str]:
    pictures = sorted((root / "metrics" / "bev").glob("*.png"))
    return [
        f"pictures: {len(pictures)} bird's-eye views in metrics/bev/",
        "plots: dvc_plots/index.html (written by `dvc plots show`; opens offline)",
    ]


def summary(root: Path) -> list[str]:
    lines = eval_lines(read_json(root, "metrics/eval.json", then=None))
    reports = deploy_reports(root)
    if reports:
        lines += deploy_lines(reports)
    return lines + where_lines(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="the repository (default: this one)")
    options = parser.parse_args(argv)
    try:
        lines = summary(options.root)
    except DocsError as error:
        print(f"mmloop summary: error: {error}", file=sys.stderr)
        return 1
    for line in lines:
        print(line if line.startswith("  ") else f"mmloop {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
