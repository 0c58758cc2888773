"""Where the points run, behind one small interface: `slurm` (one sbatch array job, a task per
point) and `local` (the same task, one subprocess after another on this machine). Both run
`python -m mmloop.sweep.task <sweep.json> <index>` with this interpreter's bin dir first on PATH:
a clone's stages run `python -m stages.<name>` through the shell, and must get this venv's python
(on a cluster the venv sits on the shared filesystem, like the sweep folder)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path

from mmloop.core.stage import StageError, write_json
from mmloop.sweep.commands import CommandFailed, capture
from mmloop.sweep.spec import Sweep, SweepFolder

BIN = Path(sys.executable).parent
#: Seconds between two looks at squeue while waiting for the array.
POLL_S = float(os.environ.get("MMLOOP_SWEEP_POLL_S", "5"))


def task_command(folder: SweepFolder) -> list[str]:
    return [sys.executable, "-m", "mmloop.sweep.task", str(folder.spec)]


class Executor(ABC):
    name: str

    def check(self) -> None:
        """Fail in one line, before anything is submitted, if this executor cannot run here."""
        return None

    @abstractmethod
    def submit(self, folder: SweepFolder, sweep: Sweep, indices: list[int]) -> str | None:
        """Start the points `indices`: a job id to wait for, or None when they already ran."""

    @abstractmethod
    def describe(self, folder: SweepFolder, sweep: Sweep, indices: list[int]) -> str:
        """What `submit` would run (for --dry-run), in one line."""

    def running(self, folder: SweepFolder) -> tuple[str, list[int]] | None:
        """The job this sweep submitted last, with its points, while it is still queued or running."""
        return None

    def wait(self, job: str) -> None:
        """Return once the job `job` has left the queue."""
        return None


class LocalExecutor(Executor):
    name = "local"

    def submit(self, folder: SweepFolder, sweep: Sweep, indices: list[int]) -> str | None:
        env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        for number, index in enumerate(indices, 1):
            log = folder.log(index)
            print(f"mmloop sweep: point {index} ({number}/{len(indices)}) running here; log: {log}", flush=True)
            with log.open("w") as handle:
                subprocess.run([*task_command(folder), str(index)], stdout=handle, stderr=subprocess.STDOUT, env=env)
        return None

    def describe(self, folder: SweepFolder, sweep: Sweep, indices: list[int]) -> str:
        return f"{' '.join(task_command(folder))} <index> for index in {indices}, one after another"


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(self, sbatch_args: list[str] | None = None, max_running: int | None = None) -> None:
        self.sbatch_args = list(sbatch_args or [])
        self.max_running = max_running

    def check(self) -> None:
        for command in ("sbatch", "squeue"):
            if shutil.which(command) is None:
                raise StageError(f"{command} not found on PATH: run the sweep on a Slurm login node, or use --local")

    def describe(self, folder: SweepFolder, sweep: Sweep, indices: list[int]) -> str:
        folder.job_script.write_text(job_script(folder, sweep, indices, self.max_running))
        return " ".join(shlex.quote(arg) for arg in self.sbatch_command(folder))

    def sbatch_command(self, folder: SweepFolder) -> list[str]:
        return ["sbatch", "--parsable", *self.sbatch_args, str(folder.job_script)]

    def submit(self, folder: SweepFolder, sweep: Sweep, indices: list[int]) -> str | None:
        self.describe(folder, sweep, indices)  # writes job.sh
        try:
            answer = capture(self.sbatch_command(folder))
        except CommandFailed as failed:
            raise StageError(f"sbatch failed ({failed.gist}); check the --sbatch-arg options") from None
        job = answer.strip().split(";")[0]  # --parsable: "<id>" or "<id>;<cluster>"
        write_json(folder.job_record, {"job": job, "points": indices})
        return job

    def running(self, folder: SweepFolder) -> tuple[str, list[int]] | None:
        if not folder.job_record.is_file():
            return None
        record = json.loads(folder.job_record.read_text())
        try:
            states = job_states(record["job"])
        except CommandFailed as failed:
            raise StageError(f"squeue failed ({failed.gist}); check that Slurm answers (sinfo)") from None
        return (record["job"], record["points"]) if states else None

    def wait(self, job: str) -> None:
        shown, failures = "", 0
        while True:
            try:
                states = job_states(job)
                failures = 0
            except CommandFailed as failed:
                failures += 1
                if failures >= 3:
                    raise StageError(
                        f"squeue failed three times ({failed.gist}); job {job} may still run: "
                        "run the same command again later to collect its results"
                    ) from None
                states = ["UNKNOWN"]
            if not states:
                return
            summary = ", ".join(f"{states.count(state)} {state.lower()}" for state in sorted(set(states)))
            if summary != shown:
                print(f"mmloop sweep: job {job}: {summary}", flush=True)
                shown = summary
            time.sleep(POLL_S)


def job_states(job: str) -> list[str]:
    """The states of the job's array tasks still in the queue (a pending range counts once);
    empty once the job has left it, including when slurmctld has already forgotten it."""
    try:
        listed = capture(["squeue", "--noheader", f"--jobs={job}", "--format=%T"])
    except CommandFailed as failed:
        if "Invalid job id" in failed.gist:
            return []
        raise
    return [line.strip() for line in listed.splitlines() if line.strip()]


def job_script(folder: SweepFolder, sweep: Sweep, indices: list[int], max_running: int | None = None) -> str:
    """The sbatch script: one array task per point, its log at logs/point-<index>.log."""
    array = ",".join(str(index) for index in indices) + (f"%{max_running}" if max_running else "")
    task = " ".join(shlex.quote(part) for part in task_command(folder))
    return "\n".join(
        [
            "#!/bin/bash",
            f"# mmloop sweep {sweep.id}: {len(indices)} of {len(sweep.points)} points, baseline {sweep.baseline}",
            f"#SBATCH --job-name=mmloop-sweep-{sweep.id}",
            f"#SBATCH --array={array}",
            f"#SBATCH --output={folder.logs}/point-%a.log",
            f"#SBATCH --chdir={folder.root}",
            "# The clone's stages run `python -m stages.<name>`: the submitting venv's python, first on PATH.",
            f'export PATH={shlex.quote(str(BIN))}:"$PATH"',
            f'exec {task} "$SLURM_ARRAY_TASK_ID"',
            "",
        ]
    )
