"""Stage `deploy@<target>`: a deployed model for one target, checked against the PyTorch model.

`dvc.yaml` generates one stage per entry of params.yaml `deploy.targets`, `<backend>-<precision>`
with a backend from mmloop/deploy/backends (onnxruntime-fp32/int8 and openvino-fp32/int8 on the
CPU; tensorrt-fp32/fp16/int8 on an NVIDIA GPU with TensorRT >= 10). Each writes `deploy/<target>/`
(the backend file, deploy.py, model.py) and `metrics/deploy/<target>.json`: the dataset's metric
through mmdeploy's backend model beside the PyTorch model's, the largest head-output difference on
the same voxels, and the torch-free runtime (mmloop_runtime) on the same file beside mmdeploy's
(`runtime_*`). It fails when either drifts past its tolerance. Median per-frame latency of all three goes to
`metrics/deploy/<target>.latency.json`, apart: it is the one result that differs between runs.
"""

from __future__ import annotations

import argparse
import shutil

from mmloop.core.determinism import cpu_threads
from mmloop.core.device import select_device
from mmloop.core.paths import load_paths
from mmloop.core.stage import built_whole, load_params, run_stage, write_json
from mmloop.datasets import dataset_format
from mmloop.deploy import gates
from mmloop.deploy.backends import BuildJob, parse_target
from mmloop.deploy.target import DEPLOY_CFG, MODEL_CFG, graph_io, load_deploy_config, require_export
from mmloop.models import voxel_layout
from mmloop.openmmlab.config import require_trained_model


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.deploy")
    parser.add_argument("--target", required=True, help="a deploy.targets entry, e.g. onnxruntime-int8")
    target = parse_target(parser.parse_args().target)
    backend = target.backend
    backend.check_host(target.name)  # at once: before any model is loaded or built
    params = load_params("deploy")
    paths = load_paths()
    dataset = dataset_format(load_params("data"))
    limits = gates.tolerances(params, target.precision)
    split = load_params("evaluate")["split"]
    info_file = dataset.info_file(paths.prepared, split)
    require_trained_model(paths, info_file, split)
    onnx_file = require_export(paths)
    threads = cpu_threads(load_params("train"))
    device = select_device(backend.device)
    backend.configure_device()

    from mmengine.config import Config

    from mmloop.deploy.parity import (
        compare_on_split,
        comparison_report,
        latency_report,
        pytorch_model,
        voxel_frames,
    )
    from mmloop.deploy.tensorrt.readiness import input_profiles

    model_cfg = Config.fromfile(str(paths.onnx / MODEL_CFG))
    max_points, features, _ = voxel_layout(model_cfg)
    profiles = input_profiles(params["voxels"], max_points, features)
    deploy_cfg = load_deploy_config(backend.name, params["opset"])
    deploy_cfg = backend.deploy_config(deploy_cfg, target.precision, params, profiles)
    io = graph_io(deploy_cfg)
    reference = pytorch_model(model_cfg, paths.model, device)
    out, metrics = paths.deployed_dir(target.name), paths.deploy_report(target.name)

    def calibration() -> list:
        frames = int(params["int8"]["calibration_frames"])
        return list(voxel_frames(reference, model_cfg, dataset.info_file(paths.prepared, "train"), frames, io.inputs))

    with built_whole(out) as building:
        built = backend.build(BuildJob(target, onnx_file, building, params, profiles, calibration, threads))
        deploy_cfg.dump(str(building / DEPLOY_CFG))
        shutil.copyfile(paths.onnx / MODEL_CFG, building / MODEL_CFG)
        deployed = backend.backend_model(building, model_cfg, deploy_cfg, device, threads)
        runtime = gates.runtime_detector(target.name, paths.onnx, building, threads)
        rounds = int(params["latency_rounds"])
        print(
            f"mmloop deploy@{target.name}: {info_file.name} through PyTorch ({device}), mmdeploy's backend model"
            f"{' and mmloop_runtime' if runtime else ''}, {rounds} timed rounds",
            flush=True,
        )
        warmup, box_diff = int(params["warmup"]), limits.runtime_box_abs_diff
        comparison = compare_on_split(
            reference, deployed, model_cfg, info_file, io, device, warmup, rounds, runtime, box_diff
        )
    summary = comparison_report(comparison, list(model_cfg.class_names), dataset.metric_summary)
    report = {"target": target.name, "device": device, **summary, **built}
    latency = latency_report(comparison)
    write_json(metrics, report)
    write_json(paths.latency_report(target.name), latency)
    for line in gates.summary_lines(target.name, {**report, **latency}, out, metrics):
        print(line)
    gates.check_report(report, metrics, target.precision, limits)


if __name__ == "__main__":
    run_stage("deploy", main)
