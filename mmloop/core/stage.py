"""What every stage does the same way: read its params, fail with one line, write outputs whole."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path("params.yaml")


class StageError(Exception):
    """A problem the user can fix; printed as one line (what, where, how to fix), no traceback."""


def load_params(section: str, params_file: Path = PARAMS_FILE) -> dict[str, Any]:
    """One top-level section of params.yaml (stages read only the sections dvc.yaml lists for them)."""
    if not params_file.is_file():
        raise StageError(f"{params_file}: not found; run stages from the repository root")
    params = yaml.safe_load(params_file.read_text()) or {}
    if section not in params:
        raise StageError(f"{params_file}: no '{section}' section; restore it from git (`git checkout {params_file}`)")
    return params[section]


def dataset_root(data_params: dict[str, Any]) -> Path:
    """`data.root` from params, which must be a folder (the usual cause: `dvc pull` not run yet)."""
    root = Path(data_params["root"])
    if not root.is_dir():
        raise StageError(f"{root}: dataset folder not found; run `dvc pull` or set data.root in params.yaml")
    return root


def check_number(
    section: str, key: str, value: Any, minimum: float, whole: bool = False, inclusive: bool = True
) -> None:
    """A params.yaml number, or one line naming the key and the bound it breaks."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= minimum if inclusive else value > minimum)
    ok = ok and (not whole or float(value).is_integer())
    if not ok:
        kind = "a whole number" if whole else "a number"
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise StageError(f"params.yaml: {section}.{key} is {value!r}; it must be {kind} {bound}")


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON through a temporary file so a killed stage never leaves half a report."""
    with written_whole(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` for the block to write; it replaces `path` only if the block
    succeeds, so a killed or failed stage never leaves half an output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; outputs are meant to be shared
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def built_whole(target: Path) -> Iterator[Path]:
    """A folder beside `target` for the block to build; it replaces `target` only if the block
    succeeds (the old one is removed only then), and is removed if the block fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.building-"))
    os.chmod(building, 0o755)  # mkdtemp makes it private; outputs are meant to be shared
    try:
        yield building
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    building.rename(target)


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's main under the pinned host settings (`train.deterministic`); a `StageError`
    becomes `mmloop <name>: error: ...` and exit status 1."""
    from mmloop.core.determinism import pin_host

    try:
        print(f"mmloop {name}: {pin_host(load_params('train'))}")
        main()
    except StageError as error:
        print(f"mmloop {name}: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
