"""Checkpoints load weights-only with mmengine's types allowed (mmloop.core.checkpoint): an mmengine
resume checkpoint's message hub loads, a pickle that would run code is refused in one line without
running, and a warm start that does not fit the model says which weight or class is wrong."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mmloop.core.checkpoint import allow_checkpoint_types, check_warm_start, read_checkpoint
from mmloop.core.stage import StageError


def test_no_process_wide_switch_turns_the_safety_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    allow_checkpoint_types()
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ
    assert os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] == "1"


def test_an_mmengine_resume_checkpoint_loads(tmp_path: Path) -> None:
    """What mmengine's CheckpointHook writes besides tensors: the message hub's HistoryBuffers (their
    statistics methods pickled as getattr(HistoryBuffer, name)), numpy scalars and arrays."""
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import _load_checkpoint

    hub = MessageHub.get_instance("mmloop-test-checkpoint")
    for loss in (0.9, 0.7, 0.5):
        hub.update_scalar("train/loss", loss)
    hub.update_info("eta", np.float64(12.5))
    hub.update_info("history", np.arange(4, dtype=np.float32))
    path = tmp_path / "epoch_1.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": {"w": torch.ones(2)}, "message_hub": hub.state_dict()}, path)
    loaded = read_checkpoint(path, "resume")
    assert loaded["message_hub"]["log_scalars"]["train/loss"].mean() == pytest.approx(0.7)
    assert loaded["message_hub"]["runtime_info"]["eta"] == 12.5
    # mmengine's own loader (load_from, resume) goes through the same weights-only path.
    assert _load_checkpoint(str(path), map_location="cpu")["meta"]["epoch"] == 1


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


class WalksToGlobals:
    """getattr is allowed for HistoryBuffer's statistics methods only: not as a path to exec."""

    def __reduce__(self) -> tuple:
        from mmengine.logging.history_buffer import HistoryBuffer

        return (getattr, (HistoryBuffer.mean, "__globals__"))


def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "written-by-the-pickle"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": RunsCode(marker)}, path)
    with pytest.raises(StageError) as error:
        read_checkpoint(path, "model.load_from")
    assert str(error.value).startswith(f"{path} (model.load_from): refused, its pickle calls posix.system")
    assert "\n" not in str(error.value)
    with pytest.raises(pickle.UnpicklingError):  # mmengine's loader, as the Runner calls it
        from mmengine.runner.checkpoint import _load_checkpoint

        _load_checkpoint(str(path), map_location="cpu")
    with pytest.raises(pickle.UnpicklingError):  # even asked for explicitly: TORCH_FORCE_WEIGHTS_ONLY_LOAD wins
        torch.load(path, weights_only=False)
    assert not marker.exists()

    torch.save({"state_dict": {}, "meta": WalksToGlobals()}, path)
    with pytest.raises(StageError, match=r"not a readable checkpoint \(ValueError: getattr\("):
        read_checkpoint(path, "model.load_from")


def test_damaged_and_missing_files(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"w": torch.ones(3)}}, good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(StageError, match=r"cut.pth \(model.load_from\): not a readable checkpoint \(not the zip"):
        read_checkpoint(cut, "model.load_from")
    with pytest.raises(StageError, match=r"nope.pth \(model.load_from\): not found; run `dvc pull`"):
        read_checkpoint(tmp_path / "nope.pth", "model.load_from")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(StageError, match=r"holds a list, not a state dict"):
        read_checkpoint(tmp_path / "list.pth", "model.load_from")


def test_warm_start_must_fit_the_model() -> None:
    model = {"head.weight": torch.zeros(18, 4), "backbone.weight": torch.zeros(4)}
    fits = {"meta": {"dataset_meta": {"classes": ["Car"]}}, "state_dict": {f"module.{k}": v for k, v in model.items()}}
    check_warm_start(fits, "c.pth", "model.load_from", model, ["Car"])  # a DDP prefix is stripped, as mmengine does
    with pytest.raises(StageError, match=r"trained for classes \['Car'\], model.classes is \['Pedestrian'\]"):
        check_warm_start(fits, "c.pth", "model.load_from", model, ["Pedestrian"])
    with pytest.raises(StageError, match=r"has no weight 'backbone.weight' \(\+0 more of 2\)"):
        check_warm_start({"state_dict": {"head.weight": model["head.weight"]}}, "c.pth", "model.load_from", model, [])
    with pytest.raises(StageError, match=r"'head.weight' is \(6, 4\), the model needs \(18, 4\)"):
        check_warm_start({"state_dict": {**model, "head.weight": torch.zeros(6, 4)}}, "c.pth", "p", model, [])
