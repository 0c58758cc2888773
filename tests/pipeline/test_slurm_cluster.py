"""Smoke test of the `slurm` fixture: a real local cluster runs array tasks side by side, srun
starts one task per rank with the variables a training launcher reads, and a failed task's exit
code is visible without sacct. Also pins what Slurm 22.05 sets in a batch script outside srun.

Run with -s to see the variables each context got."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tests.slurm import LocalSlurm

pytestmark = pytest.mark.slow

LAUNCHER_VARS = (
    "SLURM_JOB_ID",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NTASKS",
    "SLURM_NODELIST",
    "SLURM_JOB_NODELIST",
    "SLURM_STEP_ID",
    "SLURM_STEPID",
)


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/bash\nset -euo pipefail\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def read_env(path: Path) -> dict[str, str]:
    """A file of NAME=value lines (as `env` prints them) as a dict."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def sbatch_wait(slurm: LocalSlurm, *args: str, check: bool = True) -> tuple[str, int]:
    """`sbatch --wait --parsable ARGS`: the job id and sbatch's exit status (the job's)."""
    result = slurm.run(["sbatch", "--wait", "--parsable", *args], check=check, timeout=60)
    return result.stdout.strip().split(";")[0], result.returncode


def test_array_tasks_run_at_the_same_time(slurm: LocalSlurm, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "task.sh",
        f"""\
        out={tmp_path}/task_$SLURM_ARRAY_TASK_ID
        echo "$SLURM_ARRAY_TASK_ID $(hostname -s) $(date +%s.%N)" > "$out.start"
        sleep 3
        date +%s.%N > "$out.end"
        """,
    )
    job_id, _ = sbatch_wait(slurm, "--array=0-1", "-n", "1", "-o", f"{tmp_path}/%A_%a.log", str(script))

    spans = {}
    for task in (0, 1):
        task_id, host, start = (tmp_path / f"task_{task}.start").read_text().split()
        end = float((tmp_path / f"task_{task}.end").read_text())
        assert (int(task_id), host) == (task, slurm.nodename)
        spans[task] = (float(start), end)
    print(f"\narray job {job_id}: task spans {spans}")
    # Each task sleeps 3 s on its own CPU: both must have started before either ended.
    assert max(start for start, _ in spans.values()) < min(end for _, end in spans.values())


def test_srun_tasks_get_launcher_env(slurm: LocalSlurm, tmp_path: Path) -> None:
    names = " ".join(LAUNCHER_VARS)
    script = write_script(
        tmp_path / "job.sh",
        f"""\
        dump() {{ for name in {names}; do echo "$name=${{!name-<unset>}}"; done; }}
        dump > {tmp_path}/batch.env
        scontrol show hostnames "$SLURM_JOB_NODELIST" > {tmp_path}/hostnames
        export -f dump
        srun bash -c 'dump > {tmp_path}/rank_$SLURM_PROCID.env'
        """,
    )
    job_id, _ = sbatch_wait(slurm, "-n", "2", "-o", f"{tmp_path}/job.log", str(script))

    batch = read_env(tmp_path / "batch.env")
    ranks = [read_env(tmp_path / f"rank_{rank}.env") for rank in (0, 1)]
    print(f"\nbatch script (outside srun): {batch}")
    for rank, env in enumerate(ranks):
        print(f"srun rank {rank}: {env}")

    for rank, env in enumerate(ranks):
        assert env["SLURM_PROCID"] == env["SLURM_LOCALID"] == str(rank)
        assert env["SLURM_NTASKS"] == "2"
        assert env["SLURM_JOB_ID"] == job_id
        assert env["SLURM_STEP_ID"] == env["SLURM_STEPID"] == "0"
        assert env["SLURM_NODELIST"] == env["SLURM_JOB_NODELIST"] == slurm.nodename
    # Slurm 22.05 outside srun: the batch step looks like rank 0 of the allocation but has no
    # step id, so a launcher cannot tell it from srun's rank 0 by SLURM_PROCID alone.
    assert (batch["SLURM_PROCID"], batch["SLURM_LOCALID"], batch["SLURM_NTASKS"]) == ("0", "0", "2")
    assert batch["SLURM_STEP_ID"] == batch["SLURM_STEPID"] == "<unset>"
    assert (tmp_path / "hostnames").read_text().split() == [slurm.nodename]


def test_failed_array_task_exit_code_is_visible(slurm: LocalSlurm, tmp_path: Path) -> None:
    script = write_script(tmp_path / "fail.sh", '[ "$SLURM_ARRAY_TASK_ID" = 1 ] && exit 3\nexit 0\n')
    job_id, status = sbatch_wait(slurm, "--array=0-1", "-o", "/dev/null", str(script), check=False)

    # sbatch --wait exits with the highest exit code over the array's tasks.
    assert status == 3
    # Without slurmdbd there is no sacct; scontrol still knows for MinJobAge seconds and more.
    records = {record["ArrayTaskId"]: record for record in slurm.show_job(job_id)}
    print(f"\narray job {job_id}: {[(t, r['JobState'], r['ExitCode']) for t, r in sorted(records.items())]}")
    assert (records["0"]["JobState"], records["0"]["ExitCode"]) == ("COMPLETED", "0:0")
    assert (records["1"]["JobState"], records["1"]["ExitCode"]) == ("FAILED", "3:0")


def test_daemon_that_fails_to_start_is_named_and_cleaned_up(slurm: LocalSlurm) -> None:
    """A second cluster whose slurmctld cannot start: the error names it and quotes its log.

    Takes the `slurm` fixture for its skip/fail rule; the session cluster must survive this.
    """

    class NoStateDir(LocalSlurm):
        def _write_files(self) -> None:
            super()._write_files()
            (self.root / "state").rmdir()
            (self.root / "state").write_text("a file where StateSaveLocation wants a folder")

    broken = NoStateDir()
    try:
        with pytest.raises(RuntimeError, match=r"^slurmctld exited") as failure:
            broken.start(timeout=30)
        assert str(broken.log("slurmctld")) in str(failure.value)
        assert "State save loc" in str(failure.value)
        assert broken.processes == {}  # start() stopped the daemons it had started
        broken.stop()  # and a second stop is harmless
    finally:
        broken.stop()
        shutil.rmtree(broken.root, ignore_errors=True)
    assert slurm.node_state() == "idle"
