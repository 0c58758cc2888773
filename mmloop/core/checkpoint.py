"""Checkpoints are loaded without running code: torch's weights-only unpickler, with an allow-list.

A `.pth` is a pickle, and a pickle can call anything (`__reduce__`): a checkpoint from a teammate's
remote or a download could run code the moment it is loaded. torch >= 2.6 loads weights-only by
default, which refuses the few non-tensor objects mmengine writes into its checkpoints (the
message hub's `HistoryBuffer`s, numpy arrays and scalars); switching the safety off for the whole
process (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, what this repo did before) let any payload run.

mmengine's CheckpointLoader (load_from, resume) and mmdeploy (through mmengine's load_checkpoint)
call `torch.load(path, map_location=...)` themselves. Rather than patch each caller, the ONE place
is here: `allow_checkpoint_types()` adds exactly those types to torch's process-wide allow-list
and forces weights-only loads (TORCH_FORCE_WEIGHTS_ONLY_LOAD, which overrides even an explicit
`weights_only=False` further down); every stage that loads a checkpoint calls it first, through
`mmloop.core.device.select_device`. `read_checkpoint` then checks a checkpoint before any long
work, in one line naming the file and the param.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

from mmloop.core.stage import StageError

_installed = False


def _history_buffer_method(owner: Any, name: str) -> Any:
    """`getattr` as mmengine's HistoryBuffer pickles its statistics methods (`getattr(HistoryBuffer,
    'mean')`), and nothing else: a free `builtins.getattr` would let a pickle walk from any allowed
    class to `__globals__` and `exec`."""
    import inspect

    from mmengine.logging.history_buffer import HistoryBuffer

    method = HistoryBuffer.__dict__.get(name) if owner is HistoryBuffer and not name.startswith("_") else None
    if inspect.isfunction(method) or name in HistoryBuffer._statistics_methods:  # min, max, mean, current
        return getattr(HistoryBuffer, name)
    raise ValueError(f"getattr({owner!r}, {name!r}) is not a HistoryBuffer statistics method")


def checkpoint_types() -> list[Any]:
    """What mmengine/mmdet3d checkpoints hold besides tensors and plain data: the message hub's
    HistoryBuffers (and their statistics methods), numpy arrays, dtypes and scalars (the ETA,
    logged values)."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = np.core.multiarray
    types: list[Any] = [
        HistoryBuffer,
        (_history_buffer_method, "builtins.getattr"),
        multiarray._reconstruct,
        multiarray.scalar,
        np.ndarray,
        np.dtype,
    ]
    # numpy >= 1.25 pickles each dtype as its own class (numpy.dtypes.Float64DType, ...).
    types += sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"} - {np.dtype}, key=str)
    return types


def allow_checkpoint_types() -> None:
    """Weights-only loads for this process (and the processes it starts), with mmengine's types allowed."""
    global _installed
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)  # never honour the switch that turns safety off
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    if _installed:
        return
    import torch

    torch.serialization.add_safe_globals(checkpoint_types())
    _installed = True


def _first_line(error: BaseException) -> str:
    """The error's first sentence, with its type: torch's messages run to a paragraph."""
    line = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {line.split('. ')[0].rstrip('.')}" if line else type(error).__name__


def read_checkpoint(path: str | Path, param: str) -> dict[str, Any]:
    """A checkpoint loaded weights-only, or one line: `<file> (<param>): what is wrong; the fix`."""
    import pickle

    allow_checkpoint_types()
    import torch

    path = Path(path)
    where = f"{path} ({param})"
    if not path.is_file():
        raise StageError(f"{where}: not found; run `dvc pull` (or `dvc repro`) or fix {param} in params.yaml")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch's readers fail in many ways on a damaged file (zip, EOF, KeyError)
        unsupported = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", str(error))
        if not zipfile.is_zipfile(path):  # torch.save writes a zip; a cut-short one has no directory
            raise StageError(
                f"{where}: not a readable checkpoint (not the zip archive torch.save writes); truncated, or not a "
                ".pth (an error page saved by a download?): fetch it again (`dvc pull`, `dvc checkout`)"
            ) from None
        if isinstance(error, pickle.UnpicklingError) and (unsupported or "Weights only load failed" in str(error)):
            what = f"calls {unsupported.group(1)}" if unsupported else "needs a type outside the allow-list"
            raise StageError(
                f"{where}: refused, its pickle {what}, which a weights-only load never runs (a checkpoint "
                "holds tensors, numbers and strings); use a checkpoint you trust, re-saved as weights only"
            ) from None
        raise StageError(
            f"{where}: not a readable checkpoint ({_first_line(error)}); the file is damaged: fetch it again "
            "(`dvc pull`, or `dvc checkout` for a tracked file)"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict", checkpoint), dict):
        raise StageError(f"{where}: holds a {type(checkpoint).__name__}, not a state dict; pass an mmengine checkpoint")
    return checkpoint


def check_load_from(load_from: str | None) -> None:
    """`model.load_from` names a file (null trains from scratch)."""
    if load_from and not Path(load_from).is_file():
        raise StageError(
            f"params.yaml: model.load_from '{load_from}' not found; run `dvc pull checkpoints.dvc` "
            f"or set model.load_from: null to train from scratch"
        )


def checkpoint_classes(checkpoint: dict[str, Any]) -> list[str] | None:
    """The classes a checkpoint was trained for, where its meta records them (mmengine's dataset_meta)."""
    classes = (checkpoint.get("meta") or {}).get("dataset_meta", {}).get("classes")
    return list(classes) if isinstance(classes, (list, tuple)) else None


def check_warm_start(
    checkpoint: dict[str, Any], path: str | Path, param: str, model_state: dict[str, Any], classes: list[str]
) -> None:
    """A `load_from` checkpoint fits the model it warm-starts: trained for `classes` (where it says),
    and holding every weight of `model_state` in its shape. mmengine would only warn and train
    from partly random weights."""
    where = f"{path} ({param})"
    trained_for = checkpoint_classes(checkpoint)
    if trained_for is not None and trained_for != list(classes):
        raise StageError(
            f"{where}: trained for classes {trained_for}, model.classes is {list(classes)}; set model.classes "
            "to the checkpoint's, or model.load_from: null to train from scratch"
        )
    # mmengine's load_checkpoint strips a DDP 'module.' prefix (revise_keys) before matching.
    state = {re.sub(r"^module\.", "", key): value for key, value in checkpoint.get("state_dict", checkpoint).items()}
    missing = [key for key in model_state if key not in state]
    if missing:
        raise StageError(
            f"{where}: has no weight '{missing[0]}' (+{len(missing) - 1} more of {len(model_state)}) of "
            "model.config's model; is it a checkpoint of this model? fix model.load_from or set it to null"
        )
    for key, value in model_state.items():
        if tuple(getattr(state[key], "shape", ())) != tuple(value.shape):
            raise StageError(
                f"{where}: '{key}' is {tuple(state[key].shape)}, the model needs {tuple(value.shape)}; "
                "it was trained with another model.config, grid or classes: fix model.load_from or set it to null"
            )
