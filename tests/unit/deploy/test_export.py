"""The export's one compatibility shim (mmloop.deploy.export): mmdeploy's `torch.onnx.export` call gets
the TorchScript exporter on torch >= 2.9, an explicit choice is kept, and the original is restored."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_shim_makes_torchscript_the_default_and_restores_export(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.onnx

    from mmloop.deploy.export import torchscript_onnx_exporter

    calls: list[bool] = []

    def fake_export(model: object, args: object, f: object, *, dynamo: bool = True) -> None:
        calls.append(dynamo)

    monkeypatch.setattr(torch.onnx, "export", fake_export)
    with torchscript_onnx_exporter():
        torch.onnx.export(None, (), "x.onnx")  # how mmdeploy calls it
        torch.onnx.export(None, (), "x.onnx", dynamo=True)  # an explicit choice is kept
    torch.onnx.export(None, (), "x.onnx")
    assert calls == [False, True, True]
    assert torch.onnx.export is fake_export


def test_shim_exports_a_real_module_through_torchscript(tmp_path: Path) -> None:
    import onnx
    import torch

    from mmloop.deploy.export import torchscript_onnx_exporter

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    with torchscript_onnx_exporter():
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 8, 8),),
            str(tmp_path / "m.onnx"),
            opset_version=13,
            input_names=["x"],
            dynamic_axes={"x": {0: "batch"}},
        )
    graph = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(graph, full_check=True)
    assert [node.op_type for node in graph.graph.node] == ["Conv", "Relu"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
