"""The camera loop's parity: each deployed model measured on a COCO split against PyTorch (with the
graph's post-processing, GraphPostprocessed), against mmloop_runtime's ImageDetector box for box, and
on the raw head maps. The loops are ours for the reason mmloop/deploy/parity.py gives (two models fed
the same images, one pass each).
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Any

from mmloop.camera.deploy import camera_metric, metric_summary, preprocessed, split_loader
from mmloop.core.stage import StageError

#: Per head type, the convs giving the raw maps compared with PyTorch, in its forward()'s order: (its
#: module list, the report's name of level i's map); the exporter names them /bbox_head/<list>.<i>/Conv.
HEAD_MAPS = {
    "YOLOXHead": (("multi_level_conv_cls", "cls_score"), ("multi_level_conv_reg", "bbox_pred"),
                  ("multi_level_conv_obj", "objectness")),
}  # fmt: skip


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


class GraphPostprocessed:
    """The PyTorch model with the deployed graph's post-processing: mmdet's network in eager mode
    under mmdeploy's rewriters (what export traced), then mmdeploy's End2EndModel rescaling.

    mmdet's own YOLOX post-processing keeps each prior's best class only, before a class-aware
    NMS; mmdeploy's multiclass_nms rewrite, which the graph holds, scores every class of every
    prior. On the sample that alone moves COCO mAP by +0.5 points (1.5 at IoU 0.5) with the raw
    head maps equal to 5e-5, so a mAP gate against mmdet's own predictions would measure the NMS
    design, not the deployment. Against this reference it measures what the backend changes."""

    def __init__(self, model: Any, deployed: Any) -> None:
        self.model, self.deployed = model, deployed

    def test_step(self, data: dict[str, Any]) -> list[Any]:
        import torch
        from mmdeploy.core import RewriterContext

        batch = self.model.data_preprocessor(data, False)
        with RewriterContext(cfg=self.deployed.deploy_cfg, backend="onnxruntime"), torch.no_grad():
            dets, labels = self.model(batch["inputs"], batch["data_samples"], mode="predict")
        self.deployed.postprocessing_results(dets, labels, None, batch["data_samples"])
        return batch["data_samples"]


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
) -> tuple[Any, list[int], dict[str, float]]:
    """PyTorch (mmdet's own predictions, timed, then with the graph's post-processing:
    GraphPostprocessed), then the deployed model, then the runtime over the split (passes apart:
    interleaved, ONNX Runtime's and PyTorch's threads slow each other down), then the raw head maps
    of PyTorch and of the deployed `graph` on the same input tensors (none without a graph). Returns
    parity.Comparison, the deployed model's box count per frame and mmdet's own CocoMetric results."""
    from mmloop.deploy.parity import Comparison, Side, detection_agreement

    loader = split_loader(model_cfg, ann_file)
    mmdet, _ = run_side(reference, loader, ann_file, warmup)
    # Accuracy against the graph's post-processing; latency from mmdet's own predictions, since in
    # eager mode mmdeploy's NMS op runs a Python loop (seconds an image) that no deployment runs.
    graph_nms, _ = run_side(GraphPostprocessed(reference, deployed), loader, ann_file, 0)
    pytorch = Side(seconds=mmdet.seconds, metrics=graph_nms.metrics)
    ours, boxes = run_side(deployed, loader, ann_file, warmup)
    agreement, theirs = None, None
    if runtime is not None:
        theirs, found = run_side(runtime, loader, ann_file, warmup, runtime=True)
        agreement = detection_agreement(boxes, found, box_tolerance)
    maps = {} if graph is None else map_differences(reference, graph, model_cfg, loader, threads)
    comparison = Comparison(len(loader.dataset), pytorch, ours, maps, theirs, agreement)
    return comparison, [len(b.labels) for b in boxes], mmdet.metrics


def comparison_report(comparison: Any, boxes: list[int], mmdet_metrics: dict[str, float]) -> dict[str, Any]:
    """Accuracy and parity, the same on every host (latency is parity.latency_report's). `mAP_pytorch`
    is PyTorch's with the graph's post-processing (the gate's reference); `mAP_pytorch_mmdet` is
    mmdet's own predictions', for comparison with evaluate_2d."""
    from mmloop.deploy.parity import significant

    pytorch, deployed = metric_summary(comparison.pytorch.metrics), metric_summary(comparison.deployed.metrics)
    maps = comparison.max_abs_diff
    report: dict[str, Any] = {
        "frames": comparison.frames,
        "metric": "COCO bbox mAP, points (mmdet CocoMetric)",
        "mAP": deployed["mAP"],
        "mAP_pytorch": pytorch["mAP"],
        "mAP_pytorch_mmdet": metric_summary(mmdet_metrics)["mAP"],
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
        f"mmloop deploy_2d@{name}: COCO mAP {report['mAP']:.2f} (PyTorch {report['mAP_pytorch']:.2f} with the "
        f"graph's NMS, {report['mAP_pytorch_mmdet']:.2f} with mmdet's; delta {report['mAP_delta']:+.2f}), "
        f"max |d| of raw head maps {maps}, latency {report['latency_ms']:.1f} ms vs "
        f"{report['latency_ms_pytorch']:.1f} ms; wrote {out}/ and {metrics}"
    ]
    if "runtime_mAP" in report:
        lines.append(
            f"mmloop deploy_2d@{name}: mmloop_runtime {report['runtime_frames_agreeing']}/{report['frames']} frames with "
            f"mmdeploy's boxes ({report['runtime_boxes']} boxes, max |d| {report['runtime_box_max_abs_diff']:.1e} px), "
            f"mAP delta {report['runtime_mAP_delta']:+.2f}, {report['runtime_latency_ms']['total']:.1f} ms per image"
        )
    return lines
