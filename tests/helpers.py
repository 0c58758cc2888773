"""Helpers the test modules share (not fixtures; those are in conftest.py): the repo root, tree
hashes, params for a scratch working dir (written, edited), running one stage, and scratch copies
of the repo."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
KITTI_REAL = REPO.parent / "shared" / "fixtures" / "kitti-real"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "mmloop tests",
    "GIT_AUTHOR_EMAIL": "tests@mmloop.invalid",
    "GIT_COMMITTER_NAME": "mmloop tests",
    "GIT_COMMITTER_EMAIL": "tests@mmloop.invalid",
}


def tree_md5(root: Path) -> dict[str, str]:
    """md5 of every file under `root`, by relative path: equal dicts mean bit-for-bit equal trees."""
    return {
        str(path.relative_to(root)): hashlib.md5(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports that were free on 127.0.0.1 a moment ago (all held open together)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def assert_steps_once(curves: Path) -> None:
    """Each step once, in order, in every dvclive curve under `curves` (a resumed run's too)."""
    tsvs = sorted(curves.rglob("*.tsv"))
    assert tsvs, f"no curves under {curves}"
    for tsv in tsvs:
        steps = [int(line.split("\t", 1)[0]) for line in tsv.read_text().splitlines()[1:]]
        assert steps == sorted(set(steps)), f"{tsv.name}: a step logged twice, or out of order: {steps}"


def write_params(workdir: Path, root: Path, splits: tuple[str, ...] = ("train", "val")) -> None:
    """A params.yaml in `workdir` (stages read it from the current directory) pointing at `root`."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["root"] = str(root)
    params["data"]["splits"] = list(splits)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def set_params(workdir: Path, **changes: Any) -> None:
    """Edit `workdir`'s params.yaml: `train__epochs=2` sets train.epochs."""
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params[section][key] = value
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_stage(
    name: str,
    workdir: Path,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`python -m stages.<name>` in `workdir`, as dvc would run it (with this repo importable), in
    `env` (default: this process's) and behind `prefix` (e.g. `taskset -c 0`)."""
    env = dict(os.environ if env is None else env, PYTHONPATH=str(REPO))
    return subprocess.run(
        [*prefix, sys.executable, "-m", f"stages.{name}"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def venv_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """`base` (default: this process's environment) with a git identity and this interpreter's
    venv first on PATH: dvc runs stage commands through the shell, whose `python` must be the venv's."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return dict(os.environ if base is None else base, **GIT_IDENTITY, **extra, PATH=path)


def run_in(cwd: Path, args: list[str], timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=venv_env(), capture_output=True, text=True, timeout=timeout)


def kill_when(args: list[str], cwd: Path, log: Path, ready: Callable[[], bool], timeout: float = 600) -> str:
    """Run `args` in a session of its own until `ready()`, then SIGKILL the whole session (like a
    lost SSH session or an OOM kill); returns what it printed. Fails if it ends or times out first."""
    with log.open("w") as handle:
        process = subprocess.Popen(
            args, cwd=cwd, env=venv_env(), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"not ready after {timeout:.0f} s: {log.read_text()[-3000:]}"
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return log.read_text()


def sh(args: list[str], cwd: Path, timeout: float = 1200) -> str:
    result = run_in(cwd, args, timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def copy_repo(clone: Path) -> None:
    """What a fresh clone would hold: tracked and not-ignored files of the working tree, committed."""
    listing = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listing):
        source = REPO / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    sh(["git", "init", "-q", "-b", "main"], clone)
    sh(["git", "add", "-A"], clone)
    sh(["git", "commit", "-q", "-m", "scratch copy"], clone)


def pull_artifacts(clone: Path) -> None:
    """What `make pull` runs: the datasets and checkpoints (the *.dvc files), not the stage outputs."""
    sh([sys.executable, "-m", "dvc", "pull", *sorted(p.name for p in clone.glob("*.dvc") if p.is_file())], clone)
