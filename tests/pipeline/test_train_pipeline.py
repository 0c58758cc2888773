"""`dvc repro evaluate` trains and evaluates for real, on a reduced sample, in a scratch copy of the
repo: training beats the untrained model, a killed run resumes, and `dvc exp run -S` reports
metrics. (The export/deploy stages after evaluate are tested on the full sample, test_pipeline.py.)

Training runs the way the demo does: it fine-tunes the pretrained checkpoint from `dvc pull`.
Training from scratch to a useful AP takes longer than CI allows (see the README's pretrained
checkpoint); the untrained baseline is the same model with random weights (`train.epochs: 0`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmloop.core.paths import load_paths
from tests.helpers import REPO, assert_steps_once, copy_repo, kill_when, pull_artifacts, set_params, sh

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
#: 24 frames (18 train, 6 val): 9 iterations per epoch at the config's batch size of 4.
FRAMES, SEED = 24, 3
EPOCHS = 6
PRETRAINED = "checkpoints/pointpillars_small-sample.pth"
PATHS = load_paths(REPO / "params.yaml")  # the clone's params.yaml is the same file


def car_ap(clone: Path) -> dict[str, float]:
    report = json.loads((clone / PATHS.eval).read_text())
    return {"3d": report["Car"]["3d"]["moderate"], "bev": report["Car"]["bev"]["moderate"]}


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch repo whose params point at a reduced generated sample, training from scratch."""
    from sample_data import generate_dataset

    clone = tmp_path_factory.mktemp("train") / "mmloop"
    copy_repo(clone)
    pull_artifacts(clone)  # train depends on checkpoints/ (model.load_from), even when it is null
    generate_dataset(clone / "reduced" / "kitti", frames=FRAMES, seed=SEED)
    set_params(clone, data__root="reduced/kitti", model__load_from=None, train__epochs=0, train__val_interval=3)
    sh(["git", "add", "-A"], clone)
    sh(["git", "commit", "-q", "-m", "reduced sample, from scratch"], clone)
    return clone


@pytest.fixture(scope="module")
def untrained(clone: Path) -> dict[str, float]:
    """epochs=0: the randomly initialised model, evaluated by the same stages."""
    out = sh([*DVC, "repro", "evaluate"], clone)
    for stage in ("validate", "prepare", "train", "evaluate"):
        assert f"Running stage '{stage}'" in out
    return car_ap(clone)


def test_killed_training_resumes_and_beats_the_untrained_model(clone: Path, untrained: dict[str, float]) -> None:
    set_params(clone, train__epochs=EPOCHS, model__load_from=PRETRAINED)
    first = kill_when(
        [*DVC, "repro", "evaluate"],
        clone,
        clone / "first-run.log",
        lambda: bool(list((clone / PATHS.train_work).glob("*/epoch_2.pth"))),
    )
    assert re.search(r"Epoch\(train\)\s+\[1\]\[", first)
    assert not (clone / PATHS.model).exists()

    out = sh([*DVC, "repro", "evaluate"], clone)
    assert "mmloop train: resuming the interrupted run" in out
    assert "resumed epoch: 2" in out or "resumed epoch: 3" in out, out[-3000:]
    assert not re.search(r"Epoch\(train\)\s+\[1\]\[", out)  # not retrained from epoch 1
    assert re.search(rf"Epoch\(train\)\s+\[{EPOCHS}\]\[", out)

    trained = car_ap(clone)
    print(f"Car AP (R40, moderate) untrained {untrained}, after {EPOCHS} epochs {trained}")
    assert trained["3d"] >= untrained["3d"] + 20.0 and trained["bev"] >= untrained["bev"] + 20.0, (untrained, trained)
    curves = json.loads((clone / PATHS.train_curves / "metrics.json").read_text())
    assert curves["step"] == EPOCHS * 9 and "val" in curves and "loss" in curves["train"]
    assert_steps_once(clone / PATHS.train_curves / "plots")  # the killed run's last steps are not kept twice
    # The resumed run completed the stage: DVC records it as up to date.
    assert sh([*DVC, "status", "evaluate"], clone).strip().endswith("Data and pipelines are up to date.")


def test_exp_run_changes_the_metrics_and_exp_show_has_them(clone: Path, untrained: dict[str, float]) -> None:
    before = json.loads((clone / PATHS.eval).read_text())
    sh(["git", "add", "-A"], clone)
    sh(["git", "commit", "-q", "-m", "trained"], clone)
    sh([*DVC, "exp", "run", "evaluate", "-S", "train.epochs=2", "-n", "two-epochs"], clone)
    after = json.loads((clone / PATHS.eval).read_text())
    assert after != before
    shown = subprocess.run([*DVC, "exp", "show", "--json"], cwd=clone, capture_output=True, text=True, check=True)
    rows = json.loads(shown.stdout)
    found = {}
    for row in rows:
        for exp in row.get("experiments") or []:
            for revision in exp.get("revs", []):
                if revision.get("name") == "two-epochs":
                    found = revision["data"]
    assert found, "experiment 'two-epochs' missing from dvc exp show --json"
    metrics = found["metrics"]["metrics/eval.json"]["data"]
    assert metrics["Car"]["3d"]["moderate"] == after["Car"]["3d"]["moderate"]
    assert found["params"]["params.yaml"]["data"]["train"]["epochs"] == 2
    assert "metrics/train/metrics.json" in found["metrics"]
