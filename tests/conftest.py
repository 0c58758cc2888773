"""Shared fixtures: the repo root, small generated datasets, the real KITTI frames in ../shared."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
KITTI_REAL = REPO.parent / "shared" / "fixtures" / "kitti-real"


@pytest.fixture(scope="session")
def kitti_real() -> Path:
    """Six real KITTI frames; CI (MMLOOP_REQUIRE_FIXTURES=1) fails instead of skipping without them."""
    if not (KITTI_REAL / "training").is_dir():
        reason = f"real KITTI fixtures not found at {KITTI_REAL} (they live in ../shared beside the checkout)"
        if os.environ.get("MMLOOP_REQUIRE_FIXTURES") == "1":
            pytest.fail(reason + "; MMLOOP_REQUIRE_FIXTURES=1 makes them mandatory")
        pytest.skip(reason)
    return KITTI_REAL


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated dataset (read-only by convention: copy it before corrupting it)."""
    from stages.common.sample_data import generate_dataset

    root = tmp_path_factory.mktemp("sample") / "kitti-small"
    generate_dataset(root, frames=8, seed=7)
    return root


@pytest.fixture
def sample_copy(small_sample: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the small sample, for tests that break it on purpose."""
    root = tmp_path / "kitti-small"
    shutil.copytree(small_sample, root)
    return root


def tree_md5(root: Path) -> dict[str, str]:
    """md5 of every file under `root`, by relative path: equal dicts mean bit-for-bit equal trees."""
    return {
        str(path.relative_to(root)): hashlib.md5(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*")) if path.is_file()
    }


def write_params(workdir: Path, root: Path, splits: tuple[str, ...] = ("train", "val")) -> None:
    """A params.yaml in `workdir` (stages read it from the current directory) pointing at `root`."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["root"] = str(root)
    params["data"]["splits"] = list(splits)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_stage(name: str, workdir: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`python -m stages.<name>` in `workdir`, as dvc would run it (with this repo importable)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", f"stages.{name}"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
    )
