"""mmloop's dvclive backend for mmengine (mmloop.openmmlab.dvclive): the curves it keeps, and that it
never re-initialises the repository's .dvc/ as mmengine's own backend can."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mmloop.openmmlab.dvclive import MmloopDVCLiveVisBackend, metric_name
from tests.helpers import REPO


def test_metric_names_for_dvclive() -> None:
    assert metric_name("loss_cls") == "train/loss_cls" and metric_name("lr") == "train/lr"
    assert metric_name("data_time") is None and metric_name("eta") is None
    assert metric_name("Kitti metric/pred_instances_3d/KITTI/Car_3D_AP40_moderate_strict") == "val/Car_3D_AP40_moderate"
    assert (
        metric_name("Kitti metric/pred_instances_3d/KITTI/Overall_BEV_AP40_moderate") == "val/Overall_BEV_AP40_moderate"
    )
    assert metric_name("Kitti metric/pred_instances_3d/KITTI/Car_3D_AP40_moderate_loose") is None
    assert metric_name("Kitti metric/pred_instances_3d/KITTI/Car_3D_AP11_moderate_strict") is None


def test_dvclive_backend_never_reinitialises_dvc(tmp_path: Path) -> None:
    """mmengine's own backend runs `dvc init -f` (wiping .dvc/) when git has no user identity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(tmp_path), GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=str(tmp_path / "none"))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=env)
    # A cloned repo (it has commits) on a machine where git has no user.name/user.email.
    subprocess.run(
        ["git", "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m", "x"],
        cwd=tmp_path,
        check=True,
        env=env,
    )
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    remote = team\n")
    (tmp_path / ".dvc" / "cache").mkdir()
    (tmp_path / ".dvc" / "cache" / "object").write_text("precious")
    script = (
        "from mmloop.openmmlab.dvclive import MmloopDVCLiveVisBackend as B\n"
        "b = B(save_dir='live'); b.add_scalars({'loss': 0.5, 'eta': 3}, step=1); b.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(env, PYTHONPATH=str(REPO)),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / ".dvc" / "config").read_text() == "[core]\n    remote = team\n"
    assert (tmp_path / ".dvc" / "cache" / "object").read_text() == "precious"
    assert (tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv").is_file()
    assert not [p for p in tmp_path.rglob("*.dvc") if p.is_file()] and not (tmp_path / "dvc.yaml").exists()
    assert MmloopDVCLiveVisBackend.__mro__[1].__name__ == "DVCLiveVisBackend"


def test_a_resumed_run_logs_the_killed_run_s_last_steps_once(tmp_path: Path) -> None:
    """Killed after logging steps 1-6 with its checkpoint at step 5: the resumed run logs 6 again."""
    first = MmloopDVCLiveVisBackend(save_dir=str(tmp_path / "live"))
    for step in range(1, 7):
        first.add_scalars({"loss": float(step), "Kitti metric/x/Car_3D_AP40_moderate_strict": 1.0}, step=step)
    resumed = MmloopDVCLiveVisBackend(save_dir=str(tmp_path / "live"), resume=True)
    for step in range(6, 9):
        resumed.add_scalars({"loss": 10.0 + step}, step=step)
    resumed.close()
    curves = tmp_path / "live" / "plots" / "metrics"
    rows = [line.split("\t") for line in (curves / "train" / "loss.tsv").read_text().splitlines()[1:]]
    assert [int(step) for step, _ in rows] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert float(rows[5][1]) == 16.0  # step 6 as the resumed run logged it
    val_steps = [
        line.split("\t")[0] for line in (curves / "val" / "Car_3D_AP40_moderate.tsv").read_text().splitlines()[1:]
    ]
    assert val_steps == ["1", "2", "3", "4", "5"]
