"""`train` on two processes (gloo, 1 thread each) for real, in a scratch copy of the repo on a
reduced sample: `dvc repro train` under torchrun, killed with SIGKILL after its first epoch and
resumed; then the same training as a Slurm job (sbatch, whose `dvc repro train` starts the ranks
with srun) on the local cluster of tests/slurm.py, which gives the model an uninterrupted torchrun
run gives, bit for bit.

Like tests/pipeline/test_train_pipeline.py, training fine-tunes the pretrained checkpoint and the
untrained baseline is the same model with random weights (`train.epochs: 0`)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmloop.core.paths import load_paths
from tests.helpers import (
    REPO,
    assert_steps_once,
    copy_repo,
    kill_when,
    pull_artifacts,
    run_stage,
    set_params,
    sh,
    venv_env,
)
from tests.slurm import LocalSlurm

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
#: 24 frames (18 train, 6 val); the config repeats the train split twice: 36 samples an epoch,
#: 18 per rank, 5 iterations of 4 (one process: 9).
FRAMES, SEED, EPOCHS = 24, 3, 3
ITERATIONS_PER_RANK = 5
PRETRAINED = "checkpoints/pointpillars_small-sample.pth"
PATHS = load_paths(REPO / "params.yaml")
TWO_RANKS = dict(train__nproc_per_node=2, train__threads=1, train__epochs=EPOCHS, model__load_from=PRETRAINED)


def car_ap(clone: Path) -> float:
    return json.loads((clone / PATHS.eval).read_text())["Car"]["3d"]["moderate"]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def assert_written_once(out: str, clone: Path) -> None:
    """Only rank 0 writes: one model line, one row per step in every curve."""
    assert out.count("mmloop train: wrote models/model.pth") == 1, out[-3000:]
    assert "mmloop train: rank 0 of 2" in out and "mmloop train: rank 1 of 2" in out
    assert_steps_once(clone / PATHS.train_curves / "plots")
    assert json.loads((clone / PATHS.train_curves / "metrics.json").read_text())["step"] == EPOCHS * ITERATIONS_PER_RANK


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sample_data import generate_dataset

    clone = tmp_path_factory.mktemp("distributed") / "mmloop"
    copy_repo(clone)
    pull_artifacts(clone)
    generate_dataset(clone / "reduced" / "kitti", frames=FRAMES, seed=SEED)
    set_params(clone, data__root="reduced/kitti", model__load_from=None, train__epochs=0, train__val_interval=EPOCHS)
    sh(["git", "add", "-A"], clone)
    sh(["git", "commit", "-q", "-m", "reduced sample"], clone)
    return clone


@pytest.fixture(scope="module")
def untrained(clone: Path) -> float:
    sh([*DVC, "repro", "evaluate"], clone)
    return car_ap(clone)


@pytest.fixture(scope="module")
def torchrun_model(clone: Path, untrained: float) -> str:
    """Two ranks under torchrun, SIGKILLed after epoch 1, resumed to the end: the model's md5."""
    set_params(clone, train__launcher="pytorch", **TWO_RANKS)
    # SIGKILL to dvc, torchrun and both ranks, like an OOM kill of the job.
    killed = kill_when(
        [*DVC, "repro", "train"],
        clone,
        clone / "killed-run.log",
        lambda: bool(list((clone / PATHS.train_work).glob("*/epoch_1.pth"))),
    )
    assert "torch.distributed.run --standalone --nnodes=1 --nproc-per-node=2 -m stages.train" in killed
    assert re.search(rf"Epoch\(train\)\s+\[1\]\[{ITERATIONS_PER_RANK}/{ITERATIONS_PER_RANK}\]", killed), killed[-3000:]
    assert "mmloop train: wrote" not in killed  # killed before rank 0 wrote anything

    out = sh([*DVC, "repro", "evaluate"], clone)
    assert "mmloop train: resuming the interrupted run" in out, out[-3000:]
    assert not re.search(r"Epoch\(train\)\s+\[1\]\[", out)  # not retrained from epoch 1
    assert re.search(rf"Epoch\(train\)\s+\[{EPOCHS}\]\[{ITERATIONS_PER_RANK}/", out)
    assert_written_once(out, clone)
    assert car_ap(clone) >= untrained + 20.0, (untrained, car_ap(clone))
    assert not any((clone / PATHS.train_work).iterdir())  # the finished run's folder is gone
    return md5(clone / PATHS.model)


def test_two_ranks_under_torchrun_resume_and_beat_the_untrained_model(torchrun_model: str, clone: Path) -> None:
    assert sh([*DVC, "status", "evaluate"], clone).strip().endswith("Data and pipelines are up to date.")
    pretrained = md5(clone / PRETRAINED)
    assert torchrun_model != pretrained  # DDP trained it


def test_the_same_training_as_a_slurm_job(slurm: LocalSlurm, clone: Path, torchrun_model: str) -> None:
    set_params(clone, train__launcher="slurm")
    log = clone / "slurm-job.log"
    job = subprocess.run(
        ["sbatch", "--wait", "--ntasks=2", f"--output={log}", "--wrap", f"{sys.executable} -m dvc repro train"],
        cwd=clone,
        env=venv_env(slurm.env),
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = log.read_text() if log.exists() else ""
    assert job.returncode == 0, f"{job.stdout}{job.stderr}\n{out[-4000:]}"
    assert re.search(r"starting the ranks: srun --nodes=1 --ntasks=2 .* -m stages\.train", out), out[-3000:]
    assert_written_once(out, clone)
    # Not torchrun_model's bits: that run was resumed, and its later epochs drew other augmentations.
    slurm_model = md5(clone / PATHS.model)

    # Same data, params, ranks and host settings: torchrun's ranks, uninterrupted, train the model
    # srun's did. (Run directly: `dvc repro` would restore the resumed run's outputs from its run cache.)
    set_params(clone, train__launcher="pytorch")
    again = run_stage("train", clone, env=venv_env())
    assert again.returncode == 0, again.stderr[-3000:]
    assert md5(clone / PATHS.model) == slurm_model


def test_slurm_launcher_outside_a_job_fails_in_one_line(clone: Path, torchrun_model: str) -> None:
    set_params(clone, train__launcher="slurm")
    before = md5(clone / PATHS.model)
    env = {key: value for key, value in venv_env().items() if not key.startswith("SLURM_")}
    result = run_stage("train", clone, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "mmloop train: error: params.yaml: train.launcher is slurm but this is no Slurm job (no SLURM_JOB_ID); "
        "submit it, e.g. sbatch --nodes=1 --ntasks-per-node=2 --wrap 'dvc repro train'"
    )
    assert md5(clone / PATHS.model) == before
