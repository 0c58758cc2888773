"""`prepare`: mmdet3d's converters turn the raw frames into info files that agree with the labels.

Expected values come from our own KITTI code (mmloop.datasets.kitti.files), never from mmdet3d's."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from mmloop.core.paths import load_paths
from mmloop.datasets.kitti import files as kitti
from tests.helpers import run_stage, write_params

#: KITTI's difficulty rules (min 2D box height px, max occlusion level, max truncation), easy first.
DIFFICULTY_RULES = ((40, 0, 0.15), (25, 1, 0.30), (25, 2, 0.50))


def kitti_difficulty(label: kitti.Label) -> int:
    height = label.bbox[3] - label.bbox[1]
    for level, (min_height, max_occlusion, max_truncation) in enumerate(DIFFICULTY_RULES):
        if height > min_height and label.occluded <= max_occlusion and label.truncated <= max_truncation:
            return level
    return -1


def prepared(root: Path, workdir: Path) -> Path:
    write_params(workdir, root)
    result = run_stage("prepare", workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir / load_paths(workdir / "params.yaml").prepared


def check_infos_against_labels(root: Path, out: Path) -> int:
    """Every info instance matches its label line: box, class, difficulty, point count."""
    checked = 0
    for split in ("train", "val"):
        infos = pickle.loads((out / f"kitti_infos_{split}.pkl").read_bytes())
        categories = infos["metainfo"]["categories"]
        frame_ids = kitti.read_split(root / "ImageSets" / f"{split}.txt")
        assert [f"{frame['sample_idx']:06d}" for frame in infos["data_list"]] == frame_ids
        for frame_id, frame in zip(frame_ids, infos["data_list"]):
            labels = kitti.read_labels(kitti.frame_path(root, "label_2", frame_id))
            calib = kitti.read_calib(kitti.frame_path(root, "calib", frame_id))
            cloud = kitti.read_cloud(kitti.frame_path(root, "velodyne", frame_id))
            height, width = frame["images"]["CAM2"]["height"], frame["images"]["CAM2"]["width"]
            visible = cloud[kitti.image_mask(cloud[:, :3], calib, width, height, min_depth=0.0)]
            reduced = kitti.read_cloud(out / "training" / "velodyne_reduced" / f"{frame_id}.bin")
            assert abs(len(reduced) - len(visible)) <= max(2, len(visible) // 1000)
            assert len(frame["instances"]) == len(labels)
            for label, instance in zip(labels, frame["instances"]):
                assert instance["bbox_label_3d"] == categories[label.type]
                np.testing.assert_allclose(instance["bbox"], label.bbox, atol=1e-6)
                h, w, length = label.dimensions
                np.testing.assert_allclose(
                    instance["bbox_3d"], [*label.location, length, h, w, label.rotation_y], atol=1e-6
                )
                if label.type == "DontCare":
                    assert instance["num_lidar_pts"] == -1
                    continue
                assert instance["difficulty"] == kitti_difficulty(label)
                expected = int(kitti.label_box_mask(visible, label, calib).sum())
                assert abs(instance["num_lidar_pts"] - expected) <= max(1, expected // 100), (frame_id, label)
                checked += 1
    return checked


def check_gt_database(out: Path) -> None:
    db_infos = pickle.loads((out / "kitti_dbinfos_train.pkl").read_bytes())
    for name, objects in db_infos.items():
        assert name in kitti.KITTI_CLASSES and name != "DontCare"
        for obj in objects:
            points = np.fromfile(out / obj["path"], dtype=np.float32).reshape(-1, 4)
            assert len(points) == obj["num_points_in_gt"]


def test_prepare_on_the_generated_sample(small_sample: Path, tmp_path: Path) -> None:
    out = prepared(small_sample, tmp_path)
    assert check_infos_against_labels(small_sample, out) > 0
    check_gt_database(out)
    report = json.loads((tmp_path / load_paths(tmp_path / "params.yaml").prepare_report).read_text())
    assert report["splits"]["train"]["frames"] + report["splits"]["val"]["frames"] == 8
    assert sum(report["gt_database"].values()) == sum(
        report["splits"]["train"]["objects"].get(c, 0) for c in ("Car", "Pedestrian", "Cyclist")
    )
    assert not any(
        path.name.endswith("_reduced") for path in (small_sample / "training").iterdir()
    )  # dataset untouched


@pytest.mark.fixtures
def test_prepare_on_real_kitti_frames(kitti_real: Path, tmp_path: Path) -> None:
    out = prepared(kitti_real, tmp_path)
    assert check_infos_against_labels(kitti_real, out) == 10  # every non-DontCare object of the 6 frames
    check_gt_database(out)
    assert (out / "NOTICE.md").read_text() == (kitti_real / "NOTICE.md").read_text()  # licence travels with derivatives


def test_failed_prepare_keeps_previous_output(sample_copy: Path, tmp_path: Path) -> None:
    out = prepared(sample_copy, tmp_path)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    (sample_copy / "ImageSets" / "val.txt").write_text("")
    result = run_stage("prepare", tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("lists no frames; mmdet3d's converter cannot prepare an empty split")
    )
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert not list(out.parent.glob(f".{out.name}.building-*"))


def test_gt_database_feeds_object_sample(small_sample: Path, tmp_path: Path) -> None:
    """mmdet3d's ObjectSample pastes GT-database objects into a frame (also proves the numpy pin:
    its dbsampler uses np.long)."""
    from mmdet3d.registry import TRANSFORMS
    from mmdet3d.utils import register_all_modules

    out = prepared(small_sample, tmp_path)
    register_all_modules()
    classes = ["Pedestrian", "Cyclist", "Car"]
    loader = dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=4, use_dim=4)
    db_sampler = dict(
        data_root=str(out) + "/",
        info_path=str(out / "kitti_dbinfos_train.pkl"),
        rate=1.0,
        prepare=dict(filter_by_difficulty=[-1], filter_by_min_points=dict(Car=5, Pedestrian=5, Cyclist=5)),
        classes=classes,
        sample_groups=dict(Car=15, Pedestrian=15, Cyclist=15),
        points_loader=loader,
    )
    from mmdet3d.datasets import KittiDataset

    dataset = KittiDataset(
        data_root=str(out),
        ann_file="kitti_infos_train.pkl",
        data_prefix=dict(pts="training/velodyne_reduced"),
        metainfo=dict(classes=classes),
        pipeline=[loader, dict(type="LoadAnnotations3D", with_bbox_3d=True, with_label_3d=True)],
    )
    sample = dataset.pipeline(dataset.get_data_info(0))
    before_boxes, before_points = len(sample["gt_bboxes_3d"]), len(sample["points"])
    after = TRANSFORMS.build(dict(type="ObjectSample", db_sampler=db_sampler))(sample)
    assert len(after["gt_bboxes_3d"]) > before_boxes
    assert len(after["points"]) > before_points - 1000  # sampled objects' points replace what they cover
