"""Fixtures of the runtime's tests: the real KITTI frames in ../shared beside the checkout.

runtime/tests is not a package (tests/ is; two packages named `tests` would collide), so its
modules have unique basenames and import what they share from here as `conftest`."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

#: The repository root (runtime/tests/ is two levels down).
REPO = Path(__file__).resolve().parents[2]
KITTI_REAL = REPO.parent / "shared" / "fixtures" / "kitti-real"

if importlib.util.find_spec("mmloop_runtime") is None:  # the runtime not installed: use it from the repo
    sys.path.insert(0, str(REPO / "runtime"))


@pytest.fixture(scope="session")
def kitti_real() -> Path:
    """Six real KITTI frames; CI (MMLOOP_REQUIRE_FIXTURES=1) fails instead of skipping without them."""
    if not (KITTI_REAL / "training").is_dir():
        reason = f"real KITTI fixtures not found at {KITTI_REAL} (they live in ../shared beside the checkout)"
        if os.environ.get("MMLOOP_REQUIRE_FIXTURES") == "1":
            pytest.fail(reason + "; MMLOOP_REQUIRE_FIXTURES=1 makes them mandatory")
        pytest.skip(reason)
    return KITTI_REAL
