"""Hard voxelization in numpy, the same voxels mmdet3d's data preprocessor feeds the exported graph.

mmdet3d's test pipeline first drops points outside the range (PointsRangeFilter, strict bounds),
then mmcv's hard voxelizer walks the points in file order: a voxel gets its index when its first
point arrives, points past `max_points` in a voxel are dropped, and voxels past `max_voxels` are
dropped. The arithmetic is float32, as in mmcv's CPU kernel, so voxel borders fall on the same
points. The result is identical to mmcv's, point for point.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mmloop_runtime.manifest import Voxelizer


class Voxels(NamedTuple):
    voxels: np.ndarray      # (V, max_points, features) float32, zero-padded
    num_points: np.ndarray  # (V,) int32
    coors: np.ndarray       # (V, 4) int32: batch index 0, z, y, x


def in_range(points: np.ndarray, point_cloud_range: tuple[float, ...]) -> np.ndarray:
    """mmdet3d's PointsRangeFilter: strictly inside the box, in float32."""
    low = np.asarray(point_cloud_range[:3], dtype=np.float32)
    high = np.asarray(point_cloud_range[3:], dtype=np.float32)
    xyz = points[:, :3]
    return np.all((xyz > low) & (xyz < high), axis=1)


def grid_size(voxelizer: Voxelizer) -> np.ndarray:
    """Voxels along x, y, z (mmcv rounds the range over the voxel size)."""
    extent = np.asarray(voxelizer.point_cloud_range[3:], np.float32) - np.asarray(voxelizer.point_cloud_range[:3], np.float32)
    return np.round(extent / np.asarray(voxelizer.voxel_size, np.float32)).astype(np.int64)


def voxel_coordinates(points: np.ndarray, voxelizer: Voxelizer) -> tuple[np.ndarray, np.ndarray]:
    """(x, y, z voxel index per point, mask of points inside the grid)."""
    low = np.asarray(voxelizer.point_cloud_range[:3], np.float32)
    size = np.asarray(voxelizer.voxel_size, np.float32)
    cells = np.floor((points[:, :3] - low) / size).astype(np.int64)
    inside = np.all((cells >= 0) & (cells < grid_size(voxelizer)), axis=1)
    return cells, inside


def voxelize(points: np.ndarray, voxelizer: Voxelizer) -> Voxels:
    """One frame's cloud (N, features) as the graph's voxels, num_points and coors."""
    points = np.ascontiguousarray(points[:, :voxelizer.point_features], dtype=np.float32)
    points = points[in_range(points, voxelizer.point_cloud_range)]
    cells, inside = voxel_coordinates(points, voxelizer)
    points, cells = points[inside], cells[inside]
    grid = grid_size(voxelizer)
    keys = (cells[:, 2] * grid[1] + cells[:, 1]) * grid[0] + cells[:, 0]

    # Voxel ids in order of each voxel's first point, as the sequential kernel assigns them.
    unique_keys, first_point, point_voxel = np.unique(keys, return_index=True, return_inverse=True)
    by_arrival = np.argsort(first_point, kind="stable")
    voxel_of_key = np.empty_like(by_arrival)
    voxel_of_key[by_arrival] = np.arange(len(by_arrival))
    voxel_id = voxel_of_key[point_voxel.reshape(-1)]

    # A point's slot in its voxel: how many earlier points (in file order) share the voxel.
    order = np.argsort(voxel_id, kind="stable")
    counts = np.bincount(voxel_id, minlength=len(unique_keys))
    starts = np.cumsum(counts) - counts
    slot = np.empty_like(voxel_id)
    slot[order] = np.arange(len(order)) - np.repeat(starts, counts)

    kept = (voxel_id < voxelizer.max_voxels) & (slot < voxelizer.max_points)
    total = min(len(unique_keys), voxelizer.max_voxels)
    voxels = np.zeros((total, voxelizer.max_points, points.shape[1]), np.float32)
    voxels[voxel_id[kept], slot[kept]] = points[kept]
    num_points = np.minimum(counts[:total], voxelizer.max_points).astype(np.int32)
    first_cells = cells[first_point[by_arrival[:total]]]
    coors = np.zeros((total, 4), np.int32)
    coors[:, 1:] = first_cells[:, ::-1]  # z, y, x
    return Voxels(voxels, num_points, coors)
