"""BEV pictures put points and boxes where a driver expects them: x forward is up, y left is left."""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from mmloop_runtime import bev

RANGE = [0.0, -20.0, -3.0, 40.0, 20.0, 1.0]
PPM = 8.0
CLASS_NAMES = ["Pedestrian", "Cyclist", "Car"]
CAR = 2
# A car 20 m ahead, 5 m to the left, facing straight ahead; ground truth beside it on the right.
PRED_BOX = np.array([[20.0, 5.0, -1.6, 4.0, 2.0, 1.5, 0.0]])
GT_BOX = np.array([[15.0, -8.0, -1.6, 4.0, 2.0, 1.5, math.pi / 2]])


def pixel(x: float, y: float) -> tuple[int, int]:
    """(row, col) of LiDAR x/y in a RANGE picture at PPM, by the documented mapping."""
    return int(math.floor((RANGE[3] - x) * PPM)), int(math.floor((RANGE[4] - y) * PPM))


def as_array(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def near(picture: np.ndarray, row: int, col: int, colour: tuple[int, int, int], radius: int = 1) -> bool:
    patch = picture[max(row - radius, 0) : row + radius + 1, max(col - radius, 0) : col + radius + 1]
    return bool((patch == colour).all(axis=-1).any())


@pytest.fixture
def frame() -> dict:
    points = np.array(
        [
            [30.0, 0.0, 0.5, 0.3],  # far ahead on the centre line
            [10.0, 12.0, -1.0, 0.3],  # near, to the left
            [10.0, -12.0, -2.5, 0.3],  # near, to the right, low
            [100.0, 0.0, 0.0, 0.3],  # outside the range: dropped, not wrapped
        ],
        dtype=np.float32,
    )
    return {"points": points, "point_cloud_range": RANGE, "class_names": CLASS_NAMES, "pixels_per_metre": PPM}


def test_size_points_and_orientation(frame: dict) -> None:
    picture = as_array(bev.render_bev(**frame))
    assert picture.shape == (int((RANGE[3] - RANGE[0]) * PPM), int((RANGE[4] - RANGE[1]) * PPM), 3)  # 320 x 320
    background = np.array(bev.BACKGROUND, dtype=np.uint8)
    ahead, left, right = pixel(30, 0), pixel(10, 12), pixel(10, -12)
    for row, col in (ahead, left, right):
        assert (picture[row, col] != background).any()
        assert picture[row, col, 0] == picture[row, col, 1] == picture[row, col, 2]  # grey dots
    assert ahead[0] < left[0]  # x forward is up
    assert left[1] < ahead[1] < right[1]  # y left is left
    assert picture[left][0] > picture[right][0]  # higher points are brighter
    assert (picture == background).all(axis=-1).mean() > 0.95  # dark background elsewhere


def test_boxes_drawn_in_class_colour_with_heading_tick_and_score(frame: dict) -> None:
    image = bev.render_bev(**frame, boxes=PRED_BOX, scores=[0.87], labels=[CAR], gt_boxes=GT_BOX, gt_labels=[CAR])
    picture = as_array(image)
    car = bev.class_colour(CAR)
    x, y, _, dx, dy, _, _ = PRED_BOX[0]
    # middle of each edge of the predicted box: left (y + dy/2), right, front (x + dx/2), rear
    for edge in ((x, y + dy / 2), (x, y - dy / 2), (x + dx / 2, y), (x - dx / 2, y)):
        assert near(picture, *pixel(*edge), car), edge
    # the heading tick runs from the centre to the front edge, not towards the rear
    assert near(picture, *pixel(x + dx / 4, y), car)
    assert not near(picture, *pixel(x - dx / 4, y), car)
    # score text in the class colour, right of the box in the picture (towards -y)
    text_row, text_col = pixel(x, y - dy / 2)
    text = picture[text_row - 12 : text_row + 12, text_col + 2 : text_col + 40].reshape(-1, 3).astype(int)
    inked = text[(text != bev.BACKGROUND).any(axis=-1)]
    assert len(inked) > 20
    strongest = inked[np.argmax(inked.sum(axis=-1))]  # the text is antialiased: its fullest pixel is the colour
    assert np.abs(strongest - car).max() < 40, strongest
    # ground truth: light, thin, and not in any class colour; it is rotated 90 degrees so its long side runs along y
    gx, gy = GT_BOX[0, :2]
    row, col = pixel(gx + 1.0, gy)  # long side, 1 m ahead of the centre
    assert picture[row, col].min() > 180
    assert tuple(picture[row, col]) not in bev.CLASS_COLOURS
    assert not (picture == car).all(axis=-1)[pixel(gx - 1.0, gy + 1.0)]  # inside the GT box: no outline
    # legend: the Car swatch carries the class colour near the top-left
    assert (picture[:40, :250] == car).all(axis=-1).any()


def test_works_without_boxes_and_with_empty_arrays(frame: dict) -> None:
    plain = as_array(bev.render_bev(**frame, title="000004 pointpillars"))
    empty = as_array(
        bev.render_bev(
            **frame, boxes=np.zeros((0, 7)), scores=np.zeros(0), labels=np.zeros(0), gt_boxes=np.zeros((0, 7))
        )
    )
    assert plain.shape == empty.shape
    no_points = as_array(bev.render_bev(np.zeros((0, 4), np.float32), RANGE, CLASS_NAMES, pixels_per_metre=PPM))
    assert no_points.shape == plain.shape
    for colour in bev.CLASS_COLOURS[len(CLASS_NAMES) :]:
        assert not (plain == colour).all(axis=-1).any()  # only the legend's classes are coloured


def test_size_follows_range_and_resolution() -> None:
    image = bev.render_bev(
        np.zeros((1, 4), np.float32), [0, -39.68, -3, 69.12, 39.68, 1], CLASS_NAMES, pixels_per_metre=4.0
    )
    assert image.size == bev.picture_size([0, -39.68, -3, 69.12, 39.68, 1], 4.0) == (317, 276)


def test_png_written_and_read_back(frame: dict, tmp_path: Path) -> None:
    from PIL import Image

    image = bev.render_bev(**frame, boxes=PRED_BOX, scores=[0.5], labels=[0], title="frame 000000")
    path = bev.save_bev(image, tmp_path / "nested" / "dirs" / "000000.png")
    assert path.is_file()
    with Image.open(path) as back:
        assert back.format == "PNG" and back.size == image.size
        np.testing.assert_array_equal(as_array(back), as_array(image))


def test_without_pillow_import_works_and_render_says_how_to_install(frame: dict, monkeypatch) -> None:
    for name in [m for m in sys.modules if m == "PIL" or m.startswith("PIL.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.delitem(sys.modules, "mmloop_runtime.bev")
    fresh = importlib.import_module("mmloop_runtime.bev")  # imports fine without Pillow
    with pytest.raises(RuntimeError) as error:
        fresh.render_bev(**frame)
    assert str(error.value) == "BEV pictures need Pillow: pip install 'mmloop-runtime[render]'"


def test_bad_points_shape(frame: dict) -> None:
    frame["points"] = np.zeros((5,), np.float32)
    with pytest.raises(ValueError, match=r"^render_bev: points of shape \(5,\) are not \(N, 3\+\)"):
        bev.render_bev(**frame)
