"""The code stays in its place: stage files are thin CLIs (the work is in the library), and no
library module grows past a size one can read in a sitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import REPO

#: stages/<name>.py: argument parsing, params, paths, and calls into mmloop.
STAGE_MAX_LINES = 100
#: A module of mmloop, the runtime or the sample generator.
MODULE_MAX_LINES = 400
LIBRARY_GLOBS = ("mmloop/**/*.py", "runtime/mmloop_runtime/*.py", "sample_data/*.py")


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_the_layout_is_there() -> None:
    """The globs below find the code (an empty glob would make the size tests pass vacuously)."""
    assert {path.stem for path in (REPO / "stages").glob("*.py")} >= {
        "validate",
        "prepare",
        "train",
        "evaluate",
        "export",
        "deploy",
    }
    for pattern in LIBRARY_GLOBS:
        assert list(REPO.glob(pattern)), pattern
    assert not list((REPO / "stages").glob("*/*.py")), "stages/ holds one module per stage; shared code is in mmloop/"


@pytest.mark.parametrize("path", sorted((REPO / "stages").glob("*.py")), ids=lambda p: p.name)
def test_stage_files_are_thin(path: Path) -> None:
    assert line_count(path) <= STAGE_MAX_LINES, (
        f"{path.relative_to(REPO)} has {line_count(path)} lines (at most {STAGE_MAX_LINES}): move the work into mmloop/"
    )


@pytest.mark.parametrize(
    "path", sorted(p for pattern in LIBRARY_GLOBS for p in REPO.glob(pattern)), ids=lambda p: str(p.relative_to(REPO))
)
def test_library_modules_stay_readable(path: Path) -> None:
    assert line_count(path) <= MODULE_MAX_LINES, (
        f"{path.relative_to(REPO)} has {line_count(path)} lines (at most {MODULE_MAX_LINES}): split it by concern"
    )
