"""The camera loop's export and deploy: mmdeploy's ObjectDetection ONNX of an mmdet detector (NMS in
the graph, a static input), the runtime's manifest, and each deployed model measured on a COCO split
against PyTorch and against mmloop_runtime's ImageDetector. Backends, int8, tolerances and gates are
mmloop/deploy's; the loops are ours for the reason parity.py gives (two models fed the same images).
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmloop.core.stage import StageError, write_json
from mmloop.deploy.target import DEPLOY_CFG, MODEL_CFG, REPO_DEPLOY_CONFIGS, GraphIO, graph_io, load_deploy_config_file

#: The transforms of a test pipeline the runtime repeats (any other would make it differ).
PIPELINE_STEPS = ("LoadImageFromFile", "Resize", "Pad", "LoadAnnotations", "PackDetInputs")
#: Per head type, the convs giving the raw maps compared with PyTorch, in its forward()'s order: (its
#: module list, the report's name of level i's map); the exporter names them /bbox_head/<list>.<i>/Conv.
HEAD_MAPS = {
    "YOLOXHead": (("multi_level_conv_cls", "cls_score"), ("multi_level_conv_reg", "bbox_pred"),
                  ("multi_level_conv_obj", "objectness")),
}  # fmt: skip


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


# --- parity -------------------------------------------------------------------------------------


def head_maps(model_cfg: Any) -> list[tuple[str, str]]:
    """(graph node name, report name) of every raw head map, in the order the head returns them."""
    head = model_cfg.model.bbox_head
    if head.type not in HEAD_MAPS:
        raise StageError(
            f"model config: bbox_head {head.type}; deploy_2d compares the raw maps of {', '.join(HEAD_MAPS)}: "
            f"add its maps to HEAD_MAPS in mmloop/camera/deploy.py"
        )
    levels = range(len(head.get("strides", (8, 16, 32))))
    return [(f"/bbox_head/{convs}.{i}/Conv", f"{name}{i}") for convs, name in HEAD_MAPS[head.type] for i in levels]


def pytorch_head_maps(model: Any, inputs: Any) -> list[Any]:
    maps = model.bbox_head(model.extract_feat(inputs))
    return [level for group in maps for level in group]


def as_detections(pred: Any) -> Any:
    from mmloop_runtime import Detections

    return Detections(pred.bboxes.cpu().numpy(), pred.scores.cpu().numpy(), pred.labels.cpu().numpy())


def runtime_sample(sample: Any, found: Any) -> Any:
    """The loader's data sample with the runtime's boxes as its predictions (what CocoMetric reads)."""
    import torch
    from mmengine.structures import InstanceData

    sample = sample.clone()
    boxes, scores, labels = (torch.from_numpy(value) for value in found)
    sample.pred_instances = InstanceData(bboxes=boxes, scores=scores, labels=labels)
    return sample


def run_side(model: Any, loader: Any, ann_file: Path, warmup: int, runtime: bool = False) -> tuple[Any, list[Any]]:
    """One model over the split: CocoMetric and per-frame seconds (parity.Side), and its detections.
    The runtime reads the image file itself (excluded from its time, as the loader's is for the others)."""
    import torch

    from mmloop.deploy.parity import Side
    from mmloop_runtime.camera import read_image

    side, detections, evaluator = Side(), [], camera_metric(ann_file, loader.dataset.metainfo)
    with torch.no_grad():
        for index, data in enumerate(loader):
            sample = data["data_samples"][0]
            image = read_image(sample.img_path) if runtime else None
            for _ in range(warmup if index == 0 else 0):
                model.predict(image) if runtime else model.test_step(data)
            start = time.perf_counter()
            found = model.predict(image) if runtime else as_detections(model.test_step(data)[0].pred_instances)
            side.seconds.append(time.perf_counter() - start)
            detections.append(found)
            if runtime:
                side.steps.append(dict(model.timings))
            evaluator.process(data_samples=[runtime_sample(sample, found)], data_batch=data)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its whole table
        side.metrics = evaluator.evaluate(len(loader.dataset))
    return side, detections


def map_differences(reference: Any, onnx_file: Path, model_cfg: Any, loader: Any, threads: int) -> dict[str, float]:
    """Largest |graph - PyTorch| of each raw head map over the split, on the same input tensors."""
    import torch

    from mmloop.deploy.parity import graph_with_outputs

    names = head_maps(model_cfg)
    diffs = dict.fromkeys((name for _, name in names), 0.0)
    with graph_with_outputs(onnx_file, [node for node, _ in names], threads) as network, torch.no_grad():
        for data in loader:
            inputs = preprocessed(reference, data)
            got = list(network({"input": inputs.cpu().numpy()}).values())
            for (_, name), expected, value in zip(names, pytorch_head_maps(reference, inputs), got):
                diffs[name] = max(diffs[name], float((torch.from_numpy(value) - expected.cpu()).abs().max()))
    return diffs


# --- the comparison and its reports -------------------------------------------------------------


def compare_on_split(
    reference: Any,
    deployed: Any,
    runtime: Any | None,
    graph: Path | None,
    model_cfg: Any,
    ann_file: Path,
    warmup: int,
    box_tolerance: float,
    threads: int = 0,
) -> tuple[Any, list[int]]:
    """PyTorch, then the deployed model, then the runtime over the split (passes apart: interleaved,
    ONNX Runtime's and PyTorch's threads slow each other down), then the raw head maps of PyTorch
    and of the deployed `graph` on the same input tensors (none without a graph). Returns
    parity.Comparison and the deployed model's box count per frame."""
    from mmloop.deploy.parity import Comparison, detection_agreement

    loader = split_loader(model_cfg, ann_file)
    pytorch, _ = run_side(reference, loader, ann_file, warmup)
    ours, boxes = run_side(deployed, loader, ann_file, warmup)
    agreement, theirs = None, None
    if runtime is not None:
        theirs, found = run_side(runtime, loader, ann_file, warmup, runtime=True)
        agreement = detection_agreement(boxes, found, box_tolerance)
    maps = {} if graph is None else map_differences(reference, graph, model_cfg, loader, threads)
    return Comparison(len(loader.dataset), pytorch, ours, maps, theirs, agreement), [len(b.labels) for b in boxes]


def comparison_report(comparison: Any, boxes: list[int]) -> dict[str, Any]:
    """Accuracy and parity, the same on every host (latency is parity.latency_report's)."""
    from mmloop.deploy.parity import significant

    pytorch, deployed = metric_summary(comparison.pytorch.metrics), metric_summary(comparison.deployed.metrics)
    maps = comparison.max_abs_diff
    report: dict[str, Any] = {
        "frames": comparison.frames,
        "metric": "COCO bbox mAP, points (mmdet CocoMetric)",
        "mAP": deployed["mAP"],
        "mAP_pytorch": pytorch["mAP"],
        "mAP_delta": round(deployed["mAP"] - pytorch["mAP"], 4),
        "mAP_50": deployed["mAP_50"],
        "mAP_50_delta": round(deployed["mAP_50"] - pytorch["mAP_50"], 4),
        "boxes": sum(boxes),
        "max_abs_diff": significant(max(maps.values())) if maps else None,
        "max_abs_diff_by_output": {name: significant(diff) for name, diff in maps.items()} if maps else None,
    }
    agreement = comparison.agreement
    if agreement is not None:
        runtime = metric_summary(comparison.runtime.metrics)
        report |= {
            "runtime_mAP": runtime["mAP"],
            "runtime_mAP_delta": round(runtime["mAP"] - deployed["mAP"], 4),
            "runtime_frames_agreeing": agreement["frames_agreeing"],
            "runtime_frames_disagreeing": agreement["frames_disagreeing"],
            "runtime_boxes": agreement["boxes"],
            "runtime_box_max_abs_diff": significant(agreement["box_max_abs_diff"]),
            "runtime_score_max_abs_diff": significant(agreement["score_max_abs_diff"]),
        }
    return report


def summary_lines(name: str, report: dict[str, Any], out: Path, metrics: Path) -> list[str]:
    maps = "not measured" if report["max_abs_diff"] is None else f"{report['max_abs_diff']:.2e}"
    lines = [
        f"mmloop deploy_2d@{name}: COCO mAP {report['mAP']:.2f} (PyTorch {report['mAP_pytorch']:.2f}, delta "
        f"{report['mAP_delta']:+.2f}), max |d| of raw head maps {maps}, latency {report['latency_ms']:.1f} ms vs "
        f"{report['latency_ms_pytorch']:.1f} ms; wrote {out}/ and {metrics}"
    ]
    if "runtime_mAP" in report:
        lines.append(
            f"mmloop deploy_2d@{name}: mmloop_runtime {report['runtime_frames_agreeing']}/{report['frames']} frames with "
            f"mmdeploy's boxes ({report['runtime_boxes']} boxes, max |d| {report['runtime_box_max_abs_diff']:.1e} px), "
            f"mAP delta {report['runtime_mAP_delta']:+.2f}, {report['runtime_latency_ms']['total']:.1f} ms per image"
        )
    return lines
