"""Predictions drawn over the camera images (Pillow): evaluate_2d's DVC image plots.

Each picture is one frame's image_2 with its ground truth (thin white boxes; DontCare and similar-class
regions grey), and the predictions scoring at least `evaluate.picture_score_thr` in their class's
colour with class and score, so `dvc plots diff` shows two experiments' detections side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmloop.core.stage import StageError

#: Class colours (RGB); classes beyond these cycle through them.
COLOURS = ((230, 57, 70), (255, 190, 11), (58, 134, 255), (131, 56, 236), (6, 214, 160))
TRUTH = (255, 255, 255)
IGNORED = (150, 150, 150)


def picture_settings(params: dict[str, Any]) -> tuple[int, float]:
    """`evaluate.picture_frames` and `evaluate.picture_score_thr`, checked (one line each)."""
    frames = params.get("picture_frames", 4)
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 0:
        raise StageError(f"params.yaml: evaluate.picture_frames is {frames!r}; use a whole number >= 0 (frames drawn)")
    score_thr = params.get("picture_score_thr", 0.3)
    if isinstance(score_thr, bool) or not isinstance(score_thr, (int, float)) or not 0 <= score_thr < 1:
        raise StageError(
            f"params.yaml: evaluate.picture_score_thr is {score_thr!r}; use a number in [0, 1) "
            "(predictions drawn score at least this)"
        )
    return frames, float(score_thr)


def colour(index: int) -> tuple[int, int, int]:
    return COLOURS[index % len(COLOURS)]


def truth_boxes(coco: dict[str, Any], image_id: int) -> list[tuple[tuple[float, ...], bool]]:
    """An image's ground-truth boxes (x1 y1 x2 y2) with whether each is an ignore region."""
    boxes = []
    for ann in coco["annotations"]:
        if ann["image_id"] == image_id:
            x, y, w, h = ann["bbox"]
            boxes.append(((x, y, x + w, y + h), bool(ann["iscrowd"])))
    return list(dict.fromkeys(boxes))  # a DontCare region is stored once per category


def caption(pen: Any, corner: tuple[int, int], text: str, fill: tuple[int, int, int]) -> None:
    """Text on a dark box, readable over sky and road alike."""
    left, top, right, bottom = pen.textbbox((corner[0] + 2, corner[1] + 1), text)
    pen.rectangle([corner[0], corner[1], right + 2, bottom + 1], fill=(0, 0, 0))
    pen.text((corner[0] + 2, corner[1] + 1), text, fill=fill)


def draw(
    image_path: Path,
    truth: list[tuple[tuple[float, ...], bool]],
    prediction: tuple[np.ndarray, np.ndarray, np.ndarray],
    classes: list[str],
    score_thr: float,
) -> tuple[Any, int]:
    """The picture of one frame, and how many predictions it shows."""
    from PIL import Image, ImageDraw

    image = Image.open(image_path).convert("RGB")
    pen = ImageDraw.Draw(image)
    for corners, ignored in truth:
        pen.rectangle([round(v) for v in corners], outline=IGNORED if ignored else TRUTH, width=1)
    boxes, scores, labels = prediction
    shown = 0
    for index in np.argsort(scores, kind="stable"):  # the best drawn last, on top
        if scores[index] < score_thr:
            continue
        x1, y1, x2, y2 = (round(float(v)) for v in boxes[index])
        label = int(labels[index])
        name = classes[label] if label < len(classes) else str(label)
        pen.rectangle([x1, y1, x2, y2], outline=colour(label), width=2)
        caption(pen, (x1, max(0, y1 - 12)), f"{name} {scores[index]:.2f}", colour(label))
        shown += 1
    objects = sum(1 for _, ignored in truth if not ignored)
    caption(pen, (0, 0), f"{image_path.stem}: {shown} predictions >= {score_thr:g}, {objects} objects", TRUTH)
    return image, shown


def write_pictures(
    coco: dict[str, Any],
    predictions: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
    classes: list[str],
    image_root: Path,
    out: Path,
    frames: int,
    score_thr: float,
) -> int:
    """`<frame id>.png` in `out` for the split's first `frames` images; returns how many were drawn."""
    drawn = 0
    for image in coco["images"][:frames]:
        if image["id"] not in predictions:
            continue
        picture, _ = draw(
            Path(image_root) / image["file_name"],
            truth_boxes(coco, image["id"]),
            predictions[image["id"]],
            classes,
            score_thr,
        )
        picture.save(Path(out) / f"{image.get('frame_id', image['id'])}.png", format="PNG")
        drawn += 1
    return drawn
