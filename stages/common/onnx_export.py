"""ONNX export through mmdeploy, and the one compatibility shim it needs on torch >= 2.9."""
from __future__ import annotations

import functools
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

    save_file = deploy_cfg.onnx_config.save_file
    with torchscript_onnx_exporter():
        torch2onnx(str(frame), str(out_dir), save_file, deploy_cfg, model_cfg, str(checkpoint), "cpu")
    return out_dir / save_file


def export_model_folder(frame: Path, folder: Path, deploy_cfg: Any, model_cfg: Any, checkpoint: Path) -> Path:
    """A deployed-model folder: end2end.onnx, deploy.py, model.py and, when mmloop_runtime can run
    the model, its manifest.json. Returns the ONNX file."""
    from mmloop_runtime.manifest import MANIFEST

    from stages.common.deploy_target import DEPLOY_CFG, MODEL_CFG
    from stages.common.runtime_manifest import runtime_manifest, unsupported
    from stages.common.stage import write_json

    onnx_file = export_onnx(frame, folder, deploy_cfg, model_cfg, checkpoint)
    deploy_cfg.dump(str(folder / DEPLOY_CFG))
    model_cfg.dump(str(folder / MODEL_CFG))
    if unsupported(model_cfg) is None:
        write_json(folder / MANIFEST, runtime_manifest(model_cfg))
    return onnx_file
