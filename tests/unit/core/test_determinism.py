"""The host settings every stage pins before torch loads (mmloop.core.determinism), and the ONNX
Runtime thread count the deploy stages give mmdeploy's session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmloop.core.determinism import cpu_threads, host_environment, missing_isa_flags, pin_host
from mmloop.core.stage import StageError
from tests.helpers import REPO

#: A process that pins like a stage does, runs `{before}`, then reports what torch and numpy run with.
PROBE = """
import json, sys
from mmloop.core.determinism import pin_host
note = pin_host(json.loads(sys.argv[1]))
import numpy, torch
from numpy.core._multiarray_umath import __cpu_features__
torch.get_num_threads()  # torch starts its threads, as training does before any validation
{before}
print(json.dumps({{
    "note": note,
    "capability": torch.backends.cpu.get_cpu_capability(),
    "threads": torch.get_num_threads(),
    "numpy_avx512f": __cpu_features__["AVX512F"],
}}))
"""
#: numba's first parallel loop, as mmdet3d's KITTI metric runs one at the first validation.
NUMBA_LOOP = """
import numba
@numba.njit(parallel=True)
def total(x):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += x[i]
    return s
total(numpy.ones(1000))
"""


def probe(train: dict, env: dict[str, str] | None = None, cpus: str | None = None, before: str = "") -> dict:
    command = [sys.executable, "-W", "error::RuntimeWarning", "-c", PROBE.format(before=before), json.dumps(train)]
    result = subprocess.run(
        ["taskset", "-c", cpus, *command] if cpus else command,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        check=True,
    )
    return json.loads(result.stdout)


def test_pinned_process_runs_avx2_kernels_and_the_param_thread_count() -> None:
    # What the caller's environment says is overridden: the param decides, not the host.
    seen = probe({"deterministic": True, "threads": 3}, {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"})
    assert seen["capability"] == "AVX2" and seen["threads"] == 3
    assert seen["numpy_avx512f"] is False  # and numpy's warning about absent features is silenced
    assert seen["note"].startswith("deterministic: AVX2 kernels, 3 threads")


def test_unpinned_process_keeps_the_environment() -> None:
    seen = probe({"deterministic": False, "threads": 3}, {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"})
    assert seen["capability"] == "DEFAULT" and seen["threads"] == 1
    assert "not pinned" in seen["note"]


def test_pinning_after_torch_loaded_is_refused() -> None:
    code = "import torch\nfrom mmloop.core.determinism import pin_host\npin_host({'deterministic': True})"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert result.returncode == 1 and "pin_host runs after torch and numpy loaded" in result.stderr


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"deterministic": "yes"}, "params.yaml: train.deterministic is 'yes'; use true or false"),
        ({"deterministic": True, "threads": 0}, "train.threads"),
        ({"deterministic": True, "threads": 1.5}, "train.threads"),
    ],
)
def test_bad_params_fail_in_one_line(train: dict, message: str) -> None:
    with pytest.raises(StageError, match=message.replace("(", r"\(")):
        pin_host(train)


def test_environment_pins_every_library_at_one_level() -> None:
    env = host_environment(4)
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["ONEDNN_MAX_CPU_ISA"] == env["MKL_CBWR"] == "AVX2"
    assert "AVX512F" in env["NPY_DISABLE_CPU_FEATURES"].split()
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["NUMBA_NUM_THREADS"] == "4"


def test_numba_leaves_torch_threads_alone_on_a_one_core_host() -> None:
    """numba's OpenMP layer set OpenMP's thread count to the host's cores (here: taskset to one)
    on its first parallel loop, and torch's with it, mid-training (after the first validation)."""
    if not shutil.which("taskset") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs taskset and two cores to play a one-core host")
    assert probe({"deterministic": True, "threads": 2}, cpus="0", before=NUMBA_LOOP)["threads"] == 2


def test_missing_isa_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx fma\n")
    assert missing_isa_flags(cpuinfo) == ["avx2"]
    cpuinfo.write_text("flags\t\t: fpu sse2 avx avx2 fma\n")
    assert missing_isa_flags(cpuinfo) == []
    assert missing_isa_flags(tmp_path / "absent") == []


def test_cpu_threads() -> None:
    assert cpu_threads({"deterministic": True, "threads": 2}) == 2
    assert cpu_threads({"deterministic": False, "threads": 2}) == 0  # ONNX Runtime's own default


def test_onnxruntime_sessions_get_the_thread_count() -> None:
    import onnxruntime as ort

    from mmloop.deploy.backends.onnxruntime import session_threads

    with session_threads(3):
        assert ort.SessionOptions().intra_op_num_threads == 3  # what mmdeploy's ORTWrapper makes
    assert ort.SessionOptions().intra_op_num_threads == 0
    with session_threads(0):
        assert ort.SessionOptions().intra_op_num_threads == 0
