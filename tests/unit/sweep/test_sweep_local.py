"""A sweep of the toy project run here (--local): each point in its own clone, its experiment on
the git remote and its outputs on the DVC remote; a rerun skips what is done, a failing point is
reported with its step, exit code, error line and log, and the command exits non-zero."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmloop.sweep.__main__ import main
from mmloop.sweep.spec import SweepFolder
from tests.helpers import sh

DVC = [sys.executable, "-m", "dvc"]
SWEEP = ["--local", "-S", "train.lr=0.2,0.3", "--stage", "evaluate"]


def experiments(ws: Path) -> dict[str, dict]:
    """name -> data of each experiment `dvc exp show --json` lists."""
    rows = json.loads(subprocess.run([*DVC, "exp", "show", "--json"], cwd=ws, capture_output=True, check=True).stdout)
    return {
        revision["name"]: revision["data"]
        for row in rows
        for exp in row.get("experiments") or []
        for revision in exp.get("revs", [])
    }


def lines_with(out: str, text: str) -> list[str]:
    return [line for line in out.splitlines() if text in line]


def test_a_local_sweep_runs_skips_and_reports_failures(toy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SWEEP) == 0
    out = capsys.readouterr().out
    ok = lines_with(out, ": ok in ")
    assert len(ok) == 2 and "(train.lr=0.2)" in ok[0] and "(train.lr=0.3)" in ok[1], out
    names = [line.split()[4] for line in ok]  # "mmloop sweep: point <i> <name> (...)"
    assert "2 of 2 points have an experiment here: compare them with `dvc exp show`" in out

    shown = experiments(toy)
    for name, lr in zip(names, (0.2, 0.3)):
        assert shown[name]["params"]["params.yaml"]["data"]["train"]["lr"] == lr
        assert shown[name]["metrics"]["eval.json"]["data"]["score"] == len(f"{lr} hello\n")
    remote_refs = sh(["git", "ls-remote", "origin", "refs/exps/*"], toy)
    assert all(name in remote_refs for name in names)
    # the outputs went to the DVC remote: model.txt of each experiment, by the md5 its dvc.lock records
    for name in names:
        lock = yaml.safe_load(sh(["git", "show", f"{shown[name]['rev']}:dvc.lock"], toy))
        (model,) = lock["stages"]["train"]["outs"]
        md5 = model["md5"]
        assert (toy.parent / "dvc-remote" / "files" / "md5" / md5[:2] / md5[2:]).is_file(), name

    (folder,) = (toy / ".sweeps").iterdir()
    sweep = SweepFolder(folder)
    status = sweep.status(0)
    assert status is not None and status["exit_code"] == 0 and status["name"] == names[0]
    assert status["overrides"] == ["train.lr=0.2"] and status["step"] is None
    assert not sweep.clone(0).exists()  # removed once pushed
    log = sweep.log(0).read_text()
    for step in ("step 1/4 clone", "step 2/4 checkout", "step 3/4 run", "step 4/4 push", "done: experiment"):
        assert f"mmloop sweep task: {step}" in log

    # the same sweep again: nothing to submit
    assert main(SWEEP) == 0
    out = capsys.readouterr().out
    assert len(lines_with(out, "skipped, experiment already on origin for baseline")) == 2
    assert "all 2 points are done on origin: nothing to submit" in out
    assert "running here" not in out

    # a failing point: 0.2 is done (same params, code and stages in any sweep), -1 fails in train
    assert main(["--local", "-S", "train.lr=0.2,-1", "--stage", "evaluate"]) == 1
    captured = capsys.readouterr()
    assert len(lines_with(captured.out, "skipped, experiment already on origin")) == 1
    (failed,) = lines_with(captured.out, ": failed at step")
    assert "(train.lr=-1): failed at step 'run' with exit code 255" in failed
    assert "(mmloop train: error: params.yaml: train.lr is -1; it must be a number >= 0)" in failed
    assert failed.endswith(".log") and Path(failed.split("log: ")[-1]).is_file()
    assert captured.err.strip() == (
        "mmloop sweep: error: 1 of 2 points failed (point 1): read the logs named above, fix, "
        "and run the same command again (the points done are skipped)"
    )


def test_a_new_baseline_runs_every_point_again(toy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SWEEP) == 0
    (toy / "input.txt").write_text("new data\n")
    sh([*DVC, "add", "-q", "input.txt"], toy)
    sh(["git", "commit", "-q", "-am", "new data"], toy)
    sh(["git", "push", "-q", "origin", "main"], toy)
    sh([*DVC, "push", "-q", "input.txt.dvc"], toy)
    capsys.readouterr()

    assert main([*SWEEP, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert len(lines_with(out, "): would run")) == 2 and "skipped" not in out
    assert "dry run, nothing submitted" in out and not lines_with(out, "running here")


def test_a_shared_cache_and_a_failed_attempt_left_behind(toy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--cache-dir: each clone uses the shared cache (the inputs and outputs land there); a task
    replaces whatever a previous attempt left in its clone folder, and keeps a failed clone."""
    cache = toy.parent / "shared-cache"
    args = ["--local", "-S", "train.lr=-2", "--stage", "evaluate", "--cache-dir", str(cache)]
    assert main([*args, "--dry-run"]) == 0
    (folder,) = (toy / ".sweeps").iterdir()
    left = SweepFolder(folder).clone(0)
    left.mkdir(parents=True)
    (left / "half-done").write_text("an attempt killed on the way")
    capsys.readouterr()

    assert main(args) == 1
    assert "failed at step 'run' with exit code 255" in capsys.readouterr().out
    assert not (left / "half-done").exists()
    assert sh(["git", "rev-parse", "HEAD"], left) == sh(["git", "rev-parse", "HEAD"], toy)  # the baseline
    assert f"dir = {cache}" in (left / ".dvc" / "config.local").read_text()
    log = SweepFolder(folder).log(0).read_text()
    assert f"mmloop sweep task: step 3/5 cache: {' '.join(DVC)} config --local cache.dir {cache}" in log
    input_md5 = yaml.safe_load((toy / "input.txt.dvc").read_text())["outs"][0]["md5"]
    assert (cache / "files" / "md5" / input_md5[:2] / input_md5[2:]).is_file()  # pulled into the shared cache

    assert main(["--local", "-S", "train.lr=0.4", "--stage", "evaluate", "--cache-dir", str(cache)]) == 0
    model_md5 = hashlib.md5(b"0.4 hello\n").hexdigest()  # what train.py writes for lr 0.4
    assert (cache / "files" / "md5" / model_md5[:2] / model_md5[2:]).is_file()
