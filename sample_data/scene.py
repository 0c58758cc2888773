"""The scene: a seeded street (blocks of facades, walls, poles, trees) and the objects placed on it.

Also the street <-> LiDAR coordinate transforms and `solids_in_range`, which hands the scene's
blocks to ray casting as LiDAR-frame arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sample_data.world import (
    FOLIAGE,
    GROUND_Z,
    KERB_HEIGHT,
    LANE_WIDTH,
    MAX_RANGE,
    PARKING_WIDTH,
    POLE,
    SIDEWALK,
    STREET_REACH,
    TRUNK,
    WALL,
    Block,
    SceneObject,
    Solids,
    Street,
)

#: KITTI's mean (h, w, l) per class; every object scales them by a few per cent.
CLASS_SIZES = {"Car": (1.52, 1.63, 3.88), "Pedestrian": (1.76, 0.66, 0.84), "Cyclist": (1.74, 0.60, 1.76)}
#: The solid parts stay this far inside the label box: annotators draw boxes with a little slack,
#: and it keeps range noise from pushing an object's own points out of its box.
BOX_SLACK = 0.06

Size = tuple[float, float, float]  # length, width, height
Pose = tuple[float, float, float, float]  # s, u, yaw, bottom (street coordinates)


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
                blocks.append(
                    Block(
                        s + length / 2,
                        u,
                        0.0,
                        length,
                        depth,
                        0.0,
                        float(rng.uniform(5.0, 18.0)),
                        float(rng.uniform(0.25, 0.45)),
                    )
                )
            else:
                u = side * (street.facade + 0.1)
                blocks.append(Block(s + length / 2, u, 0.0, length, 0.2, 0.0, float(rng.uniform(1.0, 2.2)), WALL))
            # Driveways and side streets let rays through to empty space, as in a real street.
            s += length + float(rng.uniform(3.0, 12.0) if rng.random() < 0.5 else rng.uniform(0.3, 1.0))
        s = -STREET_REACH + float(rng.uniform(0.0, 20.0))
        while s < STREET_REACH:
            blocks.append(
                Block(s, side * (street.kerb + 0.4), 0.0, 0.18, 0.18, KERB_HEIGHT, float(rng.uniform(4.0, 8.0)), POLE)
            )
            s += float(rng.uniform(15.0, 30.0))
        s = -STREET_REACH + float(rng.uniform(0.0, 10.0))
        while s < STREET_REACH:
            if rng.random() < 0.6:
                u, crown = side * (street.kerb + 1.6), float(rng.uniform(2.5, 4.0))
                blocks.append(Block(s, u, 0.0, 0.35, 0.35, KERB_HEIGHT, 2.6, TRUNK))
                blocks.append(
                    Block(
                        s,
                        u,
                        float(rng.uniform(0, np.pi)),
                        crown,
                        crown,
                        2.6,
                        2.6 + float(rng.uniform(2.0, 4.0)),
                        FOLIAGE,
                    )
                )
            s += float(rng.uniform(10.0, 25.0))
    return blocks


def obstacle_footprints(structure: list[Block]) -> np.ndarray:
    """Bird's-eye corners (N, 4, 2) of what objects may not stand in.

    Objects stand on sidewalks and may pass under tree crowns; everything else is in their way.
    """
    return np.array(
        [footprint(b.s, b.u, b.yaw, b.length, b.width) for b in structure if b.top > KERB_HEIGHT and b.bottom < 2.0]
    )


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
            reflectivity = {
                "Car": rng.uniform(0.12, 0.55),
                "Pedestrian": rng.uniform(0.18, 0.35),
                "Cyclist": rng.uniform(0.25, 0.4),
            }[kind]
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
        return Block(
            obj.s + forward * c,
            obj.u + forward * si,
            obj.yaw,
            part_length,
            part_width,
            obj.bottom + bottom,
            obj.bottom + top,
            obj.reflectivity,
            owner,
        )

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
    table = np.array([(b.s, b.u, b.yaw, b.length, b.width, b.bottom, b.top, b.reflectivity, b.owner) for b in blocks])
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
