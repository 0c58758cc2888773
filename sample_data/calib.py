"""The calibration: one made-up KITTI-style rig (cameras, LiDAR, IMU) that every frame shares."""

from __future__ import annotations

import math

import numpy as np

from mmloop.datasets.kitti.files import Calib


def rotation(roll_deg: float, pitch_deg: float, yaw_deg: float) -> np.ndarray:
    """Rotation about x, then y, then z (degrees)."""
    rx, ry, rz = np.radians([roll_deg, pitch_deg, yaw_deg])
    about_x = np.array([[1, 0, 0], [0, math.cos(rx), -math.sin(rx)], [0, math.sin(rx), math.cos(rx)]])
    about_y = np.array([[math.cos(ry), 0, math.sin(ry)], [0, 1, 0], [-math.sin(ry), 0, math.cos(ry)]])
    about_z = np.array([[math.cos(rz), -math.sin(rz), 0], [math.sin(rz), math.cos(rz), 0], [0, 0, 1]])
    return about_z @ about_y @ about_x


def make_calib() -> Calib:
    """A KITTI-style rig of our own: four rectified cameras, the LiDAR and the IMU, shared by all frames."""
    intrinsics = np.array([[721.5, 0.0, 609.6], [0.0, 721.5, 172.9], [0.0, 0.0, 1.0]])
    # Each camera's offset from camera 0 in rectified coordinates; P = K [I | t] puts K @ t in column 4.
    offsets = {
        "P0": (0.0, 0.0, 0.0),
        "P1": (-0.5366, 0.0, 0.0),  # grey stereo partner, 54 cm baseline
        "P2": (0.0601, -0.0011, 0.0029),  # colour camera 6 cm left of camera 0
        "P3": (-0.4738, 0.0021, 0.0046),
    }
    projections = {key: intrinsics @ np.hstack([np.eye(3), np.array(t)[:, None]]) for key, t in offsets.items()}
    # LiDAR x forward, y left, z up -> camera x right, y down, z forward, plus a slight mounting error.
    lidar_axes_in_camera = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    velo_to_cam_rotation = rotation(0.31, -0.22, 0.17) @ lidar_axes_in_camera
    camera_in_lidar = np.array([0.28, 0.02, -0.07])  # camera 0 sits 28 cm ahead of, 7 cm below the LiDAR
    velo_to_cam = np.hstack([velo_to_cam_rotation, (-velo_to_cam_rotation @ camera_in_lidar)[:, None]])
    imu_to_velo = np.hstack([rotation(0.02, -0.05, 0.09), np.array([[-0.83], [0.31], [-0.79]])])
    return Calib(
        **projections,
        # Rectification and mounting errors nearly cancel, so the road stays level in the rect frame.
        R0_rect=rotation(-0.21, 0.27, -0.12),
        Tr_velo_to_cam=velo_to_cam,
        Tr_imu_to_velo=imu_to_velo,
    )
