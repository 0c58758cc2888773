"""Shared fixtures: small generated datasets and the real KITTI frames in ../shared.

Helpers that are not fixtures live in tests/helpers.py (REPO, tree_md5 are re-exported here for
modules that import them from tests.conftest)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import KITTI_REAL, REPO, tree_md5

__all__ = ["KITTI_REAL", "REPO", "tree_md5"]


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
    from sample_data import generate_dataset

    root = tmp_path_factory.mktemp("sample") / "kitti-small"
    generate_dataset(root, frames=8, seed=7)
    return root


@pytest.fixture
def sample_copy(small_sample: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the small sample, for tests that break it on purpose."""
    root = tmp_path / "kitti-small"
    shutil.copytree(small_sample, root)
    return root
