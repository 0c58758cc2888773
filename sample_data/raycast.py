"""Ray casting: one sweep (KITTI's 64 beams by default) against the road plane and the solids; the nearest hit wins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sample_data.scene import lidar_to_street
from sample_data.world import GROUND_Z, LANE_WIDTH, MARKING, MAX_RANGE, ROAD, Solids, Street

RANGE_NOISE = 0.02
DROPOUT = 0.01  # returns lost to dark or wet surfaces, at random
# 1.25 deg steps keep the default 48 frames' clouds under 14 MB; the real sensor samples ~0.08 deg.
AZIMUTH_STEPS = 288


def beam_elevations() -> np.ndarray:
    """64 beam elevations (radians), upper block at ~1/3 deg spacing and lower at ~1/2 deg as on the HDL-64E."""
    return np.radians(np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.83, -24.9, 32)]))


def ray_directions(
    azimuth_offset: float, elevations: np.ndarray | None = None, azimuth_steps: int = AZIMUTH_STEPS
) -> np.ndarray:
    """Unit ray directions (beams * azimuth_steps, 3), beam by beam like a KITTI .bin.

    The beam table and azimuth steps default to the KITTI sensor; the nuScenes sample passes its
    32-beam table, so ray `i` belongs to beam `i // azimuth_steps` either way.
    """
    elevation = (beam_elevations() if elevations is None else elevations)[:, None]
    azimuth = (azimuth_offset + np.arange(azimuth_steps) * 2 * np.pi / azimuth_steps)[None, :]
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
    ray: np.ndarray  # (N,) index of the ray each point came from (its beam is ray // azimuth steps)


def sweep(
    rng: np.random.Generator,
    street: Street,
    solids: Solids,
    objects: int,
    elevations: np.ndarray | None = None,
    azimuth_steps: int = AZIMUTH_STEPS,
) -> Sweep:
    """Every beam x azimuth ray against the road plane and all solids; the nearest hit wins."""
    offset = float(rng.uniform(0.0, 2 * np.pi / azimuth_steps))
    directions = ray_directions(offset, elevations, azimuth_steps)
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
    return Sweep(
        cloud=cloud,
        hit_owner=owner[returned],
        object_rays=object_rays,
        object_first=object_first,
        ray=rays[returned],
    )
