"""Bad input stops the sweep before anything is submitted, with one line that names the thing and
the fix: through the CLI (`main`), in a toy project with a bare git remote and a DVC remote."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from mmloop.sweep.__main__ import main
from tests.helpers import sh

DVC = [sys.executable, "-m", "dvc"]
GRID = ["-S", "train.lr=0.2,0.3"]


def error_of(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line `python -m mmloop.sweep args` prints (exit status 1)."""
    assert main(args) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("mmloop sweep: error: ")
    assert "submitted job" not in captured.out and "running here" not in captured.out
    return lines[0].removeprefix("mmloop sweep: error: ")


def commit(ws: Path, message: str, push: bool = True) -> None:
    sh(["git", "commit", "-q", "-am", message], ws)
    if push:
        sh(["git", "push", "-q", "origin", "main"], ws)


def test_outside_a_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.chdir(tmp_path)
    message = error_of(["--local", *GRID], capsys)
    assert message == f"{tmp_path}: not in a git repository; run the sweep from a clone of the project"


def test_uncommitted_changes(toy: Path, capsys) -> None:
    (toy / "params.yaml").write_text("train:\n  lr: 0.5\n  epochs: 1\n")
    message = error_of(["--local", *GRID], capsys)
    assert message.startswith("uncommitted changes to tracked files (params.yaml): the points run the committed code")
    assert message.endswith("commit and push first")
    assert not (toy / ".sweeps").exists()


def test_head_not_on_the_git_remote(toy: Path, capsys) -> None:
    (toy / "params.yaml").write_text("train:\n  lr: 0.5\n  epochs: 1\n")
    commit(toy, "not pushed", push=False)
    head = sh(["git", "rev-parse", "HEAD"], toy).strip()
    message = error_of(["--local", *GRID], capsys)
    assert message == f"HEAD ({head[:8]}) is not on git remote 'origin': the points clone it from there; git push first"


def test_no_such_git_remote(toy: Path, capsys) -> None:
    message = error_of(["--local", *GRID, "--git-remote", "upstream"], capsys)
    assert message.startswith("git remote 'upstream' not found (remotes: origin); add it (git remote add upstream")


def test_a_key_not_in_params_yaml(toy: Path, capsys) -> None:
    message = error_of(["--local", "-S", "train.lrate=0.2,0.3"], capsys)
    assert message.startswith("-S train.lrate=0.2,0.3: 'train.lrate' is not in params.yaml (sections: train)")
    assert message.endswith("fix the key, or write +train.lrate=... to add it")


def test_an_empty_grid(toy: Path, capsys) -> None:
    assert error_of(["--local"], capsys).startswith("no -S given: name at least one param and its values")
    assert "the grid is empty" in error_of(["--local", "-S", "train.epochs=range(2,2)"], capsys)


def test_no_default_dvc_remote(toy: Path, capsys) -> None:
    sh([*DVC, "remote", "default", "--unset"], toy)
    commit(toy, "no default remote")
    message = error_of(["--local", *GRID], capsys)
    assert message.startswith("no default DVC remote: the points pull their inputs from it and push their outputs")
    assert "dvc remote add -d team <url>" in message

    sh([*DVC, "remote", "default", "--local", "team"], toy)  # .dvc/config.local: clones lack it
    assert "no default DVC remote (only in .dvc/config.local, which clones do not get)" in error_of(
        ["--local", *GRID], capsys
    )


def test_a_dvc_remote_inside_the_repository(toy: Path, capsys) -> None:
    sh([*DVC, "remote", "add", "-f", "-d", "inside", "storage"], toy)  # ws/storage
    commit(toy, "in-repo remote")
    message = error_of(["--local", *GRID], capsys)
    assert message.startswith(f"the default DVC remote 'inside' ({toy / 'storage'}) is a folder inside the repository")
    assert message.endswith("add a team remote outside it (dvc remote add -d team <url>, docs/remotes.md)")


def test_sbatch_not_on_path(toy: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    bin_dir = tmp_path / "bin-without-slurm"
    bin_dir.mkdir()
    os.symlink(shutil.which("git"), bin_dir / "git")
    monkeypatch.setenv("PATH", str(bin_dir))
    message = error_of(["--slurm", *GRID], capsys)
    assert message == "sbatch not found on PATH: run the sweep on a Slurm login node, or use --local"


def test_an_unknown_stage(toy: Path, capsys) -> None:
    message = error_of(["--local", *GRID, "--stage", "evalute"], capsys)
    assert message == "--stage evalute: no such stage in dvc.yaml (stages: evaluate, train); fix the name"


def test_slurm_only_options_with_local(toy: Path, capsys) -> None:
    message = error_of(["--local", *GRID, "--detach"], capsys)
    assert message == "--detach, --sbatch-arg and --max-running need --slurm; drop them, or use --slurm"


def test_a_relative_dvc_remote_path(toy: Path, capsys) -> None:
    sh([*DVC, "remote", "add", "-f", "-d", "beside", "../shared"], toy)  # stored relative to .dvc/
    commit(toy, "relative remote")
    message = error_of(["--local", *GRID], capsys)
    assert message.startswith("the default DVC remote 'beside' is the relative path ../../shared in .dvc/config")
    assert message.endswith(f"make it absolute (dvc remote modify beside url {toy.parent / 'shared'}), commit and push")
