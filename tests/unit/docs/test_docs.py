"""The docs a newcomer reads stay short, true to the metrics, and linked.

README.md is the first page, so it has a line budget; every measured figure in README.md and docs/ is
written by scripts/write_docs.py from the metrics DVC tracks, so a metrics change without a docs
rewrite fails here; and every relative link resolves (file, and heading when it names one).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "write_docs.py"
README_MAX_LINES = 200
FIX = "run python scripts/write_docs.py"
#: What write_docs.py reads, besides the doc files themselves.
SOURCES = ("metrics", "reports", "params.yaml", "dvc.lock", "data.dvc")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def linked_docs() -> list[Path]:
    return [
        REPO / "README.md",
        *sorted((REPO / "docs").glob("*.md")),
        REPO / "runtime/README.md",
        REPO / "benchmarks/README.md",
    ]


def write_docs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(match) for match in re.findall(r"^#{1,6} +(.+?) *$", text, re.M)}


def relative_links(path: Path) -> list[str]:
    """Link targets outside code blocks and code spans, without web or mail addresses."""
    text = CODE_SPAN.sub("", FENCE.sub("", path.read_text()))
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def test_readme_fits_its_line_budget() -> None:
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/ (budget {README_MAX_LINES})"


def test_generated_blocks_are_up_to_date() -> None:
    result = write_docs("--check")
    assert result.returncode == 0, result.stderr


def test_a_stale_block_fails_with_one_line(tmp_path: Path) -> None:
    for name in SOURCES:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, tmp_path / name)
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    readme = (REPO / "README.md").read_text()
    stale = re.sub(r"(<!-- metrics:eval -->\n)", r"\1| Car | 99.99 |\n", readme, count=1)
    assert stale != readme, "README.md has no <!-- metrics:eval --> block"
    (tmp_path / "README.md").write_text(stale)

    result = write_docs("--check", "--root", str(tmp_path))

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("README.md: block <!-- metrics:eval --> is stale") and lines[0].endswith(FIX)
    assert (tmp_path / "README.md").read_text() == stale, "--check must write nothing"


def test_a_metrics_change_makes_its_blocks_stale(tmp_path: Path) -> None:
    for name in (*SOURCES, "docs", "README.md"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, tmp_path / name)
    eval_file = tmp_path / "metrics" / "eval.json"
    eval_file.write_text(eval_file.read_text().replace('"mAP_3d_moderate": ', '"mAP_3d_moderate": 1'))

    result = write_docs("--check", "--root", str(tmp_path))

    assert result.returncode == 1
    assert "README.md: block <!-- metrics:eval --> is stale" in result.stderr
    assert "docs/training.md: block <!-- metrics:eval --> is stale" in result.stderr
    assert write_docs("--root", str(tmp_path)).returncode == 0
    assert write_docs("--check", "--root", str(tmp_path)).returncode == 0


def test_a_latency_change_alone_leaves_the_docs_as_they_are(tmp_path: Path) -> None:
    """Latency differs from run to run: a fresh clone's `make demo` on another machine must not
    rewrite the docs for it (docs/reproducibility.md). Any other figure still makes them stale."""
    for name in (*SOURCES, "docs", "README.md", "runtime"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, tmp_path / name)
    docs = {path: path.read_text() for path in [tmp_path / "README.md", *(tmp_path / "docs").glob("*.md")]}
    for latency_file in (tmp_path / "metrics" / "deploy").glob("*.latency.json"):
        latency = json.loads(latency_file.read_text())
        latency["latency_ms"] = latency["latency_ms"] * 3 + 0.123
        latency["runtime_latency_ms"] = {step: ms + 1.5 for step, ms in latency["runtime_latency_ms"].items()}
        latency_file.write_text(json.dumps(latency))

    assert write_docs("--check", "--root", str(tmp_path)).returncode == 0
    assert write_docs("--root", str(tmp_path)).returncode == 0
    assert {path: path.read_text() for path in docs} == docs

    report_file = tmp_path / "metrics" / "deploy" / "onnxruntime-fp32.json"
    report_file.write_text(report_file.read_text().replace('"mAP": ', '"mAP": 1'))
    result = write_docs("--check", "--root", str(tmp_path))
    assert result.returncode == 1 and "README.md: block <!-- metrics:deploy --> is stale" in result.stderr


@pytest.mark.parametrize("doc", linked_docs(), ids=lambda path: str(path.relative_to(REPO)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target} (no heading '#{anchor}' in {path.relative_to(REPO)})")
    assert not broken, f"{doc.relative_to(REPO)}: broken links: {', '.join(broken)}"
