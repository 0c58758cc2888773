"""Synthetic KITTI-format sample: seeded street scenes seen by a simulated 64-beam roof LiDAR.

Why: the loop (validate, prepare, train, evaluate, export) needs a dataset small enough to live in
DVC and to train a PointPillars on a CPU in minutes, that still behaves like KITTI, and that we may
redistribute (real KITTI may not be vendored). What: `generate_dataset` writes the KITTI object
layout, `training/{velodyne,calib,label_2,image_2}` and `ImageSets/{train,val}.txt`;
`python -m sample_data --out DIR` does the same from the command line.

Each frame is a street along the LiDAR's x axis (facades, walls, poles, trees, kerbs, lane markings)
with cars, pedestrians and cyclists all around the ego car. The cloud is ray cast, beam by azimuth,
from a sensor 1.73 m above the road with HDL-64E-like beam elevations; the nearest hit wins, so near
objects are dense, far ones sparse and occluded ones partial, as in a real sweep. Labels follow the
KITTI conventions mmdet3d reads (bottom-centre location in the rectified camera frame, h w l,
rotation_y = -yaw_lidar - pi/2); only objects seen by image_2 with at least one point are labelled,
as in KITTI. The calibration is made up in KITTI's style; no KITTI value is copied. image_2 is
rendered from the same scene through the same calibration: each labelled object's visible box faces
shaded, per-instance colours, occluded by depth, over a textured street; from random streams of its
own, so the LiDAR side does not depend on it.

Modules, in the order a frame is made: `world` (shared constants and dataclasses), `calib` (the
rig), `scene` (street, objects, poses and placement), `raycast` (the sweep), `labels` (the labels),
`camera` and `materials` (the image), `dataset` (frames, splits, writing the layout). This package
is a tool beside the library `mmloop`, not part of it; no DVC stage imports it.

`nuscenes` (with `drive`, the same scenes set in motion) writes a nuScenes-format sample from the
same street and ray caster: `python -m sample_data.nuscenes --out DIR`.
"""

from __future__ import annotations

from sample_data.dataset import generate_dataset

__all__ = ["generate_dataset"]
