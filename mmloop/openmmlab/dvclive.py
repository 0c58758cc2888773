"""mmengine's DVCLive visualizer backend, made safe to run inside `dvc repro`.

mmengine's `DVCLiveVisBackend` runs `dvc init -f --no-scm` when git has no user identity, which
wipes `.dvc/` (config, remotes, cache) of the repository it runs in; on close it `dvc add`s every
.json/.py/.yaml file of the work dir. This subclass builds `Live` directly and only ends it, and
tells dvclive to leave dvc.yaml and experiments to DVC (the stage declares its files itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmengine.dist import is_main_process
from mmengine.registry import VISBACKENDS
from mmengine.visualization import DVCLiveVisBackend

#: Only these reach dvclive; the rest of mmengine's log (eta, memory, time) stays in its log file.
TRAIN_KEYS = ("loss", "lr", "grad_norm")
#: mmengine logs a metric as e.g. "Kitti metric/pred_instances_3d/KITTI/Car_3D_AP40_moderate_strict";
#: the curves keep 3D and BEV AP (R40, moderate, KITTI's IoU thresholds) per class and overall.
VAL_KEY_PARTS = ("AP40_moderate",)
#: mmdet's CocoMetric (the camera loop) logs e.g. "coco/bbox_mAP": its overall mAPs become curves too.
COCO_VAL_KEYS = ("bbox_mAP", "bbox_mAP_50")


@VISBACKENDS.register_module()
class MmloopDVCLiveVisBackend(DVCLiveVisBackend):
    def __init__(self, save_dir: str, resume: bool = False) -> None:
        super().__init__(save_dir)
        self._resume = resume
        self._trimmed = not resume

    def _init_env(self) -> None:
        from dvclive import Live

        self._dvclive = Live(
            dir=self._save_dir, resume=self._resume, report=None, save_dvc_exp=False, dvcyaml=None, cache_images=False
        )

    def add_config(self, config: Any, **kwargs: Any) -> None:
        """Not logged: the trained config is the stage's own output (models/model.py)."""

    def add_scalars(
        self, scalar_dict: dict[str, Any], step: int = 0, file_path: str | None = None, **kwargs: Any
    ) -> None:
        if not self._trimmed:
            # A killed run logged past its last checkpoint; the resumed run logs those steps again.
            drop_steps_from(Path(self._save_dir) / "plots" / "metrics", step)
            self._trimmed = True
        for key, value in scalar_dict.items():
            name = metric_name(key)
            if name:
                self.add_scalar(name, value, step)

    def close(self) -> None:
        # mmengine's Visualizer logs on rank 0 only but closes every rank's backends: the other
        # ranks must not start a Live, which would rewrite rank 0's files in the same folder.
        if not is_main_process():
            return
        # dvclive starts lazily, on the first metric; a run with nothing to log (epochs=0) still
        # leaves its (empty) summary, which the stage declares as an output.
        if not hasattr(self, "_dvclive"):
            self._init_env()
        self._dvclive.end()


def drop_steps_from(plots: Path, first: int) -> None:
    """Remove the rows of step `first` and later from dvclive's curves (tab-separated, step first)."""
    for curve in plots.rglob("*.tsv"):
        header, *rows = curve.read_text().splitlines(keepends=True)
        kept = [row for row in rows if int(row.split("\t", 1)[0]) < first]
        if len(kept) < len(rows):
            curve.write_text(header + "".join(kept))


def metric_name(key: str) -> str | None:
    """The dvclive name of an mmengine log key, or None for keys not worth a curve."""
    if "/" in key:
        last = key.rsplit("/", 1)[-1]
        official = last.endswith("_strict") or last.startswith("Overall_")
        if official and all(part in last for part in VAL_KEY_PARTS) and ("3D" in last or "BEV" in last):
            return "val/" + last.removesuffix("_strict")
        if key.startswith("coco/") and last in COCO_VAL_KEYS:
            return "val/coco_" + last
        return None
    return "train/" + key if key.startswith(TRAIN_KEYS) else None
