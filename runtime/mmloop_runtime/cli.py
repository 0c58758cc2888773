"""`python -m mmloop_runtime predict`: detections for one KITTI cloud or a folder of them.

    python -m mmloop_runtime predict --model deploy/onnxruntime-fp32 training/velodyne --out preds/

Per frame it writes `<frame>.json` (boxes in the LiDAR frame) and, with a calibration, `<frame>.txt`
in KITTI's label_2 result format (camera frame); `--render` adds a bird's-eye view `<frame>.png`
(with the ground truth matched as KITTI would, when label_2 files and a calibration are there).
`python -m mmloop_runtime predict-image --model <camera deploy folder> image_2/` does the same for
camera images through a deployed 2D detector (mmloop_runtime.camera).
Every cloud is checked before the first one is run, so a bad file fails at once.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from mmloop_runtime.camera import add_image_command, image_command

if TYPE_CHECKING:
    from mmloop_runtime.matching import Truth

FORMATS = ("json", "kitti")


class Progress:
    """One status line on a terminal (rewritten in place); a line per 10 % in a log file."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total, self.stream, self.done = total, stream, 0
        self.live = stream.isatty()

    def step(self, message: str) -> None:
        self.done += 1
        line = f"mmloop_runtime: [{self.done:>{len(str(self.total))}}/{self.total}] {message}"
        if self.live:
            self.stream.write("\r" + line.ljust(79) + ("\n" if self.done == self.total else ""))
        elif self.done == self.total or self.done % max(1, self.total // 10) == 0:
            self.stream.write(line + "\n")
        self.stream.flush()


def clouds_in(source: Path) -> list[Path]:
    if source.is_dir():
        clouds = sorted(source.glob("*.bin"))
        if not clouds:
            raise ValueError(f"{source}: no .bin clouds in this folder; pass a KITTI velodyne folder or a .bin file")
        return clouds
    if not source.is_file():
        raise FileNotFoundError(f"{source}: not found; pass a KITTI .bin cloud or a folder of them")
    return [source]


def frame_file(folder: Path | None, frame: str, suffix: str) -> Path | None:
    """`folder/<frame><suffix>` if it exists, or the file itself when `folder` is one."""
    if folder is None:
        return None
    if folder.is_file():
        return folder
    path = folder / f"{frame}{suffix}"
    return path if path.is_file() else None


def kitti_sibling(source: Path, name: str) -> Path | None:
    """KITTI's calib/ or image_2/ beside a velodyne(_reduced)/ folder, found without being asked."""
    folder = source if source.is_dir() else source.parent
    sibling = folder.parent / name
    return sibling if folder.name.startswith("velodyne") and sibling.is_dir() else None


def png_size(path: Path) -> tuple[int, int]:
    """(height, width) from a PNG's IHDR chunk: KittiMetric clips 2D boxes to the image."""
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG; KITTI's image_2 holds PNGs")
    width, height = struct.unpack(">II", header[16:24])
    return height, width


def ground_truth(label_file: Path | None, calib_file: Path | None, class_names: tuple[str, ...]) -> Truth | None:
    """A frame's label_2 objects in the LiDAR frame with KITTI's ignored flags (``matching.Truth``),
    to match the predictions against; None without a label file or a calibration."""
    from mmloop_runtime.kitti import read_calib
    from mmloop_runtime.matching import read_label_truth

    if label_file is None or calib_file is None:
        return None
    return read_label_truth(label_file, read_calib(calib_file), class_names)


def detections_json(
    frame: str, detector: Any, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray
) -> dict[str, Any]:
    return {
        "frame": frame,
        "model": str(detector.model_dir),
        "frame_of_reference": "lidar",
        "box_layout": ["x", "y", "z_bottom", "dx", "dy", "dz", "yaw"],
        "timings_ms": {step: round(ms, 3) for step, ms in detector.timings.items()},
        # Points with a NaN or infinite field, dropped before voxelizing (drivers write NaN for
        # beams with no return).
        "non_finite_points_dropped": detector.dropped_points,
        "detections": [
            {
                "label": detector.class_names[label],
                "score": round(float(score), 5),
                "box": [round(float(value), 5) for value in box],
            }
            for box, score, label in zip(boxes, scores, labels)
        ],
    }


def json_text(report: dict[str, Any]) -> str:
    """The report as JSON with one line per detection: readable, and diffable frame to frame."""
    head = {key: value for key, value in report.items() if key != "detections"}
    lines = [f' "{key}": {json.dumps(value)},' for key, value in head.items()]
    detections = [f"  {json.dumps(detection)}" for detection in report["detections"]]
    return "{\n" + "\n".join(lines) + '\n "detections": [\n' + ",\n".join(detections) + "\n ]\n}\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mmloop_runtime", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="detect objects in KITTI .bin clouds")
    predict.add_argument("source", type=Path, help="a .bin cloud or a folder of them (KITTI velodyne layout)")
    predict.add_argument(
        "--model",
        type=Path,
        required=True,
        help="a deployed model folder: deploy/onnxruntime-fp32, deploy/onnxruntime-int8, deploy/onnx, "
        "deploy/openvino-*, deploy/tensorrt-*",
    )
    predict.add_argument("--out", type=Path, default=Path("preds"), help="where the result files go (default: preds/)")
    predict.add_argument(
        "--calib",
        type=Path,
        help="KITTI calib file or folder (<frame>.txt) for label_2 files in the camera frame; "
        "default: calib/ beside a velodyne/ folder",
    )
    predict.add_argument(
        "--format",
        choices=(*FORMATS, "both"),
        help="json (LiDAR frame), kitti (label_2, needs a calibration) or both; "
        "default: both with a calibration, json without",
    )
    predict.add_argument("--render", action="store_true", help="also draw a bird's-eye view <frame>.png (needs Pillow)")
    predict.add_argument(
        "--render-score-thr",
        type=float,
        default=0.3,
        help="predictions drawn and counted in the pictures score at least this (default 0.3, as evaluate's)",
    )
    predict.add_argument(
        "--labels",
        type=Path,
        help="KITTI label_2 file or folder (<frame>.txt): ground truth for the pictures; "
        "default: label_2/ beside a velodyne/ folder",
    )
    predict.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default 0: one per core)")
    add_image_command(commands)  # predict-image: camera images through a deployed 2D detector
    return parser.parse_args(argv)


def formats_for(requested: str | None, calib: Path | None) -> tuple[str, ...]:
    if requested is None:
        return FORMATS if calib else ("json",)
    chosen = FORMATS if requested == "both" else (requested,)
    if "kitti" in chosen and calib is None:
        raise ValueError("--format kitti: label_2 files are in the camera frame; pass --calib <file or folder>")
    return chosen


def predict_command(args: argparse.Namespace) -> int:
    from mmloop_runtime.clouds import drop_non_finite
    from mmloop_runtime.detector import Detector
    from mmloop_runtime.kitti import check_cloud_file, label_lines, read_calib, read_cloud

    calib_source = args.calib or kitti_sibling(args.source, "calib")
    if args.calib is not None and not args.calib.exists():
        raise FileNotFoundError(f"{args.calib}: not found; pass a KITTI calib .txt or a folder of them")
    if args.labels is not None and not args.labels.exists():
        raise FileNotFoundError(f"{args.labels}: not found; pass a KITTI label_2 .txt or a folder of them")
    if not 0 <= args.render_score_thr < 1:
        raise ValueError(f"--render-score-thr {args.render_score_thr}: use a number in [0, 1)")
    formats = formats_for(args.format, calib_source)
    clouds = clouds_in(args.source)
    detector = Detector(args.model, threads=args.threads)
    features = detector.manifest.voxelizer.point_features
    for cloud in clouds:
        check_cloud_file(cloud, features)
    images = kitti_sibling(args.source, "image_2")
    labels_source = args.labels or kitti_sibling(args.source, "label_2")  # ground truth for the pictures
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"mmloop_runtime: {len(clouds)} cloud(s) from {args.source} through {args.model} "
        f"({detector.network.name}); writing {', '.join(formats)}{' and BEV pictures' if args.render else ''} "
        f"to {args.out}/",
        file=sys.stderr,
    )
    progress = Progress(len(clouds))
    dropped: dict[str, int] = {}
    for cloud in clouds:
        frame = cloud.stem
        points = read_cloud(cloud, features)
        start = time.perf_counter()
        boxes, scores, labels = detector.predict(points)
        elapsed = 1000 * (time.perf_counter() - start)
        if detector.dropped_points:
            dropped[frame] = detector.dropped_points
            points = drop_non_finite(points)[0]  # the picture draws what the network saw
        if "json" in formats:
            (args.out / f"{frame}.json").write_text(json_text(detections_json(frame, detector, boxes, scores, labels)))
        if "kitti" in formats:
            calib_file = frame_file(calib_source, frame, ".txt")
            if calib_file is None:
                raise FileNotFoundError(
                    f"{calib_source}/{frame}.txt: not found; every frame needs its calibration "
                    f"for label_2 output (or use --format json)"
                )
            image = frame_file(images, frame, ".png")
            lines = label_lines(
                boxes,
                scores,
                labels,
                list(detector.class_names),
                read_calib(calib_file),
                png_size(image) if image else None,
            )
            (args.out / f"{frame}.txt").write_text("".join(line + "\n" for line in lines))
        if args.render:
            render_frame(args, detector, frame, points, (boxes, scores, labels), calib_source, labels_source, images)
        progress.step(f"{frame}: {len(boxes)} boxes, {elapsed:.1f} ms")
    if dropped:
        first = next(iter(dropped))
        print(
            f"mmloop_runtime: warning: dropped {sum(dropped.values())} point(s) with NaN or infinite fields "
            f"in {len(dropped)} of {len(clouds)} frame(s) before voxelizing (first: {first}, {dropped[first]} "
            f"points; counts per frame in the JSON's non_finite_points_dropped); check the driver's no-return value",
            file=sys.stderr,
        )
    return 0


def render_frame(
    args: argparse.Namespace,
    detector: Any,
    frame: str,
    points: np.ndarray,
    detections: tuple[np.ndarray, np.ndarray, np.ndarray],
    calib_source: Path | None,
    labels_source: Path | None,
    images: Path | None,
) -> None:
    """<frame>.png: the predictions over the ground truth, counted as KITTI counts them when there is some."""
    from mmloop_runtime.bev import render_bev, save_bev
    from mmloop_runtime.matching import kitti_ignored_predictions

    boxes, scores, labels = detections
    calib_file = frame_file(calib_source, frame, ".txt")
    truth = ground_truth(frame_file(labels_source, frame, ".txt"), calib_file, detector.class_names)
    image = frame_file(images, frame, ".png")
    ignored = (
        None if truth is None else kitti_ignored_predictions(boxes, truth.calib, png_size(image) if image else None)
    )
    picture = render_bev(
        points,
        detector.manifest.voxelizer.point_cloud_range,
        list(detector.class_names),
        boxes=boxes,
        scores=scores,
        labels=labels,
        truth=truth,
        title=f"{frame}  {args.model}",
        score_thr=args.render_score_thr,
        pred_ignored=ignored,
    )
    save_bev(picture, args.out / f"{frame}.png")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return image_command(args) if args.command == "predict-image" else predict_command(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"mmloop_runtime: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
