"""mmengine configs: the one `model.config` names, and the model `train` wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmloop.core.paths import Paths
from mmloop.core.stage import StageError

CONFIG_DIR = Path("configs/models")
MMDET3D_SCOPE = "mmdet3d::"


def config_path(name: str) -> Path:
    """The config file `model.config` names: a file under configs/models, or `mmdet3d::<path>`."""
    if name.startswith(MMDET3D_SCOPE):
        from mmloop.openmmlab.tools import mim_dir

        path = mim_dir() / "configs" / name[len(MMDET3D_SCOPE) :]
    else:
        path = Path(name)
    if not path.is_file():
        known = ", ".join(str(p) for p in sorted(CONFIG_DIR.glob("*.py")))
        raise StageError(
            f"params.yaml: model.config '{name}' not found; use one of {known} "
            f"or a shipped config as 'mmdet3d::pointpillars/<name>.py'"
        )
    return path


def load_config(name: str) -> Any:
    """The mmengine Config of `model.config`, inheritance resolved."""
    from mmengine.config import Config

    path = config_path(name)
    try:
        return Config.fromfile(str(path))
    except Exception as error:  # syntax errors, a missing _base_, ...: mmengine's own message
        message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise StageError(f"{path}: cannot load the config ({message}); fix it or pick another model.config") from None


def require_trained_model(
    paths: Paths, info_file: Path, split: str, train_stage: str = "train", prepare_stage: str = "prepare"
) -> None:
    """The model `train` wrote (a readable checkpoint) and the split's info file `prepare` wrote, or
    one line on what to run (the camera loop's stages are train_2d and prepare_2d)."""
    for path, fix in (
        (paths.model, f"run `dvc repro {train_stage}`"),
        (paths.model_config, f"run `dvc repro {train_stage}`"),
        (info_file, f"add '{split}' to data.splits and run `dvc repro {prepare_stage}`"),
    ):
        if not path.is_file():
            raise StageError(f"{path}: not found; {fix}")
    from mmloop.core.checkpoint import read_checkpoint

    read_checkpoint(paths.model, "paths.model")  # readable, weights-only, before any model is built
