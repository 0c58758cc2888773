"""`ImageDetector(model_dir).predict(image)`: a camera image in, 2D boxes out, without PyTorch or OpenCV.

The deployed graph is mmdeploy's ObjectDetection export of an mmdet detector, NMS included (outputs
`dets` [1, N, 5]: x0, y0, x1, y1, score and `labels` [1, N]). What the runtime does around it is the
test pipeline the model was trained with, as the export wrote it into manifest.json: mmcv's resize
(keep ratio or not), mmdet's Pad, the data preprocessor's channel swap, mean/std and batch pad, and,
after the graph, mmdeploy's End2EndModel: drop the zero-score padding rows, divide the boxes by the
resize factors. Pillow reads the files; the resize is numpy.

The resize is cv2's INTER_LINEAR for 8-bit images (what mmcv calls 'bilinear') step by step: the
same source taps (edge columns clamped, edge rows read twice), the same 11-bit fixed-point weights,
the same integer sums, and the vertical pass rounded as OpenCV's SIMD loop rounds it (16-bit high
products of the sums shifted by 4, then 2 bits). Pillow's bilinear filter would not do: it widens
its kernel when it shrinks an image (antialiasing), cv2 does not. Measured bit for bit against
opencv-python 4.11 on the real KITTI frames and 300 random size pairs, up and down
(runtime/tests/test_camera.py); an OpenCV built without SIMD rounds once by 22 bits instead and
would differ from it by at most 1 grey level on some values.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmloop_runtime.backends import open_network
from mmloop_runtime.head import Detections
from mmloop_runtime.manifest import MANIFEST

FORMAT = "mmloop-runtime-image/1"
STEPS = ("preprocess", "network", "postprocess")
COEF_BITS = 11  # cv2's INTER_RESIZE_COEF_BITS: 8-bit resize weights in 1/2048


@dataclass(frozen=True)
class Preprocess:
    """The test pipeline as mmdet runs it, in order (sizes are (width, height) as mmcv takes them)."""

    channel_order: str  # how mmdet loads the image: 'bgr' (mmcv's default) or 'rgb'
    scale: tuple[int, int]  # Resize scale
    keep_ratio: bool
    pad_size: tuple[int, int] | None  # Pad to this size, or
    pad_size_divisor: int | None  # to a multiple of this, or
    pad_to_square: bool  # to a square; value per channel, in pixel values
    pad_value: tuple[float, ...]
    bgr_to_rgb: bool  # the data preprocessor swaps the first and third channel
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    batch_pad_divisor: int  # the data preprocessor's pad_size_divisor, with
    batch_pad_value: float  # this value (after normalization)


@dataclass(frozen=True)
class ImageManifest:
    class_names: tuple[str, ...]
    inputs: tuple[str, ...]  # ('input',)
    outputs: tuple[str, ...]  # ('dets', 'labels')
    input_size: tuple[int, int]  # (height, width) of the graph's static input
    preprocess: Preprocess
    score_thr: float  # the model's test_cfg.score_thr (applied inside the graph)


def _pair(value: Any) -> tuple[int, int]:
    width, height = value
    return int(width), int(height)


def manifest_from_dict(data: dict[str, Any]) -> ImageManifest:
    pre = data["preprocess"]
    optional = pre.get("mean"), pre.get("std")
    return ImageManifest(
        class_names=tuple(str(name) for name in data["class_names"]),
        inputs=tuple(data["inputs"]),
        outputs=tuple(data["outputs"]),
        input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
        preprocess=Preprocess(
            channel_order=str(pre["channel_order"]),
            scale=_pair(pre["scale"]),
            keep_ratio=bool(pre["keep_ratio"]),
            pad_size=None if pre["pad_size"] is None else _pair(pre["pad_size"]),
            pad_size_divisor=None if pre["pad_size_divisor"] is None else int(pre["pad_size_divisor"]),
            pad_to_square=bool(pre["pad_to_square"]),
            pad_value=tuple(float(v) for v in pre["pad_value"]),
            bgr_to_rgb=bool(pre["bgr_to_rgb"]),
            mean=None if optional[0] is None else tuple(float(v) for v in optional[0]),
            std=None if optional[1] is None else tuple(float(v) for v in optional[1]),
            batch_pad_divisor=int(pre["batch_pad_divisor"]),
            batch_pad_value=float(pre["batch_pad_value"]),
        ),
        score_thr=float(data["score_thr"]),
    )


def load_image_manifest(model_dir: str | Path) -> ImageManifest:
    """The manifest of a deployed 2D detector folder, with a one-line error naming what is wrong."""
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not found; pass a deployed camera model folder (pipelines/kitti-camera/deploy/<target>) "
            f"written by mmloop's export_2d/deploy_2d stages"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a JSON manifest ({error}); rerun `dvc repro export_2d`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        hint = " (a LiDAR model: use mmloop_runtime.Detector)" if found == "mmloop-runtime/1" else ""
        raise ValueError(f"{path}: format {found!r}, ImageDetector reads {FORMAT!r}{hint}")
    try:
        manifest = manifest_from_dict(data)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: malformed manifest ({type(error).__name__}: {error}); rerun export_2d") from None
    if manifest.preprocess.channel_order not in ("bgr", "rgb"):
        raise ValueError(f"{path}: channel_order {manifest.preprocess.channel_order!r}; expected 'bgr' or 'rgb'")
    return manifest


# --- the test pipeline --------------------------------------------------------------------------


def rescaled_size(width: int, height: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv.rescale_size: the largest size within `scale` (long edge, short edge) keeping the ratio."""
    factor = min(max(scale) / max(width, height), min(scale) / min(width, height))
    return int(width * factor + 0.5), int(height * factor + 0.5)


def _taps(source: int, target: int, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """cv2's INTER_LINEAR taps along one axis: first and second source index and their 11-bit
    weights. Columns outside the image take the edge pixel whole (`clamp`); rows keep their
    weights and read the edge row twice, as cv2 does."""
    scale = 1.0 / (target / source)  # cv2 keeps inv_scale = target / source and inverts it
    position = ((np.arange(target) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.int64)
    fraction = (position - first.astype(np.float32)).astype(np.float32)
    if clamp:
        low, high = first < 0, first >= source - 1
        fraction[low | high] = 0
        first[low], first[high] = 0, source - 1
    one = np.float32(1 << COEF_BITS)
    weights = np.rint((np.float32(1) - fraction) * one).astype(np.int64), np.rint(fraction * one).astype(np.int64)
    return np.clip(first, 0, source - 1), np.clip(first + 1, 0, source - 1), weights[0], weights[1]


def resize_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR) for an (H, W, C) uint8 image."""
    rows, cols, channels = image.shape
    x0, x1, a0, a1 = _taps(cols, width, clamp=True)
    y0, y1, b0, b1 = _taps(rows, height, clamp=False)
    pixels = image.astype(np.int64)
    across = pixels[:, x0] * a0[None, :, None] + pixels[:, x1] * a1[None, :, None]  # (rows, width, C)
    across = across.reshape(rows, width * channels)
    top, bottom = across[y0] >> 4, across[y1] >> 4
    # cv2's SIMD vertical pass: 16-bit high products of the 4-bit-shifted sums, rounded by 2 bits
    values = (((top * b0[:, None]) >> 16) + ((bottom * b1[:, None]) >> 16) + 2) >> 2
    return np.clip(values, 0, 255).astype(np.uint8).reshape(height, width, channels)


def pad_target(height: int, width: int, pre: Preprocess) -> tuple[int, int]:
    """(height, width) after mmcv's Pad transform (square first, then the divisor; never smaller)."""
    size = (max(height, width),) * 2 if pre.pad_to_square else (height, width)
    if pre.pad_size_divisor:
        size = tuple(-(-side // pre.pad_size_divisor) * pre.pad_size_divisor for side in size)
    elif pre.pad_size is not None:
        size = pre.pad_size[1], pre.pad_size[0]
    return max(size[0], height), max(size[1], width)


def preprocess(image: np.ndarray, manifest: ImageManifest) -> tuple[np.ndarray, tuple[float, float]]:
    """An (H, W, 3) uint8 RGB image as the graph's (1, 3, h, w) float32 input, and the (x, y)
    resize factors mmdet records as scale_factor."""
    pre = manifest.preprocess
    pixels = image[:, :, ::-1] if pre.channel_order == "bgr" else image  # as mmcv loads it
    rows, cols = pixels.shape[:2]
    width, height = rescaled_size(cols, rows, pre.scale) if pre.keep_ratio else pre.scale
    resized = resize_bilinear(np.ascontiguousarray(pixels), width, height)
    pad_h, pad_w = pad_target(height, width, pre)
    canvas = np.empty((pad_h, pad_w, 3), np.float32)
    canvas[:] = np.asarray(pre.pad_value, np.float32).astype(np.uint8)  # mmcv pads in the image's dtype
    canvas[:height, :width] = resized
    if pre.bgr_to_rgb:
        canvas = canvas[:, :, ::-1]
    if pre.mean is not None and pre.std is not None:
        canvas = (canvas - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    divisor = max(pre.batch_pad_divisor, 1)
    batch_h, batch_w = -(-pad_h // divisor) * divisor, -(-pad_w // divisor) * divisor
    if (batch_h, batch_w) != manifest.input_size:
        raise ValueError(
            f"a {cols}x{rows} image becomes {batch_w}x{batch_h} in the test pipeline, but the graph takes "
            f"{manifest.input_size[1]}x{manifest.input_size[0]}; export with a fixed Pad size"
        )
    tensor = np.full((3, batch_h, batch_w), pre.batch_pad_value, np.float32)
    tensor[:, :pad_h, :pad_w] = canvas.transpose(2, 0, 1)
    return tensor[None], (width / cols, height / rows)


def postprocess(dets: np.ndarray, labels: np.ndarray, factors: tuple[float, float], score_thr: float) -> Detections:
    """mmdeploy's End2EndModel after the graph: rows with score > 0 (the rest pad the output),
    boxes divided by the resize factors in float32, as it divides them; then `score_thr`."""
    dets, labels = dets[0], labels[0]
    keep = (dets[:, 4] > 0) & (dets[:, 4] >= score_thr)
    factor = np.asarray([factors[0], factors[1], factors[0], factors[1]], np.float32)
    boxes = (dets[keep, :4].astype(np.float32) / factor).astype(np.float32)
    return Detections(boxes, dets[keep, 4].astype(np.float32), labels[keep].astype(np.int64))


def read_image(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (Pillow)."""
    try:
        from PIL import Image
    except ImportError:
        raise RuntimeError("reading images needs Pillow: pip install 'mmloop-runtime[render]'") from None
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


class ImageDetector:
    """A deployed 2D detector folder (deploy/<target>/ or deploy/onnx/ of the camera pipeline).

    `predict` takes an (H, W, 3) uint8 RGB array or an image file and returns boxes (K, 4: x0, y0,
    x1, y1 in the image's pixels), scores (K,) and labels (K,, indices into `class_names`) with a
    score of at least `score_thr`; `timings` holds the last image's milliseconds per step.
    """

    def __init__(self, model_dir: str | Path, threads: int = 0, score_thr: float = 0.0) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = load_image_manifest(self.model_dir)
        self.network = open_network(self.model_dir, self.manifest.outputs, threads)
        self.class_names = self.manifest.class_names
        self.score_thr = float(score_thr)
        self.timings: dict[str, float] = dict.fromkeys(STEPS, 0.0)

    def predict(self, image: np.ndarray | str | Path) -> Detections:
        pixels = read_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8 or 0 in pixels.shape:
            raise ValueError(f"image of shape {pixels.shape} ({pixels.dtype}); pass (H, W, 3) uint8 RGB")
        start = time.perf_counter()
        tensor, factors = preprocess(pixels, self.manifest)
        ready = time.perf_counter()
        outputs = self.network({self.manifest.inputs[0]: tensor})
        ran = time.perf_counter()
        found = postprocess(
            outputs[self.manifest.outputs[0]], outputs[self.manifest.outputs[1]], factors, self.score_thr
        )
        done = time.perf_counter()
        self.timings = {
            "preprocess": 1000 * (ready - start),
            "network": 1000 * (ran - ready),
            "postprocess": 1000 * (done - ran),
        }
        return found


# --- command line: python -m mmloop_runtime predict-image ---------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def add_image_command(commands: Any) -> None:
    command = commands.add_parser("predict-image", help="detect objects in camera images (a deployed 2D detector)")
    command.add_argument("source", type=Path, help="an image or a folder of .png/.jpg images (KITTI image_2)")
    command.add_argument(
        "--model", type=Path, required=True, help="a deployed camera model: pipelines/kitti-camera/deploy/<target>"
    )
    command.add_argument("--out", type=Path, default=Path("preds"), help="where the result files go (default: preds/)")
    command.add_argument("--score-thr", type=float, default=0.3, help="boxes kept score at least this (default 0.3)")
    command.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (default 0: one per core)")


def image_files(source: Path) -> list[Path]:
    if source.is_dir():
        images = sorted(path for path in source.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ValueError(f"{source}: no .png/.jpg images in this folder; pass KITTI's image_2 or an image")
        return images
    if not source.is_file():
        raise FileNotFoundError(f"{source}: not found; pass an image or a folder of them")
    return [source]


def kitti_2d_lines(found: Detections, class_names: tuple[str, ...]) -> list[str]:
    """KITTI's object result format with only the 2D box (what its 2D evaluation reads)."""
    return [
        f"{class_names[label]} -1 -1 -10 {box[0]:.2f} {box[1]:.2f} {box[2]:.2f} {box[3]:.2f} "
        f"-1 -1 -1 -1000 -1000 -1000 -10 {score:.4f}"
        for box, score, label in zip(found.boxes, found.scores, found.labels)
    ]


def image_command(args: Any) -> int:
    """Per image `<name>.json` (boxes in image pixels) and `<name>.txt` (KITTI's result format)."""
    import sys

    if not 0 <= args.score_thr < 1:
        raise ValueError(f"--score-thr {args.score_thr}: use a number in [0, 1)")
    images = image_files(args.source)
    detector = ImageDetector(args.model, threads=args.threads, score_thr=args.score_thr)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"mmloop_runtime: {len(images)} image(s) through {args.model} ({detector.network.name})", file=sys.stderr)
    for path in images:
        found = detector.predict(path)
        report = {
            "image": str(path),
            "model": str(detector.model_dir),
            "box_layout": ["x0", "y0", "x1", "y1"],
            "timings_ms": {step: round(ms, 3) for step, ms in detector.timings.items()},
            "detections": [
                {
                    "label": detector.class_names[label],
                    "score": round(float(score), 5),
                    "box": [round(float(v), 3) for v in box],
                }
                for box, score, label in zip(*found)
            ],
        }
        (args.out / f"{path.stem}.json").write_text(json.dumps(report, indent=1) + "\n")
        (args.out / f"{path.stem}.txt").write_text(
            "".join(line + "\n" for line in kitti_2d_lines(found, detector.class_names))
        )
        print(f"mmloop_runtime: {path.name}: {len(found.labels)} boxes", file=sys.stderr)
    return 0
