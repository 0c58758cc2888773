"""One point of a sweep, as a Slurm array task or a local subprocess runs it:

    python -m mmloop.sweep.task <sweep dir>/sweep.json [<index>]   (index: $SLURM_ARRAY_TASK_ID)

In a fresh clone of the git remote at the baseline commit (never the shared workspace: DVC's
repo-wide lock would serialise the points, treeverse/dvc#7419) it runs `dvc exp run --pull`, which
fetches the inputs from the DVC remote, then `dvc exp push`, which pushes the experiment to the git
remote and its outputs to the default DVC remote. It prints each step as it starts, and writes
points/<i>/status.json whatever happens."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from mmloop.core.stage import write_json
from mmloop.sweep.commands import DVC, stream
from mmloop.sweep.grid import Point
from mmloop.sweep.spec import Sweep, SweepFolder

#: Lines that say what went wrong, best first: a stage's own one-line error, then DVC's, then git's.
ERROR_LINES = (
    re.compile(r"^mmloop \S+: error: .*$", re.M),
    re.compile(r"^ERROR: .*$", re.M),
    re.compile(r"^fatal: .*$", re.M),
)


def steps(sweep: Sweep, point: Point, clone: Path) -> list[tuple[str, list[str], Path | None]]:
    """(name, command, cwd) of each step: the names are what status.json says failed."""
    planned: list[tuple[str, list[str], Path | None]] = [
        ("clone", ["git", "clone", "--quiet", "--no-checkout", sweep.git_url, str(clone)], None),
        ("checkout", ["git", "checkout", "--quiet", "--detach", sweep.baseline], clone),
    ]
    if sweep.cache_dir:
        planned.append(("cache", [*DVC, "config", "--local", "cache.dir", sweep.cache_dir], clone))
    set_params = [arg for override in point.overrides for arg in ("-S", override)]
    planned.append(("run", [*DVC, "exp", "run", "--pull", "-n", point.name, *set_params, *sweep.targets], clone))
    planned.append(("push", [*DVC, "exp", "push", sweep.git_url, point.name], clone))
    return planned


def run_point(folder: SweepFolder, index: int) -> dict[str, Any]:
    """Run point `index` of the sweep in `folder`; the status it ends with (also in status.json)."""
    sweep = folder.read()
    point = sweep.point(index)
    clone = folder.clone(index)
    folder.forget([index])
    started = time.time()
    status: dict[str, Any] = {
        "index": index,
        "name": point.name,
        "overrides": list(point.overrides),
        "baseline": sweep.baseline,
        "host": socket.gethostname(),
        "slurm_job": os.environ.get("SLURM_ARRAY_JOB_ID"),
        "log": str(folder.log(index)),
        "exit_code": 0,
        "step": None,
        "error": None,
    }
    say(f"point {index} of sweep {sweep.id}: {point.name} ({point.label()}) on {status['host']}")
    if clone.exists():  # a previous attempt's clone: start over from the remote
        shutil.rmtree(clone)
    clone.parent.mkdir(parents=True, exist_ok=True)
    planned = steps(sweep, point, clone)
    for number, (name, command, cwd) in enumerate(planned, 1):
        say(f"step {number}/{len(planned)} {name}: {' '.join(command)}")
        try:
            code = stream(command, cwd=cwd)
        except OSError as error:  # git missing on the node, a folder that vanished
            say(f"step {name}: {error}")
            code = 127
        if code != 0:
            status.update(exit_code=code, step=name, error=error_line(folder.log(index)))
            say(f"step {name} failed with exit code {code}; the clone is kept for a look: {clone}")
            break
    else:
        # The experiment is on the git remote and its outputs on the DVC remote: the clone (a
        # checkout of the pipeline's outputs and, without a shared cache, a cache of them) is spare.
        shutil.rmtree(clone, ignore_errors=True)
        say(f"done: experiment {point.name} pushed to {sweep.git_url}")
    status["seconds"] = round(time.time() - started, 1)
    write_json(folder.status_file(index), status)
    return status


def error_line(log: Path) -> str | None:
    """What the log says went wrong, in one line (None when there is no log where the sweep folder
    says, e.g. for a task run by hand with its output elsewhere)."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return None
    for pattern in ERROR_LINES:
        if match := pattern.search(text):
            return match.group(0).strip()
    return None


def say(message: str) -> None:
    print(f"mmloop sweep task: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    index_text = args[1] if len(args) > 1 else os.environ.get("SLURM_ARRAY_TASK_ID")
    if not args or index_text is None or not index_text.isdigit():
        print("usage: python -m mmloop.sweep.task <sweep.json> [<index>] (or $SLURM_ARRAY_TASK_ID)", file=sys.stderr)
        return 2
    status = run_point(SweepFolder(Path(args[0]).resolve().parent), int(index_text))
    return int(status["exit_code"])


if __name__ == "__main__":
    raise SystemExit(main())
