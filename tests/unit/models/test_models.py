"""Model families (mmloop.models): a config finds its family by its head, the voxelizer's layout,
and the anchor-head family's grid check with its one-line errors."""

from __future__ import annotations

from typing import Any

import pytest

from mmloop.core.stage import StageError
from mmloop.models import anchor3d, family_of, voxel_layout
from mmloop.openmmlab.config import load_config

SMALL = "configs/models/pointpillars_small-sample.py"
FULL = "configs/models/pointpillars_kitti-3class.py"


@pytest.fixture
def repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import REPO

    monkeypatch.chdir(REPO)  # config paths are relative to the repo root, as under `dvc repro`


def test_voxel_layout_reads_the_voxelizer(repo_root: None) -> None:
    assert voxel_layout(load_config(SMALL)) == (32, 4, 20000)
    assert voxel_layout(load_config(FULL)) == (32, 4, 40000)


def test_family_of_picks_the_anchor_head_family(repo_root: None) -> None:
    cfg = load_config(SMALL)
    assert family_of(cfg) is anchor3d
    assert family_of(cfg.to_dict()) is anchor3d  # a config tree works too (cfg_options passes one)
    cfg.model.bbox_head.type = "CenterHead"
    with pytest.raises(StageError) as error:
        family_of(cfg)
    assert str(error.value) == (
        "params.yaml: model.config has head 'CenterHead', which no mmloop model family "
        "covers (known: Anchor3DHead); add a module under mmloop/models"
    )


@pytest.mark.parametrize(
    "point_cloud_range, voxel_size, message",
    [
        ([0, -23.04, -3, 46.08, 23.04], [0.32, 0.32, 4], "model.point_cloud_range needs 6 numbers"),
        (
            [0, -23.04, -3, 46.08, 23.04, 1],
            [0.32, -0.32, 4],
            "y extent 46.08 and voxel size -0.32 must both be positive",
        ),
        ([0, -23.04, -3, 46.0, 23.04, 1], [0.32, 0.32, 4], "does not divide the point cloud range's x extent 46"),
    ],
)
def test_check_grid_rejects(point_cloud_range: Any, voxel_size: Any, message: str) -> None:
    with pytest.raises(StageError, match=None) as error:
        anchor3d.check_grid(point_cloud_range, voxel_size, stride=8)
    assert message in str(error.value) and str(error.value).startswith("params.yaml: model.")


def test_check_grid_counts_voxels() -> None:
    assert anchor3d.check_grid([0, -23.04, -3, 46.08, 23.04, 1], [0.32, 0.32, 4], stride=8) == (144, 144, 1)
