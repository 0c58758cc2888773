"""Drives for the nuScenes sample: a level street, an ego car driving along it, objects that move or stay.

Why a module of its own: the KITTI frames are snapshots, a nuScenes scene is seconds of motion.
A drive is one street (`sample_street`, heading forced to 0, so the LiDAR's x axis is the street's
s axis), its structure and objects (`place_objects`), and a constant velocity per object: cars and
cyclists in a lane go along it at the lane's speed (the ego's in the ego's lane, so a lane keeps its
gaps), some pedestrians walk along the sidewalk or across the road; parked cars, cars across the
road and the rest stand still. Any object whose
path would meet the ego car's, an obstacle's or an earlier object's is stopped, or dropped if it is
in the way even when still. `cast` ray casts the drive at a time from the ego's position then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from sample_data.raycast import Sweep, sweep
from sample_data.scene import (
    ego_footprint,
    footprint,
    object_blocks,
    obstacle_footprints,
    overlaps_any,
    place_objects,
    sample_street,
    solids_in_range,
    street_structure,
    wrap_angle,
)
from sample_data.world import LANE_WIDTH, MAX_RANGE, STREET_REACH, Block, SceneObject, Street

# nuScenes' HDL-32E: 32 beams from +10.67 to -30.67 deg, 1.33 deg apart.
ELEVATIONS = np.radians(np.linspace(10.67, -30.67, 32))
# 5 deg steps keep the default 320 sweeps' clouds well under 20 MB; the real sensor samples ~0.33 deg.
AZIMUTH_STEPS = 72
CHECK_STEP = 0.1  # seconds between the collision checks of the paths
EGO_SPEED = (2.0, 3.5)  # m/s
# The ego never goes further than this from s = 0, so its range never reaches the street's ends.
EGO_REACH = STREET_REACH - MAX_RANGE - 2.0


@dataclass(frozen=True)
class Mover:
    """A scene object and its constant velocity in street coordinates (m/s along s and u)."""

    obj: SceneObject
    velocity: tuple[float, float]

    @property
    def moving(self) -> bool:
        return self.velocity != (0.0, 0.0)

    def at(self, t: float) -> SceneObject:
        return replace(self.obj, s=self.obj.s + self.velocity[0] * t, u=self.obj.u + self.velocity[1] * t)


@dataclass(frozen=True)
class Drive:
    """One scene's world: the street, its static blocks, the objects, and the ego's motion along s."""

    street: Street
    structure: list[Block]
    movers: list[Mover]
    ego_start: float  # the LiDAR's s at t = 0
    ego_speed: float

    def ego_s(self, t: float) -> float:
        return self.ego_start + self.ego_speed * t


def lane_heading(u: float) -> float:
    """Right-hand traffic: lanes right of the centre line (u < 0) run along +s."""
    return 0.0 if u < 0 else math.pi


def wanted_mover(
    rng: np.random.Generator,
    obj: SceneObject,
    street: Street,
    lane_speeds: np.ndarray,
    ego_speed: float,
    seconds: float,
) -> Mover:
    """How an object would like to move; the draws happen for every object, so streams stay aligned.

    Whatever travels in a lane (cars, cyclists) goes at that lane's speed, the ego's in the ego's
    lane, so a lane moves as a column. Walkers on a sidewalk walk along it, those on the crossing
    across the road, as long as the walk stays on the surface they stand on.
    """
    walks, walk_speed = rng.random() < 0.6, float(rng.uniform(0.8, 1.6))
    heading = lane_heading(obj.u)
    lane = min(int(abs(obj.u) // LANE_WIDTH), street.lanes - 1)
    own_lane = obj.u < 0 and lane == int(abs(street.ego_u) // LANE_WIDTH)
    lane_speed = ego_speed if own_lane else float(lane_speeds[int(obj.u > 0), lane])
    if obj.kind in ("Car", "Cyclist"):
        in_lane = abs(obj.u) < street.lanes * LANE_WIDTH and abs(wrap_angle(obj.yaw - heading)) < 0.3
        # Cars outside a lane are parked at a kerb or stand across the road.
        return Mover(obj, (lane_speed * math.cos(heading), 0.0) if in_lane else (0.0, 0.0))
    if not walks:
        return Mover(obj, (0.0, 0.0))
    if obj.bottom > 0:  # on a sidewalk
        along = 0.0 if math.cos(obj.yaw) >= 0 else math.pi
        return Mover(replace(obj, yaw=along), (walk_speed * math.cos(along), 0.0))
    velocity = walk_speed * math.cos(obj.yaw), walk_speed * math.sin(obj.yaw)
    crosses = abs(obj.u + velocity[1] * seconds) < street.kerb - 0.3
    return Mover(obj, velocity if crosses else (0.0, 0.0))


def path_footprints(mover: Mover, times: np.ndarray, clearance: float) -> np.ndarray:
    """The object's bird's-eye corners at every time, (T, 4, 2)."""
    obj = mover.obj
    corners = footprint(obj.s, obj.u, obj.yaw, obj.length + clearance, obj.width + clearance)
    return corners[None] + (times[:, None] * np.array(mover.velocity))[:, None, :]


def clear_path(path: np.ndarray, ego: np.ndarray, kept: list[np.ndarray], obstacles: np.ndarray, moving: bool) -> bool:
    """No overlap with the ego car, the obstacles (only a moving object can run into them) or kept paths."""
    for step, corners in enumerate(path):
        others = np.array([ego[step], *(other[step] for other in kept)])
        if overlaps_any(corners, others) or (moving and overlaps_any(corners, obstacles)):
            return False
    return True


def make_drive(rng: np.random.Generator, seconds: float) -> Drive:
    """A level street, its objects with velocities whose paths never meet, and the ego's speed."""
    street = replace(sample_street(rng), heading=0.0)
    structure = street_structure(rng, street)
    obstacles = obstacle_footprints(structure)
    objects = place_objects(rng, street, obstacles)
    ego_speed = min(float(rng.uniform(*EGO_SPEED)), 2 * EGO_REACH / seconds)
    ego_start = -ego_speed * seconds / 2
    lane_speeds = rng.uniform(3.0, 8.0, size=(2, 2))

    times = np.arange(0.0, seconds + CHECK_STEP / 2, CHECK_STEP)
    ego = ego_footprint(street)[None] + (np.column_stack([ego_start + ego_speed * times, 0 * times]))[:, None, :]
    movers: list[Mover] = []
    kept: list[np.ndarray] = []
    for obj in objects:
        wanted = wanted_mover(rng, obj, street, lane_speeds, ego_speed, seconds)
        for mover in dict.fromkeys([wanted, Mover(obj, (0.0, 0.0))]):
            path = path_footprints(mover, times, 0.3)
            if clear_path(path, ego, kept, obstacles, mover.moving):
                movers.append(mover)
                kept.append(path)
                break
    return Drive(street, structure, movers, ego_start, ego_speed)


def cast(rng: np.random.Generator, drive: Drive, t: float) -> Sweep:
    """The sweep at time t, from where the ego is then: every block and object shifted by the ego's s.

    The zebra crossing moves with the shift; the dashed lane dividers (a pattern in s) do not.
    """
    shift = drive.ego_s(t)
    street = replace(drive.street, crossing=drive.street.crossing - shift)
    blocks = [replace(block, s=block.s - shift) for block in drive.structure]
    for owner, mover in enumerate(drive.movers):
        obj = mover.at(t)
        blocks += object_blocks(replace(obj, s=obj.s - shift), owner)
    return sweep(rng, street, solids_in_range(blocks, street), len(drive.movers), ELEVATIONS, AZIMUTH_STEPS)
