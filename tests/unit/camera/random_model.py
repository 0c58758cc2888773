"""What the camera deploy tests share: the stand-in model config, a seeded random-weight YOLOX whose
scores clear the test-time threshold, and COCO files of a KITTI folder (a minimal stand-in for
prepare_2d's, enough for CocoMetric: 2D boxes of the config's classes, DontCare left out)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from tests.helpers import REPO

CONFIG = REPO / "tests" / "unit" / "camera" / "configs" / "yolox-nano_camera.py"
CLASSES = ("Car", "Pedestrian", "Cyclist")
#: Logit biases of the head's class and objectness convs: with the random weights, 40 to 100 of the
#: real frames' 7560 (prior, class) scores clear test_cfg.score_thr 0.01, so NMS has work (mmdet's
#: init, p = 0.01 each, gives none; 0 gives thousands).
CLS_BIAS, OBJ_BIAS = -1.5, -3.5


def camera_config(ann_file: Path | None = None) -> Any:
    """The stand-in config (configs/models/yolox-nano_kitti-camera.py's shape) on `ann_file`."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIG))
    if ann_file is not None:
        cfg.test_dataloader.dataset.ann_file = str(ann_file)
        cfg.test_evaluator.ann_file = str(ann_file)
    return cfg


def random_checkpoint(model_cfg: Any, path: Path, image: Path, seed: int = 0) -> Path:
    """Seeded random weights, BN statistics from `image` (resized to 640x192), class and objectness
    biases raised."""
    import mmcv
    import torch

    from mmloop.camera.deploy import pytorch_model

    torch.manual_seed(seed)
    model = pytorch_model(model_cfg, None, "cpu")
    # Through ~40 random layers with eval-mode BN (running stats 0 and 1) the features fade to ~0 and
    # every prior gets the same score: one training-mode pass over a real image with momentum 1
    # makes each BN's running stats that pass's own, so features keep their scale and scores spread.
    norms = [module for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.momentum = 1.0
    model.train()
    with torch.no_grad():
        pixels = torch.from_numpy(mmcv.imresize(mmcv.imread(str(image)), (640, 192))).permute(2, 0, 1).float()
        model.bbox_head(model.extract_feat(pixels[None]))
    model.eval()
    for norm in norms:  # gains of at most ~10: float32 rounding is not blown up through the layers
        norm.momentum = 0.03
        norm.running_var.clamp_(min=0.01)
    with torch.no_grad():
        for conv in model.bbox_head.multi_level_conv_cls:
            conv.bias.fill_(CLS_BIAS)
        for conv in model.bbox_head.multi_level_conv_obj:
            conv.bias.fill_(OBJ_BIAS)
    torch.save({"state_dict": model.state_dict(), "meta": {"dataset_meta": {"classes": list(CLASSES)}}}, path)
    return path


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def write_coco(root: Path, split: str, out: Path, classes: tuple[str, ...] = CLASSES) -> Path:
    """`out`: the KITTI folder's `split` (ImageSets/<split>.txt) as a COCO file with absolute image paths."""
    frames = (root / "ImageSets" / f"{split}.txt").read_text().split()
    images, annotations = [], []
    for image_id, frame in enumerate(frames):
        image = root / "training" / "image_2" / f"{frame}.png"
        width, height = png_size(image)
        images.append({"id": image_id, "file_name": str(image.resolve()), "width": width, "height": height})
        for line in (root / "training" / "label_2" / f"{frame}.txt").read_text().splitlines():
            fields = line.split()
            if not fields or fields[0] not in classes:
                continue
            x0, y0, x1, y1 = (float(v) for v in fields[4:8])
            annotations.append(
                {
                    "id": len(annotations),
                    "image_id": image_id,
                    "category_id": classes.index(fields[0]) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(classes)]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return out
