"""OpenVINO on the CPU: the exported graph converted to OpenVINO's IR (fp32), or our int8 Q/DQ model
converted the same way (int8), run by OpenVINO's CPU plugin.

int8 is ONNX Runtime's Q/DQ model (mmloop/deploy/quantize.py, calibrated on the same train frames
as onnxruntime-int8): OpenVINO fuses its Q/DQ pairs into int8 convolutions. NNCF's post-training
quantization was measured against it (docs/deploy.md); NNCF >= 2.15 needs numpy >= 1.24 and
older NNCF the `openvino.runtime` module that OpenVINO 2026 removed, while mmdet3d 1.4 pins us
to numpy 1.23.5, so it is not a dependency.

mmdeploy 1.3.1's OpenVINO wrapper uses `openvino.inference_engine`, removed in OpenVINO 2023.1:
the backend model here runs our wrapper around the runtime's OpenVINONetwork (one OpenVINO call
for mmdeploy's backend model and mmloop_runtime), swapped into mmdeploy's backend manager.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmloop.core.stage import StageError
from mmloop.deploy.backends import Backend, BuildJob


class OpenVINOBackend(Backend):
    name = "openvino"
    precisions = ("fp32", "int8")
    backend_file = "end2end.xml"  # its weights beside it in end2end.bin

    def check_host(self, target_name: str) -> None:
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise StageError(
                f"deploy target {target_name}: OpenVINO is not installed; pip install -r requirements.txt"
            ) from None

    def build(self, job: BuildJob) -> dict[str, Any]:
        if job.target.precision == "fp32":
            save_ir(job.onnx_file, job.out / self.backend_file)
            return {}
        from mmloop.deploy.backends.onnxruntime import session_threads
        from mmloop.deploy.quantize import quantize_int8

        int8 = job.params["int8"]
        print(
            f"mmloop deploy@{job.target.name}: int8 calibration on up to {int8['calibration_frames']} train frames",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="mmloop-openvino-") as scratch:
            qdq = Path(scratch) / "end2end.int8.onnx"
            with session_threads(job.threads):  # ONNX Runtime's calibration runs set the scales
                report = quantize_int8(job.onnx_file, qdq, job.calibration(), int8["keep_float"])
            save_ir(qdq, job.out / self.backend_file)
        return report

    def backend_model(self, folder: Path, model_cfg: Any, deploy_cfg: Any, device: str, threads: int = 0) -> Any:
        with openvino_backend_model(threads):
            return super().backend_model(folder, model_cfg, deploy_cfg, device)


def save_ir(onnx_file: Path, xml: Path) -> None:
    """The ONNX graph as OpenVINO IR (xml + bin), weights kept in fp32 (save_model would halve them)."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_file)), str(xml), compress_to_fp16=False)


def openvino_wrapper(backend_files: Any, output_names: Any, threads: int) -> Any:
    """mmdeploy's BaseWrapper around mmloop_runtime's OpenVINONetwork (torch tensors in and out)."""
    import numpy as np
    import torch
    from mmdeploy.backend.base import BaseWrapper

    from mmloop_runtime.backends import OpenVINONetwork

    class OpenVINOWrapper(BaseWrapper):
        def __init__(self) -> None:
            self.network = OpenVINONetwork(Path(backend_files[0]), tuple(output_names), threads)
            super().__init__(output_names)

        def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            arrays = {name: np.asarray(tensor.detach().cpu()) for name, tensor in inputs.items()}
            return {name: torch.from_numpy(value) for name, value in self.network(arrays).items()}

    return OpenVINOWrapper()


@contextmanager
def openvino_backend_model(threads: int) -> Iterator[None]:
    """Within the block, mmdeploy builds OpenVINO backend models around our wrapper: only its
    backend manager's build_wrapper is swapped, and restored on exit."""
    from mmdeploy.backend.base import get_backend_manager

    manager = get_backend_manager("openvino")
    original = manager.__dict__["build_wrapper"]

    def build_wrapper(
        cls: type,
        backend_files: Any,
        device: str = "cpu",
        input_names: Any = None,
        output_names: Any = None,
        deploy_cfg: Any = None,
        **kwargs: Any,
    ) -> Any:  # OpenVINOManager.build_wrapper's signature, building our wrapper
        return openvino_wrapper(backend_files, output_names, threads)

    manager.build_wrapper = classmethod(build_wrapper)
    try:
        yield
    finally:
        manager.build_wrapper = original


BACKEND = OpenVINOBackend()
