"""Stage plumbing (mmloop.core): params sections, number checks, whole writes, the paths table and
the device param, each with its one-line error."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from mmloop.core.paths import Paths, load_paths
from mmloop.core.stage import StageError, built_whole, check_number, load_params, run_stage, write_json, written_whole
from tests.helpers import REPO


def test_load_params_names_the_missing_section(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    with pytest.raises(StageError, match=r"params.yaml: not found; run stages from the repository root"):
        load_params("data", params)
    params.write_text("train: {epochs: 3}\n")
    assert load_params("train", params) == {"epochs": 3}
    with pytest.raises(StageError, match=r"params.yaml: no 'data' section; restore it from git"):
        load_params("data", params)


@pytest.mark.parametrize(
    "value, whole, inclusive, message",
    [
        (-1, True, True, "train.epochs is -1; it must be a whole number >= 0"),
        (2.5, True, True, "train.epochs is 2.5; it must be a whole number >= 0"),
        (0, False, False, "train.epochs is 0; it must be a number > 0"),
        (True, False, True, "train.epochs is True; it must be a number >= 0"),
        (float("nan"), False, True, "train.epochs is nan; it must be a number >= 0"),
        ("3", False, True, "train.epochs is '3'; it must be a number >= 0"),
    ],
)
def test_check_number(value: object, whole: bool, inclusive: bool, message: str) -> None:
    with pytest.raises(StageError) as error:
        check_number("train", "epochs", value, 0, whole=whole, inclusive=inclusive)
    assert str(error.value) == f"params.yaml: {message}"


def test_check_number_takes_good_values() -> None:
    check_number("train", "epochs", 0, 0, whole=True)
    check_number("train", "lr", 1e-4, 0, inclusive=False)
    check_number("train", "epochs", 3.0, 0, whole=True)


def test_failed_writes_keep_the_previous_output(tmp_path: Path) -> None:
    report = tmp_path / "reports" / "data.json"
    write_json(report, {"frames": 8})
    with pytest.raises(RuntimeError), written_whole(report) as tmp:
        tmp.write_text("half a report")
        raise RuntimeError("killed")
    assert json.loads(report.read_text()) == {"frames": 8}
    folder = tmp_path / "work" / "prepared"
    with built_whole(folder) as building:
        (building / "a.pkl").write_text("first")
    with pytest.raises(RuntimeError), built_whole(folder) as building:
        (building / "b.pkl").write_text("second")
        raise RuntimeError("failed")
    assert [path.name for path in folder.iterdir()] == ["a.pkl"]
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["a.pkl", "data.json", "prepared", "reports", "work"]


def test_run_stage_prints_one_line_and_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def main() -> None:
        raise StageError("params.yaml: something to fix")

    # Unpinned: this process has torch loaded already (pinning is tested in test_determinism.py).
    (tmp_path / "params.yaml").write_text("train: {deterministic: false}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        run_stage("train", main)
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert captured.err == "mmloop train: error: params.yaml: something to fix\n"
    assert captured.out.startswith("mmloop train: host settings not pinned (train.deterministic: false)")


def test_paths_come_from_params_yaml(tmp_path: Path) -> None:
    """dvc.yaml's ${paths.*} and the code read the same table."""
    paths = load_paths(REPO / "params.yaml")
    table = yaml.safe_load((REPO / "params.yaml").read_text())["paths"]
    assert {name: str(getattr(paths, name)) for name in table} == table
    assert paths.deployed_dir("onnxruntime-int8") == paths.deployed / "onnxruntime-int8"
    assert paths.deploy_report("onnxruntime-int8") == paths.deploy_metrics / "onnxruntime-int8.json"
    assert paths.latency_report("onnxruntime-int8") == paths.deploy_metrics / "onnxruntime-int8.latency.json"
    broken = dict(table)
    del broken["onnx"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"paths": broken}))
    with pytest.raises(StageError, match=r"params.yaml: paths.onnx is missing; restore the paths section from git"):
        load_paths(tmp_path / "params.yaml")
    assert isinstance(paths, Paths)


def test_device_param_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmloop.core.device import select_device

    with pytest.raises(StageError, match=r"params.yaml: device is 'gpu'; use one of auto, cpu, cuda"):
        select_device("gpu")
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(StageError, match=r"params.yaml: device is 'cuda' but torch sees no GPU"):
        select_device("cuda")


def test_a_killed_runs_leftovers_go_at_the_next_write(tmp_path: Path) -> None:
    """`.<name>.building-<pid>-*` and `.<name>.tmp-<pid>-*` of a dead process (or of the format
    without a pid) are removed when the output is next written; a live process's are kept."""
    import os
    import subprocess

    dead = subprocess.Popen(["true"])  # its pid is free once it has been waited for
    dead.wait()
    folder = tmp_path / "prepared"
    for name in (
        f".prepared.building-{dead.pid}-abc",
        ".prepared.building-k2j4h1",
        f".prepared.building-{os.getppid()}-x",
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "half.pkl").write_text("half")
    (tmp_path / f".report.json.tmp-{dead.pid}-q").write_text("half")
    with built_whole(folder) as building:
        (building / "a.pkl").write_text("whole")
    write_json(tmp_path / "report.json", {"ok": True})
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == [f".prepared.building-{os.getppid()}-x", "prepared", "report.json"]


def test_a_killed_process_nobody_reaped_counts_as_gone(tmp_path: Path) -> None:
    """Where PID 1 reaps no orphans (containers, CI), a stage killed under `dvc repro` stays a
    zombie that signal 0 still reaches: its half-built folder must go all the same."""
    import subprocess

    zombie = subprocess.Popen(["true"])  # not waited for until the end: a zombie meanwhile
    deadline = time.monotonic() + 10
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)
    try:
        (tmp_path / f".prepared.building-{zombie.pid}-abc").mkdir()
        with built_whole(tmp_path / "prepared") as building:
            (building / "a.pkl").write_text("whole")
        assert sorted(path.name for path in tmp_path.iterdir()) == ["prepared"]
    finally:
        zombie.wait()


def test_a_live_process_that_started_after_the_leftover_is_not_its_writer(tmp_path: Path) -> None:
    """The killed writer's pid given to a newer process: the leftover is older than that process."""
    import os

    leftover = tmp_path / f".prepared.building-{os.getppid()}-x"
    leftover.mkdir()
    os.utime(leftover, (1_000_000_000, 1_000_000_000))  # 2001: before any process here started
    with built_whole(tmp_path / "prepared") as building:
        (building / "a.pkl").write_text("whole")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["prepared"]


def test_a_full_or_read_only_disk_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    report = tmp_path / "data.json"
    write_json(report, {"frames": 8})

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StageError) as error:
        write_json(report, {"frames": 9})
    assert str(error.value) == (
        f"{report}: cannot write it (No space left on device); no space left on that disk: free some "
        "(or point params.yaml paths.* elsewhere) and rerun; the previous output is kept"
    )
    assert json.loads(report.read_text()) == {"frames": 8}
    with pytest.raises(FileNotFoundError), built_whole(tmp_path / "out"):  # not a disk problem: as it is
        raise FileNotFoundError(errno.ENOENT, "no such input", "in.bin")


def test_params_yaml_that_does_not_parse_is_one_line(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("data:\n  format: kitti: x\n")
    with pytest.raises(StageError) as error:
        load_params("data", params)
    assert str(error.value).startswith(f"{params}:2:16: YAML syntax error (mapping values are not allowed here); fix")
    params.write_bytes(b"data: {format: kitti}\n# \xff\n")
    with pytest.raises(StageError, match=r"params.yaml: not UTF-8 text \(byte at offset 24\); restore it from git"):
        load_params("data", params)
    params.write_text("- a list\n")
    with pytest.raises(StageError, match=r"params.yaml: a YAML list, not a mapping of sections"):
        load_params("data", params)
