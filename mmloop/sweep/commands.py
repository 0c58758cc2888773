"""The one place the sweep runs git and dvc: captured (for answers) or streamed (into a log)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: dvc as this interpreter's module: the venv's DVC, whatever `dvc` happens to be on PATH.
DVC = (sys.executable, "-m", "dvc")


class CommandFailed(Exception):
    """A command exited non-zero; `gist` is its last line of output, where git and dvc say why."""

    def __init__(self, args: list[str], returncode: int, output: str) -> None:
        self.args_run, self.returncode = args, returncode
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        # git and dvc put the cause in their last line ("fatal: ...", "ERROR: ...").
        self.gist = lines[-1] if lines else f"exit code {returncode}"
        super().__init__(f"{' '.join(args)}: {self.gist}")


def capture(args: list[str], cwd: Path | None = None) -> str:
    """stdout of `args` (run in `cwd`), or CommandFailed with the gist of stderr."""
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise CommandFailed(args, result.returncode, result.stderr or result.stdout)
    return result.stdout


def git(*args: str, cwd: Path | None = None) -> str:
    return capture(["git", *args], cwd=cwd)


def dvc(*args: str, cwd: Path | None = None) -> str:
    return capture([*DVC, *args], cwd=cwd)


def stream(args: list[str], cwd: Path | None = None) -> int:
    """Run `args` with this process's stdout and stderr (a task's log), and return its exit code."""
    sys.stdout.flush()
    return subprocess.run(args, cwd=cwd, stderr=subprocess.STDOUT).returncode
