"""Stage `export_2d` (camera loop): the trained 2D detector as an ONNX graph, mmdeploy's ObjectDetection
export with NMS in the graph and a static input (the test pipeline's padded size, 192x640).

Writes `deploy/onnx/` (end2end.onnx, deploy.py, model.py, and manifest.json: the test pipeline the
torch-free runtime repeats) and `metrics/export.json`: opset, node count, op types, inputs/outputs,
and whether TensorRT's ONNX parser takes the graph (checked here, on any host).
"""

from __future__ import annotations

from mmloop.camera.deploy import (
    deploy_config,
    export_model_folder,
    first_image,
    input_profile,
    input_size,
    require_trained,
)
from mmloop.core.device import select_device
from mmloop.core.paths import load_paths
from mmloop.core.stage import StageError, built_whole, load_params, run_stage, write_json
from mmloop.deploy.target import check_opset


def main() -> None:
    params = load_params("deploy")
    paths = load_paths()
    opset = check_opset(params["opset"])
    train_file = require_trained(paths, "train")
    select_device("cpu")  # the export traces on the CPU; the graph is the same for every device

    import onnx
    from mmengine.config import Config

    from mmloop.deploy.export import graph_report
    from mmloop.deploy.tensorrt.readiness import blocking, trt_readiness

    model_cfg = Config.fromfile(str(paths.model_config))
    size = input_size(model_cfg)
    deploy_cfg = deploy_config("onnxruntime", opset, size)
    image = first_image(model_cfg, train_file)
    print(
        f"mmloop export_2d: {paths.model} to ONNX (opset {opset}, {size[0]}x{size[1]}, traced on {image})", flush=True
    )
    with built_whole(paths.onnx) as building:
        onnx_file = export_model_folder(image, building, deploy_cfg, model_cfg, paths.model)
        model = onnx.load(str(onnx_file))
        readiness = trt_readiness(model, input_profile(size))  # runs onnx.checker's full check among the rest
        if readiness["onnx_checker"]:
            raise StageError(f"{onnx_file.name}: onnx.checker rejects the exported graph ({readiness['onnx_checker']})")
        report = {
            "file": str(paths.onnx / onnx_file.name),
            "bytes": onnx_file.stat().st_size,
            "input_size": list(size),
            **graph_report(model),
            "tensorrt_readiness": readiness,
            "runtime_manifest": str(paths.onnx / "manifest.json"),
        }
    write_json(paths.export_report, report)
    verdict = "ready" if readiness["ready"] else f"NOT ready ({blocking(readiness)})"
    print(
        f"mmloop export_2d: wrote {paths.onnx}/ ({report['nodes']} nodes, opset {report['opset']}); "
        f"TensorRT parser: {verdict}; report in {paths.export_report}"
    )


if __name__ == "__main__":
    run_stage("export_2d", main)
