"""Deploy backends, one module each (onnxruntime, tensorrt), found by `backends()`.

A backend module defines a `Backend` subclass and names its instance `BACKEND`. A new backend is
one module here plus its deploy config (configs/deploy/voxel-detection_<name>.py); the deploy
stage calls every backend the same way and never asks which one it has. Modules keep their heavy
imports (torch, mmdeploy, TensorRT) inside functions: listing the backends stays cheap.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmloop.core.stage import StageError

if TYPE_CHECKING:  # numpy loads after the stage pins its kernels (mmloop.core.determinism)
    import numpy as np

FrameArrays = dict[str, "np.ndarray"]


@dataclass
class BuildJob:
    """What building one target's backend file needs: the target, the exported graph, the folder to
    build in, the deploy params and the engine profile; calibration frames (voxelized train frames)
    are made only when a backend calls `calibration()`."""

    target: Target
    onnx_file: Path
    out: Path
    params: dict[str, Any]
    profiles: dict[str, Any]
    calibration: Callable[[], Iterable[FrameArrays]]
    threads: int = 0  # intra-op threads of a CPU backend's calibration runs (0: its own default)


class Backend:
    """The default is a backend that runs the ONNX file itself on the CPU through mmdeploy."""

    name: str = ""
    precisions: tuple[str, ...] = ()
    backend_file: str = "end2end.onnx"
    device: str = "cpu"  # where the backend runs and the PyTorch reference is compared: cpu | cuda

    def check_host(self, target_name: str) -> None:
        """Fail in one line, before any long work, if this host cannot build or run the target."""

    def configure_device(self) -> None:
        """Process-wide settings the backend's comparison needs, once torch has picked the device."""

    def deploy_config(self, deploy_cfg: Any, precision: str, params: dict[str, Any], profiles: dict[str, Any]) -> Any:
        """The deploy config written beside the model, as the backend was built with it."""
        return deploy_cfg

    def build(self, job: BuildJob) -> dict[str, Any]:
        """Write the backend file (and what else it needs) into job.out; returns report entries."""
        raise NotImplementedError

    def backend_model(self, folder: Path, model_cfg: Any, deploy_cfg: Any, device: str, threads: int = 0) -> Any:
        """mmdeploy's backend model for the built file (voxelization and decoding in PyTorch).
        `threads`: intra-op threads of a CPU backend (0: its own default)."""
        from mmdeploy.apis.utils import build_task_processor

        processor = build_task_processor(model_cfg, deploy_cfg, device)
        return processor.build_backend_model([str(folder / self.backend_file)])


@functools.cache
def backends() -> dict[str, Backend]:
    """Every backend module's BACKEND, by name."""
    found: dict[str, Backend] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        backend = importlib.import_module(f"{__name__}.{module.name}").BACKEND
        found[backend.name] = backend
    return found


@dataclass(frozen=True)
class Target:
    """A `deploy.targets` entry, `<backend>-<precision>`: deployed to deploy/<name>/."""

    backend: Backend
    precision: str  # fp32 | fp16 | int8

    @property
    def name(self) -> str:
        return f"{self.backend.name}-{self.precision}"


def known_targets() -> list[str]:
    return [f"{name}-{precision}" for name, backend in backends().items() for precision in backend.precisions]


def parse_target(name: str) -> Target:
    backend_name, _, precision = name.partition("-")
    backend = backends().get(backend_name)
    if backend is None or precision not in backend.precisions:
        raise StageError(f"params.yaml: deploy.targets has '{name}'; use some of {', '.join(known_targets())}")
    return Target(backend, precision)
