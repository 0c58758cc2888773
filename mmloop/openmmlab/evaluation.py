"""mmengine's Runner for `evaluate`: the test split's first frames drawn from above, and their params."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from mmloop.core.stage import StageError

#: evaluate.bev_pixels_per_metre's ceiling: 50 draws a 46 m range 2300 px wide.
MAX_PIXELS_PER_METRE = 50


@dataclass(frozen=True)
class BevSettings:
    """params.yaml evaluate.bev_*: how many frames, which predictions, at what scale."""

    frames: int
    score_thr: float
    pixels_per_metre: float


def bev_settings(params: dict[str, Any]) -> BevSettings:
    """The evaluate section's BEV params, each checked with a one-line fix before any work."""
    frames = params.get("bev_frames", 0)
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 0:
        raise StageError(
            f"params.yaml: evaluate.bev_frames is {frames!r}; use a whole number >= 0 (frames drawn as BEV pictures)"
        )
    score_thr = params.get("bev_score_thr", 0.3)
    if not _is_number(score_thr) or not 0 <= score_thr < 1:
        raise StageError(
            f"params.yaml: evaluate.bev_score_thr is {score_thr!r}; use a number in [0, 1) "
            f"(predictions drawn and counted in the BEV pictures score at least this)"
        )
    scale = params.get("bev_pixels_per_metre", 20)
    if not _is_number(scale) or not 0 < scale <= MAX_PIXELS_PER_METRE:
        raise StageError(
            f"params.yaml: evaluate.bev_pixels_per_metre is {scale!r}; use a number in (0, {MAX_PIXELS_PER_METRE}] "
            f"(the BEV pictures' scale: 20 draws the sample's 46 m wide range 922 px wide)"
        )
    return BevSettings(frames, float(score_thr), float(scale))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def bev_pictures(
    runner: Any, cfg: Any, classes: list[str], settings: BevSettings, dataset: ModuleType, out: Path, model_name: str
) -> int:
    """The first ``settings.frames`` frames of the test loader drawn from above by mmloop_runtime's
    renderer: the model's predictions (as Runner.test() made them) over the ground truth, counted as
    the dataset's metric counts them (``dataset.bev_truth``)."""
    import torch

    from mmloop_runtime.bev import render_bev, save_bev

    point_cloud_range = list(cfg.model.data_preprocessor.voxel_layer.point_cloud_range)
    with Path(cfg.test_evaluator.ann_file).open("rb") as handle:
        infos = pickle.load(handle)
    drawn = 0
    with torch.no_grad():
        for data in runner.test_dataloader:
            if drawn >= settings.frames:
                break
            sample = runner.model.test_step(data)[0]
            pred = sample.pred_instances_3d
            boxes = pred.bboxes_3d.tensor.cpu().numpy()
            # mmengine numbers samples by their place in the info file, as KittiMetric looks them up.
            info = infos["data_list"][sample.sample_idx]
            truth, ignored = dataset.bev_truth(
                info, infos["metainfo"]["categories"], classes, boxes, cfg.test_evaluator
            )
            frame = Path(info["lidar_points"]["lidar_path"]).stem
            image = render_bev(
                data["inputs"]["points"][0].numpy(),
                point_cloud_range,
                classes,
                boxes=boxes,
                scores=pred.scores_3d.cpu().numpy(),
                labels=pred.labels_3d.cpu().numpy(),
                truth=truth,
                title=f"{sample.sample_idx:06d} (frame {frame})  {model_name}",
                pixels_per_metre=settings.pixels_per_metre,
                score_thr=settings.score_thr,
                pred_ignored=ignored,
            )
            save_bev(image, out / f"{sample.sample_idx:06d}.png")
            drawn += 1
    return drawn
