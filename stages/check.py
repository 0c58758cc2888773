"""`check` stage: the params that name files and folders, checked before any other stage.

DVC hashes a stage's deps before it runs the command (its run cache), so a `data.root` that is not
there surfaced as DVC's own `[Errno 2] No such file or directory: '.../data/x'`, naming neither the
param nor the fix. This stage has one path dep, `checkpoints` (so that `dvc repro --pull` pulls it
before model.load_from is checked), and params; every stage after it depends on its output: it runs
first whenever those params change (and in a fresh clone, where its output is not yet built: work/
is not in git), and fails with our one line. It reads no data: a second at most.
"""

from __future__ import annotations

from pathlib import Path

from mmloop.core.checkpoint import check_load_from
from mmloop.core.paths import load_paths
from mmloop.core.stage import StageError, dataset_root, load_params, run_stage, write_json
from mmloop.datasets import dataset_format
from mmloop.openmmlab.config import config_path

#: The folder dvc.yaml's train stage depends on (checkpoints.dvc), whatever model.load_from says.
CHECKPOINTS = Path("checkpoints")


def main() -> None:
    data = load_params("data")
    model = load_params("model")
    paths = load_paths()
    dataset_format(data)
    root = dataset_root(data)
    config_path(model["config"])
    check_load_from(model.get("load_from"))
    if not CHECKPOINTS.is_dir():
        raise StageError(f"{CHECKPOINTS}: not found (a dep of train); run `dvc pull checkpoints.dvc`")
    # The same bytes for any params that pass: the stages after this one do not rerun for it.
    write_json(paths.checked, {"checked": ["data.format", "data.root", "model.config", "model.load_from"]})
    print(f"mmloop check: data.root {root}, model.config and model.load_from found")


if __name__ == "__main__":
    run_stage("check", main)
