"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd on loopback.

Everything lives in one fresh folder: a munge key and socket of its own (Slurm reaches it through
`AuthInfo=socket=...`), a generated slurm.conf with free TCP ports picked at start, state, spool,
pid and log files. No system service is used or touched (no /etc/slurm, no /etc/munge, no
/run/munge), so a system munged or slurmd that happens to run does not matter. The daemons run in
the foreground under Popen, so a daemon that dies while starting is seen at once and named.

Client commands need `SLURM_CONF` pointing at the generated file: use `cluster.env` or
`cluster.run([...])`. There is no slurmdbd, so no sacct: a finished job's exit code is what
`sbatch --wait` returns (the highest over an array) and what `scontrol show job` says while the
record lives (MinJobAge, a few seconds to a minute). The Debian packages are slurm-wlm and munge.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_ports

DAEMONS = {"munged": "/usr/sbin/munged", "slurmctld": "/usr/sbin/slurmctld", "slurmd": "/usr/sbin/slurmd"}
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
INSTALL_HINT = "apt-get install -y slurm-wlm munge"
# Inherited variables that would steer our client commands elsewhere: running the tests inside a
# real Slurm job sets SLURM_JOB_ID etc., and SBATCH_*/SRUN_* are read as option defaults.
FOREIGN_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "SQUEUE_", "SINFO_", "SCONTROL_")


def daemon_path(name: str) -> str | None:
    """Where daemon `name` is: PATH first (a non-Debian install), else Debian's /usr/sbin path."""
    found = shutil.which(name)
    if found:
        return found
    default = DAEMONS[name]
    return default if os.access(default, os.X_OK) else None


def missing_binaries() -> list[str]:
    """The daemons and client commands the cluster needs that are not installed here."""
    missing = [name for name in DAEMONS if daemon_path(name) is None]
    return missing + [name for name in CLIENTS if shutil.which(name) is None]


def unavailable_reason() -> str | None:
    """Why a LocalSlurm cannot run here, or None when it can."""
    missing = missing_binaries()
    if missing:
        return f"Slurm/munge binaries not found: {', '.join(missing)} (install them: {INSTALL_HINT})"
    # No root needed: with SlurmUser=SlurmdUser=the current user, slurmd launches that user's
    # own jobs without switching users (checked as `nobody` on Debian 12's 22.05.8).
    return None


def skip_unless_available() -> None:
    """pytest.skip (or, with MMLOOP_REQUIRE_SLURM=1 as in CI, pytest.fail) when no cluster can run."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("MMLOOP_REQUIRE_SLURM") == "1":
        pytest.fail(reason + "; MMLOOP_REQUIRE_SLURM=1 makes the Slurm tests mandatory")
    pytest.skip(reason)


def make_root() -> Path:
    """A fresh, world-traversable folder directly under /tmp for one cluster.

    Not pytest's tmp_path: munged refuses a socket whose parent folders are not executable by
    all (pytest's /tmp/pytest-of-<user> is 0700), and a unix socket path must stay under 108 bytes.
    """
    root = Path(tempfile.mkdtemp(prefix="mmloop-slurm-", dir="/tmp"))
    root.chmod(0o755)
    return root


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(text) if text else f"({path} is empty)"


class SlurmCommandError(RuntimeError):
    """A client command (sbatch, srun, ...) failed; the message carries its output."""


class LocalSlurm:
    """One-node cluster in `root` (a fresh folder): `start()`, client commands via `run()`, `stop()`.

    The node is this host under its short hostname at 127.0.0.1, with `cpus` CPUs; CR_CPU
    scheduling hands out single CPUs, so two 1-CPU jobs (or array tasks) run at once.
    """

    def __init__(self, root: Path | None = None, cpus: int | None = None, min_job_age: int = 4) -> None:
        self.root = root if root is not None else make_root()
        self.nodename = socket.gethostname().split(".")[0]
        # At least 2 so the 2-task tests run on a 1-CPU host too; slurm.conf then says
        # SlurmdParameters=config_overrides so slurmd trusts the declared count over the hardware.
        self.cpus = cpus if cpus is not None else max(2, os.cpu_count() or 1)
        # Small, because `sbatch --wait` polls every 2 s only while 2 < MinJobAge/2 is false; at
        # the default 300 it backs off to 8 s, then 32 s. Records still live ~min_job_age..60 s.
        self.min_job_age = min_job_age
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.ctld_port = 0
        self.slurmd_port = 0
        self.processes: dict[str, subprocess.Popen] = {}
        self.started_s: float | None = None

    # -- paths -----------------------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    def log(self, daemon: str) -> Path:
        # munged in the foreground logs to stderr only, so its log is what _spawn captures.
        return self.output(daemon) if daemon == "munged" else self.root / "log" / f"{daemon}.log"

    def output(self, daemon: str) -> Path:
        """The daemon's own stdout/stderr (errors before its log file is open land here)."""
        return self.root / "log" / f"{daemon}.out"

    # -- client side -----------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """os.environ without inherited Slurm settings, plus SLURM_CONF for this cluster."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_ENV_PREFIXES)}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(
        self, args: Sequence[str], *, check: bool = True, timeout: float = 120, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """A client command (`["sbatch", "--wait", ...]`) against this cluster; text output captured.

        With check=True a non-zero exit raises SlurmCommandError with the command's stdout/stderr.
        """
        kwargs.setdefault("env", self.env)
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        result = subprocess.run(list(args), text=True, timeout=timeout, check=False, **kwargs)
        if check and result.returncode != 0:
            raise SlurmCommandError(
                f"`{shlex.join(args)}` exited with {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def show_job(self, job_id: str | int) -> list[dict[str, str]]:
        """`scontrol -o show job ID` as one dict per record (an array gives one per task).

        Values with spaces in them (a Command with arguments) are cut at the first space.
        """
        out = self.run(["scontrol", "-o", "show", "job", str(job_id)]).stdout
        return [
            dict(field.split("=", 1) for field in line.split() if "=" in field) for line in out.splitlines() if line
        ]

    def node_state(self) -> str:
        """The node's state as sinfo prints it (idle, alloc, mix, down*, ...), or '' if unknown."""
        result = self.run(["sinfo", "-h", "-N", "-n", self.nodename, "-o", "%T"], check=False, timeout=15)
        return result.stdout.strip() if result.returncode == 0 else ""

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> LocalSlurm:
        """Start munged, slurmctld, slurmd; return once the node is idle. Raises naming the daemon."""
        if self.processes:
            raise RuntimeError("this LocalSlurm is already started")
        begin = time.monotonic()
        try:
            self._write_files()
            self._spawn("munged", ["-F", f"--socket={self.munge_socket}", *self._munge_files()])
            self._wait_for(lambda: self.munge_socket.exists(), "munged", "its socket to appear", begin + timeout)
            self._spawn("slurmctld", ["-D", "-f", str(self.conf)])
            # slurmd only after slurmctld listens: a controller that dies at start is then named
            # within 0.2 s, instead of after a client command's timeout.
            self._wait_for(lambda: _listening(self.ctld_port), "slurmctld", "its port to open", begin + timeout)
            self._spawn("slurmd", ["-D", "-f", str(self.conf), "-N", self.nodename])
            self._wait_for(lambda: self.node_state() == "idle", "slurmd", "the node to be idle", begin + timeout)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - begin
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Cancel every job, then SIGTERM each daemon (SIGKILL after `grace` s). Safe to repeat."""
        if not self.processes:
            return
        if self._alive("slurmctld"):
            self._cancel_jobs()
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.get(name)
            if process is not None:
                _terminate(process, grace)
        # slurmstepd and job processes are not the daemons' children once launched; they all
        # carry our SLURM_CONF in their environment, which finds them and nothing else.
        for pid in _pids_with_env("SLURM_CONF", str(self.conf)):
            _kill(pid, signal.SIGKILL)
        self.processes.clear()

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe_failure(self) -> str:
        """The last lines of every daemon's log and output, for an error message."""
        parts = []
        for name in DAEMONS:
            process = self.processes.get(name)
            if process is None:
                status = "not started"
            else:
                status = "running" if process.poll() is None else f"exited with {process.returncode}"
            parts.append(f"--- {name} ({status}); log {self.log(name)}:\n{tail(self.log(name))}")
            output = self.output(name)
            if output != self.log(name) and output.exists() and output.stat().st_size:
                parts.append(f"--- {name} stdout/stderr {output}:\n{tail(output, 10)}")
        return "\n".join(parts)

    # -- internals -------------------------------------------------------------------------------
    def _munge_files(self) -> list[str]:
        munge = self.root / "munge"
        return [
            f"--key-file={munge / 'munge.key'}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--seed-file={munge / 'munged.seed'}",
        ]

    def _write_files(self) -> None:
        for sub in ("munge", "log", "state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged checks modes: the socket's folder must be traversable by all, the key private.
        (self.root / "munge").chmod(0o755)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        # An empty plugstack of our own, so /etc/slurm/plugstack.conf (SPANK plugins) is not read.
        (self.root / "plugstack.conf").write_text("")
        self.ctld_port, self.slurmd_port = free_ports(2)
        self.conf.write_text(self._slurm_conf())

    def _slurm_conf(self) -> str:
        root, node = self.root, self.nodename
        lines = [
            "ClusterName=mmloop",
            f"SlurmctldHost={node}(127.0.0.1)",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            f"SlurmUser={self.user}",
            f"SlurmdUser={self.user}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # Read by both auth/munge and cred/munge in 22.05 (and by every client command).
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.log('slurmctld')}",
            f"SlurmdLogFile={self.log('slurmd')}",
            f"PlugStackConfig={root / 'plugstack.conf'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            # Plugins that need neither cgroups nor systemd, so no cgroup.conf and no container setup.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/builtin",
            "SlurmdParameters=config_overrides",
            "ReturnToService=2",
            # Short timeouts: a broken cluster should fail a test in seconds, not minutes.
            "SlurmctldTimeout=10",
            "SlurmdTimeout=30",
            "MessageTimeout=5",
            "TCPTimeout=2",
            "BatchStartTimeout=10",
            "KillWait=2",
            "InactiveLimit=0",
            "Waittime=0",
            f"MinJobAge={self.min_job_age}",
            f"NodeName={node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=256 State=UNKNOWN",
            f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
        ]
        return "\n".join(lines) + "\n"

    def _spawn(self, name: str, args: list[str]) -> None:
        binary = daemon_path(name)
        if binary is None:
            raise RuntimeError(f"{name} is not installed ({INSTALL_HINT})")
        env = self.env
        with self.output(name).open("wb") as out:
            # A session of its own: a Ctrl-C aimed at pytest must not kill the daemons before
            # stop() cancels the jobs.
            self.processes[name] = subprocess.Popen(
                [binary, *args],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def _wait_for(self, ready: Any, waiting_on: str, what: str, deadline: float) -> None:
        """Poll `ready()` until true; raise naming the first dead daemon, or `waiting_on` on timeout."""
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode} while the cluster was starting "
                        f"(log {self.log(name)})\n{self.describe_failure()}"
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{waiting_on}: timed out waiting for {what} (node state {self.node_state()!r}; "
                    f"log {self.log(waiting_on)})\n{self.describe_failure()}"
                )
            time.sleep(0.2)

    def _cancel_jobs(self, wait: float = 10) -> None:
        """scancel all jobs and wait (briefly) for the queue to drain, so steps end cleanly."""
        self.run(["scancel", "--full", "-u", self.user], check=False, timeout=15)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            queue = self.run(["squeue", "-h", "-o", "%i"], check=False, timeout=15)
            if queue.returncode != 0 or not queue.stdout.strip():
                return
            time.sleep(0.3)


def _listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _terminate(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM the daemon's process group, then SIGKILL it after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    # The leader is gone; anything left in its group goes too.
    _kill(-process.pid, signal.SIGKILL)


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        if pid < 0:
            os.killpg(-pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pids_with_env(key: str, value: str) -> list[int]:
    """Processes (other than this one) whose environment has key=value."""
    wanted = f"{key}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone already, or not ours to read
            continue
        if wanted in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids
