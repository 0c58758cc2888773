"""The camera: image_2 rendered from the very scene the LiDAR swept, through the same calibration.

Why: a detector trained on flat class-coloured rectangles learns colour, not objects. Here every
solid of the frame (buildings, walls, poles, trees, sidewalks and each labelled object's parts: a
car's wheels, body and cabin, a pedestrian's legs and torso, a cyclist's bicycle and rider) is the
upright box the ray caster hits, so what the camera shows is where the LiDAR found it and where the
label's 2D box says.

How, in plain numpy and Pillow (no renderer is installed, and a box world needs none): each face that
looks at camera 2 is cut at the near plane, projected with P2 · R0_rect · Tr_velo_to_cam, filled by
Pillow's polygon fill, and depth-tested per pixel against a z-buffer; a planar face's depth is exact
per pixel from its plane, so occlusion is right wherever faces cross. Faces are flat-shaded by a sun
and coloured by their `materials` from each pixel's point on the face (windows on facades, paving,
lights on cars); the road is asphalt with the lane marks of `raycast.road_reflectivity`, so camera
and LiDAR agree on them. Every colour comes from the image's own random streams, one per frame and
one per object (`CAMERA_STREAM`), so the cloud and the labels stay bit for bit what they were, and
an object's colours do not depend on the others. Textures fade with distance and there is no pixel
noise: PNG keeps each image at about 40 KB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from mmloop.datasets.kitti.files import Calib
from sample_data.labels import box_corners
from sample_data.materials import OBJECT_MATERIALS, Material, Surface, cell_noise, fade, paint, rgb, structure_material
from sample_data.raycast import road_reflectivity
from sample_data.scene import object_blocks, street_to_lidar
from sample_data.world import (
    GROUND_Z,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    MARKING,
    NEAR_PLANE,
    Block,
    SceneObject,
    Street,
)

#: Mixed into the frame's seed for the image's streams, apart from the one the cloud and labels use.
CAMERA_STREAM = 0xCA3E1A
#: Side faces of a box as corner indices (see `labels.box_corners`): two bottom corners, then the two
#: above them, so a face's first edge runs along the ground and its third corner is above its first.
SIDE_FACES = {"left": (0, 1, 5, 4), "rear": (1, 2, 6, 5), "right": (2, 3, 7, 6), "front": (3, 0, 4, 7)}
TOP_FACE = (4, 5, 6, 7)

SKY = ((96, 146, 206), (200, 218, 234))  # top, horizon


@dataclass(frozen=True)
class View:
    """Camera 2 in the LiDAR frame: its centre and one ray per pixel, scaled to unit rectified depth."""

    centre: np.ndarray  # (3,)
    rays: np.ndarray  # (H, W, 3): a pixel sees centre + depth * ray
    basis: np.ndarray  # (3, 3): the ray of pixel (u, v) is (u, v, 1) @ basis
    sky: np.ndarray  # (H, W): 0 at the horizon to 1 high up, for the sky's gradient
    ground: np.ndarray  # (H, W): depth to the road plane, inf above the horizon


@dataclass
class Solid:
    """A box to draw: its corners (8, 3) in the LiDAR frame and how its faces look."""

    corners: np.ndarray
    material: Material
    faces: tuple[str, ...] = ("top", *SIDE_FACES)
    shadow: bool = False  # darkens what is under it instead of painting (contact shadows)


_views: dict[bytes, View] = {}


def make_view(calib: Calib) -> View:
    """Per-pixel rays of camera 2: P2 = M [I | t] puts its centre at -t in the rectified frame.

    Every frame shares the rig, so the view is made once per calibration (about 0.1 s of each frame).
    """
    key = b"".join(matrix.tobytes() for matrix in (calib.P2, calib.R0_rect, calib.Tr_velo_to_cam))
    if key not in _views:
        m = calib.P2[:, :3]
        centre_rect = -np.linalg.solve(m, calib.P2[:, 3])
        centre = calib.rect_to_lidar(centre_rect[None, :])[0]
        rect_axes = calib.R0_rect @ calib.Tr_velo_to_cam[:, :3]  # LiDAR -> rectified rotation
        basis = np.linalg.inv(m).T @ rect_axes
        columns, rows = np.meshgrid(np.arange(IMAGE_WIDTH, dtype=float), np.arange(IMAGE_HEIGHT, dtype=float))
        rays = np.stack([columns, rows, np.ones_like(rows)], axis=-1) @ basis
        sky = np.clip(rays[..., 2] / np.linalg.norm(rays, axis=-1), 0.0, 0.4) / 0.4
        with np.errstate(divide="ignore"):
            ground = np.where(rays[..., 2] < -1e-6, (GROUND_Z - centre[2]) / rays[..., 2], np.inf)
        _views.clear()  # one rig at a time: a view is 20 MB
        _views[key] = View(centre, rays, basis, sky, ground)
    return _views[key]


def near_plane_clip(polygon: np.ndarray) -> np.ndarray:
    """The part of a convex polygon (N, 3), rectified frame, at z >= NEAR_PLANE (Sutherland-Hodgman)."""
    kept = []
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0)):
        if a[2] >= NEAR_PLANE:
            kept.append(a)
        if (a[2] >= NEAR_PLANE) != (b[2] >= NEAR_PLANE):
            kept.append(a + (NEAR_PLANE - a[2]) / (b[2] - a[2]) * (b - a))
    return np.array(kept).reshape(-1, 3)


class Canvas:
    """Colour and depth buffers, and the face rasterizer that fills them."""

    def __init__(self, view: View, calib: Calib, sun: np.ndarray) -> None:
        self.view, self.calib, self.sun = view, calib, sun
        self.colour = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH, 3))
        self.depth = np.full((IMAGE_HEIGHT, IMAGE_WIDTH), np.inf)

    def shade(self, normal: np.ndarray) -> float:
        """Sky light plus sun: tops are lit most, sides by how they face the sun."""
        return 0.62 + 0.38 * max(0.0, float(normal @ self.sun)) + 0.08 * float(normal[2])

    def draw(self, solid: Solid) -> None:
        if (self.calib.lidar_to_rect(solid.corners)[:, 2] < NEAR_PLANE).all():
            return  # wholly behind the camera: half the street is
        middle = solid.corners.mean(axis=0)
        for face in solid.faces:
            index = TOP_FACE if face == "top" else SIDE_FACES[face]
            self.draw_face(solid, face, solid.corners[list(index)], middle)

    def draw_face(self, solid: Solid, face: str, quad: np.ndarray, middle: np.ndarray) -> None:
        first, second = quad[1] - quad[0], quad[3] - quad[0]
        normal = np.cross(first, second)
        normal /= np.linalg.norm(normal)
        if normal @ (quad.mean(axis=0) - middle) < 0:
            normal = -normal
        if normal @ (self.view.centre - quad[0]) <= 1e-6:  # faces away from the camera
            return
        polygon = near_plane_clip(self.calib.lidar_to_rect(quad))
        if len(polygon) < 3:
            return
        uv = self.calib.project_rect_to_image(polygon)
        left, top = np.floor(uv.min(axis=0)).astype(int)
        right, bottom = np.ceil(uv.max(axis=0)).astype(int)
        left, top = max(left, 0), max(top, 0)
        right, bottom = min(right, IMAGE_WIDTH - 1), min(bottom, IMAGE_HEIGHT - 1)
        if right < left or bottom < top:
            return
        mask_image = Image.new("L", (right - left + 1, bottom - top + 1))
        ImageDraw.Draw(mask_image).polygon([(u - left, v - top) for u, v in uv], fill=1)
        # normal . ray is affine in the pixel (u, v): the face's depth over its box needs no ray lookup.
        slope = self.view.basis @ normal
        facing = slope[0] * np.arange(left, right + 1)[None, :] + slope[1] * np.arange(top, bottom + 1)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            window_depth = (normal @ (quad[0] - self.view.centre)) / (facing + slope[2])
        nearer = np.asarray(mask_image, dtype=bool) & (window_depth > 0)
        nearer &= window_depth < self.depth[top : bottom + 1, left : right + 1]
        rows, cols = np.nonzero(nearer)
        if not len(rows):
            return
        depth = window_depth[rows, cols]
        rows, cols = rows + top, cols + left
        points = self.view.centre + depth[:, None] * self.view.rays[rows, cols]
        first_unit, second_unit = first / np.linalg.norm(first), second / np.linalg.norm(second)
        offset = points - quad[0]
        surface = Surface(
            points,
            depth,
            offset @ first_unit,
            offset @ second_unit,
            face,
            (np.linalg.norm(first), np.linalg.norm(second)),
        )
        colour, keep = solid.material(surface)
        if keep is not None:
            rows, cols, depth, colour = rows[keep], cols[keep], depth[keep], colour[keep]
        if solid.shadow:
            self.colour[rows, cols] *= colour
            return
        self.colour[rows, cols] = colour * self.shade(normal)
        self.depth[rows, cols] = depth


def structure_solid(block: Block, street: Street, rng: np.random.Generator) -> Solid:
    return Solid(block_corners(block, street), structure_material(block, rng))


def block_corners(block: Block, street: Street) -> np.ndarray:
    x, y = street_to_lidar(np.array([[block.s, block.u]]), street)[0]
    bottom = np.array([x, y, GROUND_Z + block.bottom])
    return box_corners(bottom, block.length, block.width, block.top - block.bottom, block.yaw - street.heading)


def object_solids(obj: SceneObject, owner: int, street: Street, seed: int, index: int) -> list[Solid]:
    """An object's contact shadow and parts, coloured from a stream of its own (seed, frame, object)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, CAMERA_STREAM, owner + 1]))
    materials = OBJECT_MATERIALS[obj.kind](rng)
    x, y = street_to_lidar(np.array([[obj.s, obj.u]]), street)[0]
    yaw = obj.yaw - street.heading
    ground = np.array([x, y, GROUND_Z + obj.bottom + 0.01])
    spread = 0.5 if obj.kind == "Car" else 0.25
    shadow = box_corners(ground, obj.length + spread, obj.width + spread, 0.001, yaw)
    solids = [Solid(shadow, lambda surface: (paint(surface, np.full(3, 0.55)), None), ("top",), shadow=True)]
    for part, material in zip(object_blocks(obj, owner), materials):
        solids.append(Solid(block_corners(part, street), material))
    return solids


# The frame: sky, ground, structure, shadows, objects.


def sky_and_ground(canvas: Canvas, street: Street, rng: np.random.Generator) -> None:
    """Sky by row; asphalt (texture, lane marks and the zebra crossing) wherever a ray meets the road."""
    view = canvas.view
    top, horizon = rgb(SKY[0], rng), rgb(SKY[1], rng)
    canvas.colour[:] = horizon + (top - horizon) * view.sky[..., None]
    depth = view.ground
    ground = np.isfinite(depth)
    points = view.centre + depth[ground][:, None] * view.rays[ground]
    asphalt, salt = rgb((98, 98, 102), rng), int(rng.integers(1 << 30))
    s, u = points[:, 0], points[:, 1]
    noise = cell_noise(s, u, 0.35, salt) * 0.5 + cell_noise(s, u, 2.0, salt + 1) * 0.5
    colour = asphalt * (1.0 + 0.07 * noise * fade(depth[ground], 30.0))[:, None]
    marking = road_reflectivity(points, street) == MARKING
    colour[marking] = rgb((222, 222, 214), rng) * (0.9 + 0.1 * fade(depth[ground][marking], 40.0))[:, None]
    canvas.colour[ground] = colour * canvas.shade(np.array([0.0, 0.0, 1.0]))
    canvas.depth[ground] = depth[ground]


def sun_direction(rng: np.random.Generator) -> np.ndarray:
    elevation, azimuth = math.radians(rng.uniform(25.0, 65.0)), rng.uniform(-math.pi, math.pi)
    return np.array(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )


def render_camera(
    seed: int, index: int, street: Street, structure: list[Block], objects: dict[int, SceneObject], calib: Calib
) -> Image.Image:
    """image_2 of frame `index`: the street's structure and `objects` (by their index in the scene, which
    seeds their colours), occluded by depth.

    The frame draws its labelled objects only. The others are mostly hidden behind them anyway, but
    one in ten far pedestrians slips between the LiDAR's 1.25 deg columns and would stand in plain
    view without a label (KITTI would mark it DontCare; label_2 cannot gain lines without changing
    the LiDAR side), teaching the detector to miss what it sees.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, CAMERA_STREAM]))
    canvas = Canvas(make_view(calib), calib, sun_direction(rng))
    sky_and_ground(canvas, street, rng)
    for block in structure:
        canvas.draw(structure_solid(block, street, rng))
    solids = [solid for owner, obj in objects.items() for solid in object_solids(obj, owner, street, seed, index)]
    for solid in sorted(solids, key=lambda solid: not solid.shadow):  # shadows first, onto the ground only
        canvas.draw(solid)
    exposure = rng.uniform(0.9, 1.1) * rng.uniform(0.96, 1.04, 3)  # white balance and exposure per frame
    return Image.fromarray(np.clip(canvas.colour * exposure, 0, 255).round().astype(np.uint8))
