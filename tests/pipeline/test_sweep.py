"""A real 2-point sweep on a local one-node Slurm cluster (tests/slurm.py): `python -m mmloop.sweep
--slurm` submits one array job whose tasks each train and evaluate in their own clone, pulling
inputs from the team's DVC remote and pushing outputs back; the submitting clone then lists both
experiments with their metrics; the same command again submits nothing; a failing point is named
with its exit code and log, and the command exits non-zero.

The scratch repo is made like test_train_pipeline.py's (a reduced generated sample committed in
git, 1 epoch from the pretrained checkpoint), plus a bare git repo as `origin` and a local folder
as the default DVC remote `team`, holding the checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mmloop.core.paths import load_paths
from tests.helpers import REPO, copy_repo, pull_artifacts, set_params, sh, venv_env
from tests.slurm import LocalSlurm

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
SWEEP = [sys.executable, "-m", "mmloop.sweep", "--slurm", "-S", "train.lr=0.0005,0.001", "--stage", "evaluate"]
FRAMES, SEED = 24, 3  # 18 train, 6 val frames, as in test_train_pipeline.py
PRETRAINED = "checkpoints/pointpillars_small-sample.pth"
PATHS = load_paths(REPO / "params.yaml")


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch clone with `origin` (bare) and the default DVC remote `team` (a folder); returns
    the folder that holds all three (mmloop/, origin.git/, dvc-remote/)."""
    from sample_data import generate_dataset

    base = tmp_path_factory.mktemp("sweep")
    clone = base / "mmloop"
    copy_repo(clone)
    pull_artifacts(clone)
    generate_dataset(clone / "reduced" / "kitti", frames=FRAMES, seed=SEED)
    # One thread per point: the two array tasks share the cluster's 2 CPUs.
    set_params(clone, data__root="reduced/kitti", model__load_from=PRETRAINED, train__epochs=1, train__threads=1)
    sh([*DVC, "remote", "add", "-d", "team", str(base / "dvc-remote")], clone)
    sh(["git", "add", "-A"], clone)
    sh(["git", "commit", "-q", "-m", "reduced sample, 1 epoch, team remote"], clone)
    sh([*DVC, "push", "checkpoints.dvc"], clone)  # train's input, which each point pulls
    sh(["git", "init", "-q", "--bare", str(base / "origin.git")], base)
    sh(["git", "remote", "add", "origin", str(base / "origin.git")], clone)
    sh(["git", "push", "-q", "origin", "main"], clone)
    return base


def sweep(slurm: LocalSlurm, clone: Path, args: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """The sweep command as a user runs it on the login node: Slurm's client config, a git
    identity and the venv first on PATH (which the job script passes on to the points)."""
    env = venv_env(slurm.env, MMLOOP_SWEEP_POLL_S="1")
    start = time.monotonic()
    result = subprocess.run(args, cwd=clone, env=env, capture_output=True, text=True, timeout=1500)
    return result, time.monotonic() - start


def experiments(clone: Path) -> dict[str, dict]:
    rows = json.loads(sh([*DVC, "exp", "show", "--json"], clone))
    return {rev["name"]: rev["data"] for row in rows for exp in row.get("experiments") or [] for rev in exp["revs"]}


def test_a_slurm_sweep_runs_each_point_in_parallel_and_reruns_only_what_is_missing(
    slurm: LocalSlurm, team: Path
) -> None:
    clone = team / "mmloop"
    result, seconds = sweep(slurm, clone, SWEEP)
    print(f"2-point sweep on the local Slurm cluster: {seconds:.0f} s\n{result.stdout}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "submitted job" in out and "2 array tasks" in out
    ok = [line for line in out.splitlines() if ": ok in " in line]
    assert len(ok) == 2, out
    names = {float(line.split("train.lr=")[1].split(")")[0]): line.split()[4] for line in ok}
    assert set(names) == {0.0005, 0.001}
    assert "2 of 2 points have an experiment here: compare them with `dvc exp show`" in out

    # Both ran at once: each point's time overlaps the other's (status.json has host and seconds).
    (folder,) = (clone / ".sweeps").iterdir()
    statuses = [json.loads((folder / "points" / str(i) / "status.json").read_text()) for i in (0, 1)]
    assert all(status["exit_code"] == 0 and status["slurm_job"] for status in statuses)
    assert sum(status["seconds"] for status in statuses) > seconds, (statuses, seconds)

    shown = experiments(clone)
    for lr, name in names.items():
        data = shown[name]
        assert data["params"]["params.yaml"]["data"]["train"]["lr"] == lr
        assert data["params"]["params.yaml"]["data"]["train"]["epochs"] == 1
        metrics = data["metrics"][str(PATHS.eval)]["data"]
        assert 0 <= metrics["Car"]["3d"]["moderate"] <= 100
        # The trained model is on the DVC remote, under the md5 the experiment's dvc.lock records.
        lock = yaml.safe_load(sh(["git", "show", f"{data['rev']}:dvc.lock"], clone))
        (md5,) = [out["md5"] for out in lock["stages"]["train"]["outs"] if out["path"] == str(PATHS.model)]
        assert (team / "dvc-remote" / "files" / "md5" / md5[:2] / md5[2:]).is_file(), (name, md5)
    assert shown[names[0.0005]]["metrics"] != shown[names[0.001]]["metrics"]

    again, seconds_again = sweep(slurm, clone, SWEEP)
    print(f"the same sweep again: {seconds_again:.1f} s\n{again.stdout}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("skipped, experiment already on origin") == 2
    assert "all 2 points are done on origin: nothing to submit" in again.stdout
    assert "submitted job" not in again.stdout

    failing, seconds_failing = sweep(slurm, clone, [*SWEEP[:5], "train.epochs=-1", "--stage", "evaluate"])
    print(f"a failing point: {seconds_failing:.0f} s\n{failing.stdout}{failing.stderr}")
    assert failing.returncode == 1
    (line,) = [line for line in failing.stdout.splitlines() if ": failed at step" in line]
    assert "(train.epochs=-1): failed at step 'run' with exit code 255" in line
    assert "(mmloop train: error: params.yaml: train.epochs is -1; it must be a whole number >= 0)" in line
    log = Path(line.split("log: ")[-1])
    assert log.is_file() and "mmloop sweep task: step 3/4 run" in log.read_text()
    assert failing.stderr.startswith("mmloop sweep: error: 1 of 1 point failed (point 0): read the logs named above")
