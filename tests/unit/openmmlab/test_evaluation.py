"""The evaluate stage's BEV params: checked before any work, each bad value in one line with the fix."""

from __future__ import annotations

import pytest

from mmloop.core.stage import StageError
from mmloop.openmmlab.evaluation import BevSettings, bev_settings


def test_defaults_and_given_values() -> None:
    assert bev_settings({}) == BevSettings(frames=0, score_thr=0.3, pixels_per_metre=20.0)
    given = {"bev_frames": 4, "bev_score_thr": 0, "bev_pixels_per_metre": 12.5}
    assert bev_settings(given) == BevSettings(frames=4, score_thr=0.0, pixels_per_metre=12.5)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("bev_frames", -1, "params.yaml: evaluate.bev_frames is -1; use a whole number >= 0"),
        ("bev_frames", 2.0, "params.yaml: evaluate.bev_frames is 2.0; use a whole number >= 0"),
        ("bev_score_thr", 1.0, "params.yaml: evaluate.bev_score_thr is 1.0; use a number in [0, 1)"),
        ("bev_score_thr", -0.1, "params.yaml: evaluate.bev_score_thr is -0.1; use a number in [0, 1)"),
        ("bev_score_thr", "0.3", "params.yaml: evaluate.bev_score_thr is '0.3'; use a number in [0, 1)"),
        ("bev_score_thr", True, "params.yaml: evaluate.bev_score_thr is True; use a number in [0, 1)"),
        ("bev_pixels_per_metre", 0, "params.yaml: evaluate.bev_pixels_per_metre is 0; use a number in (0, 50]"),
        ("bev_pixels_per_metre", 80, "params.yaml: evaluate.bev_pixels_per_metre is 80; use a number in (0, 50]"),
    ],
)
def test_bad_values_stop_in_one_line(key: str, value: object, message: str) -> None:
    with pytest.raises(StageError) as error:
        bev_settings({key: value})
    text = str(error.value)
    assert text.startswith(message + " (") and "\n" not in text
