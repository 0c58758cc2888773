"""The Slurm executor: the job script it renders, the sbatch command it runs (--sbatch-arg passed
through), the job it remembers and waits for, against stand-in sbatch/squeue commands on PATH."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mmloop.core.stage import StageError
from mmloop.sweep.executors import BIN, SlurmExecutor, job_script
from mmloop.sweep.grid import Point
from mmloop.sweep.spec import Sweep, SweepFolder

SHA = "0123456789abcdef0123456789abcdef01234567"


def sweep_of(count: int) -> Sweep:
    points = tuple(Point(i, f"sweep-{i:08x}", (f"train.lr={i}",)) for i in range(count))
    return Sweep(SHA, "origin", "/srv/git/mmloop.git", ("evaluate",), points)


def test_the_job_script_runs_one_array_task_per_point(tmp_path: Path) -> None:
    folder = SweepFolder(tmp_path / "sweep")
    script = job_script(folder, sweep_of(4), [0, 2, 3])
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "#SBATCH --array=0,2,3" in lines
    assert f"#SBATCH --output={folder.root}/logs/point-%a.log" in lines  # = SweepFolder.log(index)
    assert f"#SBATCH --chdir={folder.root}" in lines
    assert "#SBATCH --job-name=mmloop-sweep-01234567-" in script
    assert f'export PATH={BIN}:"$PATH"' in lines  # the venv's python and dvc for the clone's stages
    assert lines[-1] == f'exec {sys.executable} -m mmloop.sweep.task {folder.spec} "$SLURM_ARRAY_TASK_ID"'
    assert str(folder.log(2)) == str(folder.logs / "point-%a.log").replace("%a", "2")
    assert "#SBATCH --array=0,1%1" in job_script(folder, sweep_of(2), [0, 1], max_running=1)


def test_the_job_script_is_valid_bash(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(job_script(SweepFolder(tmp_path), sweep_of(2), [0, 1]))
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def fake_slurm(bin_dir: Path, squeue_answers: list[str]) -> Path:
    """sbatch that records its arguments and answers job 42; squeue that gives one answer per call
    (then Slurm's own 'Invalid job id' once the job is gone)."""
    bin_dir.mkdir()
    calls = bin_dir / "calls"
    answers = bin_dir / "answers"
    answers.write_text("".join(f"{answer}\n" for answer in squeue_answers))
    tools = {
        "sbatch": f'echo "sbatch $*" >> {calls}\necho "42;cluster"\n',
        "squeue": (
            f'echo "squeue $*" >> {calls}\n'
            f"line=$(head -n 1 {answers}); sed -i 1d {answers}\n"
            'if [ -z "$line" ]; then echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1; fi\n'
            'echo "$line" | tr , "\\n"\n'
        ),
    }
    for name, body in tools.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/bash\n{body}")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return calls


def test_submit_passes_sbatch_args_through_and_wait_polls_squeue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = fake_slurm(tmp_path / "bin", ["RUNNING,PENDING", "RUNNING,RUNNING", "RUNNING"])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr("mmloop.sweep.executors.POLL_S", 0)
    folder = SweepFolder(tmp_path / "sweep")
    folder.logs.mkdir(parents=True)
    executor = SlurmExecutor(["--partition=cpu", "--time=00:30:00"])
    executor.check()

    job = executor.submit(folder, sweep_of(2), [0, 1])

    assert job == "42"
    assert calls.read_text().splitlines()[0] == f"sbatch --parsable --partition=cpu --time=00:30:00 {folder.job_script}"
    assert "#SBATCH --array=0,1" in folder.job_script.read_text()
    assert json.loads(folder.job_record.read_text()) == {"job": "42", "points": [0, 1]}
    assert executor.running(folder) == ("42", [0, 1])  # the first squeue answer: still queued
    executor.wait("42")
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["mmloop sweep: job 42: 2 running", "mmloop sweep: job 42: 1 running"]
    assert executor.running(folder) is None  # gone from the queue: a rerun submits again
    assert "squeue --noheader --jobs=42 --format=%T" in calls.read_text()


def test_without_sbatch_the_slurm_executor_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        StageError, match=r"^sbatch not found on PATH: run the sweep on a Slurm login node, or use --local$"
    ):
        SlurmExecutor().check()
