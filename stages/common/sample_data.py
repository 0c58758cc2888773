"""Synthetic KITTI-format sample: seeded street scenes seen by a simulated 64-beam roof LiDAR.

Why: the loop (validate, prepare, train, evaluate, export) needs a dataset small enough to live in
DVC and to train a PointPillars on a CPU in minutes, that still behaves like KITTI, and that we may
redistribute (real KITTI may not be vendored). What: `generate_dataset` writes the KITTI object
layout, `training/{velodyne,calib,label_2,image_2}` and `ImageSets/{train,val}.txt`.

Each frame is a street along the LiDAR's x axis (facades, walls, poles, trees, kerbs, lane markings)
with cars, pedestrians and cyclists all around the ego car. The cloud is ray cast, beam by azimuth,
from a sensor 1.73 m above the road with HDL-64E-like beam elevations; the nearest hit wins, so near
objects are dense, far ones sparse and occluded ones partial, as in a real sweep. Labels follow the
KITTI conventions mmdet3d reads (bottom-centre location in the rectified camera frame, h w l,
rotation_y = -yaw_lidar - pi/2); only objects seen by image_2 with at least one point are labelled,
as in KITTI. The calibration is made up in KITTI's style; no KITTI value is copied.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from stages.common.kitti import (
    FRAME_FILES,
    Calib,
    Label,
    frame_path,
    image_mask,
    label_box_mask,
    write_calib,
    write_cloud,
    write_labels,
    write_split,
)

DEFAULT_FRAMES = 48

# Sensor: an HDL-64E on the roof, as in KITTI.
SENSOR_HEIGHT = 1.73
GROUND_Z = -SENSOR_HEIGHT
MAX_RANGE = 80.0
RANGE_NOISE = 0.02
DROPOUT = 0.01  # returns lost to dark or wet surfaces, at random
# 1.25 deg steps keep the default 48 frames under 15 MB; the real sensor samples ~0.08 deg.
AZIMUTH_STEPS = 288

IMAGE_WIDTH, IMAGE_HEIGHT = 1242, 375
NEAR_PLANE = 0.1  # metres in front of the camera; boxes are cut there before projecting

# Street layout (metres), right-hand traffic as in Karlsruhe.
LANE_WIDTH = 3.5
PARKING_WIDTH = 2.3
KERB_HEIGHT = 0.14
STREET_REACH = 95.0  # along the street, both ways: a little past MAX_RANGE so the ends never show

#: KITTI's mean (h, w, l) per class; every object scales them by a few per cent.
CLASS_SIZES = {"Car": (1.52, 1.63, 3.88), "Pedestrian": (1.76, 0.66, 0.84), "Cyclist": (1.74, 0.60, 1.76)}
#: The solid parts stay this far inside the label box: annotators draw boxes with a little slack,
#: and it keeps range noise from pushing an object's own points out of its box.
BOX_SLACK = 0.06

# Base reflectivity per surface kind; intensity also falls with the angle of incidence.
ROAD, MARKING, SIDEWALK, WALL, POLE, TRUNK, FOLIAGE = 0.18, 0.72, 0.28, 0.32, 0.55, 0.22, 0.12

CLASS_COLOURS = {"Car": (214, 48, 49), "Pedestrian": (253, 203, 110), "Cyclist": (9, 132, 227)}
SKY = ((112, 161, 214), (205, 222, 236))  # top, horizon
ASPHALT = ((128, 128, 124), (72, 72, 76))  # horizon, bottom

# Corner order of a box: the bottom rectangle counter-clockwise from front-left, then the top one.
BOX_EDGES = np.array([(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)])

Size = tuple[float, float, float]  # length, width, height
Pose = tuple[float, float, float, float]  # s, u, yaw, bottom (street coordinates)


@dataclass(frozen=True)
class Street:
    """One frame's street in street coordinates: s along the road, u left of its centre line."""

    lanes: int  # per direction
    kerb: float  # |u| of both kerbs
    facade: float  # |u| where sidewalks end and buildings may start
    crossing: float  # s of the zebra crossing ahead
    ego_u: float  # the ego car drives in a right-hand lane, at s = 0
    heading: float  # ego yaw relative to the street axis


@dataclass(frozen=True)
class Block:
    """An upright box in street coordinates that rays can hit."""

    s: float
    u: float
    yaw: float
    length: float
    width: float
    bottom: float  # above the road surface
    top: float
    reflectivity: float
    owner: int = -1  # index of the scene object it belongs to; -1 for static structure


@dataclass(frozen=True)
class SceneObject:
    """A labelled-class object; its label box in street coordinates."""

    kind: str
    s: float
    u: float
    yaw: float
    length: float
    width: float
    height: float
    bottom: float  # kerb height for pedestrians on the sidewalk, else 0
    reflectivity: float


@dataclass(frozen=True)
class Solids:
    """All blocks of a frame as arrays in the LiDAR frame, ready for vectorized ray casting."""

    centre: np.ndarray  # (B, 3)
    half: np.ndarray  # (B, 3) half length, width, height
    yaw: np.ndarray  # (B,)
    reflectivity: np.ndarray  # (B,)
    owner: np.ndarray  # (B,) int


@dataclass(frozen=True)
class Frame:
    cloud: np.ndarray  # (N, 4) float32
    labels: list[Label]
    image: Image.Image


# --- calibration -----------------------------------------------------------------------------


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


# --- scene -----------------------------------------------------------------------------------


def sample_street(rng: np.random.Generator) -> Street:
    lanes = int(rng.integers(1, 3))
    kerb = lanes * LANE_WIDTH + PARKING_WIDTH
    return Street(
        lanes=lanes,
        kerb=kerb,
        facade=kerb + float(rng.uniform(3.0, 6.0)),
        crossing=float(rng.uniform(12.0, 40.0)),
        ego_u=-(int(rng.integers(lanes)) + 0.5) * LANE_WIDTH,
        heading=float(np.clip(rng.normal(0.0, math.radians(3.0)), -math.radians(8.0), math.radians(8.0))),
    )


def street_structure(rng: np.random.Generator, street: Street) -> list[Block]:
    """Sidewalks, then per side a row of buildings and walls with gaps, poles at the kerb, and trees."""
    blocks = [
        Block(0.0, side * (street.kerb + 15.0), 0.0, 2 * STREET_REACH, 30.0, 0.0, KERB_HEIGHT, SIDEWALK)
        for side in (-1, 1)
    ]
    for side in (-1, 1):
        s = -STREET_REACH
        while s < STREET_REACH:
            length = float(rng.uniform(8.0, 30.0))
            if rng.random() < 0.8:
                setback, depth = float(rng.uniform(0.0, 4.0)), float(rng.uniform(8.0, 15.0))
                u = side * (street.facade + setback + depth / 2)
                blocks.append(Block(s + length / 2, u, 0.0, length, depth, 0.0, float(rng.uniform(5.0, 18.0)),
                                    float(rng.uniform(0.25, 0.45))))
            else:
                u = side * (street.facade + 0.1)
                blocks.append(Block(s + length / 2, u, 0.0, length, 0.2, 0.0, float(rng.uniform(1.0, 2.2)), WALL))
            # Driveways and side streets let rays through to empty space, as in a real street.
            s += length + float(rng.uniform(3.0, 12.0) if rng.random() < 0.5 else rng.uniform(0.3, 1.0))
        s = -STREET_REACH + float(rng.uniform(0.0, 20.0))
        while s < STREET_REACH:
            blocks.append(Block(s, side * (street.kerb + 0.4), 0.0, 0.18, 0.18, KERB_HEIGHT,
                                float(rng.uniform(4.0, 8.0)), POLE))
            s += float(rng.uniform(15.0, 30.0))
        s = -STREET_REACH + float(rng.uniform(0.0, 10.0))
        while s < STREET_REACH:
            if rng.random() < 0.6:
                u, crown = side * (street.kerb + 1.6), float(rng.uniform(2.5, 4.0))
                blocks.append(Block(s, u, 0.0, 0.35, 0.35, KERB_HEIGHT, 2.6, TRUNK))
                blocks.append(Block(s, u, float(rng.uniform(0, np.pi)), crown, crown, 2.6,
                                    2.6 + float(rng.uniform(2.0, 4.0)), FOLIAGE))
            s += float(rng.uniform(10.0, 25.0))
    return blocks


def ego_footprint(street: Street) -> np.ndarray:
    """The ego car around the LiDAR (which sits a little ahead of the car's middle)."""
    centre = lidar_to_street(np.array([[-0.3, 0.0]]), street)[0]
    return footprint(centre[0], centre[1], street.heading, 4.6 + 1.0, 1.9 + 0.6)


def footprint(s: float, u: float, yaw: float, length: float, width: float) -> np.ndarray:
    """Bird's-eye corners (4, 2) of a box, counter-clockwise from front-left."""
    half = np.array([[length, width], [-length, width], [-length, -width], [length, -width]]) / 2
    c, si = math.cos(yaw), math.sin(yaw)
    return half @ np.array([[c, si], [-si, c]]) + np.array([s, u])


def overlaps_any(candidate: np.ndarray, placed: np.ndarray) -> bool:
    """Separating-axis test of one rectangle (4, 2) against many (N, 4, 2) in bird's-eye view."""
    if len(placed) == 0:
        return False
    own_axes = np.stack([candidate[1] - candidate[0], candidate[3] - candidate[0]])
    other_axes = np.stack([placed[:, 1] - placed[:, 0], placed[:, 3] - placed[:, 0]], axis=1)
    axes = np.concatenate([np.broadcast_to(own_axes, other_axes.shape), other_axes], axis=1)  # (N, 4, 2)
    own = np.einsum("nak,ck->nac", axes, candidate)
    other = np.einsum("nak,nck->nac", axes, placed)
    separated = (own.max(-1) < other.min(-1)) | (other.max(-1) < own.min(-1))
    return bool((~separated.any(-1)).any())


def random_size(rng: np.random.Generator, kind: str) -> Size:
    """(length, width, height) around KITTI's class mean."""
    height, width, length = CLASS_SIZES[kind]
    scale = np.clip(rng.normal(1.0, 0.05, 3), 0.88, 1.12)
    return float(length * scale[0]), float(width * scale[1]), float(height * scale[2])


def wrap_angle(angle: float) -> float:
    """Angle in [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


def car_pose(rng: np.random.Generator, street: Street, s_range: tuple[float, float], width: float) -> Pose:
    """Parked at a kerb, driving in a lane, or (rarely) turning across the road."""
    s = float(rng.uniform(*s_range))
    side = -1 if rng.random() < 0.5 else 1
    with_traffic = 0.0 if side < 0 else math.pi
    mode = rng.random()
    if mode < 0.45:
        u = side * (street.kerb - 0.25 - width / 2)
        yaw = with_traffic if rng.random() < 0.85 else with_traffic + math.pi
        return s, u, wrap_angle(yaw + rng.normal(0.0, math.radians(3.0))), 0.0
    if mode < 0.9:
        lane = int(rng.integers(street.lanes))
        u = side * (lane + 0.5) * LANE_WIDTH + float(rng.normal(0.0, 0.25))
        return s, u, wrap_angle(with_traffic + rng.normal(0.0, math.radians(2.0))), 0.0
    u = float(rng.uniform(-street.lanes * LANE_WIDTH, street.lanes * LANE_WIDTH))
    return s, u, float(rng.uniform(-math.pi, math.pi)), 0.0


def pedestrian_pose(rng: np.random.Generator, street: Street) -> Pose:
    """On a sidewalk (standing on the kerb-high surface) or on the zebra crossing."""
    if rng.random() < 0.7:
        s = float(rng.uniform(4.0, 45.0) if rng.random() < 0.75 else rng.uniform(-40.0, 40.0))
        side = -1 if rng.random() < 0.5 else 1
        u = side * float(rng.uniform(street.kerb + 0.6, street.facade - 0.5))
        walking = float(rng.choice([0.0, math.pi]) + rng.normal(0.0, 0.3))
        yaw = walking if rng.random() < 0.7 else float(rng.uniform(-math.pi, math.pi))
        return s, u, wrap_angle(yaw), KERB_HEIGHT
    s = street.crossing + float(rng.uniform(-1.2, 1.2))
    u = float(rng.uniform(-street.kerb + 0.5, street.kerb - 0.5))
    yaw = float(rng.choice([-math.pi / 2, math.pi / 2]) + rng.normal(0.0, 0.2))
    return s, u, wrap_angle(yaw), 0.0


def cyclist_pose(rng: np.random.Generator, street: Street) -> Pose:
    """At the right edge of the outer lane, with the traffic."""
    s = float(rng.uniform(-30.0, 55.0))
    side = -1 if rng.random() < 0.5 else 1
    u = side * (street.lanes * LANE_WIDTH - 0.7)
    return s, u, wrap_angle((0.0 if side < 0 else math.pi) + rng.normal(0.0, math.radians(4.0))), 0.0


def in_camera_view(s: float, u: float, street: Street) -> bool:
    """Roughly inside image_2's 80 deg field of view, a few metres ahead."""
    x, y = street_to_lidar(np.array([[s, u]]), street)[0]
    return x > 6.0 and abs(y) < 0.7 * x


def place_objects(rng: np.random.Generator, street: Street, obstacles: np.ndarray) -> list[SceneObject]:
    """Cars, pedestrians and cyclists that overlap neither each other nor the street furniture in BEV."""
    objects: list[SceneObject] = []
    placed = [*obstacles, ego_footprint(street)]

    def try_place(kind: str, clearance: float, pose: Callable[[Size], Pose | None]) -> bool:
        for _ in range(30):
            size = random_size(rng, kind)
            found = pose(size)
            if found is None:
                continue
            s, u, yaw, bottom = found
            corners = footprint(s, u, yaw, size[0] + clearance, size[1] + clearance)
            if overlaps_any(corners, np.array(placed)):
                continue
            placed.append(footprint(s, u, yaw, size[0], size[1]))
            reflectivity = {"Car": rng.uniform(0.12, 0.55), "Pedestrian": rng.uniform(0.18, 0.35),
                            "Cyclist": rng.uniform(0.25, 0.4)}[kind]
            objects.append(SceneObject(kind, s, u, yaw, *size, bottom, float(reflectivity)))
            return True
        return False

    def lead_car(size: Size) -> Pose | None:
        pose = car_pose(rng, street, (8.0, 30.0), size[1])
        return pose if in_camera_view(pose[0], pose[1], street) else None

    # One car always in view ahead, so no frame goes without a label.
    if not any(try_place("Car", 0.6, lead_car) for _ in range(20)):
        raise RuntimeError("could not place a car ahead of the ego car; the street layout leaves no room")
    for _ in range(int(rng.integers(2, 7))):
        try_place("Car", 0.6, lambda size: car_pose(rng, street, (5.0, 60.0), size[1]))
    for _ in range(int(rng.integers(1, 4))):  # anywhere around, behind included
        try_place("Car", 0.6, lambda size: car_pose(rng, street, (-60.0, 60.0), size[1]))
    for _ in range(int(rng.integers(1, 5))):
        try_place("Pedestrian", 0.3, lambda size: pedestrian_pose(rng, street))
    for _ in range(int(rng.integers(0, 3))):
        try_place("Cyclist", 0.4, lambda size: cyclist_pose(rng, street))
    return objects


def object_blocks(obj: SceneObject, owner: int) -> list[Block]:
    """The solid parts of an object: a car is wheels, body and cabin; a person is legs and torso."""
    length, width, height = obj.length - 2 * BOX_SLACK, obj.width - 2 * BOX_SLACK, obj.height - BOX_SLACK
    c, si = math.cos(obj.yaw), math.sin(obj.yaw)

    def part(forward: float, part_length: float, part_width: float, bottom: float, top: float) -> Block:
        return Block(obj.s + forward * c, obj.u + forward * si, obj.yaw, part_length, part_width,
                     obj.bottom + bottom, obj.bottom + top, obj.reflectivity, owner)

    if obj.kind == "Car":
        return [
            part(0.32 * obj.length, 0.7, width, 0.0, 0.3),
            part(-0.32 * obj.length, 0.7, width, 0.0, 0.3),
            part(0.0, length, width, 0.25, 0.58 * obj.height),
            part(-0.06 * obj.length, 0.5 * obj.length, width - 0.16, 0.58 * obj.height, height),
        ]
    if obj.kind == "Pedestrian":
        return [part(0.0, length, 0.3, 0.0, 0.48 * obj.height), part(0.0, 0.3, width, 0.48 * obj.height, height)]
    return [  # a bicycle, thin, and its rider
        part(0.0, length, 0.12, 0.0, 0.58 * obj.height),
        part(-0.08 * obj.length, 0.5, width, 0.5 * obj.height, height),
    ]


def street_to_lidar(points: np.ndarray, street: Street) -> np.ndarray:
    """Street (s, u) rows to LiDAR (x, y)."""
    c, si = math.cos(street.heading), math.sin(street.heading)
    shifted = points - np.array([0.0, street.ego_u])
    return shifted @ np.array([[c, -si], [si, c]])


def lidar_to_street(points: np.ndarray, street: Street) -> np.ndarray:
    """LiDAR (x, y) rows to street (s, u)."""
    c, si = math.cos(street.heading), math.sin(street.heading)
    return points @ np.array([[c, si], [-si, c]]) + np.array([0.0, street.ego_u])


def solids_in_range(blocks: list[Block], street: Street) -> Solids:
    """Blocks as LiDAR-frame arrays, without those entirely beyond MAX_RANGE (they cannot be hit)."""
    table = np.array([
        (b.s, b.u, b.yaw, b.length, b.width, b.bottom, b.top, b.reflectivity, b.owner) for b in blocks
    ])
    xy = street_to_lidar(table[:, :2], street)
    reach = np.hypot(table[:, 3], table[:, 4]) / 2
    keep = np.hypot(xy[:, 0], xy[:, 1]) - reach < MAX_RANGE
    table, xy = table[keep], xy[keep]
    z = GROUND_Z + (table[:, 5] + table[:, 6]) / 2
    return Solids(
        centre=np.column_stack([xy, z]),
        half=np.column_stack([table[:, 3], table[:, 4], table[:, 6] - table[:, 5]]) / 2,
        yaw=table[:, 2] - street.heading,
        reflectivity=table[:, 7],
        owner=table[:, 8].astype(int),
    )


# --- ray casting -----------------------------------------------------------------------------


def beam_elevations() -> np.ndarray:
    """64 beam elevations (radians), upper block at ~1/3 deg spacing and lower at ~1/2 deg as on the HDL-64E."""
    return np.radians(np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.83, -24.9, 32)]))


def ray_directions(azimuth_offset: float) -> np.ndarray:
    """Unit ray directions (64 * AZIMUTH_STEPS, 3), beam by beam like a KITTI .bin."""
    elevation = beam_elevations()[:, None]
    azimuth = (azimuth_offset + np.arange(AZIMUTH_STEPS) * 2 * np.pi / AZIMUTH_STEPS)[None, :]
    x, y = np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth)
    z = np.broadcast_to(np.sin(elevation), x.shape)
    return np.stack([x, y, z], axis=-1).reshape(-1, 3)


def cast_boxes(directions: np.ndarray, solids: Solids) -> tuple[np.ndarray, np.ndarray]:
    """Range along every ray to every box (inf on a miss) and the cosine of incidence there, (R, B) each.

    Slab method in each box's own frame; the sensor is the origin, so every ray starts at -centre.
    """
    cos_yaw, sin_yaw = np.cos(solids.yaw), np.sin(solids.yaw)
    dx, dy, dz = directions[:, 0:1], directions[:, 1:2], directions[:, 2:3]
    cx, cy, cz = solids.centre.T
    shape = (len(directions), len(cz))
    local_directions = (dx * cos_yaw + dy * sin_yaw, -dx * sin_yaw + dy * cos_yaw, np.broadcast_to(dz, shape))
    local_origin = (-(cx * cos_yaw + cy * sin_yaw), cx * sin_yaw - cy * cos_yaw, -cz)
    entry, leave, incidence = np.full(shape, -np.inf), np.full(shape, np.inf), np.zeros(shape)
    for axis in range(3):
        # Rays parallel to a slab would divide by zero; a tiny step keeps them finite and correct.
        step = np.where(np.abs(local_directions[axis]) < 1e-12, 1e-12, local_directions[axis])
        t1 = (-solids.half[:, axis] - local_origin[axis]) / step
        t2 = (solids.half[:, axis] - local_origin[axis]) / step
        near = np.minimum(t1, t2)
        later = near > entry
        entry = np.where(later, near, entry)
        incidence = np.where(later, np.abs(step), incidence)
        leave = np.minimum(leave, np.maximum(t1, t2))
    hit = (entry <= leave) & (entry > 0)
    return np.where(hit, entry, np.inf), incidence


def road_reflectivity(points: np.ndarray, street: Street) -> np.ndarray:
    """Asphalt, brighter on lane markings and the zebra crossing (they show up in KITTI intensities too)."""
    s, u = lidar_to_street(points[:, :2], street).T
    road = street.lanes * LANE_WIDTH
    centre_line = np.abs(u) < 0.075
    dividers = (street.lanes == 2) & (np.abs(np.abs(u) - LANE_WIDTH) < 0.075) & (np.mod(s, 9.0) < 3.0)
    edge_lines = np.abs(np.abs(u) - road) < 0.1
    zebra = (np.abs(s - street.crossing) < 2.0) & (np.abs(u) < street.kerb) & (np.mod(u, 1.0) < 0.5)
    return np.where(centre_line | dividers | edge_lines | zebra, MARKING, ROAD)


@dataclass(frozen=True)
class Sweep:
    """One ray-cast sweep: every ray's first hit, and what each object would get on its own."""

    cloud: np.ndarray  # (N, 4) float64 x, y, z, intensity
    hit_owner: np.ndarray  # (N,) owner of the surface each point came from, -1 for static
    object_rays: np.ndarray  # (objects,) rays that would hit the object were it alone
    object_first: np.ndarray  # (objects,) rays whose first hit is the object


def sweep(rng: np.random.Generator, street: Street, solids: Solids, objects: int) -> Sweep:
    """Every beam x azimuth ray against the road plane and all solids; the nearest hit wins."""
    directions = ray_directions(float(rng.uniform(0.0, 2 * np.pi / AZIMUTH_STEPS)))
    box_range, box_incidence = cast_boxes(directions, solids)
    with np.errstate(divide="ignore"):
        ground_range = np.where(directions[:, 2] < 0, GROUND_Z / directions[:, 2], np.inf)
    ranges = np.column_stack([ground_range, box_range])
    first = ranges.argmin(axis=1)
    rays = np.arange(len(directions))
    distance = ranges[rays, first]
    on_box = first > 0
    box = np.maximum(first - 1, 0)
    incidence = np.where(on_box, box_incidence[rays, box], -directions[:, 2])
    owner = np.where(on_box, solids.owner[box], -1)

    # Rays that hit nothing still get a (harmless) finite end point, so the marking lookup stays finite.
    exact = directions * np.minimum(distance, MAX_RANGE + 1.0)[:, None]
    reflectivity = np.where(on_box, solids.reflectivity[box], road_reflectivity(exact, street))

    t_object = np.full((len(directions), objects), np.inf)
    for index in range(objects):
        columns = solids.owner == index
        if columns.any():
            t_object[:, index] = box_range[:, columns].min(axis=1)
    alone = t_object <= MAX_RANGE
    object_rays = alone.sum(axis=0)
    first_hit = (owner[:, None] == np.arange(objects)) & (distance <= MAX_RANGE)[:, None]
    object_first = (alone & first_hit).sum(axis=0)

    returned = (distance <= MAX_RANGE) & (rng.random(len(directions)) >= DROPOUT)
    measured = distance + rng.normal(0.0, RANGE_NOISE, len(directions))
    intensity = reflectivity * (0.4 + 0.6 * incidence) + rng.normal(0.0, 0.03, len(directions))
    cloud = np.column_stack([directions * measured[:, None], np.clip(intensity, 0.0, 1.0)])[returned]
    return Sweep(cloud=cloud, hit_owner=owner[returned], object_rays=object_rays, object_first=object_first)


# --- labels and image ------------------------------------------------------------------------


def box_corners(bottom_centre: np.ndarray, length: float, width: float, height: float, yaw: float) -> np.ndarray:
    """Eight LiDAR-frame corners (8, 3) of an upright box, in BOX_EDGES order."""
    xy = footprint(bottom_centre[0], bottom_centre[1], yaw, length, width)
    bottom = np.column_stack([xy, np.full(4, bottom_centre[2])])
    return np.vstack([bottom, bottom + np.array([0.0, 0.0, height])])


def image_box(corners_rect: np.ndarray, calib: Calib) -> tuple[np.ndarray, float] | None:
    """2D box (left, top, right, bottom) clipped to image_2 and its truncation, or None if not in view.

    The box is cut at the near plane first, so objects beside the camera project to a finite,
    heavily truncated box instead of wrapping around.
    """
    in_front = corners_rect[:, 2] >= NEAR_PLANE
    if not in_front.any():
        return None
    a, b = corners_rect[BOX_EDGES[:, 0]], corners_rect[BOX_EDGES[:, 1]]
    cut = (a[:, 2] >= NEAR_PLANE) != (b[:, 2] >= NEAR_PLANE)
    fraction = (NEAR_PLANE - a[cut, 2]) / (b[cut, 2] - a[cut, 2])
    visible = np.vstack([corners_rect[in_front], a[cut] + fraction[:, None] * (b[cut] - a[cut])])
    uv = calib.project_rect_to_image(visible)
    full = np.concatenate([uv.min(axis=0), uv.max(axis=0)])
    limits = np.array([IMAGE_WIDTH - 1, IMAGE_HEIGHT - 1] * 2, dtype=float)
    clipped = np.clip(full, 0.0, limits)
    full_area = (full[2] - full[0]) * (full[3] - full[1])
    clipped_area = (clipped[2] - clipped[0]) * (clipped[3] - clipped[1])
    if clipped_area <= 0 or full_area <= 0:
        return None
    return clipped, float(np.clip(1.0 - clipped_area / full_area, 0.0, 1.0))


def occlusion_level(rays: int, first: int) -> int:
    """KITTI's 0 / 1 / 2 from the share of the object's rays that something else stopped first."""
    hidden = 1.0 - first / rays if rays else 1.0
    return 0 if hidden < 0.1 else 1 if hidden < 0.5 else 2


def make_label(obj: SceneObject, street: Street, calib: Calib, occluded: int) -> Label | None:
    """The KITTI label of an object image_2 sees, values rounded as they will be written."""
    x, y = street_to_lidar(np.array([[obj.s, obj.u]]), street)[0]
    bottom_centre = np.array([x, y, GROUND_Z + obj.bottom])
    yaw = obj.yaw - street.heading
    corners = calib.lidar_to_rect(box_corners(bottom_centre, obj.length, obj.width, obj.height, yaw))
    projected = image_box(corners, calib)
    if projected is None:
        return None
    bbox, truncated = projected
    location = calib.lidar_to_rect(bottom_centre[None, :])[0]
    rotation_y = wrap_angle(-yaw - math.pi / 2)
    alpha = wrap_angle(rotation_y - math.atan2(location[0], location[2]))
    return Label(
        type=obj.kind,
        truncated=round(truncated, 2),
        occluded=occluded,
        alpha=round(alpha, 2),
        bbox=tuple(round(float(v), 2) for v in bbox),
        dimensions=(round(obj.height, 2), round(obj.width, 2), round(obj.length, 2)),
        location=tuple(round(float(v), 2) for v in location),
        rotation_y=round(rotation_y, 2),
    )


def horizon_row(calib: Calib) -> float:
    far_road = calib.lidar_to_rect(np.array([[1000.0, 0.0, GROUND_Z]]))
    return float(calib.project_rect_to_image(far_road)[0, 1])


def render_image(labels: list[Label], calib: Calib) -> Image.Image:
    """A flat stand-in for image_2: sky and road gradients, labelled boxes in class colours, far first.

    Rows are constant outside the boxes, so PNG's filters squeeze each image to a few KB.
    """
    horizon = int(np.clip(round(horizon_row(calib)), 1, IMAGE_HEIGHT - 1))
    sky = np.linspace(*[np.array(c, dtype=float) for c in SKY], horizon)
    road = np.linspace(*[np.array(c, dtype=float) for c in ASPHALT], IMAGE_HEIGHT - horizon)
    rows = np.vstack([sky, road]).round().astype(np.uint8)
    image = Image.fromarray(np.repeat(rows[:, None, :], IMAGE_WIDTH, axis=1))
    draw = ImageDraw.Draw(image)
    for label in sorted(labels, key=lambda item: -item.location[2]):
        colour = CLASS_COLOURS[label.type]
        outline = tuple(channel // 2 for channel in colour)
        draw.rectangle([round(v) for v in label.bbox], fill=colour, outline=outline)
    return image


# --- frames and dataset ----------------------------------------------------------------------


def generate_frame(seed: int, index: int, calib: Calib) -> Frame:
    """One frame from its own random stream, so a frame never depends on how many come before it."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    street = sample_street(rng)
    structure = street_structure(rng, street)
    # Objects stand on sidewalks and may pass under tree crowns; everything else is in their way.
    obstacles = np.array([footprint(b.s, b.u, b.yaw, b.length, b.width) for b in structure
                          if b.top > KERB_HEIGHT and b.bottom < 2.0])
    objects = place_objects(rng, street, obstacles)
    blocks = structure + [part for owner, obj in enumerate(objects) for part in object_blocks(obj, owner)]
    scan = sweep(rng, street, solids_in_range(blocks, street), len(objects))

    seen = image_mask(scan.cloud[:, :3], calib, IMAGE_WIDTH, IMAGE_HEIGHT, NEAR_PLANE)
    labels = []
    for owner, obj in enumerate(objects):
        occluded = occlusion_level(int(scan.object_rays[owner]), int(scan.object_first[owner]))
        label = make_label(obj, street, calib, occluded)
        if label is None:
            continue
        own_points = scan.cloud[(scan.hit_owner == owner) & seen]
        # As in KITTI: an object image_2 sees but no point reached is not labelled.
        if label_box_mask(own_points, label, calib).any():
            labels.append(label)
    labels.sort(key=lambda label: label.location[2])
    return Frame(cloud=scan.cloud.astype(np.float32), labels=labels, image=render_image(labels, calib))


def split_frames(frame_ids: list[str], seed: int, val_fraction: float) -> tuple[list[str], list[str]]:
    """Disjoint, non-empty train and val lists, drawn from a stream apart from the frames'."""
    val_count = min(max(round(len(frame_ids) * val_fraction), 1), len(frame_ids) - 1)
    rng = np.random.default_rng(np.random.SeedSequence([seed, len(frame_ids), 0x5A11D]))
    val = set(rng.choice(frame_ids, size=val_count, replace=False).tolist())
    return [f for f in frame_ids if f not in val], [f for f in frame_ids if f in val]


def refuse_existing(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"{out}: exists and is not an empty folder; sample_data never overwrites, "
            "pick a new --out or empty the folder yourself"
        )


def generate_dataset(
    out: Path,
    frames: int = DEFAULT_FRAMES,
    seed: int = 0,
    val_fraction: float = 0.25,
    log: Callable[[str], None] = print,
) -> dict:
    """Write a synthetic KITTI-layout dataset to `out` (new or empty) and return its summary."""
    out = Path(out)
    if frames < 2:
        raise ValueError(f"frames must be at least 2 (one for train, one for val), got {frames}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    refuse_existing(out)
    for folder in FRAME_FILES:
        (out / "training" / folder).mkdir(parents=True, exist_ok=True)
    (out / "ImageSets").mkdir(exist_ok=True)

    started = time.perf_counter()
    calib = make_calib()
    frame_ids = [f"{index:06d}" for index in range(frames)]
    objects: Counter[str] = Counter()
    points = 0
    for index, frame_id in enumerate(frame_ids):
        frame = generate_frame(seed, index, calib)
        write_cloud(frame_path(out, "velodyne", frame_id), frame.cloud)
        write_calib(frame_path(out, "calib", frame_id), calib)
        write_labels(frame_path(out, "label_2", frame_id), frame.labels)
        frame.image.save(frame_path(out, "image_2", frame_id), format="PNG")
        objects.update(label.type for label in frame.labels)
        points += len(frame.cloud)
        if (index + 1) % 10 == 0 or index + 1 == frames:
            log(f"mmloop sample_data: frame {index + 1}/{frames}: "
                f"{len(frame.cloud)} points, {len(frame.labels)} objects")

    train, val = split_frames(frame_ids, seed, val_fraction)
    write_split(out / "ImageSets" / "train.txt", train)
    write_split(out / "ImageSets" / "val.txt", val)
    total_bytes = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    summary = {
        "frames": frames,
        "splits": {"train": len(train), "val": len(val)},
        "objects": dict(sorted(objects.items())),
        "points": points,
        "bytes": total_bytes,
    }
    log(
        f"mmloop sample_data: wrote {frames} frames ({len(train)} train, {len(val)} val) to {out} in "
        f"{time.perf_counter() - started:.1f} s: {', '.join(f'{n} {c}' for c, n in summary['objects'].items())}; "
        f"{points / frames:.0f} points per frame; {total_bytes / 1e6:.1f} MB"
    )
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.common.sample_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder to write the dataset to")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.25)
    args = parser.parse_args(argv)
    try:
        generate_dataset(args.out, args.frames, args.seed, args.val_fraction)
    except (FileExistsError, ValueError) as error:
        print(f"mmloop sample_data: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
