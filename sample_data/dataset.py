"""Frames and dataset: each frame from its own random stream, the train/val split, and the KITTI layout on disk."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mmloop.datasets.kitti.files import (
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
from sample_data.calib import make_calib
from sample_data.camera import render_camera
from sample_data.labels import make_label, occlusion_level
from sample_data.raycast import sweep
from sample_data.scene import (
    object_blocks,
    obstacle_footprints,
    place_objects,
    sample_street,
    solids_in_range,
    street_structure,
)
from sample_data.world import IMAGE_HEIGHT, IMAGE_WIDTH, NEAR_PLANE, Block, SceneObject, Street

DEFAULT_FRAMES = 48


@dataclass(frozen=True)
class Frame:
    """One generated frame, ready to write: the cloud as stored in velodyne/*.bin, its labels and image."""

    cloud: np.ndarray  # (N, 4) float32
    labels: list[Label]
    image: Image.Image


@dataclass(frozen=True)
class Scene:
    """What a frame shows: the street, its static blocks, and the labelled-class objects on it."""

    street: Street
    structure: list[Block]
    objects: list[SceneObject]


def frame_rng(seed: int, index: int) -> np.random.Generator:
    """Frame `index`'s own random stream, so a frame never depends on how many come before it."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def make_scene(rng: np.random.Generator) -> Scene:
    """The street, its structure and the objects on it: the first draws of a frame's stream."""
    street = sample_street(rng)
    structure = street_structure(rng, street)
    return Scene(street, structure, place_objects(rng, street, obstacle_footprints(structure)))


def generate_frame(seed: int, index: int, calib: Calib) -> Frame:
    """One frame: the scene, the sweep and labels from the frame's stream, then the camera's image."""
    rng = frame_rng(seed, index)
    scene = make_scene(rng)
    street, structure, objects = scene.street, scene.structure, scene.objects
    blocks = structure + [part for owner, obj in enumerate(objects) for part in object_blocks(obj, owner)]
    scan = sweep(rng, street, solids_in_range(blocks, street), len(objects))

    seen = image_mask(scan.cloud[:, :3], calib, IMAGE_WIDTH, IMAGE_HEIGHT, NEAR_PLANE)
    labels = []
    labelled: dict[int, SceneObject] = {}  # what the camera draws, by scene index
    for owner, obj in enumerate(objects):
        occluded = occlusion_level(int(scan.object_rays[owner]), int(scan.object_first[owner]))
        label = make_label(obj, street, calib, occluded)
        if label is None:
            continue
        own_points = scan.cloud[(scan.hit_owner == owner) & seen]
        # As in KITTI: an object image_2 sees but no point reached is not labelled.
        if label_box_mask(own_points, label, calib).any():
            labels.append(label)
            labelled[owner] = obj
    labels.sort(key=lambda label: label.location[2])
    # Last, and from streams of its own: the image never moves the cloud's or the labels' draws.
    image = render_camera(seed, index, street, structure, labelled, calib)
    return Frame(cloud=scan.cloud.astype(np.float32), labels=labels, image=image)


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
            log(
                f"mmloop sample_data: frame {index + 1}/{frames}: "
                f"{len(frame.cloud)} points, {len(frame.labels)} objects"
            )

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
