"""Stage `deploy_2d@<target>` (camera loop): a deployed 2D detector for one target, checked against
PyTorch and against the torch-free runtime.

`dvc.yaml` generates one stage per entry of params.yaml `deploy.targets` (onnxruntime-fp32 and
onnxruntime-int8 on the CPU; any target of mmloop/deploy/backends builds the same way). Each writes
`deploy/<target>/` (the backend file, deploy.py, model.py, manifest.json) and
`metrics/deploy/<target>.json`: COCO bbox mAP on `evaluate.split` through mmdeploy's backend model
beside the PyTorch model's, the largest difference of the raw head maps on the same input tensors,
and mmloop_runtime's ImageDetector on the same file beside mmdeploy's, box for box (`runtime_*`).
It fails when either drifts past its tolerance. Latency goes to `metrics/deploy/<target>.latency.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil

from mmloop.camera import deploy as camera
from mmloop.camera import parity as camera_parity
from mmloop.core.determinism import cpu_threads
from mmloop.core.device import select_device
from mmloop.core.paths import load_paths
from mmloop.core.stage import StageError, built_whole, load_params, run_stage, write_json
from mmloop.deploy import gates
from mmloop.deploy.backends import BuildJob, parse_target
from mmloop.deploy.target import DEPLOY_CFG, MODEL_CFG, require_export


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.deploy_2d")
    parser.add_argument("--target", required=True, help="a deploy.targets entry, e.g. onnxruntime-int8")
    target = parse_target(parser.parse_args().target)
    backend = target.backend
    backend.check_host(target.name)  # at once: before any model is loaded or built
    params = load_params("deploy")
    paths = load_paths()
    limits = gates.tolerances(params, target.precision)
    ann_file = camera.require_trained(paths, str(load_params("evaluate")["split"]))
    onnx_file = require_export(paths, "export_2d")
    threads = cpu_threads(load_params("train"))
    device = select_device(backend.device)
    backend.configure_device()

    from mmengine.config import Config

    from mmloop.deploy.parity import latency_report
    from mmloop_runtime.camera import ImageDetector
    from mmloop_runtime.manifest import MANIFEST

    model_cfg = Config.fromfile(str(paths.onnx / MODEL_CFG))
    size = camera.input_size(model_cfg)
    profiles = camera.input_profile(size)
    deploy_cfg = camera.deploy_config(backend.name, params["opset"], size)
    deploy_cfg = backend.deploy_config(deploy_cfg, target.precision, params, profiles)
    reference = camera.pytorch_model(model_cfg, paths.model, device)
    out, metrics = paths.deployed_dir(target.name), paths.deploy_report(target.name)

    def calibration() -> list:
        frames, train = int(params["int8"]["calibration_frames"]), camera.coco_file(paths.prepared, "train")
        return list(
            camera.calibration_frames(reference, model_cfg, train, frames, deploy_cfg.onnx_config.input_names[0])
        )

    with built_whole(out) as building:
        built = backend.build(BuildJob(target, onnx_file, building, params, profiles, calibration, threads))
        deploy_cfg.dump(str(building / DEPLOY_CFG))
        for name in (MODEL_CFG, MANIFEST):
            shutil.copyfile(paths.onnx / name, building / name)
        deployed = backend.backend_model(building, model_cfg, deploy_cfg, device, threads)
        try:
            runtime = ImageDetector(building, threads=threads)
        except RuntimeError as error:  # TensorRT targets: the runtime's own engine loader
            raise StageError(f"deploy target {target.name}: mmloop_runtime cannot run it: {error}") from None
        graph = building / backend.backend_file
        print(
            f"mmloop deploy_2d@{target.name}: {ann_file} through PyTorch ({device}), mmdeploy and mmloop_runtime",
            flush=True,
        )
        comparison, boxes, mmdet_metrics = camera_parity.compare_on_split(
            reference, deployed, runtime, graph if graph.suffix == ".onnx" else None, model_cfg, ann_file,
            int(params["warmup"]), limits.runtime_box_abs_diff, threads,
        )  # fmt: skip
    accuracy = camera_parity.comparison_report(comparison, boxes, mmdet_metrics)
    report = {"target": target.name, "device": device, **accuracy, **built}
    latency = latency_report(comparison)
    write_json(metrics, report)
    write_json(paths.latency_report(target.name), latency)
    for line in camera_parity.summary_lines(target.name, {**report, **latency}, out, metrics):
        print(line)
    if report["max_abs_diff"] is None:  # no ONNX graph to read the head maps from (an engine, an IR)
        limits = dataclasses.replace(limits, max_abs_diff=None)
    gates.check_report(report, metrics, target.precision, limits)


if __name__ == "__main__":
    run_stage("deploy_2d", main)
