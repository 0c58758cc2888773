"""The camera loop's params as cfg-options on the YOLOX config (mmloop.camera.config), and their checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mmloop.camera.config import cfg_options, check_params, input_size
from mmloop.core.stage import StageError
from mmloop.openmmlab.cfg_options import find
from tests.helpers import REPO

PIPELINE = REPO / "pipelines" / "kitti-camera"
CONFIG = REPO / "configs" / "models" / "yolox-nano_kitti-camera.py"


def params() -> dict[str, Any]:
    return yaml.safe_load((PIPELINE / "params.yaml").read_text())


def load() -> Any:
    from mmengine.config import Config

    return Config.fromfile(str(CONFIG))


def applied(model: dict[str, Any], train: dict[str, Any]) -> Any:
    cfg = load()
    options = cfg_options(cfg, model, train, "/data/kitti", Path("work/coco"))
    cfg.merge_from_dict(options, allow_list_keys=True)
    return cfg


def steps(cfg: Any, kind: str) -> list[dict[str, Any]]:
    tree = cfg.to_dict()
    found = []
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        for path in find(tree[loader], lambda v: isinstance(v, dict) and v.get("type") == kind):
            node = tree[loader]
            for key in path:
                node = node[int(key)] if isinstance(node, list) else node[key]
            found.append(node)
    return found


def test_the_config_is_yolox_without_mosaic_at_192x640() -> None:
    cfg = load()
    assert cfg.model.type == "YOLOX" and cfg.model.bbox_head.num_classes == 3
    assert cfg.model.data_preprocessor.batch_augments is None  # no multi-scale training
    assert cfg.train_dataloader.dataset.type == "CocoDataset"  # not MultiImageMixDataset
    kinds = [step["type"] for step in cfg.train_dataloader.dataset.pipeline]
    assert not {"Mosaic", "MixUp", "RandomAffine"} & set(kinds)
    assert {tuple(s["scale"]) for s in steps(cfg, "Resize")} == {(640, 192)}
    assert {tuple(s["size"]) for s in steps(cfg, "Pad")} == {(640, 192)}
    assert not cfg.custom_hooks and cfg.val_evaluator.type == "CocoMetric"


def test_params_become_options_everywhere_they_apply() -> None:
    p = params()
    p["model"].update(classes=["Car", "Pedestrian"], input_size=[256, 832])
    p["train"].update(epochs=60, lr=0.004, batch_size=4)
    cfg = applied(p["model"], p["train"])
    assert cfg.model.bbox_head.num_classes == 2
    for loader, split in (("train_dataloader", "train"), ("val_dataloader", "val"), ("test_dataloader", "val")):
        dataset = cfg[loader].dataset
        assert tuple(dataset.metainfo.classes) == ("Car", "Pedestrian")
        assert dataset.ann_file == f"work/coco/{split}.json" and dataset.data_prefix.img == "/data/kitti/"
    assert cfg.val_evaluator.ann_file == cfg.test_evaluator.ann_file == "work/coco/val.json"
    assert {tuple(s["scale"]) for s in steps(cfg, "Resize")} == {(832, 256)}
    assert {tuple(s["size"]) for s in steps(cfg, "Pad")} == {(832, 256)}
    assert tuple(cfg.input_size) == (256, 832)
    assert cfg.train_cfg.max_epochs == 60 and cfg.train_dataloader.batch_size == 4
    assert cfg.optim_wrapper.optimizer.lr == 0.004
    cosine = next(s for s in cfg.param_scheduler if s["type"] == "CosineAnnealingLR")
    assert cosine["end"] == 60 and cosine["T_max"] == 60  # stretched with the epochs
    assert cosine["eta_min"] == pytest.approx(0.004 * 0.05)  # moved with the lr


def test_the_default_params_change_only_what_differs() -> None:
    p = params()
    options = cfg_options(load(), p["model"], p["train"], "../../data/kitti-sample", Path("work/coco"))
    assert not any(key.endswith((".scale", ".size")) for key in options), options  # 192x640 is the config's own


@pytest.mark.parametrize("size", [[190, 640], [192], [0, 640], "192x640", [192.0, 640]])
def test_an_input_size_off_the_stride_fails_in_one_line(size: Any) -> None:
    with pytest.raises(StageError, match=r"model.input_size is .*multiple of 32") as error:
        input_size({"input_size": size})
    assert "\n" not in str(error.value)


def test_training_params_are_checked_first() -> None:
    p = params()
    counts = {"Car": 10, "Pedestrian": 3, "Cyclist": 1}
    check_params({**p["model"], "load_from": None}, p["train"], counts)
    with pytest.raises(StageError, match=r"model.classes has 'Cyclist', but the train split has no 'Cyclist' boxes"):
        check_params({**p["model"], "load_from": None}, p["train"], {**counts, "Cyclist": 0})
    with pytest.raises(StageError, match=r"model.load_from 'missing.pth' not found; .* model.load_from: null"):
        check_params({**p["model"], "load_from": "missing.pth"}, p["train"], counts)
    with pytest.raises(StageError, match=r"train.lr is 0"):
        check_params({**p["model"], "load_from": None}, {**p["train"], "lr": 0}, counts)
