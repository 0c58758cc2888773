"""The checks `validate` runs on a KITTI-layout dataset, before any compute touches it.

Every problem is grouped by kind; the stage prints one line per kind (the first file and line at
fault, how many more, and the fix). Clouds are checked by size and read whole for NaN/inf fields
(one vectorized pass over the bytes; docs/pipeline.md has its cost), calibration as strictly as
mmdet3d's converter reads it, through the runtime's reader (files.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmloop.datasets.kitti import files as kitti
from mmloop_runtime.clouds import NonFiniteCloudError, check_finite_cloud
from mmloop_runtime.kitti import UndecodableTextError

PROGRESS_EVERY = 1000

#: How to fix each kind of problem; the key is also the kind's name in the error line.
FIXES = {
    "missing-folder": "restore the KITTI layout (training/{velodyne,calib,label_2,image_2}, ImageSets/) or run `dvc pull`",
    "missing-split": "add the split file or remove the split from data.splits in params.yaml",
    "empty-split": "list at least one frame id in the split file",
    "missing-file": "every frame needs its cloud, calib, label and image; restore the file or drop the frame from the splits",
    "corrupt-cloud": "re-export the cloud as float32 x, y, z, intensity (16 bytes per point)",
    "non-finite-points": "drop points with NaN/inf fields (drivers write NaN for no-return beams) and re-export the cloud",
    "undecodable-text": "KITTI text files are plain ASCII: re-export or restore the file",
    "bad-calib": "write the 7 KITTI calib lines P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo in that order",
    "bad-label": "fix the label line: 15 single-space-separated fields, known class, positive h w l",
    "dontcare-order": "move DontCare lines after all object lines (mmdet3d's converter assumes they come last)",
    "bad-frame-id": "name frames by 6-digit numbers (000123), as mmdet3d's KITTI converter rebuilds file names that way",
    "missing-frame": "remove the id from the split file or add the frame's files",
    "duplicate-frame": "list each frame once per split",
    "split-overlap": "a frame may be in one split only; remove it from all but one",
}


@dataclass(frozen=True)
class Problem:
    kind: str
    path: Path
    line: int
    message: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)


@dataclass
class DatasetReport:
    """What validation found; `problems` fail the stage, `warnings` are reported and pass."""

    root: Path
    splits: dict[str, list[str]] = field(default_factory=dict)
    points_per_frame: dict[str, int] = field(default_factory=dict)
    boxes_per_frame: dict[str, int] = field(default_factory=dict)
    objects: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, kind: str, path: Path, line: int, message: str) -> None:
        self.problems.append(Problem(kind, path, line, message))

    def error_lines(self) -> list[str]:
        """One line per kind of problem, naming the first place at fault."""
        by_kind: dict[str, list[Problem]] = defaultdict(list)
        for problem in self.problems:
            by_kind[problem.kind].append(problem)
        lines = []
        for kind, problems in by_kind.items():
            first = problems[0]
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            lines.append(f"{first.where}: {first.message}{more} [{kind}: {FIXES[kind]}]")
        return lines

    def summary(self) -> dict[str, Any]:
        frames = sorted({frame for ids in self.splits.values() for frame in ids})
        return {
            "root": str(self.root),
            "frames": len(frames),
            "splits": {name: len(ids) for name, ids in self.splits.items()},
            "objects": dict(sorted(self.objects.items())),
            "points_per_frame": _stats(list(self.points_per_frame.values())),
            "boxes_per_frame": _stats(list(self.boxes_per_frame.values())),
            "problems": len(self.problems),
            "warnings": self.warnings,
        }


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": min(values), "mean": round(sum(values) / len(values), 1), "max": max(values)}


def check_layout(report: DatasetReport, split_names: list[str]) -> bool:
    """The folders and split files exist; without them no per-frame check makes sense."""
    root = report.root
    for folder in kitti.FRAME_FILES:
        if not (root / "training" / folder).is_dir():
            report.add("missing-folder", root / "training" / folder, 0, "folder not found")
    for name in split_names:
        split_file = root / "ImageSets" / f"{name}.txt"
        if not split_file.is_file():
            report.add("missing-split", split_file, 0, "split file not found")
            continue
        try:
            report.splits[name] = kitti.read_split(split_file)
        except kitti.KittiFileError as error:
            report.add("undecodable-text", error.path, error.line, error.problem)
            continue
        if not report.splits[name]:
            report.add("empty-split", split_file, 0, "split lists no frames")
    return not report.problems


def check_splits(report: DatasetReport) -> list[str]:
    """Split ids exist, appear once, and belong to one split; returns the frames to check."""
    root = report.root
    seen: dict[str, str] = {}
    frames: list[str] = []
    for name, ids in report.splits.items():
        split_file = root / "ImageSets" / f"{name}.txt"
        in_this_split: set[str] = set()
        for number, frame_id in enumerate(ids, start=1):
            if frame_id in in_this_split:
                report.add("duplicate-frame", split_file, number, f"frame {frame_id} is listed twice")
                continue
            in_this_split.add(frame_id)
            if not kitti.is_frame_id(frame_id):
                report.add("bad-frame-id", split_file, number, f"frame id {frame_id!r} is not a 6-digit number")
                continue
            if frame_id in seen:
                report.add("split-overlap", split_file, number, f"frame {frame_id} is also in split '{seen[frame_id]}'")
                continue
            seen[frame_id] = name
            if not kitti.frame_path(root, "velodyne", frame_id).exists():
                report.add(
                    "missing-frame",
                    split_file,
                    number,
                    f"frame {frame_id} has no {kitti.frame_path(root, 'velodyne', frame_id)}",
                )
                continue
            frames.append(frame_id)
    on_disk = {path.stem for path in (root / "training" / "velodyne").glob("*.bin")}
    unused = sorted(on_disk - set(seen))
    if unused:
        report.warnings.append(f"{len(unused)} frame(s) in training/velodyne are in no split (first: {unused[0]})")
    return frames


def check_frame(report: DatasetReport, frame_id: str, known_classes: tuple[str, ...]) -> None:
    """One frame's four files. Clouds are read once, for their size and their values."""
    root = report.root
    missing = [kitti.frame_path(root, folder, frame_id) for folder in kitti.FRAME_FILES]
    missing = [path for path in missing if not path.is_file()]
    for path in missing:
        report.add("missing-file", path, 0, f"frame {frame_id} has no {path.parent.name} file")
    if missing:
        return

    cloud = kitti.frame_path(root, "velodyne", frame_id)
    try:
        check_finite_cloud(cloud, kitti.POINT_FEATURES)
        report.points_per_frame[frame_id] = cloud.stat().st_size // kitti.POINT_BYTES
    except kitti.KittiFileError as error:
        kind = "non-finite-points" if isinstance(error, NonFiniteCloudError) else "corrupt-cloud"
        report.add(kind, error.path, error.line, error.problem)

    try:
        kitti.read_calib(kitti.frame_path(root, "calib", frame_id))
    except kitti.KittiFileError as error:
        report.add(_text_kind(error, "bad-calib"), error.path, error.line, error.problem)

    label_file = kitti.frame_path(root, "label_2", frame_id)
    try:
        labels = kitti.read_labels(label_file, known_classes)
    except kitti.KittiFileError as error:
        report.add(_text_kind(error, "bad-label"), error.path, error.line, error.problem)
        return
    names = [label.type for label in labels]
    if "DontCare" in names:
        first_dontcare = names.index("DontCare")
        late_objects = [i for i, name in enumerate(names) if name != "DontCare" and i > first_dontcare]
        if late_objects:
            report.add(
                "dontcare-order",
                label_file,
                late_objects[0] + 1,
                f"{names[late_objects[0]]} line after a DontCare line",
            )
    objects = [name for name in names if name != "DontCare"]
    report.objects.update(objects)
    report.boxes_per_frame[frame_id] = len(objects)


def _text_kind(error: kitti.KittiFileError, kind: str) -> str:
    return "undecodable-text" if isinstance(error, UndecodableTextError) else kind


def validate_dataset(root: Path, split_names: list[str], known_classes: tuple[str, ...]) -> DatasetReport:
    """Every check on the dataset at `root`: layout first, then splits, then each frame's files."""
    report = DatasetReport(root=root)
    if not check_layout(report, split_names):
        return report
    frames = check_splits(report)
    for done, frame_id in enumerate(frames, start=1):
        check_frame(report, frame_id, known_classes)
        if done % PROGRESS_EVERY == 0:  # full KITTI has 7481 frames: show that work is going on
            print(f"mmloop validate: checked {done}/{len(frames)} frames", flush=True)
    empty_frames = [frame for frame, count in report.boxes_per_frame.items() if count == 0]
    if empty_frames:
        report.warnings.append(f"{len(empty_frames)} frame(s) have no labelled object (first: {empty_frames[0]})")
    return report
