"""Predictions drawn over a camera image (mmloop.camera.pictures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmloop.camera.pictures import COLOURS, IGNORED, TRUTH, draw, picture_settings, write_pictures
from mmloop.core.stage import StageError

CLASSES = ["Car", "Pedestrian", "Cyclist"]


def test_boxes_are_drawn_in_their_colours_and_low_scores_left_out(tmp_path: Path) -> None:
    path = tmp_path / "000007.png"
    Image.new("RGB", (400, 200), (60, 60, 60)).save(path)
    truth = [((20.0, 40.0, 120.0, 140.0), False), ((300.0, 50.0, 350.0, 100.0), True)]
    prediction = (
        np.array([[200.0, 60.0, 280.0, 180.0], [10.0, 10.0, 30.0, 30.0]]),
        np.array([0.9, 0.1]),
        np.array([1, 0]),
    )
    picture, shown = draw(path, truth, prediction, CLASSES, score_thr=0.3)
    assert shown == 1 and picture.size == (400, 200)
    assert picture.getpixel((20, 90)) == TRUTH and picture.getpixel((300, 75)) == IGNORED
    assert picture.getpixel((200, 120)) == COLOURS[1]  # the Pedestrian's left edge
    assert picture.getpixel((20, 20)) != COLOURS[0]  # the 0.1 Car is not drawn


def test_pictures_for_the_first_frames(tmp_path: Path) -> None:
    coco = {"images": [], "annotations": []}
    for n in range(3):
        name = f"training/image_2/00000{n}.png"
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 32)).save(tmp_path / name)
        coco["images"].append({"id": n, "file_name": name, "frame_id": f"00000{n}"})
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int))
    out = tmp_path / "pictures"
    out.mkdir()
    assert write_pictures(coco, {n: empty for n in range(3)}, CLASSES, tmp_path, out, 2, 0.3) == 2
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png"]


@pytest.mark.parametrize(("key", "value"), [("picture_frames", -1), ("picture_frames", 1.5), ("picture_score_thr", 1)])
def test_picture_params_fail_in_one_line(key: str, value: object) -> None:
    with pytest.raises(StageError, match=rf"evaluate.{key} is {value!r}; use"):
        picture_settings({key: value})
