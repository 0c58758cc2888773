"""`train.launcher` and friends: the checks, who is a rank, and the commands that start the ranks."""

from __future__ import annotations

import sys

import pytest

from mmloop.core import launch as launch_module
from mmloop.core.launch import Launch, Rank, current_rank, is_main_process, launch_command, launch_params, rendezvous
from mmloop.core.stage import StageError

TORCHRUN_RANK = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}
#: What Slurm 22.05 sets in a batch script (no numeric SLURM_STEP_ID) and in an srun task.
SLURM_BATCH = {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_JOB_NODELIST": "node[1-2]"}
SLURM_TASK = dict(SLURM_BATCH, SLURM_STEP_ID="0", SLURM_PROCID="1", SLURM_LOCALID="0", SLURM_NTASKS="2")


def plan(**train: object) -> Launch:
    return launch_params({"launcher": "pytorch", "nproc_per_node": 2, "nnodes": 1, **train})


def test_defaults_are_one_process() -> None:
    launch = launch_params({})
    assert launch == Launch("none", 1, 1, None, None) and launch.world_size == 1


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"launcher": "mpi"}, "params.yaml: train.launcher is 'mpi'; use one of none, pytorch, slurm"),
        ({"nproc_per_node": 0}, "params.yaml: train.nproc_per_node is 0; it must be a whole number >= 1"),
        ({"nnodes": 1.5}, "params.yaml: train.nnodes is 1.5; it must be a whole number >= 1"),
        ({"master_addr": ""}, "params.yaml: train.master_addr is ''; use a host name or address, or null"),
        ({"master_port": 70000}, "params.yaml: train.master_port is 70000; use a TCP port (1..65535) or null"),
    ],
)
def test_bad_launch_params_fail_in_one_line(train: dict[str, object], message: str) -> None:
    with pytest.raises(StageError) as error:
        launch_params(train)
    assert str(error.value) == message


def test_torchrun_ranks_and_the_launching_process() -> None:
    launch = plan()
    assert launch.world_size == 2
    assert current_rank(launch, {}) is None and is_main_process(launch, {})
    assert current_rank(launch, TORCHRUN_RANK) == Rank(1, 1, 2) and not is_main_process(launch, TORCHRUN_RANK)
    # Another launcher's variables do not make this process a rank.
    assert current_rank(launch_params({"launcher": "none"}), TORCHRUN_RANK) is None


def test_a_slurm_batch_script_launches_and_an_srun_task_is_a_rank() -> None:
    launch = plan(launcher="slurm")
    assert current_rank(launch, SLURM_BATCH) is None
    assert current_rank(launch, SLURM_TASK) == Rank(1, 0, 2)
    assert not is_main_process(launch, SLURM_TASK)


def test_one_node_torchrun_picks_its_own_port() -> None:
    command = launch_command(plan(), "stages.train", {})
    assert command == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc-per-node=2", "-m", "stages.train"
    ]  # fmt: skip


def test_multi_node_torchrun_takes_the_rendezvous_from_the_environment() -> None:
    command = launch_command(plan(nnodes=2), "stages.train", {"MASTER_ADDR": "node1", "NODE_RANK": "1"})
    assert command[3:-2] == [
        "--nnodes=2",
        "--nproc-per-node=2",
        "--node-rank=1",
        "--master-addr=node1",
        "--master-port=29500",
    ]
    # Params win over the environment.
    command = launch_command(
        plan(nnodes=2, master_addr="10.0.0.1", master_port=29600), "stages.train", {"MASTER_ADDR": "x"}
    )
    assert "--master-addr=10.0.0.1" in command and "--master-port=29600" in command and "--node-rank=0" in command


def test_multi_node_torchrun_without_an_address_fails_in_one_line() -> None:
    with pytest.raises(StageError, match=r"train.nnodes is > 1 but no rendezvous address: set MASTER_ADDR"):
        launch_command(plan(nnodes=2), "stages.train", {})


def test_slurm_starts_every_rank_with_srun_inside_a_job() -> None:
    command = launch_command(plan(launcher="slurm"), "stages.train", SLURM_BATCH)
    assert command == [
        "srun", "--nodes=1", "--ntasks=2", "--ntasks-per-node=2", "--kill-on-bad-exit=1", sys.executable, "-m", "stages.train"
    ]  # fmt: skip


def test_slurm_outside_a_job_or_with_too_few_tasks_fails_in_one_line() -> None:
    with pytest.raises(
        StageError, match=r"no Slurm job \(no SLURM_JOB_ID\); submit it, e.g. sbatch --nodes=2 --ntasks-per-node=2"
    ):
        launch_command(plan(launcher="slurm", nnodes=2), "stages.train", {})
    with pytest.raises(StageError, match=r"is 4 ranks but Slurm job 42 has 2 tasks; submit it with --ntasks=4"):
        launch_command(plan(launcher="slurm", nnodes=2), "stages.train", SLURM_BATCH)


def test_an_srun_rank_gets_torch_distributed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch_module, "first_node", lambda nodelist: {"node[1-2]": "node1"}[nodelist])
    launch = plan(launcher="slurm")
    environ = dict(SLURM_TASK)
    rendezvous(launch, Rank(1, 0, 2), environ)
    assert {key: environ[key] for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")} == {
        "RANK": "1",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "node1",
        "MASTER_PORT": "20042",  # from the job id: two jobs on one node do not collide
    }
    # A rendezvous the user set in the environment is kept.
    environ = dict(SLURM_TASK, MASTER_ADDR="head", MASTER_PORT="1234")
    rendezvous(launch, Rank(1, 0, 2), environ)
    assert (environ["MASTER_ADDR"], environ["MASTER_PORT"]) == ("head", "1234")
