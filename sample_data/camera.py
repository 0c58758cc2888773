"""The camera: image_2 rendered from the very scene the LiDAR swept, through the same calibration.

Why: a detector trained on flat class-coloured rectangles learns colour, not objects. Here every solid
of the frame (buildings, walls, poles, trees, sidewalks and each object's parts: a car's wheels, body
and cabin, a pedestrian's legs and torso, a cyclist's bicycle and rider) is the upright box the ray
caster hits, so what the camera shows is where the LiDAR found it and where the label's 2D box says.

How, in plain numpy and Pillow (no renderer is installed, and a box world needs none): each face that
looks at camera 2 is cut at the near plane, projected with P2 · R0_rect · Tr_velo_to_cam, filled by
Pillow's polygon fill, and depth-tested per pixel against a z-buffer; a planar face's depth is exact
per pixel from its plane, so occlusion is right wherever faces cross. Faces are flat-shaded by a sun
and get their texture from each pixel's point on the face (windows on facades, paving, asphalt with
lane marks from `raycast.road_reflectivity`, so camera and LiDAR agree on them). Every colour comes
from the image's own random streams, one per frame and one per object (`CAMERA_STREAM`), so the
cloud and the labels stay bit for bit what they were, and an object's colour does not depend on
the others. Textures fade with distance and there is no pixel noise: PNG keeps each image small.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from mmloop.datasets.kitti.files import Calib
from sample_data.labels import box_corners
from sample_data.raycast import road_reflectivity
from sample_data.scene import object_blocks, street_to_lidar
from sample_data.world import (
    FOLIAGE,
    GROUND_Z,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    KERB_HEIGHT,
    MARKING,
    NEAR_PLANE,
    POLE,
    SIDEWALK,
    TRUNK,
    WALL,
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

CAR_PAINTS = [(236, 236, 232), (190, 192, 196), (40, 42, 46), (150, 24, 28), (28, 52, 120), (96, 98, 102)]
CAR_PAINTS += [(30, 70, 52), (210, 180, 120), (120, 60, 30), (200, 200, 60)]
CLOTHES = [(30, 32, 40), (40, 60, 110), (170, 40, 40), (220, 220, 215), (90, 100, 60), (200, 150, 60)]
CLOTHES += [(120, 80, 150), (60, 120, 160), (150, 120, 100), (230, 120, 40)]
SKIN = [(224, 186, 150), (198, 150, 110), (150, 100, 70), (100, 68, 50)]
FACADES = [(196, 178, 150), (170, 96, 70), (214, 208, 196), (150, 150, 146), (220, 196, 140), (120, 110, 100)]
FACADES += [(180, 186, 190), (200, 150, 120)]
SKY = ((96, 146, 206), (200, 218, 234))  # top, horizon
Material = Callable[["Surface"], tuple[np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class View:
    """Camera 2 in the LiDAR frame: its centre and one ray per pixel, scaled to unit rectified depth."""

    centre: np.ndarray  # (3,)
    rays: np.ndarray  # (H, W, 3): a pixel sees centre + depth * ray


@dataclass
class Surface:
    """The pixels of one face being shaded: their points and where they sit on the face."""

    points: np.ndarray  # (N, 3) LiDAR frame
    depth: np.ndarray  # (N,) rectified depth from the camera
    along: np.ndarray  # (N,) metres along the face's first edge
    up: np.ndarray  # (N,) metres along its second edge (height above the box bottom for side faces)
    face: str  # top, left, rear, right or front
    size: tuple[float, float]  # the face's extent along its two edges


@dataclass
class Solid:
    """A box to draw: its corners (8, 3) in the LiDAR frame and how its faces look."""

    corners: np.ndarray
    material: Material
    faces: tuple[str, ...] = ("top", *SIDE_FACES)
    shadow: bool = False  # darkens what is under it instead of painting (contact shadows)


def make_view(calib: Calib) -> View:
    """Per-pixel rays of camera 2: P2 = M [I | t] puts its centre at -t in the rectified frame."""
    m = calib.P2[:, :3]
    centre_rect = -np.linalg.solve(m, calib.P2[:, 3])
    columns, rows = np.meshgrid(np.arange(IMAGE_WIDTH, dtype=float), np.arange(IMAGE_HEIGHT, dtype=float))
    pixels = np.stack([columns, rows, np.ones_like(rows)], axis=-1)
    rays_rect = pixels @ np.linalg.inv(m).T
    rect_axes = calib.R0_rect @ calib.Tr_velo_to_cam[:, :3]  # LiDAR -> rectified rotation
    return View(centre=calib.rect_to_lidar(centre_rect[None, :])[0], rays=rays_rect @ rect_axes)


def cell_noise(a: np.ndarray, b: np.ndarray, cell: float, salt: int) -> np.ndarray:
    """A hash of the (a, b) grid cell, in [-1, 1]: texture fixed to the surface, not to the screen."""
    i = np.floor(a / cell).astype(np.int64).astype(np.uint64)
    j = np.floor(b / cell).astype(np.int64).astype(np.uint64)
    h = (i * np.uint64(73856093)) ^ (j * np.uint64(19349663)) ^ np.uint64(salt & 0xFFFFFFFF)
    h = (h ^ (h >> np.uint64(13))) * np.uint64(1274126177)
    h = h ^ (h >> np.uint64(16))
    return (h & np.uint64(0xFFFF)).astype(float) / 32767.5 - 1.0


def fade(depth: np.ndarray, reach: float) -> np.ndarray:
    """Texture contrast falling to nothing at `reach` metres: far texture would only alias into noise."""
    return np.clip(1.0 - depth / reach, 0.0, 1.0)


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
        rows, cols = np.nonzero(np.asarray(mask_image))
        rows, cols = rows + top, cols + left
        rays = self.view.rays[rows, cols]
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = (normal @ (quad[0] - self.view.centre)) / (rays @ normal)
        nearer = (depth > 0) & (depth < self.depth[rows, cols])
        rows, cols, rays, depth = rows[nearer], cols[nearer], rays[nearer], depth[nearer]
        if not len(depth):
            return
        points = self.view.centre + depth[:, None] * rays
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


def rgb(values: tuple[int, int, int] | np.ndarray, jitter: np.random.Generator | None = None) -> np.ndarray:
    colour = np.asarray(values, dtype=float)
    if jitter is not None:
        colour = colour * jitter.uniform(0.88, 1.12) + jitter.normal(0.0, 6.0, 3)
    return np.clip(colour, 0.0, 255.0)


def paint(surface: Surface, colour: np.ndarray) -> np.ndarray:
    return np.broadcast_to(colour, (len(surface.depth), 3)).copy()


def textured(surface: Surface, colour: np.ndarray, cell: float, strength: float, salt: int) -> np.ndarray:
    noise = cell_noise(surface.along, surface.up, cell, salt) * fade(surface.depth, 25.0)
    return paint(surface, colour) * (1.0 + strength * noise)[:, None]


# Structure: buildings, walls, poles, trees, sidewalks.


def building_material(rng: np.random.Generator) -> Material:
    """A facade with storeys of windows (some lit, some with blinds) and a darker roof."""
    wall, glass = rgb(FACADES[int(rng.integers(len(FACADES)))], rng), rgb((52, 64, 80), rng)
    storey, spacing = float(rng.uniform(2.8, 3.4)), float(rng.uniform(2.2, 3.2))
    window_width, window_height = float(rng.uniform(0.45, 0.65)) * spacing, float(rng.uniform(1.2, 1.7))
    shop = rng.random() < 0.4  # shop windows on the ground floor
    salt = int(rng.integers(1 << 30))

    def material(surface: Surface) -> tuple[np.ndarray, np.ndarray | None]:
        if surface.face == "top":
            return paint(surface, wall * 0.55), None
        colour = textured(surface, wall, 0.5, 0.05, salt)
        within = np.mod(surface.along, spacing) - (spacing - window_width) / 2
        floor, level = np.floor(surface.up / storey), np.mod(surface.up, storey)
        window = (within >= 0) & (within < window_width) & (level > 0.9) & (level < 0.9 + window_height)
        window &= (surface.up < surface.size[1] - 0.6) & (surface.along > 0.5) & (surface.along < surface.size[0] - 0.5)
        if shop:
            window = np.where(floor == 0, (level > 0.4) & (level < 2.6) & (within > -0.3), window)
        lit = cell_noise(np.floor(surface.along / spacing), floor, 1.0, salt + 1)
        pane = glass * (1.0 + 0.25 * lit)[:, None] + np.where(lit > 0.7, 90.0, 0.0)[:, None]
        colour[window] = pane[window]
        return colour, None

    return material


def flat_material(colour: np.ndarray, cell: float, strength: float, salt: int) -> Material:
    def material(surface: Surface) -> tuple[np.ndarray, np.ndarray | None]:
        return textured(surface, colour, cell, strength, salt), None

    return material


def sidewalk_material(rng: np.random.Generator) -> Material:
    """Paving slabs on top, a lighter kerb stone on the road side."""
    stone, slab = rgb((168, 164, 156), rng), float(rng.uniform(0.5, 0.8))
    salt = int(rng.integers(1 << 30))

    def material(surface: Surface) -> tuple[np.ndarray, np.ndarray | None]:
        if surface.face != "top":
            return paint(surface, stone * 1.1), None
        colour = textured(surface, stone, slab, 0.06, salt)
        joint = (np.mod(surface.along, slab) < 0.04) | (np.mod(surface.up, slab) < 0.04)
        colour[joint] *= 1.0 - 0.25 * fade(surface.depth[joint], 30.0)[:, None]
        return colour, None

    return material


def structure_solid(block: Block, street: Street, rng: np.random.Generator) -> Solid:
    """The block's box and its material, told apart by the surface constants the scene gives them."""
    corners = block_corners(block, street)
    salt = int(rng.integers(1 << 30))
    if block.reflectivity == SIDEWALK and block.top == KERB_HEIGHT:
        return Solid(corners, sidewalk_material(rng))
    if block.reflectivity == POLE:
        return Solid(corners, flat_material(rgb((120, 124, 128), rng), 1.0, 0.0, salt))
    if block.reflectivity == TRUNK:
        return Solid(corners, flat_material(rgb((92, 70, 50), rng), 0.2, 0.1, salt))
    if block.reflectivity == FOLIAGE:
        return Solid(corners, flat_material(rgb((62, 104, 48), rng), 0.35, 0.25, salt))
    if block.reflectivity == WALL and math.isclose(block.width, 0.2):
        return Solid(corners, flat_material(rgb((150, 140, 128), rng), 0.3, 0.08, salt))
    return Solid(corners, building_material(rng))


def block_corners(block: Block, street: Street) -> np.ndarray:
    x, y = street_to_lidar(np.array([[block.s, block.u]]), street)[0]
    bottom = np.array([x, y, GROUND_Z + block.bottom])
    return box_corners(bottom, block.length, block.width, block.top - block.bottom, block.yaw - street.heading)


# Objects: the parts `scene.object_blocks` gives the ray caster, coloured per instance.


def car_materials(rng: np.random.Generator) -> list[Material]:
    """Wheels, body (head and tail lights on its ends), cabin (glass all round, roof in the paint)."""
    paint_colour = rgb(CAR_PAINTS[int(rng.integers(len(CAR_PAINTS)))], rng)
    glass, tyre = rgb((38, 44, 52), rng), rgb((24, 24, 26))

    def body(surface: Surface) -> tuple[np.ndarray, np.ndarray | None]:
        colour = paint(surface, paint_colour)
        if surface.face in ("front", "rear"):
            corner = np.minimum(surface.along, surface.size[0] - surface.along)
            lamp = (corner > 0.08) & (corner < 0.4) & (surface.up > 0.55 * surface.size[1])
            colour[lamp] = (235, 232, 200) if surface.face == "front" else (190, 20, 24)
            grille = (corner > 0.5) & (surface.up < 0.45 * surface.size[1])
            colour[grille] *= 0.45
        return colour, None

    def cabin(surface: Surface) -> tuple[np.ndarray, np.ndarray | None]:
        if surface.face == "top":
            return paint(surface, paint_colour), None
        colour = paint(surface, glass)
        frame = (surface.up < 0.06) | (surface.up > surface.size[1] - 0.07)
        frame |= (surface.along < 0.08) | (surface.along > surface.size[0] - 0.08)
        colour[frame] = paint_colour
        return colour, None

    def wheel(surface: Surface) -> tuple[np.ndarray, np.ndarray | None]:
        return paint(surface, tyre), None

    return [wheel, wheel, body, cabin]


def person_materials(rng: np.random.Generator) -> list[Material]:
    """Legs in trousers; a torso in a shirt with the head on top (skin, then hair)."""
    trousers, shirt = (
        rgb(CLOTHES[int(rng.integers(len(CLOTHES)))], rng),
        rgb(CLOTHES[int(rng.integers(len(CLOTHES)))], rng),
    )
    skin, hair = rgb(SKIN[int(rng.integers(len(SKIN)))], rng), rgb((40, 30, 24), rng)

    def legs(surface: Surface) -> tuple[np.ndarray, np.ndarray | None]:
        return paint(surface, trousers), None

    def torso(surface: Surface) -> tuple[np.ndarray, np.ndarray | None]:
        if surface.face == "top":
            return paint(surface, hair), None
        colour = paint(surface, shirt)
        head = surface.up > surface.size[1] - 0.26
        colour[head] = skin
        colour[surface.up > surface.size[1] - 0.08] = hair
        return colour, None

    return [legs, torso]


def cyclist_materials(rng: np.random.Generator) -> list[Material]:
    """A bicycle (two wheels and a frame, see-through elsewhere) and its rider (shirt, head, helmet)."""
    frame_colour = rgb(CAR_PAINTS[int(rng.integers(len(CAR_PAINTS)))], rng)
    trousers = rgb(CLOTHES[int(rng.integers(len(CLOTHES)))], rng)
    rider = person_materials(rng)[1]
    helmet = rgb(CLOTHES[int(rng.integers(len(CLOTHES)))], rng)

    def bicycle(surface: Surface) -> tuple[np.ndarray, np.ndarray | None]:
        length, height = surface.size
        radius = min(0.34, height / 2)
        if surface.face in ("left", "right"):
            hubs = np.array([radius, length - radius])
            ring = np.zeros(len(surface.depth), dtype=bool)
            for hub in hubs:
                distance = np.hypot(surface.along - hub, surface.up - radius)
                ring |= (distance < radius) & (distance > radius - 0.07)
            bar = np.abs(surface.up - (radius + (surface.along - radius) * 0.35)) < 0.05
            bar &= (surface.along > radius) & (surface.along < length - radius)
            # The rider's legs reach down from the saddle to the pedals.
            legs = (np.abs(surface.along - length / 2) < 0.09) & (surface.up > radius) & (surface.up < height)
            colour = paint(surface, frame_colour)
            colour[ring] = (20, 20, 22)
            colour[legs] = trousers
            return colour, ring | bar | legs
        # Seen end-on a bicycle is a tyre and the handlebar.
        keep = (np.abs(surface.along - length / 2) < 0.04) | (surface.up > height - 0.05)
        return paint(surface, np.array((20.0, 20.0, 22.0))), keep

    def rider_with_helmet(surface: Surface) -> tuple[np.ndarray, np.ndarray | None]:
        colour, keep = rider(surface)
        colour[(surface.up > surface.size[1] - 0.1) | (surface.face == "top")] = helmet
        return colour, keep

    return [bicycle, rider_with_helmet]


OBJECT_MATERIALS = {"Car": car_materials, "Pedestrian": person_materials, "Cyclist": cyclist_materials}


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
    rays, centre = canvas.view.rays, canvas.view.centre
    top, horizon = rgb(SKY[0], rng), rgb(SKY[1], rng)
    height = np.clip(rays[..., 2] / np.linalg.norm(rays, axis=-1), 0.0, 0.4)[..., None] / 0.4
    canvas.colour[:] = horizon + (top - horizon) * height
    with np.errstate(divide="ignore"):
        depth = np.where(rays[..., 2] < -1e-6, (GROUND_Z - centre[2]) / rays[..., 2], np.inf)
    ground = np.isfinite(depth)
    points = centre + depth[ground][:, None] * rays[ground]
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
    seed: int, index: int, street: Street, structure: list[Block], objects: list[SceneObject], calib: Calib
) -> Image.Image:
    """image_2 of frame `index`: the street's structure and every object of the scene, occluded by depth.

    Objects no LiDAR point reached are drawn too (they are in the scene), as KITTI's images show
    unlabelled objects; they are the ones hidden behind others, mostly.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, CAMERA_STREAM]))
    canvas = Canvas(make_view(calib), calib, sun_direction(rng))
    sky_and_ground(canvas, street, rng)
    for block in structure:
        canvas.draw(structure_solid(block, street, rng))
    solids = [solid for owner, obj in enumerate(objects) for solid in object_solids(obj, owner, street, seed, index)]
    for solid in sorted(solids, key=lambda solid: not solid.shadow):  # shadows first, onto the ground only
        canvas.draw(solid)
    exposure = rng.uniform(0.9, 1.1) * rng.uniform(0.96, 1.04, 3)  # white balance and exposure per frame
    return Image.fromarray(np.clip(canvas.colour * exposure, 0, 255).round().astype(np.uint8))
