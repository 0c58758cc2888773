"""TensorRT readiness of ONNX graphs on a host without TensorRT (mmloop.deploy.tensorrt.readiness):
unsupported ops and dtypes, opsets, dynamic dims the profiles do not cover, and the profile checks
with their one-line errors."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mmloop.core.stage import StageError
from mmloop.deploy.tensorrt.readiness import check_profiles, input_profiles, trt_readiness

PROFILES = input_profiles({"min": 2, "opt": 8, "max": 16}, 32, 4)


# --- small ONNX graphs shaped like the export: voxels [N, 32, 4], num_points [N], coors [N, 4] ---


def voxel_graph(
    extra_nodes: list[onnx.NodeProto] = (),
    extra_inits: list[onnx.TensorProto] = (),
    opset: int = 11,
    domains: dict[str, int] | None = None,
) -> onnx.ModelProto:
    inputs = [
        helper.make_tensor_value_info("voxels", TensorProto.FLOAT, ["voxels_num", 32, 4]),
        helper.make_tensor_value_info("num_points", TensorProto.INT32, ["voxels_num"]),
        helper.make_tensor_value_info("coors", TensorProto.INT32, ["voxels_num", 4]),
    ]
    nodes = [
        helper.make_node("ReduceMax", ["voxels"], ["pillar"], axes=[1], keepdims=0),
        helper.make_node("Cast", ["coors"], ["coors_f"], to=TensorProto.FLOAT),
        helper.make_node("Concat", ["pillar", "coors_f"], ["features"], axis=1),
        helper.make_node("Identity", ["num_points"], ["count"]),
        *extra_nodes,
    ]
    outputs = [
        helper.make_tensor_value_info("features", TensorProto.FLOAT, ["voxels_num", 8]),
        helper.make_tensor_value_info("count", TensorProto.INT32, ["voxels_num"]),
    ]
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in (domains or {}).items()]
    graph = helper.make_graph(nodes, "voxel_graph", inputs, outputs, initializer=list(extra_inits))
    return helper.make_model(graph, opset_imports=imports)


def test_a_voxel_graph_with_profiles_is_ready() -> None:
    report = trt_readiness(voxel_graph(), PROFILES)
    assert report["ready"] and report["opset"] == 11 and report["opset_supported"]
    assert report["nodes"] == 4 and report["onnx_checker"] is None
    assert report["unsupported_ops"] == {} and report["unsupported_dtypes"] == [] and report["uncovered"] == []
    assert {"input": "coors", "axis": 0, "dim": "voxels_num", "min": 2, "opt": 8, "max": 16} in report["dynamic_dims"]
    assert [d["input"] for d in report["dynamic_dims"]] == ["voxels", "num_points", "coors"]
    json.dumps(report)  # goes into metrics/export.json as is


def test_custom_ops_and_unsupported_dtypes_are_reported() -> None:
    nodes = [
        helper.make_node("TRTBatchedNMS", ["features"], ["boxes"], domain="mmdeploy"),
        helper.make_node("Cast", ["pillar"], ["pillar_i16"], to=TensorProto.INT16),
        helper.make_node("NonExistentOp", ["pillar"], ["nothing"]),
    ]
    scale = numpy_helper.from_array(np.ones(4, dtype=np.float64), "scale64")
    report = trt_readiness(voxel_graph(nodes, [scale], domains={"mmdeploy": 1}), PROFILES)
    assert not report["ready"]
    assert report["unsupported_ops"] == {"NonExistentOp": 1, "mmdeploy::TRTBatchedNMS": 1}
    assert {"tensor": "pillar_i16", "kind": "value_info", "dtype": "INT16"} in report["unsupported_dtypes"]
    assert report["limited_dtypes"] == [{"tensor": "scale64", "kind": "initializer", "dtype": "DOUBLE"}]


def test_op_type_mismatch_and_nonzero_zero_point_are_reported() -> None:
    zero = numpy_helper.from_array(np.array(3, dtype=np.int8), "zero")
    scale = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s")
    nodes = [
        helper.make_node("Cast", ["count"], ["flag"], to=TensorProto.BOOL),
        helper.make_node("Equal", ["flag", "flag"], ["same"], name="bool_equal"),
        helper.make_node("QuantizeLinear", ["features", "s", "zero"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "zero"], ["dq"], name="dq"),
    ]
    report = trt_readiness(voxel_graph(nodes, [zero, scale]), PROFILES)
    assert not report["ready"] and report["unsupported_ops"] == {}
    assert report["op_dtype_mismatches"] == [{"node": "bool_equal", "op": "Equal", "tensor": "flag", "dtype": "BOOL"}]
    assert [v["node"] for v in report["restriction_violations"]] == ["q", "dq"]


def test_a_graph_that_contradicts_its_types_is_not_ready() -> None:
    """What onnxconverter_common leaves behind: a Cast to float32 whose output says float16."""
    model = voxel_graph()
    model.graph.value_info.append(helper.make_tensor_value_info("coors_f", TensorProto.FLOAT16, ["voxels_num", 4]))
    report = trt_readiness(model, PROFILES)
    assert not report["ready"] and report["onnx_checker"].startswith("[ShapeInferenceError]")
    assert "float16" in report["onnx_checker"] and "\n" not in report["onnx_checker"]


def test_an_opset_below_the_parsers_range_is_not_ready() -> None:
    report = trt_readiness(voxel_graph(opset=8), PROFILES)
    assert report["opset"] == 8 and not report["opset_supported"] and not report["ready"]


@pytest.mark.parametrize(
    "profiles, problem",
    [
        (
            {k: v for k, v in PROFILES.items() if k != "coors"},
            "coors axis 0 (voxels_num) is dynamic but has no profile",
        ),
        (input_profiles({"min": 2, "opt": 8, "max": 16}, 20, 4), "voxels axis 1 is 32 in the graph but (20, 20, 20)"),
        ({**PROFILES, "coors": ((2, 4), (9, 4), (16, 4))}, "coors axis 0 (voxels_num) has min/opt/max (2, 9, 16)"),
        ({**PROFILES, "num_points": ((2, 1), (8, 1), (16, 1))}, "num_points: profile rank [2, 2, 2]"),
        ({**PROFILES, "points": ((1,), (1,), (1,))}, "points: profile given for an input the graph does not have"),
        (input_profiles({"min": 0, "opt": 8, "max": 4}, 32, 4), "voxels axis 0: min/opt/max (0, 8, 4) is not"),
    ],
)
def test_profiles_that_do_not_cover_the_graph_are_uncovered(profiles: dict[str, Any], problem: str) -> None:
    report = trt_readiness(voxel_graph(), profiles)
    assert not report["ready"]
    assert any(line.startswith(problem) for line in report["uncovered"]), report["uncovered"]


def test_a_dynamic_dim_without_profile_lists_no_range() -> None:
    report = trt_readiness(voxel_graph(), {"voxels": PROFILES["voxels"], "num_points": PROFILES["num_points"]})
    coors = [d for d in report["dynamic_dims"] if d["input"] == "coors"]
    assert coors == [{"input": "coors", "axis": 0, "dim": "voxels_num", "min": None, "opt": None, "max": None}]


def test_input_profiles_give_the_three_voxel_inputs() -> None:
    profiles = input_profiles({"min": 1000, "opt": 12000, "max": 20000}, 32, 4)
    assert profiles == {
        "voxels": ((1000, 32, 4), (12000, 32, 4), (20000, 32, 4)),
        "num_points": ((1000,), (12000,), (20000,)),
        "coors": ((1000, 4), (12000, 4), (20000, 4)),
    }


@pytest.mark.parametrize(
    "voxels", [{"min": 1, "opt": 2}, {"min": 1, "opt": 2, "max": "3"}, {"min": True, "opt": 2, "max": 3}, [1, 2, 3]]
)
def test_input_profiles_reject_malformed_params(voxels: Any) -> None:
    with pytest.raises(StageError, match=r"deploy\.voxels .*\{min: <int>, opt: <int>, max: <int>\}"):
        input_profiles(voxels, 32, 4)


@pytest.mark.parametrize(
    "voxels, max_voxels, message",
    [
        (
            {"min": 1000, "opt": 12000, "max": 15000},
            20000,
            r"deploy\.voxels max is 15000, below .* max_voxels 20000.*at least 20000",
        ),
        (
            {"min": 5000, "opt": 1000, "max": 20000},
            20000,
            r"voxels axis 0 min/opt/max 5000/1000/20000.*1 <= min <= opt <= max",
        ),
        ({"min": 0, "opt": 1000, "max": 20000}, 20000, r"min/opt/max 0/1000/20000"),
    ],
)
def test_check_profiles_names_the_param_and_the_fix(voxels: dict[str, int], max_voxels: int, message: str) -> None:
    with pytest.raises(StageError, match=message) as error:
        check_profiles(input_profiles(voxels, 32, 4), max_voxels)
    assert "\n" not in str(error.value) and "params.yaml: deploy.voxels" in str(error.value)


def test_check_profiles_takes_a_profile_that_covers_max_voxels() -> None:
    check_profiles(input_profiles({"min": 1000, "opt": 12000, "max": 20000}, 32, 4), 20000)
