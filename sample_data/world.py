"""The world every part of the generator shares: sensor, camera and street constants, and the scene's dataclasses.

Why a module of its own: the scene builds these, ray casting and labelling read them, so keeping them
apart from all three lets each import the world without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Sensor: an HDL-64E on the roof, as in KITTI.
SENSOR_HEIGHT = 1.73
GROUND_Z = -SENSOR_HEIGHT
MAX_RANGE = 80.0

IMAGE_WIDTH, IMAGE_HEIGHT = 1242, 375
NEAR_PLANE = 0.1  # metres in front of the camera; boxes are cut there before projecting

# Street layout (metres), right-hand traffic as in Karlsruhe.
LANE_WIDTH = 3.5
PARKING_WIDTH = 2.3
KERB_HEIGHT = 0.14
STREET_REACH = 95.0  # along the street, both ways: a little past MAX_RANGE so the ends never show

# Base reflectivity per surface kind; intensity also falls with the angle of incidence.
ROAD, MARKING, SIDEWALK, WALL, POLE, TRUNK, FOLIAGE = 0.18, 0.72, 0.28, 0.32, 0.55, 0.22, 0.12


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
