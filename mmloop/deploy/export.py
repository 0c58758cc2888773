"""ONNX export through mmdeploy, the one compatibility shim it needs on torch >= 2.9, and the graph report."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def torchscript_onnx_exporter() -> Iterator[None]:
    """Make `torch.onnx.export` default to the TorchScript exporter while the block runs.

    torch 2.9 made the dynamo exporter the default. mmdeploy 1.3.1 exports by tracing: its
    function rewriters patch mmdet3d's forward passes (voxel encoder, scatter, head) while
    `torch.onnx.export` traces them, and its symbolic functions register with the TorchScript
    exporter; dynamo ignores both. mmdeploy calls `torch.onnx.export(...)` without `dynamo`
    (mmdeploy/apis/onnx/export.py), so the shim supplies `dynamo=False` unless a caller passes
    it. torch < 2.5 has no `dynamo` argument and needs no shim.
    """
    import inspect

    import torch.onnx

    original = torch.onnx.export
    if "dynamo" not in inspect.signature(original).parameters:
        yield
        return

    @functools.wraps(original)
    def export(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("dynamo", False)
        return original(*args, **kwargs)

    torch.onnx.export = export
    try:
        yield
    finally:
        torch.onnx.export = original


def export_onnx(frame: Path, out_dir: Path, deploy_cfg: Any, model_cfg: Any, checkpoint: Path) -> Path:
    """mmdeploy's torch2onnx on the CPU, tracing with the voxels of one frame; returns the file."""
    from mmdeploy.apis import torch2onnx

    import mmloop.deploy.rewriters  # noqa: F401  (registers the pillar scatter without a zero canvas)

    save_file = deploy_cfg.onnx_config.save_file
    with torchscript_onnx_exporter():
        torch2onnx(str(frame), str(out_dir), save_file, deploy_cfg, model_cfg, str(checkpoint), "cpu")
    return out_dir / save_file


def export_model_folder(frame: Path, folder: Path, deploy_cfg: Any, model_cfg: Any, checkpoint: Path) -> Path:
    """A deployed-model folder: end2end.onnx, deploy.py, model.py and, when mmloop_runtime can run
    the model, its manifest.json. Returns the ONNX file."""
    from mmloop.core.stage import write_json
    from mmloop.deploy.target import DEPLOY_CFG, MODEL_CFG, graph_io
    from mmloop.models import family_of
    from mmloop_runtime.manifest import MANIFEST

    onnx_file = export_onnx(frame, folder, deploy_cfg, model_cfg, checkpoint)
    deploy_cfg.dump(str(folder / DEPLOY_CFG))
    model_cfg.dump(str(folder / MODEL_CFG))
    family = family_of(model_cfg)
    if family.runtime_unsupported(model_cfg) is None:
        io = graph_io(deploy_cfg)
        write_json(folder / MANIFEST, family.runtime_manifest(model_cfg, io.inputs, io.outputs))
    return onnx_file


def describe(value_info: Any) -> dict[str, Any]:
    import onnx

    tensor = value_info.type.tensor_type
    dims = [dim.dim_param or dim.dim_value for dim in tensor.shape.dim]
    return {"name": value_info.name, "dtype": onnx.TensorProto.DataType.Name(tensor.elem_type).lower(), "shape": dims}


def graph_report(model: Any) -> dict[str, Any]:
    """Opset, node count, op types, inputs and outputs of an ONNX model (JSON-able)."""
    from mmloop.deploy.target import onnx_opset

    return {
        "opset": onnx_opset(model),
        "nodes": len(model.graph.node),
        "op_types": dict(sorted(Counter(node.op_type for node in model.graph.node).items())),
        "inputs": [describe(value) for value in model.graph.input],
        "outputs": [describe(value) for value in model.graph.output],
    }
