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
from mmloop_runtime.matching import Truth

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
    # 320 x 320 for the range, and the caption strip below it
    assert picture.shape == (int((RANGE[3] - RANGE[0]) * PPM) + bev.CAPTION_HEIGHT, int((RANGE[4] - RANGE[1]) * PPM), 3)
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
    image = bev.render_bev(**frame, boxes=PRED_BOX, scores=[0.87], labels=[CAR])
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
    # legend: the Car swatch carries the class colour in the caption strip under the range
    strip = picture[int((RANGE[3] - RANGE[0]) * PPM) :]
    assert (strip == car).all(axis=-1).any()
    assert not (picture[: -bev.CAPTION_HEIGHT] == car).all(axis=-1)[:, :100].any()  # no legend over the scene


def test_works_without_boxes_and_with_empty_arrays(frame: dict) -> None:
    plain = as_array(bev.render_bev(**frame, title="000004 pointpillars"))
    empty = as_array(
        bev.render_bev(
            **frame, boxes=np.zeros((0, 7)), scores=np.zeros(0), labels=np.zeros(0), truth=Truth(np.zeros((0, 7)), [])
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
    assert image.size == bev.picture_size([0, -39.68, -3, 69.12, 39.68, 1], 4.0) == (317, 276 + bev.CAPTION_HEIGHT)
    # the default scale draws the sample model's 46 m wide range about 900 px wide
    assert bev.picture_size([0, -23.04, -3, 46.08, 23.04, 1])[0] == 922


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


def outline_midpoints(box: np.ndarray) -> list[tuple[float, float]]:
    """LiDAR x/y of the middle of each edge of an axis-aligned (yaw 0) box."""
    x, y, _, dx, dy, _, _ = box
    return [(x, y + dy / 2), (x, y - dy / 2), (x + dx / 2, y), (x - dx / 2, y)]


def test_matching_marks_misses_false_positives_and_ignored_ground_truth(frame: dict) -> None:
    found = [20.0, 5.0, -1.6, 4.0, 2.0, 1.5, 0.0]
    missed = [12.0, -10.0, -1.6, 4.0, 2.0, 1.5, 0.0]
    ignored = [32.0, 12.0, -1.6, 4.0, 2.0, 1.5, 0.0]  # e.g. too far for KITTI hard
    truth = Truth(np.array([found, missed, ignored]), np.array([CAR] * 3), np.array([False, False, True]))
    hit = [20.1, 5.0, -1.6, 4.0, 2.0, 1.5, 0.0]
    false_positive = [30.0, -10.0, -1.6, 4.0, 2.0, 1.5, 0.0]
    below = [8.0, 12.0, -1.6, 4.0, 2.0, 1.5, 0.0]
    boxes = np.array([hit, false_positive, below])
    args = dict(boxes=boxes, scores=[0.9, 0.8, 0.1], labels=[CAR] * 3, truth=truth, score_thr=0.3)
    picture = as_array(bev.render_bev(**frame, **args))
    car = bev.class_colour(CAR)
    # a miss: red outline all round; the ignored GT: thin grey, no fill
    for edge in outline_midpoints(np.array(missed)):
        assert near(picture, *pixel(*edge), bev.ERROR_COLOUR), edge
    for edge in outline_midpoints(np.array(ignored)):
        assert near(picture, *pixel(*edge), bev.IGNORED_COLOUR), edge
    assert tuple(picture[pixel(32.5, 12.5)]) == bev.BACKGROUND
    # found GT: filled translucent (lighter than the background, darker than its outline) under the hit
    inside = picture[pixel(19.0, 4.5)].astype(int)
    assert (inside > np.array(bev.BACKGROUND) + 30).all() and (inside < 150).all(), inside
    assert near(picture, *pixel(20.1 + 2.0, 5.0), car)  # the hit's front edge, drawn over the GT
    # the false positive: a red cross at its centre, and a dashed outline (gaps along an edge)
    assert near(picture, *pixel(30.0, -10.0), bev.ERROR_COLOUR)
    col = pixel(0, -9.0)[1]  # its left side, from its front (x = 32) to its rear (x = 28)
    edge = picture[pixel(31.5, 0)[0] : pixel(28.5, 0)[0], col - 1 : col + 2]
    along = (edge == car).all(axis=-1).any(axis=1)
    assert 0.2 < along.mean() < 0.9, along
    # the prediction below the threshold is not drawn at all
    for edge in outline_midpoints(np.array(below)):
        assert not near(picture, *pixel(*edge), car, radius=2), edge
    # with the threshold at 0, it is (and, unmatched, it is a false positive too)
    everything = as_array(bev.render_bev(**frame, **{**args, "score_thr": 0.0}))
    assert near(everything, *pixel(8.0, 12.0), bev.ERROR_COLOUR)


def test_grid_every_ten_metres_under_the_points(frame: dict) -> None:
    picture = as_array(bev.render_bev(**frame))
    assert bev.grid_lines(0.0, 40.0) == [10.0, 20.0, 30.0] and bev.grid_lines(-20.0, 20.0) == [-10.0, 0.0, 10.0]
    for x in (10.0, 20.0):
        row = pixel(x, 0)[0]
        assert (picture[row, 100:300] == bev.GRID_COLOUR).all(axis=-1).mean() > 0.9
    for y in (-10.0, 10.0):
        col = pixel(0, y)[1]
        assert (picture[100:300, col] == bev.GRID_COLOUR).all(axis=-1).mean() > 0.9
    assert tuple(picture[pixel(30.0, 0.0)]) != bev.GRID_COLOUR  # a point on the 30 m line stays a point
    # the distance labels sit at the left edge, above their lines
    label = picture[pixel(10.0, 0)[0] - 14 : pixel(10.0, 0)[0] - 1, :30].reshape(-1, 3)
    assert (np.abs(label.astype(int) - bev.GRID_TEXT_COLOUR).max(axis=-1) < 30).any()


def test_pixels_per_metre_scales_the_scene_not_the_caption(frame: dict) -> None:
    small = bev.render_bev(**{**frame, "pixels_per_metre": 8.0})
    large = bev.render_bev(**{**frame, "pixels_per_metre": 20.0})
    assert small.size == (320, 320 + bev.CAPTION_HEIGHT)
    assert large.size == (800, 800 + bev.CAPTION_HEIGHT)


# ---- --render: the CLI draws the same pictures, with label_2 ground truth counted as KITTI counts it --


@pytest.mark.fixtures
def test_cli_render_matches_label_2_ground_truth(kitti_real: Path, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from mmloop_runtime import cli, kitti, matching

    training = kitti_real / "training"
    model_range = [0, -23.04, -3, 46.08, 23.04, 1]
    detector = SimpleNamespace(
        class_names=tuple(CLASS_NAMES),
        manifest=SimpleNamespace(voxelizer=SimpleNamespace(point_cloud_range=model_range)),
    )
    calib = kitti.read_calib(training / "calib" / "000003.txt")
    truth = matching.read_label_truth(training / "label_2" / "000003.txt", calib, CLASS_NAMES)
    boxes = truth.boxes + [0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # the car, found
    boxes = np.concatenate([boxes, [[20.0, 8.0, -1.6, 4.0, 1.8, 1.5, 0.0]]])  # and a false positive
    scores, labels = np.array([0.9, 0.6]), np.array([CAR, CAR])
    points = kitti.read_cloud(training / "velodyne" / "000003.bin")
    args = cli.parse_args(["predict", "--model", "m", str(training / "velodyne"), "--out", str(tmp_path), "--render"])
    frame_args = (training / "calib", training / "label_2", training / "image_2")
    cli.render_frame(args, detector, "000003", points, (boxes, scores, labels), *frame_args)
    ignored = matching.kitti_ignored_predictions(boxes, calib, cli.png_size(training / "image_2" / "000003.png"))
    assert matching.match_frame(boxes, scores, labels, truth, CLASS_NAMES, 0.3, ignored).counts() == (1, 1, 0)
    expected = bev.render_bev(
        points,
        model_range,
        CLASS_NAMES,
        boxes,
        scores,
        labels,
        truth,
        title="000003  m",
        score_thr=0.3,
        pred_ignored=ignored,
    )
    from PIL import Image

    with Image.open(tmp_path / "000003.png") as drawn:
        np.testing.assert_array_equal(as_array(drawn), as_array(expected))
        assert drawn.size == (922, 922 + bev.CAPTION_HEIGHT)
    # no label file for the frame: predictions only
    cli.render_frame(args, detector, "000003", points, (boxes, scores, labels), training / "calib", tmp_path, None)
    with Image.open(tmp_path / "000003.png") as drawn:
        plain = bev.render_bev(
            points, model_range, CLASS_NAMES, boxes, scores, labels, title="000003  m", score_thr=0.3
        )
        np.testing.assert_array_equal(as_array(drawn), as_array(plain))


def test_cli_checks_labels_and_render_threshold_before_loading_the_model(tmp_path: Path, capsys) -> None:
    from mmloop_runtime import cli

    cloud = tmp_path / "000000.bin"
    cloud.write_bytes(b"\0" * 16)
    base = ["predict", "--model", str(tmp_path / "no-model"), str(cloud), "--render"]
    assert cli.main([*base, "--labels", str(tmp_path / "label_2")]) == 2
    assert capsys.readouterr().err == (
        f"mmloop_runtime: error: {tmp_path / 'label_2'}: not found; pass a KITTI label_2 .txt or a folder of them\n"
    )
    assert cli.main([*base, "--render-score-thr", "1.5"]) == 2
    assert capsys.readouterr().err == "mmloop_runtime: error: --render-score-thr 1.5: use a number in [0, 1)\n"


def test_scores_of_boxes_on_one_object_stack_instead_of_overprinting(frame: dict) -> None:
    one = as_array(bev.render_bev(**frame, boxes=PRED_BOX, scores=[0.9], labels=[CAR]))
    two = as_array(bev.render_bev(**frame, boxes=np.repeat(PRED_BOX, 2, axis=0), scores=[0.9, 0.5], labels=[CAR] * 2))
    row, col = pixel(PRED_BOX[0, 0], PRED_BOX[0, 1] - PRED_BOX[0, 4] / 2)
    car = np.array(bev.class_colour(CAR))

    def inked_rows(picture: np.ndarray) -> int:
        region = picture[row - 20 : row + 40, col + 3 : col + 40].astype(int)
        return int((np.abs(region - car).max(axis=-1) < 90).any(axis=1).sum())

    assert inked_rows(two) > 1.6 * inked_rows(one) > 0
