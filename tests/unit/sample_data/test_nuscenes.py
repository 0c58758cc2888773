"""The synthetic nuScenes sample: reproducible, within budget, loaded whole by nuscenes-devkit, boxes on their points."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud
from nuscenes.utils.geometry_utils import points_in_box
from pyquaternion import Quaternion

from sample_data.nuscenes import SWEEP_HZ, generate_nuscenes
from tests.conftest import tree_md5

VERSION = "v1.0-mini"
SMALL = {"scenes": 2, "seconds": 1.5}  # 60 sweeps, 6 keyframes: a few seconds to generate
BUDGET_BYTES = 20_000_000
DEFAULT_SWEEPS = 2 * 8 * SWEEP_HZ  # generate_nuscenes' defaults: 2 scenes of 8 s
REFERENCES = {  # field -> the table its token is in
    "category_token": "category",
    "first_annotation_token": "sample_annotation",
    "last_annotation_token": "sample_annotation",
    "sensor_token": "sensor",
    "calibrated_sensor_token": "calibrated_sensor",
    "ego_pose_token": "ego_pose",
    "log_token": "log",
    "first_sample_token": "sample",
    "last_sample_token": "sample",
    "scene_token": "scene",
    "sample_token": "sample",
    "instance_token": "instance",
    "visibility_token": "visibility",
    "map_token": "map",  # the devkit adds it to every log
}


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("nus") / "nuscenes-small"
    return root, generate_nuscenes(root, **SMALL, seed=0, version=VERSION, log=quiet)


@pytest.fixture(scope="module")
def nusc(small: tuple[Path, dict]) -> NuScenes:
    return NuScenes(version=VERSION, dataroot=str(small[0]), verbose=False)


def test_same_seed_same_bytes_other_seed_other_bytes(small: tuple[Path, dict], tmp_path: Path) -> None:
    root, summary = small
    again = generate_nuscenes(tmp_path / "again", **SMALL, seed=0, version=VERSION, log=quiet)
    assert again == summary
    assert tree_md5(tmp_path / "again") == tree_md5(root)
    generate_nuscenes(tmp_path / "other", **SMALL, seed=1, version=VERSION, log=quiet)
    assert tree_md5(tmp_path / "other") != tree_md5(root)


def test_summary_and_default_budget(small: tuple[Path, dict]) -> None:
    root, summary = small
    assert summary["scenes"] == 2 and summary["samples"] == 2 * 3 and summary["sweeps"] == 2 * 30
    assert set(summary["annotations"]) <= {"vehicle.car", "human.pedestrian.adult", "vehicle.bicycle"}
    assert summary["annotations"].get("vehicle.car", 0) > 0
    on_disk = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    assert summary["bytes"] == on_disk
    # Clouds and table rows both grow with the sweeps; the default is 320 of them.
    projected = on_disk / summary["sweeps"] * DEFAULT_SWEEPS
    assert projected < BUDGET_BYTES, f"default run projected at {projected / 1e6:.1f} MB"


def test_refuses_bad_arguments_and_existing_folders(small: tuple[Path, dict], tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        generate_nuscenes(small[0], log=quiet)
    with pytest.raises(ValueError):
        generate_nuscenes(tmp_path / "none", scenes=0, log=quiet)
    with pytest.raises(ValueError):
        generate_nuscenes(tmp_path / "short", seconds=0.2, log=quiet)


def test_every_token_resolves(nusc: NuScenes) -> None:
    references = 0
    for table in nusc.table_names:
        records = getattr(nusc, table)
        assert records, f"{table} is empty"
        for record in records:
            assert nusc.get(table, record["token"]) is record
            for field, value in record.items():
                if field.endswith("_token"):
                    assert field in REFERENCES, f"{table}.{field}: a reference the test does not know"
                    nusc.get(REFERENCES[field], value)
                elif field in ("prev", "next") and value:
                    assert nusc.get(table, value)[{"prev": "next", "next": "prev"}[field]] == record["token"]
                elif field in ("attribute_tokens", "log_tokens"):
                    for linked in value:
                        nusc.get(field.removesuffix("_tokens"), linked)
                else:
                    continue
                references += 1
    assert references > 300


def test_samples_files_and_chains(nusc: NuScenes, small: tuple[Path, dict]) -> None:
    root = small[0]
    for sample in nusc.sample:
        assert "LIDAR_TOP" in sample["data"]
        assert nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["timestamp"] == sample["timestamp"]
    for record in nusc.sample_data:
        path = root / record["filename"]
        assert path.is_file()
        assert path.stat().st_size % 20 == 0 and path.stat().st_size > 0
        assert record["filename"].startswith("samples/" if record["is_key_frame"] else "sweeps/")
    cloud = np.fromfile(root / nusc.sample_data[0]["filename"], dtype=np.float32).reshape(-1, 5)
    assert LidarPointCloud.from_file(str(root / nusc.sample_data[0]["filename"])).points.shape == (4, len(cloud))
    assert 0 <= cloud[:, 3].min() and cloud[:, 3].max() <= 255 and cloud[:, 3].max() > 1
    assert set(np.unique(cloud[:, 4])) <= set(range(32)) and len(np.unique(cloud[:, 4])) > 16
    for scene in nusc.scene:
        # From the first keyframe, next walks every sweep of the scene, 50 ms apart.
        sample = nusc.get("sample", scene["first_sample_token"])
        record = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        assert record["prev"] == ""
        stamps = [record["timestamp"]]
        while record["next"]:
            record = nusc.get("sample_data", record["next"])
            stamps.append(record["timestamp"])
        assert len(stamps) == SMALL["seconds"] * SWEEP_HZ
        assert set(np.diff(stamps)) == {1_000_000 // SWEEP_HZ}
        walked, token = 0, scene["first_sample_token"]
        while token:
            walked, token = walked + 1, nusc.get("sample", token)["next"]
        assert walked == scene["nbr_samples"]
    assert len({tuple(nusc.get("ego_pose", s["ego_pose_token"])["translation"]) for s in nusc.sample_data}) == len(
        nusc.sample_data
    )


def test_annotations_and_velocities(nusc: NuScenes) -> None:
    for instance in nusc.instance:
        walked, token = 0, instance["first_annotation_token"]
        while token:
            annotation = nusc.get("sample_annotation", token)
            assert annotation["instance_token"] == instance["token"]
            walked, token = walked + 1, annotation["next"]
        assert walked == instance["nbr_annotations"]
        assert annotation["token"] == instance["last_annotation_token"]
    moving = still = 0
    for annotation in nusc.sample_annotation:
        assert min(annotation["size"]) > 0 and annotation["num_lidar_pts"] > 0
        assert math.isclose(Quaternion(annotation["rotation"]).norm, 1.0, abs_tol=1e-6)
        names = {nusc.get("attribute", token)["name"] for token in annotation["attribute_tokens"]}
        velocity = nusc.box_velocity(annotation["token"])
        if not (annotation["prev"] or annotation["next"]) or names == {"cycle.with_rider"}:
            continue
        assert np.isfinite(velocity).all(), annotation
        speed = float(np.hypot(velocity[0], velocity[1]))
        if names & {"vehicle.moving", "pedestrian.moving"}:
            assert 0.5 < speed < 10.0
            moving += 1
        else:
            assert speed < 0.05
            still += 1
    assert moving > 0 and still > 0


def test_boxes_hold_their_points(nusc: NuScenes, small: tuple[Path, dict]) -> None:
    """Global boxes brought into the LiDAR frame (global -> ego -> sensor) hold the points counted for them."""
    held, annotations = [], 0
    for sample in nusc.sample:
        record = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        points = LidarPointCloud.from_file(str(small[0] / record["filename"])).points[:3]
        pose = nusc.get("ego_pose", record["ego_pose_token"])
        sensor = nusc.get("calibrated_sensor", record["calibrated_sensor_token"])
        for token in sample["anns"]:
            box = nusc.get_box(token)
            box.translate(-np.array(pose["translation"]))
            box.rotate(Quaternion(pose["rotation"]).inverse)
            box.translate(-np.array(sensor["translation"]))
            box.rotate(Quaternion(sensor["rotation"]).inverse)
            inside = int(points_in_box(box, points).sum())
            expected = nusc.get("sample_annotation", token)["num_lidar_pts"]
            held.append(expected * 0.9 <= inside <= expected * 1.2 + 2)
            annotations += 1
    assert annotations > 10
    assert np.mean(held) > 0.9, f"{sum(held)} of {annotations} boxes hold about their num_lidar_pts"
