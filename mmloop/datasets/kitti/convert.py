"""The conversion `prepare` runs: mmdet3d info files, reduced clouds and the GT database, by mmdet3d's converters.

This is mmdet3d's `tools/create_data.py kitti`, called function by function so that
- only the splits that exist are prepared (create_data.py insists on `ImageSets/test.txt` and a
  `testing/` tree, and `update_kitti_infos` crashes on an empty split),
- everything lands in one declared out folder, never inside the pulled dataset,
- a failed run leaves the previous output as it was (we build beside it and swap at the end).
The out folder is laid out as mmdet3d's KITTI configs expect a data root: info files, GT database
and `training/velodyne_reduced/`.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from mmloop.core.stage import StageError, built_whole
from mmloop.datasets.kitti import INFO_PREFIX
from mmloop.datasets.kitti import files as kitti
from mmloop.openmmlab.tools import import_tool
from mmloop_runtime.clouds import check_finite_cloud

#: Files that must travel with anything derived from a dataset (the KITTI fixtures' CC BY-NC-SA).
LICENCE_FILES = ("NOTICE.md", "NOTICE", "LICENSE", "LICENSE.md", "LICENCE", "README.md")


def convert_split(root: Path, out: Path, split: str, frame_ids: list[int], scratch: Path) -> Path:
    """Info file (mmdet3d v2 format) and reduced clouds of one split; returns the info file."""
    converter = import_tool("dataset_converters.kitti_converter")
    data_utils = import_tool("dataset_converters.kitti_data_utils")
    update_infos = import_tool("dataset_converters.update_infos_to_v2")
    import mmengine

    print(f"mmloop prepare: {split}: {len(frame_ids)} frames -> info file, point counts, reduced clouds", flush=True)
    infos = data_utils.get_kitti_image_info(
        str(root), training=True, velodyne=True, calib=True, image_ids=frame_ids, relative_path=True
    )
    converter._calculate_num_points_in_gt(str(root), infos, relative_path=True)
    # The v1 info file goes to scratch: update_kitti_infos sleeps 5 s whenever its input sits in
    # its output folder, and only the v2 file belongs in the out folder.
    v1_info_file = scratch / f"{INFO_PREFIX}_infos_{split}.pkl"
    mmengine.dump(infos, v1_info_file)
    converter._create_reduced_point_cloud(
        str(root), str(v1_info_file), save_path=str(out / "training" / "velodyne_reduced")
    )
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per step and a progress bar
        update_infos.update_pkl_infos("kitti", out_dir=str(out), pkl_path=str(v1_info_file))
    return out / v1_info_file.name


def create_gt_database(out: Path) -> None:
    """Per-object point clouds and `kitti_dbinfos_train.pkl` for ObjectSample, from the train split."""
    from mmdet3d.utils import register_all_modules

    register_all_modules()
    gt_database = import_tool("dataset_converters.create_gt_database")
    print("mmloop prepare: train: GT database for ObjectSample", flush=True)
    gt_database.create_groundtruth_database(
        "KittiDataset", str(out), INFO_PREFIX, f"{INFO_PREFIX}_infos_train.pkl", relative_path=False
    )


def summarize(out: Path, info_files: dict[str, Path]) -> dict[str, Any]:
    """Counts read back from what was written, so the report describes the files, not our intent."""
    import mmengine

    summary: dict[str, Any] = {"splits": {}, "gt_database": {}}
    for split, info_file in info_files.items():
        infos = mmengine.load(info_file)
        categories = {index: name for name, index in infos["metainfo"]["categories"].items() if index >= 0}
        instances = [inst for frame in infos["data_list"] for inst in frame["instances"]]
        classes = Counter(categories[inst["bbox_label_3d"]] for inst in instances if inst["bbox_label_3d"] >= 0)
        summary["splits"][split] = {"frames": len(infos["data_list"]), "objects": dict(sorted(classes.items()))}
    db_infos = mmengine.load(out / f"{INFO_PREFIX}_dbinfos_train.pkl")
    summary["gt_database"] = {name: len(objects) for name, objects in sorted(db_infos.items())}
    return summary


def frame_numbers(root: Path, split: str) -> list[int]:
    """Frame ids of a split as the integers mmdet3d's converter wants (it formats them as %06d)."""
    split_file = root / "ImageSets" / f"{split}.txt"
    if not split_file.is_file():
        raise StageError(f"{split_file}: not found; add it or remove '{split}' from data.splits in params.yaml")
    try:
        ids = kitti.read_split(split_file)
    except kitti.KittiFileError as error:
        raise StageError(str(error)) from None
    if not ids:
        raise StageError(f"{split_file}: lists no frames; mmdet3d's converter cannot prepare an empty split")
    bad = [frame_id for frame_id in ids if not kitti.is_frame_id(frame_id)]
    if bad:
        raise StageError(
            f"{split_file}: frame id {bad[0]!r} is not a 6-digit number, which mmdet3d's KITTI converter needs"
        )
    return [int(frame_id) for frame_id in ids]


def check_clouds(root: Path, frames: dict[str, list[int]]) -> None:
    """Every cloud's values finite: mmdet3d's converters would copy NaN/inf points into the
    reduced clouds and the GT database (validate reports them too; this holds when prepare runs
    on its own)."""
    for ids in frames.values():
        for frame_id in ids:
            try:
                check_finite_cloud(kitti.frame_path(root, "velodyne", f"{frame_id:06d}"), kitti.POINT_FEATURES)
            except kitti.KittiFileError as error:
                raise StageError(f"{error}; `dvc repro validate` lists every frame at fault") from None


def prepare_dataset(root: Path, splits: list[str], out: Path) -> dict[str, Any]:
    """Build the out folder beside the old one and swap it in only when everything succeeded."""
    frames = {split: frame_numbers(root, split) for split in splits}  # all checks before any work
    if "train" not in frames:
        raise StageError("data.splits in params.yaml must include 'train' (the GT database is made from it)")
    check_clouds(root, frames)
    with built_whole(out) as building:
        (building / "training" / "velodyne_reduced").mkdir(parents=True)
        with tempfile.TemporaryDirectory() as scratch:
            info_files = {
                split: convert_split(root, building, split, ids, Path(scratch)) for split, ids in frames.items()
            }
        create_gt_database(building)
        for name in LICENCE_FILES:
            if (root / name).is_file():
                shutil.copyfile(root / name, building / name)
        summary = summarize(building, info_files)
    return summary
