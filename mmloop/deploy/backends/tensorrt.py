"""TensorRT >= 10 on an NVIDIA GPU: an engine built from the exported graph (fp32, fp16, int8).

Our own builder and wrapper (mmloop/deploy/tensorrt/engine.py): mmdeploy 1.3.1's TensorRT path
and plugins are TensorRT 8 and are never loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmloop.core.stage import StageError, write_json
from mmloop.deploy.backends import Backend, BuildJob


class TensorRTBackend(Backend):
    name = "tensorrt"
    precisions = ("fp32", "fp16", "int8")
    backend_file = "end2end.engine"
    device = "cuda"

    def check_host(self, target_name: str) -> None:
        from mmloop.deploy.tensorrt.engine import require_tensorrt
        from mmloop_runtime.backends import cuda_runtime

        require_tensorrt(target_name)
        try:
            cuda_runtime()  # the runtime's engine check needs device buffers without torch
        except RuntimeError as error:
            raise StageError(f"deploy target {target_name}: {error}") from None

    def configure_device(self) -> None:
        import torch

        # TF32 (cuDNN's default on Ampere+) rounds convolution inputs to 10 mantissa bits; the
        # fp32 parity check compares fp32 with fp32 (engine.build_plan clears it too).
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    def deploy_config(self, deploy_cfg: Any, precision: str, params: dict[str, Any], profiles: dict[str, Any]) -> Any:
        """With the profile and workspace the engine was built with (what mmdeploy's tools read)."""
        deploy_cfg.backend_config.model_inputs = [
            {
                "input_shapes": {
                    name: {"min_shape": list(low), "opt_shape": list(opt), "max_shape": list(high)}
                    for name, (low, opt, high) in profiles.items()
                }
            }
        ]
        common = deploy_cfg.backend_config.common_config
        common.max_workspace_size = int(params["tensorrt"]["workspace_mib"]) << 20
        common.fp16_mode = precision == "fp16"
        common.int8_mode = precision == "int8"
        return deploy_cfg

    def build(self, job: BuildJob) -> dict[str, Any]:
        import onnx

        from mmloop.deploy.quantize import quantize_int8
        from mmloop.deploy.tensorrt import engine
        from mmloop.deploy.tensorrt.readiness import blocking, trt_readiness

        trt = engine.require_tensorrt(job.target.name)
        spec = engine.engine_spec(job.target.precision, job.params["tensorrt"], job.profiles)
        plan = engine.build_plan(trt, job.target.precision)
        source: Path = job.onnx_file
        if plan.onnx_variant == "fp16":
            source = job.out / "end2end.fp16.onnx"
            engine.fp16_onnx(job.onnx_file, source)
        elif plan.onnx_variant == "qdq":
            source = job.out / "end2end.int8.onnx"
            quantize_int8(job.onnx_file, source, job.calibration(), job.params["int8"]["keep_float"], symmetric=True)
        readiness = trt_readiness(onnx.load(str(source)), job.profiles)
        if not readiness["ready"]:
            raise StageError(f"{source}: TensorRT's ONNX parser would reject it: {blocking(readiness)}")
        frames = job.calibration() if plan.calibrator else None
        print(
            f"mmloop deploy@{job.target.name}: building the engine from {source.name} "
            f"(TensorRT {trt.__version__}, {plan})",
            flush=True,
        )
        serialized, timing_cache = engine.build_engine(trt, source, spec, plan, frames)
        (job.out / self.backend_file).write_bytes(serialized)
        (job.out / "timing.cache").write_bytes(timing_cache)
        environment = engine.build_environment(trt)
        write_json(job.out / "build_env.json", environment)
        return {"build_env": environment}

    def backend_model(self, folder: Path, model_cfg: Any, deploy_cfg: Any, device: str, threads: int = 0) -> Any:
        from mmloop.deploy.tensorrt.engine import tensorrt_backend_model

        with tensorrt_backend_model():
            return super().backend_model(folder, model_cfg, deploy_cfg, device)


BACKEND = TensorRTBackend()
