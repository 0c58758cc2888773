"""What every stage does the same way: read its params, fail with one line, write outputs whole."""

from __future__ import annotations

import errno
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
    params = read_yaml(params_file)
    if section not in params:
        raise StageError(f"{params_file}: no '{section}' section; restore it from git (`git checkout {params_file}`)")
    return params[section]


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping (params.yaml), or one line with the file, the line and the fix."""
    try:
        params = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise StageError(f"{path}: not UTF-8 text (byte at offset {error.start}); restore it from git") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise StageError(
            f"{where}: YAML syntax error ({problem}); fix that line (indentation, a ':' after each key, "
            f"quotes around values with ': ' or '#'), or `git diff {path}` to see what changed"
        ) from None
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise StageError(f"{path}: a YAML {type(params).__name__}, not a mapping of sections; restore it from git")
    return params


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


def _writer_alive(pid: int, leftover: Path) -> bool:
    """Whether process `pid` may still be writing `leftover`: it exists, is not a zombie, and is
    not a newer process that was given the killed writer's pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    state, started = _process_state(pid)
    if state in {"Z", "X"}:
        # Killed but not reaped: where PID 1 reaps no orphans (many containers, CI among them), a
        # stage killed under `dvc repro` stays a zombie, which signal 0 still reaches.
        return False
    return started is None or started <= leftover.lstat().st_mtime + 1


def _process_state(pid: int) -> tuple[str | None, float | None]:
    """A process's state letter and start time (seconds since the epoch), from /proc (None where
    there is no /proc, as on macOS, or the process has just gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None, None
    # The fields follow the command name in parentheses, which may itself hold spaces or ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def remove_stale(path: Path, marker: str) -> None:
    """Half-written files and half-built folders beside `path` (`.<name>.<marker>-<pid>-*`) whose
    process is gone: what a `kill -9` (or a lost machine) left. A live process's are kept."""
    for leftover in path.parent.glob(f".{path.name}.{marker}-*"):
        pid = leftover.name[len(f".{path.name}.{marker}-") :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _writer_alive(int(pid), leftover):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _disk_error(path: Path, error: OSError) -> StageError | None:
    """An OSError while writing an output, as one line naming the output and the fix (None when
    it is not about the disk: a missing input reads better as it is)."""
    fixes = {
        errno.ENOSPC: "no space left on that disk: free some (or point params.yaml paths.* elsewhere) and rerun",
        errno.EDQUOT: "disk quota exceeded: free some space (or point params.yaml paths.* elsewhere) and rerun",
        errno.EFBIG: "the file grew past the size limit (ulimit -f): raise it and rerun",
        errno.EROFS: "the folder is on a read-only file system: remount it or point params.yaml paths.* elsewhere",
        errno.EACCES: "no permission to write there: fix its owner/mode or point params.yaml paths.* elsewhere",
        errno.EPERM: "no permission to write there: fix its owner/mode or point params.yaml paths.* elsewhere",
    }
    if error.errno not in fixes:
        return None
    fix = fixes[error.errno]
    return StageError(f"{path}: cannot write it ({error.strerror or error}); {fix}; the previous output is kept")


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` for the block to write; it replaces `path` only if the block
    succeeds, so a killed or failed stage never leaves half an output (a killed one's temporary
    file is removed by the next write of `path`). A full or read-only disk is one line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path, "tmp")
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-")
        os.close(fd)
    except OSError as error:
        raise _disk_error(path, error) or error from None
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; outputs are meant to be shared
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise _disk_error(path, error) or error from None
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def built_whole(target: Path) -> Iterator[Path]:
    """A folder beside `target` for the block to build; it replaces `target` only if the block
    succeeds (the old one is removed only then), and is removed if the block fails. A killed
    build's folder (`.<name>.building-<pid>-*`) is removed when the next build starts."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(target, "building")
        building = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.building-{os.getpid()}-"))
    except OSError as error:
        raise _disk_error(target, error) or error from None
    try:
        os.chmod(building, 0o755)  # mkdtemp makes it private; outputs are meant to be shared
        yield building
        if target.exists():
            shutil.rmtree(target)
        building.rename(target)
    except OSError as error:
        shutil.rmtree(building, ignore_errors=True)
        raise _disk_error(target, error) or error from None
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


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
