"""A bare `dvc pull` on a fresh clone (no targets, no flags) exits 0 and brings the dataset, the
checkpoints and main's trained and deployed models, bit for bit as main's dvc.lock records them."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import copy_repo, run_in

pytestmark = pytest.mark.slow

#: Outputs `dvc pull` brings besides data/ and checkpoints/ (everything cached in dvc.yaml).
MODEL_FILES = ("models/model.pth", "models/model.py")
MODEL_FOLDERS = ("deploy/onnx", "deploy/onnxruntime-fp32", "deploy/onnxruntime-int8")


def test_bare_dvc_pull_on_a_fresh_clone_brings_data_checkpoints_and_models(tmp_path: Path) -> None:
    clone = tmp_path / "mmloop"
    copy_repo(clone)
    result = run_in(clone, [sys.executable, "-m", "dvc", "pull"])
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "ERROR" not in out and "unsaved files" not in out
    for folder in ("data/kitti-sample/training/velodyne", "checkpoints"):
        assert any((clone / folder).iterdir()), folder
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    locked = {out["path"]: out for stage in lock.values() for out in stage.get("outs", [])}
    for name in MODEL_FILES:
        assert hashlib.md5((clone / name).read_bytes()).hexdigest() == locked[name]["md5"], name
    for name in MODEL_FOLDERS:
        assert len([p for p in (clone / name).iterdir() if p.is_file()]) == locked[name]["nfiles"], name
    # derived and local (cache: false): never pulled, `dvc repro` rebuilds them
    assert not (clone / "work" / "prepared").exists() and not (clone / "work" / "train").exists()
    status = run_in(clone, [sys.executable, "-m", "dvc", "status"]).stdout
    assert "data.dvc" not in status and "checkpoints.dvc" not in status, status
