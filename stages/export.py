"""Stage `export`: the trained model as an ONNX graph (mmdeploy's torch2onnx), checked and described.

Writes `deploy/onnx/` (end2end.onnx, the deploy config deploy.py, the model config model.py, and
manifest.json, what the torch-free runtime `mmloop_runtime` needs to run the graph) and
`metrics/export.json`: opset, node count, op types, inputs/outputs, and whether TensorRT's ONNX
parser takes the graph with the voxel-count profile in params.yaml (checked here, on any host).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mmloop_runtime.manifest import MANIFEST

from stages.common.deploy_target import (ONNX_DIR, check_opset, load_deploy_config,
                                         onnx_opset, trace_frame, voxel_layout)
from stages.common.mm_runtime import select_device
from stages.common.model_config import MODEL, MODEL_CONFIG, require_trained_model
from stages.common.runtime_manifest import unsupported
from stages.common.stage import StageError, built_whole, load_params, run_stage, write_json
from stages.common.tensorrt_support import blocking, check_profiles, input_profiles, trt_readiness

EXPORT_METRICS = Path("metrics/export.json")


def describe(value_info: Any) -> dict[str, Any]:
    import onnx

    tensor = value_info.type.tensor_type
    dims = [dim.dim_param or dim.dim_value for dim in tensor.shape.dim]
    return {"name": value_info.name, "dtype": onnx.TensorProto.DataType.Name(tensor.elem_type).lower(),
            "shape": dims}


def graph_report(model: Any) -> dict[str, Any]:
    return {
        "opset": onnx_opset(model),
        "nodes": len(model.graph.node),
        "op_types": dict(sorted(Counter(node.op_type for node in model.graph.node).items())),
        "inputs": [describe(value) for value in model.graph.input],
        "outputs": [describe(value) for value in model.graph.output],
    }


def main() -> None:
    params = load_params("deploy")
    opset = check_opset(params["opset"])
    info_file = require_trained_model("train")
    select_device("cpu")  # the export traces on the CPU; the graph is the same for every device

    import onnx
    from mmengine.config import Config

    model_cfg = Config.fromfile(str(MODEL_CONFIG))
    max_points, features, max_voxels = voxel_layout(model_cfg)
    profiles = input_profiles(params["voxels"], max_points, features)
    check_profiles(profiles, max_voxels)
    deploy_cfg = load_deploy_config("onnxruntime", opset)
    frame = trace_frame(info_file)
    print(f"mmloop export: {MODEL} to ONNX (opset {opset}, mmdeploy torch2onnx, traced on {frame})", flush=True)

    from stages.common.onnx_export import export_model_folder

    runtime = unsupported(model_cfg)
    with built_whole(ONNX_DIR) as building:
        onnx_file = export_model_folder(frame, building, deploy_cfg, model_cfg, MODEL)
        model = onnx.load(str(onnx_file))
        readiness = trt_readiness(model, profiles)  # runs onnx.checker's full check among the rest
        if readiness["onnx_checker"]:
            raise StageError(f"{onnx_file.name}: onnx.checker rejects the exported graph ({readiness['onnx_checker']})")
        report = {"file": str(ONNX_DIR / onnx_file.name), "bytes": onnx_file.stat().st_size, **graph_report(model),
                  "tensorrt_readiness": readiness,
                  "runtime_manifest": str(ONNX_DIR / MANIFEST) if runtime is None else f"none: {runtime}"}
    write_json(EXPORT_METRICS, report)
    if runtime is not None:
        print(f"mmloop export: no {MANIFEST} for mmloop_runtime: {runtime}; mmdeploy's backend model still runs it")
    verdict = "ready" if readiness["ready"] else f"NOT ready ({blocking(readiness)})"
    print(f"mmloop export: wrote {ONNX_DIR}/ ({report['nodes']} nodes, opset {report['opset']}); "
          f"TensorRT parser: {verdict}; report in {EXPORT_METRICS}")


if __name__ == "__main__":
    run_stage("export", main)
