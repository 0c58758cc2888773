"""Who starts the training processes (`train.launcher`): this one, torchrun, or Slurm's srun.

`train` stays one DVC stage and one command whatever the launcher: with `pytorch` the stage starts
itself again under torchrun (`python -m torch.distributed.run`), with `slurm` (inside an sbatch
allocation) under `srun`, and each process it starts runs the stage as one rank. A stage that is
already one rank (started by torchrun or srun, by us or by hand) just runs. Nothing here imports
torch: the launching process only waits for its ranks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmloop.core.stage import StageError, check_number

LAUNCHERS = ("none", "pytorch", "slurm")
#: torch.distributed's own default; Slurm jobs get one from their job id instead (`rendezvous`).
DEFAULT_PORT = 29500


@dataclass(frozen=True)
class Launch:
    """`train.launcher`, `train.nproc_per_node`, `train.nnodes` and the rendezvous, checked."""

    launcher: str
    nproc_per_node: int
    nnodes: int
    master_addr: str | None
    master_port: int | None

    @property
    def world_size(self) -> int:
        return 1 if self.launcher == "none" else self.nproc_per_node * self.nnodes


@dataclass(frozen=True)
class Rank:
    """This process's place among the ranks, as torchrun or srun gave it."""

    rank: int
    local_rank: int
    world_size: int


def launch_params(train: Mapping[str, Any]) -> Launch:
    launcher = train.get("launcher", "none")
    if launcher not in LAUNCHERS:
        raise StageError(f"params.yaml: train.launcher is {launcher!r}; use one of {', '.join(LAUNCHERS)}")
    nproc, nnodes = train.get("nproc_per_node", 1), train.get("nnodes", 1)
    check_number("train", "nproc_per_node", nproc, 1, whole=True)
    check_number("train", "nnodes", nnodes, 1, whole=True)
    addr, port = train.get("master_addr"), train.get("master_port")
    if addr is not None and (not isinstance(addr, str) or not addr):
        raise StageError(f"params.yaml: train.master_addr is {addr!r}; use a host name or address, or null")
    if port is not None:
        check_number("train", "master_port", port, 1, whole=True)
        if port > 65535:
            raise StageError(f"params.yaml: train.master_port is {port}; use a TCP port (1..65535) or null")
    return Launch(launcher, int(nproc), int(nnodes), addr, None if port is None else int(port))


def current_rank(launch: Launch, environ: Mapping[str, str] = os.environ) -> Rank | None:
    """This process's rank when torchrun or srun started it; None for the launching process."""
    if launch.launcher == "pytorch" and "LOCAL_RANK" in environ and "WORLD_SIZE" in environ:
        return Rank(int(environ["RANK"]), int(environ["LOCAL_RANK"]), int(environ["WORLD_SIZE"]))
    # A batch script has SLURM_PROCID=0 too; only a job step (srun) has a numeric SLURM_STEP_ID.
    if launch.launcher == "slurm" and environ.get("SLURM_STEP_ID", "").isdigit():
        return Rank(int(environ["SLURM_PROCID"]), int(environ["SLURM_LOCALID"]), int(environ["SLURM_NTASKS"]))
    return None


def is_main_process(launch: Launch, environ: Mapping[str, str] = os.environ) -> bool:
    """Rank 0, or the only process: the one that writes outputs and prints the stage's lines."""
    rank = current_rank(launch, environ)
    return rank is None or rank.rank == 0


def launch_command(launch: Launch, module: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The command that starts this node's ranks of `python -m <module>`."""
    if launch.launcher == "pytorch":
        return [sys.executable, "-m", "torch.distributed.run", *torchrun_args(launch, environ), "-m", module]
    if launch.launcher == "slurm":
        check_allocation(launch, environ)
        tasks = [f"--nodes={launch.nnodes}", f"--ntasks={launch.world_size}"]
        # --kill-on-bad-exit: one rank failing stops the others, instead of leaving them waiting.
        return [
            "srun",
            *tasks,
            f"--ntasks-per-node={launch.nproc_per_node}",
            "--kill-on-bad-exit=1",
            sys.executable,
            "-m",
            module,
        ]
    raise ValueError(f"launcher {launch.launcher!r} starts no processes")


def torchrun_args(launch: Launch, environ: Mapping[str, str]) -> list[str]:
    sizes = [f"--nnodes={launch.nnodes}", f"--nproc-per-node={launch.nproc_per_node}"]
    addr = launch.master_addr or environ.get("MASTER_ADDR")
    port = launch.master_port or environ.get("MASTER_PORT")
    if launch.nnodes == 1 and not addr and not port:
        # One node: torchrun picks a free port, so two runs on one host never collide.
        return ["--standalone", *sizes]
    if launch.nnodes > 1 and not addr:
        raise StageError(
            "params.yaml: train.nnodes is > 1 but no rendezvous address: set MASTER_ADDR (the first "
            "node's address) on every node, or train.master_addr"
        )
    # Every node runs the same command; only NODE_RANK (0 on the node at MASTER_ADDR) differs.
    node_rank = environ.get("NODE_RANK", "0")
    return [
        *sizes,
        f"--node-rank={node_rank}",
        f"--master-addr={addr or '127.0.0.1'}",
        f"--master-port={port or DEFAULT_PORT}",
    ]


def check_allocation(launch: Launch, environ: Mapping[str, str]) -> None:
    """srun needs an allocation that holds every rank: say so before starting any."""
    if "SLURM_JOB_ID" not in environ:
        raise StageError(
            "params.yaml: train.launcher is slurm but this is no Slurm job (no SLURM_JOB_ID); submit it, "
            f"e.g. sbatch --nodes={launch.nnodes} --ntasks-per-node={launch.nproc_per_node} --wrap 'dvc repro train'"
        )
    allocated = environ.get("SLURM_NTASKS")
    if allocated and allocated.isdigit() and int(allocated) < launch.world_size:
        raise StageError(
            f"params.yaml: train.nnodes x train.nproc_per_node is {launch.world_size} ranks but Slurm job "
            f"{environ['SLURM_JOB_ID']} has {allocated} tasks; submit it with --ntasks={launch.world_size}"
        )


def rendezvous(launch: Launch, rank: Rank, environ: dict[str, str]) -> None:
    """The variables torch.distributed's `env://` reads, for a rank srun started (torchrun sets
    them itself): the first node of the job hosts the rendezvous, as in mmengine's Slurm launcher."""
    if launch.launcher != "slurm":
        return
    environ.update(RANK=str(rank.rank), LOCAL_RANK=str(rank.local_rank), WORLD_SIZE=str(rank.world_size))
    if launch.master_addr or "MASTER_ADDR" not in environ:
        environ["MASTER_ADDR"] = launch.master_addr or first_node(environ["SLURM_JOB_NODELIST"])
    if launch.master_port or "MASTER_PORT" not in environ:
        # From the job id: two jobs sharing a node get two ports.
        environ["MASTER_PORT"] = str(launch.master_port or 20000 + int(environ["SLURM_JOB_ID"]) % 20000)


def first_node(nodelist: str) -> str:
    hosts = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
    return hosts.stdout.split()[0]


def die_with_launcher(launch: Launch) -> None:
    """Make this rank die when torchrun does: torchrun starts each rank in a session of its own,
    so a `dvc repro` killed with SIGKILL (or an OOM kill) would leave its ranks training, and rank 0
    writing outputs after DVC is gone. Linux's parent-death signal closes that gap. (srun's ranks
    are children of slurmstepd, which ends them with the job step.)"""
    if launch.launcher != "pytorch" or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the launcher died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)


def run_ranks(launch: Launch, module: str) -> None:
    """Start this node's ranks and wait for them; a failed rank fails the stage with its status."""
    command = launch_command(launch, module)
    print(f"mmloop train: starting the ranks: {' '.join(command)}", flush=True)
    status = subprocess.run(command).returncode
    if status:
        raise SystemExit(status)
