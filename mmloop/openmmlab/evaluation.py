"""mmengine's Runner for `evaluate`: the test split's first frames drawn from above."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def bev_pictures(runner: Any, cfg: Any, classes: list[str], frames: int, out: Path, model_name: str) -> int:
    """The first `frames` frames of the test loader drawn from above by mmloop_runtime's renderer:
    the model's predictions (as Runner.test() made them) over the ground truth."""
    import torch

    from mmloop_runtime.bev import render_bev, save_bev

    point_cloud_range = list(cfg.model.data_preprocessor.voxel_layer.point_cloud_range)
    drawn = 0
    with torch.no_grad():
        for data in runner.test_dataloader:
            if drawn >= frames:
                break
            sample = runner.model.test_step(data)[0]
            pred, truth = sample.pred_instances_3d, sample.eval_ann_info
            scored = truth["gt_labels_3d"] >= 0  # -1: DontCare and classes the model does not detect
            image = render_bev(
                data["inputs"]["points"][0].numpy(),
                point_cloud_range,
                classes,
                boxes=pred.bboxes_3d.tensor.cpu().numpy(),
                scores=pred.scores_3d.cpu().numpy(),
                labels=pred.labels_3d.cpu().numpy(),
                gt_boxes=truth["gt_bboxes_3d"].tensor.numpy()[scored],
                gt_labels=truth["gt_labels_3d"][scored],
                title=f"{sample.sample_idx:06d}  {model_name} (white: ground truth)",
                pixels_per_metre=10,
            )
            save_bev(image, out / f"{sample.sample_idx:06d}.png")
            drawn += 1
    return drawn
