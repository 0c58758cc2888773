"""ONNX Runtime on the CPU: the exported graph as it is (fp32), or quantized to int8 (Q/DQ)."""

from __future__ import annotations

import shutil
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
        return quantize_int8(job.onnx_file, destination, job.calibration(), int8["keep_float"])


BACKEND = OnnxRuntimeBackend()
