"""Synthetic nuScenes-format sample: seeded drives down a street, seen by a simulated 32-beam roof LiDAR.

Why: a nuScenes/CenterPoint loop needs what the KITTI loop has, a dataset small enough for DVC and
a CPU, in the layout its tools read (nuscenes-devkit's `NuScenes(version, dataroot)`), that we may
redistribute. What: `generate_nuscenes` writes `<version>/*.json` (the 13 tables), the LiDAR
clouds as `.pcd.bin` (float32 x, y, z, intensity 0-255, ring) under `samples/LIDAR_TOP` (keyframes,
2 Hz) and `sweeps/LIDAR_TOP` (the sweeps between, 20 Hz in all), and a placeholder map mask per
location under `maps/`; `python -m sample_data.nuscenes --out DIR` does the same.

Each scene is a `drive`: the KITTI generator's street and objects, some of them moving, and the ego
car driving along the street; every sweep is ray cast from where the ego is then (`drive.cast`).
Each scene sits at its own offset and yaw in the global frame; the LiDAR is mounted 0.94 m ahead of
the ego origin, 1.73 m above the road, axes as the ego's (identity rotation). Annotations follow
nuScenes: one per keyframe for every object at least one point of the keyframe's cloud hit, box
centre in the global frame, size as width, length, height, yaw as a quaternion, linked per instance.
Only three of nuScenes' classes occur (Car: vehicle.car, Pedestrian: human.pedestrian.adult,
Cyclist: vehicle.bicycle with cycle.with_rider); the category and attribute tables still list all
of nuScenes v1.0. Not modelled: cameras and radars, the sweep's rolling shutter (each sweep is a
snapshot), the map's content (the mask is empty), lidarseg.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from sample_data.dataset import refuse_existing
from sample_data.drive import AZIMUTH_STEPS, Drive, cast, make_drive
from sample_data.raycast import Sweep
from sample_data.world import SENSOR_HEIGHT

SWEEP_HZ = 20
KEYFRAME_EVERY = 10  # sweeps, so keyframes come at 2 Hz as in nuScenes
LIDAR = "LIDAR_TOP"
LIDAR_TRANSLATION = [0.94, 0.0, SENSOR_HEIGHT]  # metres from the ego origin (on the road, below the car)
FIRST_TIMESTAMP = 1_533_151_603_547_590  # microseconds; scenes start a minute apart from here
LOCATIONS = ("singapore-onenorth", "boston-seaport")
CATEGORIES = (
    "human.pedestrian.adult",
    "human.pedestrian.child",
    "human.pedestrian.wheelchair",
    "human.pedestrian.stroller",
    "human.pedestrian.personal_mobility",
    "human.pedestrian.police_officer",
    "human.pedestrian.construction_worker",
    "animal",
    "vehicle.car",
    "vehicle.motorcycle",
    "vehicle.bicycle",
    "vehicle.bus.bendy",
    "vehicle.bus.rigid",
    "vehicle.truck",
    "vehicle.construction",
    "vehicle.emergency.ambulance",
    "vehicle.emergency.police",
    "vehicle.trailer",
    "movable_object.barrier",
    "movable_object.trafficcone",
    "movable_object.pushable_pullable",
    "movable_object.debris",
    "static_object.bicycle_rack",
)
ATTRIBUTES = (
    "vehicle.moving",
    "vehicle.stopped",
    "vehicle.parked",
    "cycle.with_rider",
    "cycle.without_rider",
    "pedestrian.sitting_lying_down",
    "pedestrian.standing",
    "pedestrian.moving",
)
# nuScenes' visibility levels: the share of the object visible, binned; their tokens are "1".."4".
VISIBILITIES = (("1", "v0-40"), ("2", "v40-60"), ("3", "v60-80"), ("4", "v80-100"))
CATEGORY = {"Car": "vehicle.car", "Pedestrian": "human.pedestrian.adult", "Cyclist": "vehicle.bicycle"}
ATTRIBUTE = {  # kind -> (moving, still)
    "Car": ("vehicle.moving", "vehicle.parked"),
    "Pedestrian": ("pedestrian.moving", "pedestrian.standing"),
    "Cyclist": ("cycle.with_rider", "cycle.with_rider"),
}


def token(*parts: object) -> str:
    """A 32-hex token from a record's name: the same arguments always give the same tables."""
    return hashlib.md5("/".join(str(part) for part in parts).encode()).hexdigest()


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """Scene `index`'s own stream (tagged apart from the KITTI frames' streams of the same seed)."""
    return np.random.default_rng(np.random.SeedSequence([seed, index, 0x6E5C]))


def yaw_quaternion(yaw: float) -> list[float]:
    """[w, x, y, z] of a rotation by yaw about z."""
    return [round(math.cos(yaw / 2), 8), 0.0, 0.0, round(math.sin(yaw / 2), 8)]


def visibility_token(scan: Sweep, owner: int) -> str:
    """The level of the share of the object's rays that reached it first."""
    rays = int(scan.object_rays[owner])
    visible = int(scan.object_first[owner]) / rays if rays else 0.0
    return VISIBILITIES[int(np.searchsorted([0.4, 0.6, 0.8], visible, side="right"))][0]


def cloud_rows(scan: Sweep, azimuth_steps: int) -> np.ndarray:
    """The .pcd.bin rows: x, y, z in the LiDAR frame, intensity scaled to 0-255 as nuScenes', ring."""
    ring = scan.ray // azimuth_steps
    return np.column_stack([scan.cloud[:, :3], scan.cloud[:, 3] * 255.0, ring]).astype(np.float32)


def link(records: list[dict]) -> list[dict]:
    """Fill prev and next along the list ("" at both ends), as every nuScenes chain is."""
    for before, after in zip(records, records[1:]):
        before["next"], after["prev"] = after["token"], before["token"]
    return records


class Tables:
    """The 13 tables as lists of records, filled scene by scene."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.sensor_token = token("sensor", LIDAR)
        self.calibrated_token = token(seed, "calibrated_sensor", LIDAR)
        self.rows: dict[str, list[dict]] = {
            "category": [{"token": token("category", n), "name": n, "description": n} for n in CATEGORIES],
            "attribute": [{"token": token("attribute", n), "name": n, "description": n} for n in ATTRIBUTES],
            "visibility": [{"token": t, "level": level, "description": level} for t, level in VISIBILITIES],
            "sensor": [{"token": self.sensor_token, "channel": LIDAR, "modality": "lidar"}],
            "calibrated_sensor": [
                {
                    "token": self.calibrated_token,
                    "sensor_token": self.sensor_token,
                    "translation": LIDAR_TRANSLATION,
                    "rotation": [1.0, 0.0, 0.0, 0.0],
                    "camera_intrinsic": [],
                }
            ],
            **{name: [] for name in ("instance", "ego_pose", "log", "scene", "sample", "sample_data")},
            "sample_annotation": [],
            "map": [],
        }

    def add_scene(self, root: Path, index: int, drive: Drive, rng: np.random.Generator, sweeps: int) -> Counter[str]:
        """Ray cast and record one scene: its log, samples, sweeps, ego poses and annotations."""
        seed, rows = self.seed, self.rows
        name = f"scene-{index + 1:04d}"
        location = LOCATIONS[index % len(LOCATIONS)]
        logfile = f"n000-2018-08-01-12-00-00+0800-{name}"
        log_token = token(seed, "log", name)
        rows["log"].append(
            {
                "token": log_token,
                "logfile": logfile,
                "vehicle": "n000",
                "date_captured": "2018-08-01",
                "location": location,
            }
        )
        # The scene's place in the global frame: street (s, u) rotated by yaw, then offset.
        yaw = float(rng.uniform(-math.pi, math.pi))
        offset = rng.uniform(300.0, 2000.0, size=2)
        rotation = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])

        def to_global(s: float, u: float, z: float) -> list[float]:
            x, y = rotation @ np.array([s, u]) + offset
            return [round(float(x), 4), round(float(y), 4), round(z, 4)]

        samples, sweep_rows, seen = [], [], Counter()
        tracks: dict[int, list[dict]] = {}  # owner -> its annotations in keyframe order
        start = FIRST_TIMESTAMP + index * 60_000_000
        for step in range(sweeps):
            t = step / SWEEP_HZ
            timestamp = start + step * 1_000_000 // SWEEP_HZ
            key = step % KEYFRAME_EVERY == 0
            if key:
                samples.append({"token": token(seed, name, "sample", step), "timestamp": timestamp})
            scan = cast(rng, drive, t)
            folder = "samples" if key else "sweeps"
            filename = f"{folder}/{LIDAR}/{logfile}__{LIDAR}__{timestamp}.pcd.bin"
            (root / filename).write_bytes(cloud_rows(scan, AZIMUTH_STEPS).tobytes())
            pose_token = token(seed, name, "ego_pose", step)
            lidar = drive.ego_s(t)
            rows["ego_pose"].append(
                {
                    "token": pose_token,
                    "timestamp": timestamp,
                    "rotation": yaw_quaternion(yaw),
                    "translation": to_global(lidar - LIDAR_TRANSLATION[0], drive.street.ego_u, 0.0),
                }
            )
            sweep_rows.append(
                {
                    "token": token(seed, name, "sample_data", step),
                    "sample_token": samples[-1]["token"],  # a sweep belongs to the keyframe it follows
                    "ego_pose_token": pose_token,
                    "calibrated_sensor_token": self.calibrated_token,
                    "timestamp": timestamp,
                    "fileformat": "pcd",
                    "is_key_frame": key,
                    "height": 0,
                    "width": 0,
                    "filename": filename,
                    "prev": "",
                    "next": "",
                }
            )
            if not key:
                continue
            for owner, mover in enumerate(drive.movers):
                points = int((scan.hit_owner == owner).sum())
                if points == 0:
                    continue
                obj = mover.at(t)
                attribute = ATTRIBUTE[obj.kind][0 if mover.moving else 1]
                tracks.setdefault(owner, []).append(
                    {
                        "token": token(seed, name, "sample_annotation", owner, step),
                        "sample_token": samples[-1]["token"],
                        "instance_token": token(seed, name, "instance", owner),
                        "visibility_token": visibility_token(scan, owner),
                        "attribute_tokens": [token("attribute", attribute)],
                        "translation": to_global(obj.s, obj.u, obj.bottom + obj.height / 2),
                        "size": [round(obj.width, 3), round(obj.length, 3), round(obj.height, 3)],
                        "rotation": yaw_quaternion(obj.yaw + yaw),
                        "prev": "",
                        "next": "",
                        "num_lidar_pts": points,
                        "num_radar_pts": 0,
                    }
                )
        scene_token = token(seed, name, "scene")
        for sample in link([{**s, "prev": "", "next": "", "scene_token": scene_token} for s in samples]):
            rows["sample"].append(sample)
        rows["sample_data"] += link(sweep_rows)
        for owner, track in sorted(tracks.items()):
            rows["sample_annotation"] += link(track)
            rows["instance"].append(
                {
                    "token": track[0]["instance_token"],
                    "category_token": token("category", CATEGORY[drive.movers[owner].obj.kind]),
                    "nbr_annotations": len(track),
                    "first_annotation_token": track[0]["token"],
                    "last_annotation_token": track[-1]["token"],
                }
            )
            seen[drive.movers[owner].obj.kind] += len(track)
        rows["scene"].append(
            {
                "token": scene_token,
                "log_token": log_token,
                "nbr_samples": len(samples),
                "first_sample_token": samples[0]["token"],
                "last_sample_token": samples[-1]["token"],
                "name": name,
                "description": f"synthetic street, {drive.street.lanes} lane(s) each way, "
                f"ego at {drive.ego_speed:.1f} m/s, {sum(m.moving for m in drive.movers)} objects moving",
            }
        )
        return seen

    def write(self, root: Path, version: str) -> None:
        """The tables as JSON, and one map record (with its placeholder mask) per location used."""
        logs = self.rows["log"]
        for location in sorted({log["location"] for log in logs}):
            map_token = token("map", location)
            filename = f"maps/{map_token}.png"
            # nuScenes' masks are the drivable area at 0.1 m per pixel; this one is a small empty stand-in.
            Image.new("L", (64, 64), 0).save(root / filename, format="PNG")
            log_tokens = [log["token"] for log in logs if log["location"] == location]
            self.rows["map"].append(
                {"token": map_token, "log_tokens": log_tokens, "category": "semantic_prior", "filename": filename}
            )
        (root / version).mkdir(parents=True, exist_ok=True)
        for table, records in self.rows.items():
            (root / version / f"{table}.json").write_text(json.dumps(records, indent=1) + "\n")


def generate_nuscenes(
    root: Path,
    scenes: int = 2,
    seconds: float = 8.0,
    seed: int = 0,
    version: str = "v1.0-mini",
    log: Callable[[str], None] = print,
) -> dict:
    """Write a synthetic nuScenes-layout dataset to `root` (new or empty) and return its summary."""
    root = Path(root)
    sweeps = round(seconds * SWEEP_HZ)
    if scenes < 1:
        raise ValueError(f"scenes must be at least 1, got {scenes}")
    if sweeps < KEYFRAME_EVERY:
        raise ValueError(f"seconds must be at least {KEYFRAME_EVERY / SWEEP_HZ}, got {seconds}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    refuse_existing(root)
    for folder in ("samples", "sweeps"):
        (root / folder / LIDAR).mkdir(parents=True, exist_ok=True)
    (root / "maps").mkdir(exist_ok=True)

    started = time.perf_counter()
    tables = Tables(seed)
    annotations: Counter[str] = Counter()
    for index in range(scenes):
        rng = scene_rng(seed, index)
        drive = make_drive(rng, sweeps / SWEEP_HZ)
        seen = tables.add_scene(root, index, drive, rng, sweeps)
        annotations.update(seen)
        log(
            f"mmloop sample_data nuscenes: scene {index + 1}/{scenes}: {sweeps} sweeps, "
            f"{len(drive.movers)} objects ({sum(m.moving for m in drive.movers)} moving), "
            f"{sum(seen.values())} annotations"
        )
    tables.write(root, version)
    total_bytes = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    summary = {
        "scenes": scenes,
        "samples": len(tables.rows["sample"]),
        "sweeps": len(tables.rows["sample_data"]),
        "annotations": {CATEGORY[kind]: n for kind, n in sorted(annotations.items())},
        "bytes": total_bytes,
    }
    log(
        f"mmloop sample_data nuscenes: wrote {scenes} scenes ({summary['samples']} samples, {summary['sweeps']} "
        f"sweeps, {sum(annotations.values())} annotations) to {root} in {time.perf_counter() - started:.1f} s; "
        f"{total_bytes / 1e6:.1f} MB"
    )
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sample_data.nuscenes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder to write the dataset to")
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--version", default="v1.0-mini")
    args = parser.parse_args(argv)
    try:
        generate_nuscenes(args.out, args.scenes, args.seconds, args.seed, args.version)
    except (FileExistsError, ValueError) as error:
        raise SystemExit(f"mmloop sample_data nuscenes: error: {error}") from None


if __name__ == "__main__":
    main()
