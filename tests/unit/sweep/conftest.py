"""A toy DVC project for the sweep's tests: two stages that take a second, a bare git repo as
`origin` and a local folder as the default DVC remote, committed and pushed. `train` fails with a
one-line error for a negative `train.lr`, like the real stages' params checks."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import GIT_IDENTITY, sh

DVC = [sys.executable, "-m", "dvc"]
TRAIN = """\
import sys, yaml
lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
if lr < 0:
    sys.exit(f"mmloop train: error: params.yaml: train.lr is {lr}; it must be a number >= 0")
open("model.txt", "w").write(f"{lr} {open('input.txt').read()}")
"""
EVALUATE = """\
import json
json.dump({"score": len(open("model.txt").read())}, open("eval.json", "w"))
"""


def make_toy(base: Path) -> Path:
    """`base`/ws, a committed and pushed toy project; `base`/origin.git and `base`/dvc-remote."""
    sh(["git", "init", "-q", "--bare", str(base / "origin.git")], base)
    ws = base / "ws"
    ws.mkdir()
    sh(["git", "init", "-q", "-b", "main"], ws)
    sh([*DVC, "init", "-q"], ws)
    sh([*DVC, "config", "core.analytics", "false"], ws)
    sh([*DVC, "remote", "add", "-d", "team", str(base / "dvc-remote")], ws)
    (ws / "params.yaml").write_text("train:\n  lr: 0.1\n  epochs: 1\n")
    (ws / "input.txt").write_text("hello\n")
    sh([*DVC, "add", "-q", "input.txt"], ws)
    (ws / "train.py").write_text(TRAIN)
    (ws / "evaluate.py").write_text(EVALUATE)
    (ws / "dvc.yaml").write_text(
        textwrap.dedent(
            """\
            stages:
              train:
                cmd: python train.py
                deps: [input.txt, train.py]
                params: [train]
                outs: [model.txt]
              evaluate:
                cmd: python evaluate.py
                deps: [model.txt, evaluate.py]
                metrics: [{eval.json: {cache: false}}]
            """
        )
    )
    with (ws / ".gitignore").open("a") as gitignore:  # dvc add wrote /input.txt into it
        gitignore.write("/.sweeps/\n")
    (ws / ".dvcignore").write_text("/.sweeps/\n")
    sh(["git", "add", "-A"], ws)
    sh(["git", "commit", "-q", "-m", "toy"], ws)
    sh([*DVC, "push", "-q", "input.txt.dvc"], ws)
    sh(["git", "remote", "add", "origin", str(base / "origin.git")], ws)
    sh(["git", "push", "-q", "origin", "main"], ws)
    return ws


@pytest.fixture(scope="session")
def toy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy(tmp_path_factory.mktemp("toy-template")).parent


@pytest.fixture
def toy(toy_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh toy project of its own (a copy of the template, its remotes moved with it), as the
    current directory, with a git identity for the experiments."""
    base = tmp_path / "toy"
    shutil.copytree(toy_template, base, symlinks=True)
    ws = base / "ws"
    config = ws / ".dvc" / "config"
    config.write_text(config.read_text().replace(str(toy_template), str(base)))
    sh(["git", "commit", "-q", "-am", "the remotes moved"], ws)
    sh(["git", "remote", "set-url", "origin", str(base / "origin.git")], ws)
    sh(["git", "push", "-q", "--force", "origin", "main"], ws)
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.chdir(ws)
    return ws
