"""Write the figures in README.md and docs/ from the metrics DVC tracks, so no figure is typed by hand.

Every measured number a reader sees in the docs comes from a file `dvc repro` wrote (metrics/,
reports/, dvc.lock) or from a named benchmark command. The first kind lives between marker comments,

    <!-- metrics:deploy -->
    ...generated...
    <!-- /metrics:deploy -->

and this script rewrites what is between them. `--check` rewrites nothing: it exits 1 with one line
per stale block, so a commit that changes metrics without the docs fails `make test`.

    python scripts/write_docs.py            # rewrite the blocks
    python scripts/write_docs.py --check    # exit 1 if a block is stale
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
FIX = "run python scripts/write_docs.py"
#: The files whose marker blocks this script owns (relative to the repository root).
DOC_GLOBS = ("README.md", "docs/*.md", "runtime/README.md", "benchmarks/README.md")
BLOCK = re.compile(
    r"(?P<open><!-- metrics:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(?P<close><!-- /metrics:(?P=name) -->)", re.S
)


class DocsError(Exception):
    """A problem the user fixes (a metrics file missing, an unknown block): one line, exit 1."""


# ---------------------------------------------------------------- reading the metrics


def read_json(root: Path, relative: str, then: str | None = FIX) -> dict[str, Any]:
    """A metrics file, or one line saying how to get it (and what to run `then`)."""
    path = root / relative
    if not path.is_file():
        after = f", then {then}" if then else ""
        raise DocsError(f"{relative}: not found; run `dvc repro` (or `dvc pull`) first{after}")
    return json.loads(path.read_text())


def read_yaml(root: Path, relative: str) -> dict[str, Any]:
    path = root / relative
    if not path.is_file():
        raise DocsError(f"{relative}: not found; restore it from git, then {FIX}")
    return yaml.safe_load(path.read_text()) or {}


def deploy_reports(root: Path, mask_latency: bool = False) -> list[tuple[str, dict[str, Any] | None]]:
    """(target, metrics and latency or None when not built yet): params.yaml's deploy.targets
    first, in order, then any other metrics/deploy/*.json (a target built by an experiment and kept)."""
    targets = list(read_yaml(root, "params.yaml").get("deploy", {}).get("targets", []))
    found = {path.stem: path for path in sorted((root / "metrics/deploy").glob("*.json")) if "." not in path.stem}
    names = targets + [name for name in found if name not in targets]
    return [(name, read_deploy_report(found[name], mask_latency) if name in found else None) for name in names]


def read_deploy_report(path: Path, mask_latency: bool) -> dict[str, Any]:
    """<target>.json with its <target>.latency.json beside it, as one dict (the stage prints both);
    `mask_latency`: every millisecond figure NaN, which prints as `nan` (see `same_but_latency`)."""
    latency_file = path.with_suffix(".latency.json")
    latency = json.loads(latency_file.read_text()) if latency_file.is_file() else {}
    if mask_latency:
        latency = {key: masked(value) for key, value in latency.items()}
    return {**json.loads(path.read_text()), **latency}


def masked(value: Any) -> Any:
    return {key: masked(item) for key, item in value.items()} if isinstance(value, dict) else math.nan


def locked_size(root: Path, stage: str, out: str) -> int | None:
    """The size dvc.lock records for one stage output (the file itself may not be checked out)."""
    entry = read_yaml(root, "dvc.lock").get("stages", {}).get(stage, {})
    return next((item.get("size") for item in entry.get("outs", []) if item.get("path") == out), None)


# ---------------------------------------------------------------- formatting


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def source_note(sources: str) -> str:
    return f"_From {sources}; written by `python scripts/write_docs.py`._"


def signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def counts(objects: dict[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in objects.items())


# ---------------------------------------------------------------- the blocks


def eval_block(root: Path) -> str:
    """AP per class and difficulty, the moderate mAPs (metrics/eval.json)."""
    metrics = read_json(root, "metrics/eval.json")
    classes = [key for key, value in metrics.items() if isinstance(value, dict) and "3d" in value]
    rows = [
        [
            name,
            *(f"{metrics[name][kind][level]:.2f}" for kind in ("3d", "bev") for level in ("easy", "moderate", "hard")),
        ]
        for name in classes
    ]
    rows.append(
        ["mAP", "", f"**{metrics['mAP_3d_moderate']:.2f}**", "", "", f"**{metrics['mAP_bev_moderate']:.2f}**", ""]
    )
    header = ["class", "3D easy", "3D moderate", "3D hard", "BEV easy", "BEV moderate", "BEV hard"]
    return (
        table(header, rows)
        + "\n\n"
        + source_note(f"metrics/eval.json: AP R40, `{metrics['split']}` split, {metrics['frames']} frames")
    )


def deploy_block(root: Path, mask_latency: bool = False) -> str:
    """Each deployed model beside PyTorch, and the torch-free runtime beside mmdeploy (metrics/deploy/)."""
    rows = []
    for name, report in deploy_reports(root, mask_latency):
        if report is None:
            rows.append([f"`{name}`", f"not built yet: `dvc repro deploy@{name}`", *[""] * 7])
            continue
        runtime = "runtime_mAP" in report
        rows.append(
            [
                f"`{name}`",
                f"{report['mAP']:.2f} ({report['mAP_pytorch']:.2f})",
                signed(report["mAP_delta"]),
                f"{report['max_abs_diff']:.1e}",
                f"{report['latency_ms']:.1f} ({report['latency_ms_pytorch']:.1f})",
                f"{report['latency_ratio']:.2f}",
                f"{report['runtime_frames_agreeing']}/{report['frames']}" if runtime else "not checked",
                signed(report["runtime_mAP_delta"]) if runtime else "",
                f"{report['runtime_latency_ratio']:.2f}" if runtime else "",
            ]
        )
    header = [
        "target",
        "mAP 3D (PyTorch)",
        "mAP delta",
        "max \\|d\\| head outputs",
        "latency ms (PyTorch)",
        "latency ratio",
        "runtime frames agreeing",
        "runtime mAP delta",
        "runtime latency ratio",
    ]
    return (
        table(header, rows)
        + "\n\n"
        + source_note(
            "metrics/deploy/<target>.json: mAP R40 moderate; <target>.latency.json: the median per frame (voxelize, network, decode) "
            "over `deploy.latency_rounds` passes; runtime columns: mmloop_runtime against mmdeploy's backend model"
        )
    )


def runtime_block(root: Path, mask_latency: bool = False) -> str:
    """The runtime against mmdeploy's backend model on the same file, box for box (metrics/deploy/)."""
    rows = []
    for name, report in deploy_reports(root, mask_latency):
        if report is None or "runtime_mAP" not in report:
            rows.append([f"`{name}`", "not built yet" if report is None else "not checked", *[""] * 5])
            continue
        steps = report["runtime_latency_ms"]
        rows.append(
            [
                f"`{name}`",
                f"{report['runtime_frames_agreeing']} of {report['frames']}",
                str(report["runtime_boxes"]),
                f"{report['runtime_box_max_abs_diff']:.1e}",
                f"{report['runtime_score_max_abs_diff']:.1e}",
                f"{report['runtime_mAP']:.2f} and {report['mAP']:.2f}",
                " / ".join(f"{steps[step]:.1f}" for step in ("voxelize", "network", "decode", "total")),
            ]
        )
    header = [
        "target",
        "frames with the same boxes",
        "boxes",
        "max \\|d\\| box values",
        "max \\|d\\| scores",
        "mAP, runtime and mmdeploy",
        "runtime ms: voxelize / network / decode / total",
    ]
    return table(header, rows) + "\n\n" + source_note("metrics/deploy/<target>.json (`runtime_*`)")


def data_block(root: Path) -> str:
    """The dataset as validate and prepare saw it (reports/data.json, reports/prepare.json, data.dvc)."""
    data = read_json(root, "reports/data.json")
    prepared = read_json(root, "reports/prepare.json")
    size = next((out.get("size") for out in read_yaml(root, "data.dvc").get("outs", [])), None)
    points, boxes = data["points_per_frame"], data["boxes_per_frame"]
    splits = ", ".join(f"{count} {split}" for split, count in data["splits"].items())
    rows = [
        ["frames", f"{data['frames']} ({splits})"],
        ["objects", counts(data["objects"])],
        ["points per frame", f"{points['min']:,} to {points['max']:,} (mean {points['mean']:,})"],
        ["boxes per frame", f"{boxes['min']} to {boxes['max']} (mean {boxes['mean']})"],
        *[
            [f"prepared `{split}`", f"{info['frames']} frames: {counts(info['objects'])}"]
            for split, info in prepared["splits"].items()
        ],
        ["GT database (ObjectSample)", counts(prepared["gt_database"])],
        ["problems / warnings", f"{data['problems']} / {len(data['warnings'])}"],
    ]
    if size:
        rows.insert(0, ["size (data.dvc)", f"{size / 1e6:.1f} MB"])
    return (
        table(["`" + data["root"] + "`", ""], rows)
        + "\n\n"
        + source_note("reports/data.json (validate), reports/prepare.json (prepare) and data.dvc")
    )


def export_block(root: Path) -> str:
    """The exported graph (metrics/export.json)."""
    export = read_json(root, "metrics/export.json")
    readiness = export["tensorrt_readiness"]

    def tensors(entries: list[dict[str, Any]]) -> str:
        return ", ".join(
            f"`{item['name']}` {item['dtype']} [{', '.join(str(dim) for dim in item['shape'])}]" for item in entries
        )

    rows = [
        [
            "file",
            f"`{export['file']}`, {export['bytes'] / 1e6:.1f} MB, opset {export['opset']}, {export['nodes']} nodes",
        ],
        ["inputs", tensors(export["inputs"])],
        ["outputs", tensors(export["outputs"])],
        ["TensorRT readiness", f"{'ready' if readiness['ready'] else 'NOT ready'} ({readiness['parser']})"],
        ["runtime manifest", f"`{export['runtime_manifest']}`"],
    ]
    return table(["export", ""], rows) + "\n\n" + source_note("metrics/export.json")


def demo_block(root: Path, mask_latency: bool = False) -> str:
    """The stage lines `make demo` prints, with the committed metrics in them (formats of stages/*.py)."""
    from mmloop.deploy.gates import summary_lines  # the deploy stage's own wording

    params = read_yaml(root, "params.yaml")
    paths, model, train, evaluate = params["paths"], params["model"], params["train"], params["evaluate"]
    data = read_json(root, "reports/data.json")
    prepared = read_json(root, "reports/prepare.json")
    metrics = read_json(root, "metrics/eval.json")
    export = read_json(root, "metrics/export.json")
    size = locked_size(root, "train", paths["model"])
    size_text = f"{size / 1e6:.1f} MB" if size else "size not in dvc.lock"
    frames = ", ".join(f"{split} {info['frames']}" for split, info in prepared["splits"].items())
    moderate = ", ".join(
        f"{name} {metrics[name]['3d']['moderate']:.1f}" for name in model["classes"] if name in metrics
    )
    verdict = "ready" if export["tensorrt_readiness"]["ready"] else "NOT ready"
    lines = [
        f"mmloop validate: {data['frames']} frames ok in {data['root']} ({counts(data['objects'])}); "
        f"report: {paths['data_report']}",
        f"mmloop prepare: wrote {paths['prepared']} (frames: {frames}; GT database: {counts(prepared['gt_database'])}); "
        f"report: {paths['prepare_report']}",
        f"mmloop train: {model['config']} on cpu, {train['epochs']} epochs, work dir {paths['train_work']}/<run>",
        "mmloop train:   --cfg-options ... (one line per option applied)",
        "... mmengine's own lines: epoch, iteration, loss, lr, ETA ...",
        f"mmloop train: wrote {paths['model']} ({size_text}) and {paths['model_config']}; "
        f"curves in {paths['train_curves']}",
        f"mmloop evaluate: {paths['model']} on the '{metrics['split']}' split (cpu)",
        f"mmloop evaluate: 3D AP (R40, moderate): {moderate}; mAP {metrics['mAP_3d_moderate']:.1f}; "
        f"wrote {paths['eval']}, PR curves in {paths['pr_plot']} and "
        f"{min(int(evaluate['bev_frames']), metrics['frames'])} BEV pictures "
        f"(score >= {float(evaluate['bev_score_thr']):g}) in {paths['bev']}/",
        f"mmloop export: wrote {paths['onnx']}/ ({export['nodes']} nodes, opset {export['opset']}); "
        f"TensorRT parser: {verdict}; report in {paths['export_report']}",
    ]
    for name, report in deploy_reports(root, mask_latency):
        if report is not None:
            lines += summary_lines(
                name, report, Path(paths["deployed"]) / name, Path(paths["deploy_metrics"]) / f"{name}.json"
            )
    return (
        "```\n"
        + "\n".join(lines)
        + "\n```\n\n"
        + source_note("reports/, metrics/ and dvc.lock, in the stages' own wording")
    )


#: Block name -> renderer. A block's text is the same in every file it appears in.
BLOCKS: dict[str, Callable[..., str]] = {
    "demo": demo_block,
    "eval": eval_block,
    "deploy": deploy_block,
    "runtime": runtime_block,
    "data": data_block,
    "export": export_block,
}
#: Blocks with latency figures, which differ from run to run: a block whose other figures are
#: current is left as it is, so a fresh clone's `make demo` changes no doc (docs/reproducibility.md).
LATENCY_BLOCKS = ("deploy", "runtime", "demo")
NUMBER = r"[-+0-9.e]+"


# ---------------------------------------------------------------- rewriting the files


def doc_files(root: Path) -> list[Path]:
    return sorted({path for pattern in DOC_GLOBS for path in root.glob(pattern) if path.is_file()})


def rewrite(text: str, root: Path, rendered: dict[str, str], where: str) -> tuple[str, list[str]]:
    """The text with every block refilled, and the names of the blocks that changed."""
    stale: list[str] = []

    def refill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise DocsError(f"{where}: unknown block <!-- metrics:{name} -->; use one of {', '.join(BLOCKS)}")
        if name not in rendered:
            rendered[name] = BLOCKS[name](root).rstrip("\n") + "\n"
        body = match["body"]
        if body != rendered[name] and not same_but_latency(body, root, name):
            stale.append(name)
            body = rendered[name]
        return match["open"] + body + match["close"]

    return BLOCK.sub(refill, text), stale


def same_but_latency(body: str, root: Path, name: str) -> bool:
    """Whether `body` is the block as rendered now, but for its latency figures."""
    if name not in LATENCY_BLOCKS:
        return False
    template = re.escape(BLOCKS[name](root, mask_latency=True).rstrip("\n") + "\n")
    pattern = re.sub(r"(?<![A-Za-z])nan(?![A-Za-z])", lambda _: NUMBER, template)
    return re.fullmatch(pattern, body) is not None


def run(root: Path, check: bool) -> list[str]:
    """Rewrite (or, with check, only compare) every doc file; one line per stale block."""
    rendered: dict[str, str] = {}
    messages = []
    for path in doc_files(root):
        where = str(path.relative_to(root))
        text = path.read_text()
        new_text, stale = rewrite(text, root, rendered, where)
        if check:
            messages += [
                f"{where}: block <!-- metrics:{name} --> is stale (the metrics changed since it was written); {FIX}"
                for name in stale
            ]
        elif new_text != text:
            path.write_text(new_text)
            messages += [f"{where}: rewrote {', '.join(f'metrics:{name}' for name in stale)}"]
    return messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a block is stale; write nothing")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository root (default: this checkout)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))  # mmloop (the deploy stage's wording) even before `pip install -e .`
    try:
        messages = run(args.root.resolve(), args.check)
    except DocsError as error:
        print(f"write_docs: error: {error}", file=sys.stderr)
        return 1
    for message in messages:
        print(message, file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and messages else 0


if __name__ == "__main__":
    sys.exit(main())
