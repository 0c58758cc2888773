"""Deploy targets (`deploy.targets` in params.yaml), their mmdeploy configs and their files.

Every deployed model is a self-contained folder a device can take as it is: the backend file
(`end2end.onnx` or `end2end.engine`), mmdeploy's deploy config (`deploy.py`) and the model config
as trained (`model.py`), which mmdeploy's backend model needs for voxelization and box decoding.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.common.model_config import PREPARED
from stages.common.stage import StageError

DEPLOY_CONFIGS = Path("configs/deploy")
ONNX_DIR = Path("deploy/onnx")
DEPLOY_CFG = "deploy.py"
MODEL_CFG = "model.py"
#: What the ONNX graph takes and gives (mmdeploy's VoxelDetection names); axis 0 of each input
#: is the frame's number of non-empty voxels.
INPUTS = ("voxels", "num_points", "coors")
OUTPUTS = ("cls_score0", "bbox_pred0", "dir_cls_pred0")
PRECISIONS = {"onnxruntime": ("fp32", "int8"), "tensorrt": ("fp32", "fp16", "int8")}


@dataclass(frozen=True)
class Target:
    backend: str    # onnxruntime | tensorrt
    precision: str  # fp32 | fp16 | int8

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.precision}"

    @property
    def out_dir(self) -> Path:
        return Path("deploy") / self.name

    @property
    def backend_file(self) -> str:
        return "end2end.engine" if self.backend == "tensorrt" else "end2end.onnx"

    @property
    def metrics(self) -> Path:
        return Path("metrics/deploy") / f"{self.name}.json"


def known_targets() -> list[str]:
    return [f"{backend}-{precision}" for backend, precisions in PRECISIONS.items() for precision in precisions]


def parse_target(name: str) -> Target:
    backend, _, precision = name.partition("-")
    if precision not in PRECISIONS.get(backend, ()):
        raise StageError(f"params.yaml: deploy.targets has '{name}'; use some of {', '.join(known_targets())}")
    return Target(backend, precision)


def load_deploy_config(backend: str, opset: int) -> Any:
    """configs/deploy/voxel-detection_<backend>.py with the params applied."""
    from mmengine.config import Config

    path = DEPLOY_CONFIGS / f"voxel-detection_{backend}.py"
    if not path.is_file():
        raise StageError(f"{path}: not found; restore configs/deploy from git")
    deploy_cfg = Config.fromfile(str(path))
    deploy_cfg.onnx_config.opset_version = int(opset)
    return deploy_cfg


def tensorrt_model_inputs(profiles: dict[str, tuple[tuple[int, ...], ...]]) -> list[dict[str, Any]]:
    """An optimization profile in mmdeploy's deploy-config form (backend_config.model_inputs)."""
    return [{"input_shapes": {
        name: {"min_shape": list(low), "opt_shape": list(opt), "max_shape": list(high)}
        for name, (low, opt, high) in profiles.items()}}]


def voxel_layout(model_cfg: Any) -> tuple[int, int, int]:
    """(max points per voxel, features per point, test-time max voxels) of the model's voxelizer."""
    layer = model_cfg.model.data_preprocessor.voxel_layer
    max_voxels = layer.max_voxels
    test_max = max_voxels[1] if isinstance(max_voxels, (list, tuple)) else max_voxels
    features = model_cfg.model.get("voxel_encoder", {}).get("in_channels", 4)
    return int(layer.max_num_points), int(features), int(test_max)


def onnx_opset(model: Any) -> int | None:
    """The default-domain opset of an ONNX model (None if it imports none)."""
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)


def trace_frame(info_file: Path) -> Path:
    """The reduced cloud of a prepared split's first frame: mmdeploy traces the model on its voxels."""
    with info_file.open("rb") as handle:
        frames = pickle.load(handle)["data_list"]
    if not frames:
        raise StageError(f"{info_file}: no frames; check the split's ImageSets file and rerun `dvc repro prepare`")
    return PREPARED / "training" / "velodyne_reduced" / frames[0]["lidar_points"]["lidar_path"]


def check_opset(opset: Any) -> int:
    # mmdeploy's symbolic functions need >= 11; TensorRT 10's parser reads up to 20 (readiness says more).
    if not isinstance(opset, int) or isinstance(opset, bool) or not 11 <= opset <= 20:
        raise StageError(f"params.yaml: deploy.opset is {opset!r}; use a whole number from 11 to 20")
    return opset
