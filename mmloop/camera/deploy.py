"""The camera loop's export and deploy: mmdeploy's ObjectDetection ONNX of an mmdet detector (NMS in
the graph, a static input), the runtime's manifest, the PyTorch model and the split's images as the
deployed models see them. The comparisons are parity.py's. Backends, int8, tolerances and gates are
mmloop/deploy's.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmloop.core.stage import StageError, write_json
from mmloop.deploy.target import DEPLOY_CFG, MODEL_CFG, REPO_DEPLOY_CONFIGS, GraphIO, graph_io, load_deploy_config_file

#: The transforms of a test pipeline the runtime repeats (any other would make it differ).
PIPELINE_STEPS = ("LoadImageFromFile", "Resize", "Pad", "LoadAnnotations", "PackDetInputs")


def deploy_config(backend: str, opset: int, input_size: tuple[int, int]) -> Any:
    """configs/deploy/detection_<backend>.py (found from the package: the camera pipeline runs from
    its own folder) with the opset and the graph's static (height, width)."""
    cfg = load_deploy_config_file(REPO_DEPLOY_CONFIGS / f"detection_{backend}.py", opset)
    cfg.onnx_config.input_shape = [input_size[1], input_size[0]]
    return cfg


def input_profile(input_size: tuple[int, int], name: str = "input") -> dict[str, Any]:
    """The one (static) TensorRT profile: min = opt = max = one image."""
    shape = (1, 3, *input_size)
    return {name: (shape, shape, shape)}


def _short(kind: str) -> str:
    return kind.split(".")[-1]  # 'mmdet.Resize' -> 'Resize'


def inference_pipeline(model_cfg: Any) -> list[dict[str, Any]]:
    """The pipeline of the config's test dataloader, checked to hold only steps the runtime repeats."""
    pipeline = [dict(step) for step in model_cfg.test_dataloader.dataset.pipeline]
    unknown = [step["type"] for step in pipeline if _short(step["type"]) not in PIPELINE_STEPS]
    if unknown:
        raise StageError(
            f"model config: test pipeline step(s) {unknown}; the camera export supports {', '.join(PIPELINE_STEPS)} "
            f"(the runtime repeats them): drop the others from test_dataloader.dataset.pipeline"
        )
    return pipeline


def _step(pipeline: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next((step for step in pipeline if _short(step["type"]) == kind), {})


def _pad_value(pad: dict[str, Any]) -> list[float]:
    value = pad.get("pad_val", 0)
    value = value.get("img", 0) if isinstance(value, dict) else value
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * 3


def preprocess_manifest(model_cfg: Any) -> dict[str, Any]:
    """The test pipeline and data preprocessor as the runtime's `preprocess` section."""
    pipeline = inference_pipeline(model_cfg)
    load, resize, pad = _step(pipeline, "LoadImageFromFile"), _step(pipeline, "Resize"), _step(pipeline, "Pad")
    if load.get("color_type", "color") != "color" or load.get("to_float32", False):
        raise StageError("model config: LoadImageFromFile must load colour uint8 images (color_type='color')")
    if not resize.get("scale") or resize.get("interpolation", "bilinear") != "bilinear":
        raise StageError("model config: the test pipeline needs a Resize with a scale and bilinear interpolation")
    if pad.get("padding_mode", "constant") != "constant":
        raise StageError("model config: the test pipeline's Pad must pad with a constant (padding_mode='constant')")
    pre = model_cfg.model.get("data_preprocessor", {})
    mean, std = pre.get("mean"), pre.get("std")
    return {
        "channel_order": "bgr",  # mmcv's imfrombytes
        "scale": [int(v) for v in resize["scale"]],
        "keep_ratio": bool(resize.get("keep_ratio", False)),
        "pad_size": [int(v) for v in pad["size"]] if pad.get("size") else None,
        "pad_size_divisor": pad.get("size_divisor"),
        "pad_to_square": bool(pad.get("pad_to_square", False)),
        "pad_value": _pad_value(pad) if pad else [0.0, 0.0, 0.0],
        "bgr_to_rgb": bool(pre.get("bgr_to_rgb", False) or pre.get("rgb_to_bgr", False)),
        "mean": None if mean is None else [float(v) for v in mean],
        "std": None if std is None else [float(v) for v in std],
        "batch_pad_divisor": int(pre.get("pad_size_divisor", 1)),
        "batch_pad_value": float(pre.get("pad_value", 0)),
    }


def input_size(model_cfg: Any) -> tuple[int, int]:
    """(height, width) every image has after the test pipeline: the static graph's input."""
    pre = preprocess_manifest(model_cfg)
    if pre["pad_to_square"] or (pre["keep_ratio"] and not (pre["pad_size"] and not pre["pad_size_divisor"])):
        raise StageError(
            "model config: the test pipeline gives images of several sizes (keep_ratio without a fixed "
            "Pad size, or pad_to_square); the camera export is static: use Pad(size=(width, height))"
        )
    width, height = pre["pad_size"] if pre["keep_ratio"] else pre["scale"]
    if pre["pad_size"] and not pre["keep_ratio"]:  # Pad never crops
        width, height = max(width, pre["pad_size"][0]), max(height, pre["pad_size"][1])
    for divisor in (pre["pad_size_divisor"] or 1, pre["batch_pad_divisor"]):
        width, height = -(-width // divisor) * divisor, -(-height // divisor) * divisor
    return height, width


def class_names(model_cfg: Any) -> list[str]:
    classes = model_cfg.test_dataloader.dataset.get("metainfo", {}).get("classes")
    heads = model_cfg.model.bbox_head.num_classes
    if not classes or len(classes) != heads:
        raise StageError(
            f"model config: test_dataloader.dataset.metainfo.classes is {classes!r} for a head of {heads} classes; "
            f"set model.classes in params.yaml and retrain"
        )
    return [str(name) for name in classes]


def runtime_manifest(model_cfg: Any, graph: GraphIO) -> dict[str, Any]:
    """manifest.json for mmloop_runtime's ImageDetector: everything it needs, no mmdet config."""
    from mmloop_runtime.camera import FORMAT

    return {
        "format": FORMAT,
        "class_names": class_names(model_cfg),
        "inputs": graph.inputs,
        "outputs": graph.outputs,
        "input_size": list(input_size(model_cfg)),
        "preprocess": preprocess_manifest(model_cfg),
        "score_thr": float(model_cfg.model.test_cfg.get("score_thr", 0.0)),
    }


def export_model_folder(image: Path, folder: Path, deploy_cfg: Any, model_cfg: Any, checkpoint: Path) -> Path:
    """end2end.onnx (mmdeploy's torch2onnx on the CPU, traced on `image`), deploy.py, model.py and
    the runtime's manifest.json, read back by the runtime. Returns the ONNX file."""
    from mmdeploy.apis import torch2onnx

    from mmloop.deploy.export import torchscript_onnx_exporter
    from mmloop_runtime.camera import load_image_manifest
    from mmloop_runtime.manifest import MANIFEST

    manifest = runtime_manifest(model_cfg, graph_io(deploy_cfg))  # fails before the long part
    traced = copy.deepcopy(model_cfg)  # mmdeploy's create_input edits test_pipeline in place (keep_ratio off)
    traced.test_pipeline = copy.deepcopy(model_cfg.test_dataloader.dataset.pipeline)
    save_file = deploy_cfg.onnx_config.save_file
    with torchscript_onnx_exporter():
        torch2onnx(str(image), str(folder), save_file, deploy_cfg, traced, str(checkpoint), "cpu")
    deploy_cfg.dump(str(folder / DEPLOY_CFG))
    model_cfg.dump(str(folder / MODEL_CFG))
    write_json(folder / MANIFEST, manifest)
    load_image_manifest(folder)  # the runtime reads what was written
    return folder / save_file


# --- data ---------------------------------------------------------------------------------------


def coco_file(prepared: Path, split: str) -> Path:
    return prepared / f"{split}.json"  # prepare_2d's COCO annotations of a split (work/coco/<split>.json)


def require_trained(paths: Any, split: str) -> Path:
    """The model train_2d wrote (a readable checkpoint) and the split's COCO file; returns the latter."""
    from mmloop.core.checkpoint import read_checkpoint

    ann_file = coco_file(paths.prepared, split)
    for path, fix in (
        (paths.model, "run `dvc repro train_2d`"),
        (paths.model_config, "run `dvc repro train_2d`"),
        (ann_file, f"add '{split}' to data.splits and run `dvc repro prepare_2d`"),
    ):
        if not path.is_file():
            raise StageError(f"{path}: not found; {fix}")
    read_checkpoint(paths.model, "paths.model")  # readable, weights-only, before any model is built
    return ann_file


def split_loader(model_cfg: Any, ann_file: Path) -> Any:
    """The config's test dataloader over a COCO file, one image per batch, in file order."""
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner

    register_all_modules()  # mmdet's registries as the default scope
    loader_cfg = copy.deepcopy(model_cfg.test_dataloader)
    loader_cfg.dataset.ann_file = str(Path(ann_file).resolve())
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    loader_cfg.sampler = dict(type="DefaultSampler", shuffle=False)
    return Runner.build_dataloader(loader_cfg)


def first_image(model_cfg: Any, ann_file: Path) -> Path:
    """A split's first image (export traces on it)."""
    return Path(split_loader(model_cfg, ann_file).dataset.get_data_info(0)["img_path"])


def camera_metric(ann_file: Path, dataset_meta: dict[str, Any]) -> Any:
    """mmdet's CocoMetric (bbox) on a split, in an Evaluator (mmloop.camera.metric's CocoMetric
    summary and KITTI 2D AP take its place when they land)."""
    from mmengine.evaluator import Evaluator

    evaluator = Evaluator(dict(type="CocoMetric", ann_file=str(ann_file), metric="bbox", format_only=False))
    evaluator.dataset_meta = dataset_meta
    return evaluator


def metric_summary(metrics: dict[str, float]) -> dict[str, float]:
    """CocoMetric's results in points (it rounds them to 0.001, i.e. 0.1 points)."""
    return {name: round(100 * metrics[f"coco/bbox_{name}"], 4) for name in ("mAP", "mAP_50", "mAP_75")}


def preprocessed(model: Any, data: dict[str, Any]) -> Any:
    """The graph's input for one loader batch: the model's data preprocessor output."""
    return model.data_preprocessor(data, False)["inputs"]


def calibration_frames(model: Any, model_cfg: Any, ann_file: Path, limit: int, name: str) -> Iterator[dict[str, Any]]:
    """Preprocessed images of a split (int8 calibration data), as the graph takes them."""
    import torch

    with torch.no_grad():
        for index, data in enumerate(split_loader(model_cfg, ann_file)):
            if index >= limit:
                return
            yield {name: preprocessed(model, data).cpu().numpy()}


def pytorch_model(model_cfg: Any, checkpoint: Path | None, device: str) -> Any:
    """The mmdet model in eval mode (random weights without a checkpoint)."""
    from mmdet.apis import init_detector

    return init_detector(model_cfg, str(checkpoint) if checkpoint else None, device=device)
