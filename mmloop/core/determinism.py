"""Same bits on any x86 host: the settings that make float results depend on the CPU, pinned
before torch and numpy are imported (`train.deterministic`, `train.threads`).

Each of these changed the trained `models/model.pth` of the reduced sample on one AVX-512 host
(tests/pipeline/test_determinism.py, docs/reproducibility.md):

- ATen's kernel level (`ATEN_CPU_CAPABILITY`): `default` against `avx2`.
- oneDNN's instruction set (`ONEDNN_MAX_CPU_ISA`), which runs the convolutions: AVX-512 against AVX2.
- MKL's code path (`MKL_CBWR`, conditional numerical reproducibility), which runs the matmuls.
- The intra-op thread count: reductions are split into one partial sum per thread. numba's too,
  and its OpenMP layer resets OpenMP's count to the host's cores when it first runs a parallel loop.

numpy >= 1.22 dispatches float64 sin/cos/exp to AVX-512 (SVML) code whose last bits differ from its
AVX2 code, so numpy is capped the same way (`NPY_DISABLE_CPU_FEATURES`). Everything is pinned at
the AVX2 level, which every x86 CPU from 2013 (Haswell) and every AMD Zen runs. The thread count is
a param, not the host's core count: a 1-core laptop runs the same 2 threads, slower, and gets the
same bits as a 64-core node (data loader workers run one thread each, as PyTorch sets them).

On a GPU the same setting turns on CUDA's deterministic kernels (mmengine's
`randomness.deterministic`, which sets cuDNN's flags and `torch.use_deterministic_algorithms`, and
cuBLAS's fixed workspace): same GPU model and software, same bits; other GPU models pick other
kernels, so results agree only within a tolerance (docs/reproducibility.md).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

from mmloop.core.stage import StageError, check_number

#: The instruction-set level every stage runs at, in each library's own spelling.
ISA = "AVX2"
#: What numpy 1.23 dispatches above AVX2. numpy warns about (and skips) those the CPU lacks.
NUMPY_ABOVE_AVX2 = (
    "AVX512F",
    "AVX512CD",
    "AVX512_KNL",
    "AVX512_KNM",
    "AVX512_SKX",
    "AVX512_CLX",
    "AVX512_CNL",
    "AVX512_ICL",
)
#: /proc/cpuinfo flags the pinned level needs: without them each library falls back to SSE code.
ISA_FLAGS = ("avx2", "fma")


def host_environment(threads: int) -> dict[str, str]:
    """The environment variables that pin kernels and threads (read once, when each library loads)."""
    return {
        "ATEN_CPU_CAPABILITY": ISA.lower(),
        "ONEDNN_MAX_CPU_ISA": ISA,
        "MKL_CBWR": ISA,
        "NPY_DISABLE_CPU_FEATURES": " ".join(NUMPY_ABOVE_AVX2),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        # numba (mmdet3d's KITTI metric) splits its parallel loops per thread too, and its OpenMP
        # layer sets OpenMP's thread count to its own, one per core: on a 1-core host torch then
        # trained on 1 thread after the first validation. Its own pool leaves OpenMP alone.
        "NUMBA_NUM_THREADS": str(threads),
        "NUMBA_THREADING_LAYER": "workqueue",
        # cuBLAS's deterministic mode needs a fixed workspace (PyTorch's reproducibility notes).
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    }


def missing_isa_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The pinned level's CPU flags this host lacks ([] where /proc/cpuinfo is not there to ask)."""
    if not cpuinfo.is_file():
        return []
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [flag for flag in ISA_FLAGS if flag not in flags]
    return []


def host_params(train: dict[str, Any]) -> tuple[bool, int]:
    """(`train.deterministic`, `train.threads`), checked."""
    deterministic = train.get("deterministic", True)
    if not isinstance(deterministic, bool):
        raise StageError(f"params.yaml: train.deterministic is {deterministic!r}; use true or false")
    threads = train.get("threads", 2)
    check_number("train", "threads", threads, 1, whole=True)
    return deterministic, int(threads)


def pin_host(train: dict[str, Any]) -> str:
    """Apply `train.deterministic` and `train.threads` to this process; returns the line to print.

    Must run before torch or numpy is imported: they read these settings once, when they load
    (it imports torch itself, to set the thread count past torch's cap at the host's cores).
    """
    deterministic, threads = host_params(train)
    if not deterministic:
        return "host settings not pinned (train.deterministic: false): results depend on this CPU"
    loaded = [name for name in ("torch", "numpy") if name in sys.modules]
    if loaded:
        # A programming error, not a user's: some import at the top of a stage module loads them.
        raise RuntimeError(f"pin_host runs after {' and '.join(loaded)} loaded; import them lazily in stage modules")
    os.environ.update(host_environment(threads))
    warnings.filterwarnings("ignore", message="During parsing environment variable 'NPY_DISABLE_CPU_FEATURES'")
    import torch

    # torch caps OMP_NUM_THREADS at the host's core count when it loads; asked, it runs that many.
    torch.set_num_threads(threads)
    note = f"deterministic: {ISA} kernels, {threads} threads (train.deterministic, train.threads)"
    missing = missing_isa_flags()
    if missing:
        note += f"; this CPU lacks {', '.join(missing)}, so its results will differ from {ISA} hosts"
    return note


def cpu_threads(train: dict[str, Any]) -> int:
    """Intra-op threads for a library that takes a count, not the environment (ONNX Runtime):
    `train.threads` when deterministic, else 0 (its own default, one per core)."""
    deterministic, threads = host_params(train)
    return threads if deterministic else 0
