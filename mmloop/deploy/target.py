"""What every deploy target shares: mmdeploy's deploy configs, the graph's names, the exported files.

Every deployed model is a self-contained folder a device can take as it is: the backend file
(`end2end.onnx` or `end2end.engine`), mmdeploy's deploy config (`deploy.py`) and the model config
as trained (`model.py`), which mmdeploy's backend model needs for voxelization and box decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmloop.core.paths import Paths
from mmloop.core.stage import StageError

DEPLOY_CONFIGS = Path("configs/deploy")
#: The same folder found from the package (installed editable, it sits in the checkout), for
#: pipelines that run from a folder of their own (pipelines/kitti-camera).
REPO_DEPLOY_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "deploy"
DEPLOY_CFG = "deploy.py"
MODEL_CFG = "model.py"


@dataclass(frozen=True)
class GraphIO:
    """The exported graph's input and output names, as the deploy config's onnx_config gives them
    (axis 0 of each input is the frame's number of non-empty voxels)."""

    inputs: list[str]
    outputs: list[str]


def load_deploy_config(backend: str, opset: int) -> Any:
    """configs/deploy/voxel-detection_<backend>.py with the params applied."""
    return load_deploy_config_file(DEPLOY_CONFIGS / f"voxel-detection_{backend}.py", opset)


def load_deploy_config_file(path: Path, opset: int) -> Any:
    """A deploy config file with params.yaml deploy.opset applied."""
    from mmengine.config import Config

    if not path.is_file():
        raise StageError(f"{path}: not found; restore configs/deploy from git")
    deploy_cfg = Config.fromfile(str(path))
    deploy_cfg.onnx_config.opset_version = int(opset)
    return deploy_cfg


def graph_io(deploy_cfg: Any) -> GraphIO:
    onnx_config = deploy_cfg.onnx_config
    return GraphIO(list(onnx_config.input_names), list(onnx_config.output_names))


def onnx_opset(model: Any) -> int | None:
    """The default-domain opset of an ONNX model (None if it imports none)."""
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)


def check_opset(opset: Any) -> int:
    # mmdeploy's symbolic functions need >= 11; TensorRT 10's parser reads up to 20 (readiness says more).
    if not isinstance(opset, int) or isinstance(opset, bool) or not 11 <= opset <= 20:
        raise StageError(f"params.yaml: deploy.opset is {opset!r}; use a whole number from 11 to 20")
    return opset


def require_export(paths: Paths, stage: str = "export") -> Path:
    """The exported graph `stage` wrote (deploy/onnx/end2end.onnx), beside its model config."""
    onnx_file = paths.onnx / "end2end.onnx"
    for path in (onnx_file, paths.onnx / MODEL_CFG):
        if not path.is_file():
            raise StageError(f"{path}: not found; run `dvc repro {stage}`")
    return onnx_file
