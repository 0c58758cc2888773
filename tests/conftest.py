"""Shared fixtures: small generated datasets, the real KITTI frames in ../shared, a local one-node
Slurm cluster (tests/slurm.py) and Debian's chromium for the plots page.

Helpers that are not fixtures live in tests/helpers.py (REPO, tree_md5 are re-exported here for
modules that import them from tests.conftest)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import KITTI_REAL, REPO, tree_md5
from tests.slurm import LocalSlurm, skip_unless_available

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


@pytest.fixture(scope="session")
def slurm() -> Iterator[LocalSlurm]:
    """A started one-node Slurm cluster (munged, slurmctld, slurmd) in a fresh /tmp folder.

    Skipped without the slurm-wlm/munge binaries; CI (MMLOOP_REQUIRE_SLURM=1) fails instead. Client
    commands go through `slurm.run([...])` or take `env=slurm.env` (it sets SLURM_CONF).
    """
    skip_unless_available()
    cluster = LocalSlurm()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


CHROMIUM = Path("/usr/bin/chromium")


def chromium_unavailable_reason() -> str | None:
    """Why the browser tests cannot run here (no Debian chromium, or no Playwright), or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not found (install Debian's browser: apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -r requirements.txt)"
    return None


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, driven through Playwright; CI (MMLOOP_REQUIRE_BROWSER=1) fails instead of
    skipping without it. Playwright never downloads a browser here: tests pass this executable."""
    reason = chromium_unavailable_reason()
    if reason is not None:
        if os.environ.get("MMLOOP_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + "; MMLOOP_REQUIRE_BROWSER=1 makes the browser tests mandatory")
        pytest.skip(reason)
    return CHROMIUM
