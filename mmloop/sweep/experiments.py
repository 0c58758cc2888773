"""The sweep's experiments on the git remote: which points are done, and bringing them home.

An experiment is a git ref, refs/exps/<baseline>/<name>: its commit holds the params, dvc.lock and
metrics; the outputs it names are on the DVC remote. Same name and baseline = same point, done."""

from __future__ import annotations

from pathlib import Path

from mmloop.core.stage import StageError
from mmloop.sweep.commands import CommandFailed, dvc


def on_remote(root: Path, remote: str, baseline: str) -> set[str]:
    """Names of the experiments on git remote `remote` whose baseline is `baseline`."""
    try:
        listed = dvc("exp", "list", remote, "--rev", baseline, "--name-only", cwd=root)
    except CommandFailed as failed:
        raise StageError(f"dvc exp list {remote} failed ({failed.gist}); check the git remote") from None
    return {line.strip() for line in listed.splitlines() if line.strip()}


def pull(root: Path, remote: str, names: list[str]) -> None:
    """`dvc exp pull`: the experiments' refs from the git remote and their outputs from the DVC
    remote, so `dvc exp show`, `dvc exp apply` and `dvc plots diff` work on this machine."""
    if not names:
        return
    try:
        dvc("exp", "pull", remote, *names, cwd=root)
    except CommandFailed as failed:
        raise StageError(
            f"dvc exp pull {remote} failed ({failed.gist}); run it again: dvc exp pull {remote} {' '.join(names)}"
        ) from None
