"""Another machine, played on this one: the `train` stage on a reduced sample under two host
settings (visible cores, thread count, ATen's and oneDNN's kernel level, MKL's code path) gives
the same `models/model.pth`, bit for bit, with `train.deterministic: true`, and different ones
with it off.

The settings are the caller's: set MMLOOP_TEST_HOSTS to a JSON list of two or more
{"cpus": "<taskset list or null>", "env": {...}} to play other machines."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mmloop.core.paths import load_paths
from tests.helpers import REPO, run_stage, set_params, write_params

pytestmark = pytest.mark.slow

PATHS = load_paths(REPO / "params.yaml")
FRAMES, SEED = 24, 3  # 18 train frames: 5 iterations per epoch at batch size 4
EPOCHS = 2


@dataclass(frozen=True)
class Host:
    cpus: str | None  # `taskset -c` list; None: every core
    env: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        settings = " ".join(f"{key}={value}" for key, value in self.env.items())
        return f"cpus {self.cpus or 'all'} {settings}"


def default_hosts() -> list[Host]:
    """A 1-core machine with pre-AVX2 kernels, and this machine as it is (AVX-512 where it has it)."""
    two_cores = len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset")
    old = {"OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}
    return [Host("0" if two_cores else None, old), Host(None, {"OMP_NUM_THREADS": "2"})]


def hosts() -> list[Host]:
    chosen = os.environ.get("MMLOOP_TEST_HOSTS")
    if not chosen:
        return default_hosts()
    return [Host(item.get("cpus"), item.get("env", {})) for item in json.loads(chosen)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reduced sample prepared, params for a short training from scratch."""
    from sample_data import generate_dataset

    workdir = tmp_path_factory.mktemp("determinism")
    generate_dataset(workdir / "kitti", frames=FRAMES, seed=SEED)
    write_params(workdir, workdir / "kitti")
    (workdir / "configs").symlink_to(REPO / "configs")
    # Validation after each epoch, training after it: numba's first parallel loop (in the metric)
    # once changed torch's thread count for the epochs that followed.
    set_params(workdir, model__load_from=None, train__epochs=EPOCHS, train__val_interval=1)
    prepare = run_stage("prepare", workdir)
    assert prepare.returncode == 0, prepare.stderr[-3000:]
    return workdir


def train_md5(workdir: Path, host: Host, deterministic: bool) -> str:
    """md5 of the model `python -m stages.train` writes under `host`'s settings (the runner's own
    thread counts left out: each host says its own)."""
    set_params(workdir, train__deterministic=deterministic)
    shutil.rmtree(workdir / PATHS.train_work, ignore_errors=True)
    (workdir / PATHS.model).unlink(missing_ok=True)
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    prefix = ("taskset", "-c", host.cpus) if host.cpus is not None else ()
    result = run_stage("train", workdir, timeout=900, env={**env, **host.env}, prefix=prefix)
    assert result.returncode == 0, f"{host}:\n{result.stderr[-3000:]}"
    pinned = "mmloop train: deterministic: AVX2 kernels, 2 threads" in result.stdout
    assert pinned == deterministic, result.stdout[:2000]
    return hashlib.md5((workdir / PATHS.model).read_bytes()).hexdigest()


def test_deterministic_training_gives_the_same_model_under_other_host_settings(workdir: Path) -> None:
    md5s = {str(host): train_md5(workdir, host, deterministic=True) for host in hosts()}
    print(f"train.deterministic: true: {md5s}")
    assert len(set(md5s.values())) == 1, md5s
    # The finished run's work dir is gone: dvc.lock's work/train entry is an empty folder everywhere.
    assert list((workdir / PATHS.train_work).iterdir()) == []


def test_unpinned_training_differs_between_the_same_host_settings(workdir: Path) -> None:
    """What the setting is for: without it, each host setting trains another model."""
    md5s = {str(host): train_md5(workdir, host, deterministic=False) for host in hosts()}
    print(f"train.deterministic: false: {md5s}")
    assert len(set(md5s.values())) == len(md5s), md5s
