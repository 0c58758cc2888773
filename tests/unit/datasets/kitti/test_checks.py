"""`validate`: a clean dataset gives a report; each kind of bad input gives its one-line error."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mmloop.core.paths import load_paths
from mmloop.datasets.kitti import files as kitti
from tests.helpers import run_stage, write_params


def data_report(workdir: Path) -> Path:
    """Where validate writes its report (params.yaml paths.data_report), in a scratch working dir."""
    return workdir / load_paths(workdir / "params.yaml").data_report


def first_frame(root: Path, split: str = "train") -> str:
    """The split's first frame that has labelled objects (label breakages need a line to break)."""
    ids = kitti.read_split(root / "ImageSets" / f"{split}.txt")
    return next(f for f in ids if kitti.frame_path(root, "label_2", f).read_text().strip())


def corrupt_cloud(root: Path) -> tuple[str, str]:
    path = kitti.frame_path(root, "velodyne", first_frame(root))
    with path.open("ab") as handle:
        handle.write(b"\x00" * 7)
    size = path.stat().st_size
    return (
        f"{path}: {size} bytes is not a whole number of 4-float points (16 bytes each); "
        "is it a KITTI velodyne .bin with 4 features?"
    ), "corrupt-cloud"


def bad_label_line(root: Path) -> tuple[str, str]:
    path = kitti.frame_path(root, "label_2", first_frame(root))
    lines = path.read_text().splitlines()
    lines.insert(1, "Car 0.00 0 1.5 100 100 200")
    path.write_text("\n".join(lines) + "\n")
    return f"{path}:2: expected 15 fields", "bad-label"


def missing_calib_key(root: Path) -> tuple[str, str]:
    path = kitti.frame_path(root, "calib", first_frame(root, "val"))
    path.write_text(
        "".join(line + "\n" for line in path.read_text().splitlines() if not line.startswith("Tr_velo_to_cam"))
    )
    return (
        f"{path}: no 'Tr_velo_to_cam:' line; is it a KITTI object calib .txt (P0-P3, R0_rect, Tr_velo_to_cam)?"
    ), "bad-calib"


def split_with_missing_frame(root: Path) -> tuple[str, str]:
    path = root / "ImageSets" / "val.txt"
    count = len(kitti.read_split(path))
    path.write_text(path.read_text() + "999999\n")
    return f"{path}:{count + 1}: frame 999999 has no", "missing-frame"


def unknown_class(root: Path) -> tuple[str, str]:
    path = kitti.frame_path(root, "label_2", first_frame(root))
    lines = path.read_text().splitlines()
    lines[0] = "Bus " + lines[0].split(" ", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    return f"{path}:1: unknown class 'Bus'", "bad-label"


def overlapping_splits(root: Path) -> tuple[str, str]:
    frame = first_frame(root, "train")
    path = root / "ImageSets" / "val.txt"
    path.write_text(path.read_text() + f"{frame}\n")
    return f"{path}:{len(kitti.read_split(path))}: frame {frame} is also in split 'train'", "split-overlap"


def dontcare_before_object(root: Path) -> tuple[str, str]:
    path = kitti.frame_path(root, "label_2", first_frame(root))
    lines = path.read_text().splitlines()
    dontcare = "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10"
    path.write_text("\n".join([dontcare, *lines]) + "\n")
    return f"{path}:2: ", "dontcare-order"


def missing_image(root: Path) -> tuple[str, str]:
    path = kitti.frame_path(root, "image_2", first_frame(root, "val"))
    path.unlink()
    return f"{path}: frame", "missing-file"


def calib_out_of_order(root: Path) -> tuple[str, str]:
    path = kitti.frame_path(root, "calib", first_frame(root))
    lines = [line for line in path.read_text().splitlines() if line]
    lines[0], lines[2] = lines[2], lines[0]
    path.write_text("\n".join(lines) + "\n")
    return (
        f"{path}:1: expected P0 on line 1, found 'P2' (mmdet3d reads calib keys by position, in KITTI's order)"
    ), "bad-calib"


def bad_frame_id(root: Path) -> tuple[str, str]:
    path = root / "ImageSets" / "train.txt"
    path.write_text("frame_a\n" + path.read_text())
    return f"{path}:1: frame id 'frame_a' is not a 6-digit number", "bad-frame-id"


BREAKAGES: list[Callable[[Path], tuple[str, str]]] = [
    corrupt_cloud,
    bad_label_line,
    missing_calib_key,
    split_with_missing_frame,
    unknown_class,
    overlapping_splits,
    dontcare_before_object,
    missing_image,
    calib_out_of_order,
    bad_frame_id,
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__)
def test_bad_input_gives_one_line_error_and_writes_nothing(sample_copy: Path, tmp_path: Path, breakage) -> None:
    expected, kind = breakage(sample_copy)
    write_params(tmp_path, sample_copy)
    result = run_stage("validate", tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mmloop validate: error: ")]
    kind_lines = [line for line in errors if f"[{kind}: " in line]
    assert len(kind_lines) == 1, result.stderr  # one line per kind of problem
    assert expected in kind_lines[0], kind_lines[0]
    assert "Traceback" not in result.stderr
    assert not data_report(tmp_path).exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kitti-small", "params.yaml"]  # nothing written


def test_many_problems_of_one_kind_share_one_line(sample_copy: Path, tmp_path: Path) -> None:
    for frame_id in kitti.read_split(sample_copy / "ImageSets" / "train.txt")[:3]:
        with kitti.frame_path(sample_copy, "velodyne", frame_id).open("ab") as handle:
            handle.write(b"\x01\x02\x03")
    write_params(tmp_path, sample_copy)
    result = run_stage("validate", tmp_path)
    lines = [line for line in result.stderr.splitlines() if "[corrupt-cloud: " in line]
    assert len(lines) == 1 and "(+2 more)" in lines[0], result.stderr


def test_missing_dataset_folder_says_dvc_pull(tmp_path: Path) -> None:
    write_params(tmp_path, tmp_path / "nowhere")
    result = run_stage("validate", tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"mmloop validate: error: {tmp_path / 'nowhere'}: dataset folder not found; run `dvc pull` or set data.root in params.yaml"
    )


def test_failed_run_keeps_the_previous_report(sample_copy: Path, tmp_path: Path) -> None:
    write_params(tmp_path, sample_copy)
    assert run_stage("validate", tmp_path).returncode == 0
    before = data_report(tmp_path).read_bytes()
    unknown_class(sample_copy)
    assert run_stage("validate", tmp_path).returncode == 1
    assert data_report(tmp_path).read_bytes() == before


def test_report_counts_match_the_files(small_sample: Path, tmp_path: Path) -> None:
    write_params(tmp_path, small_sample)
    result = run_stage("validate", tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(data_report(tmp_path).read_text())
    frames = [f for split in ("train", "val") for f in kitti.read_split(small_sample / "ImageSets" / f"{split}.txt")]
    labels = [kitti.read_labels(kitti.frame_path(small_sample, "label_2", f)) for f in frames]
    points = [kitti.frame_path(small_sample, "velodyne", f).stat().st_size // 16 for f in frames]
    assert report["frames"] == len(frames) == 8
    assert report["problems"] == 0
    expected_objects: dict[str, int] = {}
    for frame_labels in labels:
        for label in frame_labels:
            expected_objects[label.type] = expected_objects.get(label.type, 0) + 1
    assert report["objects"] == dict(sorted(expected_objects.items()))
    assert report["points_per_frame"]["min"] == min(points)
    assert report["points_per_frame"]["max"] == max(points)
    assert report["boxes_per_frame"]["max"] == max(len(frame_labels) for frame_labels in labels)


@pytest.mark.fixtures
def test_real_kitti_frames_pass_as_they_are(kitti_real: Path, tmp_path: Path) -> None:
    write_params(tmp_path, kitti_real)
    result = run_stage("validate", tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(data_report(tmp_path).read_text())
    assert report["frames"] == 6 and report["splits"] == {"train": 4, "val": 2}
    assert report["objects"] == {"Car": 5, "Cyclist": 1, "Misc": 1, "Pedestrian": 2, "Truck": 1}
    assert re.search(r"^mmloop validate: 6 frames ok", result.stdout, re.MULTILINE)


def test_layout_problems_stop_before_the_frames(sample_copy: Path) -> None:
    """A missing folder or split file is reported alone: no per-frame check makes sense without it."""
    from mmloop.datasets.kitti.checks import FIXES, validate_dataset

    shutil.rmtree(sample_copy / "training" / "image_2")
    (sample_copy / "ImageSets" / "val.txt").unlink()
    report = validate_dataset(sample_copy, ["train", "val"], kitti.KITTI_CLASSES)
    assert report.error_lines() == [
        f"{sample_copy / 'training' / 'image_2'}: folder not found [missing-folder: {FIXES['missing-folder']}]",
        f"{sample_copy / 'ImageSets' / 'val.txt'}: split file not found [missing-split: {FIXES['missing-split']}]",
    ]
    assert not report.points_per_frame  # no frame was looked at


def test_empty_split_and_duplicate_frame(sample_copy: Path) -> None:
    from mmloop.datasets.kitti.checks import FIXES, validate_dataset

    (sample_copy / "ImageSets" / "val.txt").write_text("")
    report = validate_dataset(sample_copy, ["train", "val"], kitti.KITTI_CLASSES)
    assert report.error_lines() == [
        f"{sample_copy / 'ImageSets' / 'val.txt'}: split lists no frames [empty-split: {FIXES['empty-split']}]"
    ]

    train = sample_copy / "ImageSets" / "train.txt"
    ids = kitti.read_split(train)
    train.write_text(train.read_text() + f"{ids[0]}\n")
    report = validate_dataset(sample_copy, ["train"], kitti.KITTI_CLASSES)
    assert report.error_lines() == [
        f"{train}:{len(ids) + 1}: frame {ids[0]} is listed twice [duplicate-frame: {FIXES['duplicate-frame']}]"
    ]
