"""Stage `export`: the trained model as an ONNX graph (mmdeploy's torch2onnx), checked and described.

Writes `deploy/onnx/` (end2end.onnx, the deploy config deploy.py, the model config model.py, and
manifest.json, what the torch-free runtime `mmloop_runtime` needs to run the graph) and
`metrics/export.json`: opset, node count, op types, inputs/outputs, and whether TensorRT's ONNX
parser takes the graph with the voxel-count profile in params.yaml (checked here, on any host).
"""

from __future__ import annotations

from mmloop.core.device import select_device
from mmloop.core.paths import load_paths
from mmloop.core.stage import StageError, built_whole, load_params, run_stage, write_json
from mmloop.datasets import dataset_format
from mmloop.deploy.target import check_opset, load_deploy_config
from mmloop.deploy.tensorrt.readiness import blocking, check_profiles, input_profiles, trt_readiness
from mmloop.models import family_of, voxel_layout
from mmloop.openmmlab.config import require_trained_model


def main() -> None:
    params = load_params("deploy")
    paths = load_paths()
    dataset = dataset_format(load_params("data"))
    opset = check_opset(params["opset"])
    require_trained_model(paths, dataset.info_file(paths.prepared, "train"), "train")
    select_device("cpu")  # the export traces on the CPU; the graph is the same for every device

    import onnx
    from mmengine.config import Config

    from mmloop_runtime.manifest import MANIFEST  # its package loads numpy: after run_stage pins it

    model_cfg = Config.fromfile(str(paths.model_config))
    max_points, features, max_voxels = voxel_layout(model_cfg)
    profiles = input_profiles(params["voxels"], max_points, features)
    check_profiles(profiles, max_voxels)
    deploy_cfg = load_deploy_config("onnxruntime", opset)
    frame = dataset.first_cloud(paths.prepared, "train")
    print(f"mmloop export: {paths.model} to ONNX (opset {opset}, mmdeploy torch2onnx, traced on {frame})", flush=True)

    from mmloop.deploy.export import export_model_folder, graph_report

    runtime = family_of(model_cfg).runtime_unsupported(model_cfg)
    with built_whole(paths.onnx) as building:
        onnx_file = export_model_folder(frame, building, deploy_cfg, model_cfg, paths.model)
        model = onnx.load(str(onnx_file))
        readiness = trt_readiness(model, profiles)  # runs onnx.checker's full check among the rest
        if readiness["onnx_checker"]:
            raise StageError(f"{onnx_file.name}: onnx.checker rejects the exported graph ({readiness['onnx_checker']})")
        report = {
            "file": str(paths.onnx / onnx_file.name),
            "bytes": onnx_file.stat().st_size,
            **graph_report(model),
            "tensorrt_readiness": readiness,
            "runtime_manifest": str(paths.onnx / MANIFEST) if runtime is None else f"none: {runtime}",
        }
    write_json(paths.export_report, report)
    if runtime is not None:
        print(f"mmloop export: no {MANIFEST} for mmloop_runtime: {runtime}; mmdeploy's backend model still runs it")
    verdict = "ready" if readiness["ready"] else f"NOT ready ({blocking(readiness)})"
    print(
        f"mmloop export: wrote {paths.onnx}/ ({report['nodes']} nodes, opset {report['opset']}); "
        f"TensorRT parser: {verdict}; report in {paths.export_report}"
    )


if __name__ == "__main__":
    run_stage("export", main)
