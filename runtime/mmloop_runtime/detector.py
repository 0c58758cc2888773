"""`Detector(model_dir).predict(points)`: a LiDAR cloud in, 3D boxes out, without PyTorch."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mmloop_runtime.backends import open_network
from mmloop_runtime.clouds import drop_non_finite
from mmloop_runtime.head import Detections, empty_detections, predict
from mmloop_runtime.manifest import load_manifest
from mmloop_runtime.voxelize import voxelize

STEPS = ("voxelize", "network", "decode")


class Detector:
    """A deployed model folder (deploy/<target>/ or deploy/onnx/): its manifest and its network.

    `timings` holds the last frame's milliseconds per step (voxelize, network, decode), for
    profiling an inference node without a profiler; `dropped_points` how many of its points had a
    NaN or infinite field and were dropped before voxelizing (never fed to the network).
    """

    def __init__(self, model_dir: str | Path, threads: int = 0) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = load_manifest(self.model_dir)
        self.network = open_network(self.model_dir, self.manifest.outputs, threads)
        self.class_names = self.manifest.class_names
        self.timings: dict[str, float] = dict.fromkeys(STEPS, 0.0)
        self.dropped_points = 0

    def check_cloud(self, points: np.ndarray, source: str = "points") -> np.ndarray:
        features = self.manifest.voxelizer.point_features
        points = np.asarray(points)
        if points.ndim != 2 or points.shape[1] < features:
            raise ValueError(
                f"{source}: shape {points.shape}; the model takes (N, {features}) points "
                f"(x, y, z, intensity{', ...' if features > 4 else ''}) in the LiDAR frame"
            )
        if len(points) == 0:
            raise ValueError(f"{source}: an empty cloud (0 points); nothing to detect in")
        return points

    def predict(self, points: np.ndarray) -> Detections:
        """Boxes (K, 7: x, y, z bottom centre, dx, dy, dz, yaw; LiDAR frame), scores (K,) and
        labels (K,, indices into `class_names`) for one frame's (N, 4+) cloud."""
        points = self.check_cloud(points)
        start = time.perf_counter()
        # A NaN coordinate fails every range comparison and would be dropped by the range filter,
        # but a NaN or inf intensity inside the range reaches the pillar encoder and changes boxes.
        points, self.dropped_points = drop_non_finite(points[:, : self.manifest.voxelizer.point_features])
        voxels = voxelize(points, self.manifest.voxelizer)
        voxelized = time.perf_counter()
        if len(voxels.num_points) == 0:  # every point outside the range: the graph needs >= 1 voxel
            self.timings = {"voxelize": 1000 * (voxelized - start), "network": 0.0, "decode": 0.0}
            return empty_detections()
        maps = self.network(dict(zip(self.manifest.inputs, voxels)))
        ran = time.perf_counter()
        detections = predict(maps, self.manifest.outputs, self.manifest.anchors, self.manifest.head, self.manifest.test)
        done = time.perf_counter()
        self.timings = {
            "voxelize": 1000 * (voxelized - start),
            "network": 1000 * (ran - voxelized),
            "decode": 1000 * (done - ran),
        }
        return detections
