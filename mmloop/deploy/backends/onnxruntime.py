"""ONNX Runtime on the CPU: the exported graph as it is (fp32), or quantized to int8 (Q/DQ)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmloop.deploy.backends import Backend, BuildJob


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32", "int8")

    def build(self, job: BuildJob) -> dict[str, Any]:
        destination = job.out / self.backend_file
        if job.target.precision == "fp32":
            shutil.copyfile(job.onnx_file, destination)
            return {}
        from mmloop.deploy.quantize import quantize_int8

        int8 = job.params["int8"]
        print(
            f"mmloop deploy@{job.target.name}: int8 calibration on up to {int8['calibration_frames']} train frames",
            flush=True,
        )
        with session_threads(job.threads):  # the calibration runs' activation ranges set the scales
            return quantize_int8(job.onnx_file, destination, job.calibration(), int8["keep_float"])

    def backend_model(self, folder: Path, model_cfg: Any, deploy_cfg: Any, device: str, threads: int = 0) -> Any:
        with session_threads(threads):
            return super().backend_model(folder, model_cfg, deploy_cfg, device)


@contextmanager
def session_threads(threads: int) -> Iterator[None]:
    """ONNX Runtime sessions made meanwhile run `threads` intra-op threads (0: one per core).

    Why: its kernels split some sums per thread, so the outputs (and the parity metrics) change
    with the host's core count; mmdeploy 1.3.1's ORTWrapper makes its own `ort.SessionOptions()`
    and takes no thread count, so the options it gets come with ours set.
    """
    import onnxruntime as ort

    original = ort.SessionOptions
    if not threads:
        yield
        return

    def options() -> Any:
        made = original()
        made.intra_op_num_threads = threads
        return made

    ort.SessionOptions = options
    try:
        yield
    finally:
        ort.SessionOptions = original


BACKEND = OnnxRuntimeBackend()
