"""Device and process settings every stage that runs mmdet3d needs, made before mmdet3d is imported."""

from __future__ import annotations

import os

from mmloop.core.checkpoint import allow_checkpoint_types
from mmloop.core.stage import StageError

DEVICES = ("auto", "cpu", "cuda")


def select_device(device: str) -> str:
    """'cpu' or 'cuda' for the `device` param ('auto': cuda when torch sees a GPU)."""
    if device not in DEVICES:
        raise StageError(f"params.yaml: device is {device!r}; use one of {', '.join(DEVICES)}")
    if device == "cpu":
        # mmengine puts the model on the GPU whenever torch sees one; hide it (before CUDA starts).
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise StageError(
            "params.yaml: device is 'cuda' but torch sees no GPU (CPU build of torch or "
            "no driver); use device: auto or cpu, or install a CUDA build (README, GPU hosts)"
        )
    if not has_cuda:
        # mmdet3d's KITTI metric compiles a numba CUDA kernel (rotate_iou) on import, which fails
        # without a GPU; numba's CUDA simulator runs the same kernel on the CPU.
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    # Checkpoints (load_from, resume, the trained model) are loaded weights-only, with the few
    # mmengine/numpy types they hold allowed: loading one never runs code (mmloop/core/checkpoint.py).
    allow_checkpoint_types()
    return "cuda" if has_cuda else "cpu"
