"""Materials: how each face of the camera's boxes looks, from the pixel's point on the face.

A material takes the face's pixels (`Surface`: their points, depth and where they sit on the face) and
returns their colours, and optionally which of them it covers (a bicycle is see-through). Texture is
fixed to the surface, not the screen, and fades with distance: far texture would only alias into
noise that PNG cannot squeeze. Each material draws its colours from the random stream it is given
when it is made, never while shading.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sample_data.world import FOLIAGE, KERB_HEIGHT, POLE, SIDEWALK, TRUNK, WALL, Block

# Palettes an instance picks from (then jitters): a class has many looks, none of them its own.
CAR_PAINTS = [(236, 236, 232), (190, 192, 196), (40, 42, 46), (150, 24, 28), (28, 52, 120), (96, 98, 102)]
CAR_PAINTS += [(30, 70, 52), (210, 180, 120), (120, 60, 30), (200, 200, 60)]
CLOTHES = [(30, 32, 40), (40, 60, 110), (170, 40, 40), (220, 220, 215), (90, 100, 60), (200, 150, 60)]
CLOTHES += [(120, 80, 150), (60, 120, 160), (150, 120, 100), (230, 120, 40)]
SKIN = [(224, 186, 150), (198, 150, 110), (150, 100, 70), (100, 68, 50)]
FACADES = [(196, 178, 150), (170, 96, 70), (214, 208, 196), (150, 150, 146), (220, 196, 140), (120, 110, 100)]
FACADES += [(180, 186, 190), (200, 150, 120)]
#: A face's pixels -> their colours (N, 3) and which of them the face covers (None: all).
Material = Callable[["Surface"], tuple[np.ndarray, np.ndarray | None]]


@dataclass
class Surface:
    """The pixels of one face being shaded: their points and where they sit on the face."""

    points: np.ndarray  # (N, 3) LiDAR frame
    depth: np.ndarray  # (N,) rectified depth from the camera
    along: np.ndarray  # (N,) metres along the face's first edge
    up: np.ndarray  # (N,) metres along its second edge (height above the box bottom for side faces)
    face: str  # top, left, rear, right or front
    size: tuple[float, float]  # the face's extent along its two edges


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


def rgb(values: tuple[int, int, int] | np.ndarray, jitter: np.random.Generator | None = None) -> np.ndarray:
    colour = np.asarray(values, dtype=float)
    if jitter is not None:
        colour = colour * jitter.uniform(0.88, 1.12) + jitter.normal(0.0, 6.0, 3)
    return np.clip(colour, 0.0, 255.0)


def pick(palette: list[tuple[int, int, int]], rng: np.random.Generator) -> np.ndarray:
    """A palette colour, jittered; one in three is any hue instead, so no two instances need share one."""
    if rng.random() < 1 / 3:
        hue, saturation, value = rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.25, 0.95)
        return np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255.0
    return rgb(palette[int(rng.integers(len(palette)))], rng)


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


def structure_material(block: Block, rng: np.random.Generator) -> Material:
    """A static block's material, told apart by the surface constants the scene gives each kind."""
    salt = int(rng.integers(1 << 30))
    if block.reflectivity == SIDEWALK and block.top == KERB_HEIGHT:
        return sidewalk_material(rng)
    if block.reflectivity == POLE:
        return flat_material(rgb((120, 124, 128), rng), 1.0, 0.0, salt)
    if block.reflectivity == TRUNK:
        return flat_material(rgb((92, 70, 50), rng), 0.2, 0.1, salt)
    if block.reflectivity == FOLIAGE:
        return flat_material(rgb((62, 104, 48), rng), 0.35, 0.25, salt)
    if block.reflectivity == WALL and math.isclose(block.width, 0.2):
        return flat_material(rgb((150, 140, 128), rng), 0.3, 0.08, salt)
    return building_material(rng)


# Objects: the parts `scene.object_blocks` gives the ray caster, coloured per instance.


def car_materials(rng: np.random.Generator) -> list[Material]:
    """Wheels, body (head and tail lights on its ends), cabin (glass all round, roof in the paint)."""
    paint_colour = pick(CAR_PAINTS, rng)
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
        pick(CLOTHES, rng),
        pick(CLOTHES, rng),
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
    frame_colour = pick(CAR_PAINTS, rng)
    trousers = pick(CLOTHES, rng)
    rider = person_materials(rng)[1]
    helmet = pick(CLOTHES, rng)

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
