"""Will TensorRT's ONNX parser take this graph, and do the optimization profiles cover it?

Answered on any host, without TensorRT: the `export` stage reports it next to the ONNX, so a
graph that would fail on the GPU host (an mmdeploy custom op, a dtype the parser rejects, a
dynamic voxel axis without a profile) shows up before anyone builds an engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mmloop.core.stage import StageError
from mmloop.deploy.target import onnx_opset
from mmloop.deploy.tensorrt.parser_ops import (
    LIMITED_DTYPES,
    OUTPUT_TYPED,
    PARSER_DTYPES,
    PARSER_OPS,
    PARSER_OPSETS,
    PARSER_SOURCE,
    TYPE_NAMES,
)

if TYPE_CHECKING:
    import onnx

#: min, opt and max shape of one engine input (a TensorRT optimization profile entry).
Profile = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def input_profiles(voxels: Any, max_points: int, point_features: int) -> dict[str, Profile]:
    """The engine's optimization profile from params.yaml `deploy.voxels` ({min, opt, max} voxel
    counts per frame): shapes of voxels [N, max_points, features], num_points [N], coors [N, 4]."""
    if (
        not isinstance(voxels, dict)
        or sorted(voxels) != ["max", "min", "opt"]
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in voxels.values())
    ):
        raise StageError(
            f"params.yaml: deploy.voxels is {voxels!r}; give voxel counts per frame as "
            "{min: <int>, opt: <int>, max: <int>}, e.g. {min: 1000, opt: 12000, max: 20000}"
        )
    low, opt, high = voxels["min"], voxels["opt"], voxels["max"]

    def profile(*tail: int) -> Profile:
        return (low, *tail), (opt, *tail), (high, *tail)

    return {"voxels": profile(max_points, point_features), "num_points": profile(), "coors": profile(4)}


def check_profiles(profiles: dict[str, Profile], max_voxels: int) -> None:
    """Fail unless every profile is 1 <= min <= opt <= max and its voxel count reaches the model's
    test-time max_voxels: a frame with more voxels than the engine's max would not run."""
    for name, (low, opt, high) in profiles.items():
        for axis, (a, b, c) in enumerate(zip(low, opt, high)):
            if not 1 <= a <= b <= c:
                raise StageError(
                    f"params.yaml: deploy.voxels gives {name} axis {axis} min/opt/max {a}/{b}/{c}; "
                    "set deploy.voxels so that 1 <= min <= opt <= max"
                )
    largest = min(high[0] for _, _, high in profiles.values())
    if largest < max_voxels:
        raise StageError(
            f"params.yaml: deploy.voxels max is {largest}, below the model's test-time max_voxels "
            f"{max_voxels}; the engine must take every voxel count the voxelizer produces, so set "
            f"deploy.voxels.max to at least {max_voxels}"
        )


#: Findings that make the parser fail (limited_dtypes only warn).
BLOCKERS = (
    "onnx_checker",
    "unsupported_ops",
    "op_dtype_mismatches",
    "restriction_violations",
    "unsupported_dtypes",
    "uncovered",
)


def trt_readiness(model: onnx.ModelProto, profiles: dict[str, Profile]) -> dict[str, Any]:
    """What TensorRT's ONNX parser would make of `model` built with `profiles` (JSON-able)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    opset = onnx_opset(model)
    opset_ok = opset is not None and PARSER_OPSETS[0] <= opset <= PARSER_OPSETS[1]
    types = tensor_types(inferred)
    nodes = list(graph_nodes(inferred.graph))
    bad_dtypes, limited = dtype_findings(inferred)
    dynamic, uncovered = profile_coverage(model.graph, profiles)
    report = {
        "parser": PARSER_SOURCE,
        "onnx_checker": checker_error(model),
        "opset": opset,
        "opset_supported": opset_ok,
        "parser_opsets": list(PARSER_OPSETS),
        "nodes": len(nodes),
        "unsupported_ops": unsupported_ops(nodes),
        "op_dtype_mismatches": op_dtype_mismatches(nodes, types),
        "restriction_violations": zero_point_violations(inferred.graph),
        "unsupported_dtypes": bad_dtypes,
        "limited_dtypes": limited,
        "dynamic_dims": dynamic,
        "uncovered": uncovered,
    }
    report["ready"] = opset_ok and not any(report[key] for key in BLOCKERS)
    return report


def blocking(report: dict[str, Any]) -> str:
    """What keeps a readiness report from `ready`, in one line."""
    found = [f"{key}: {report[key]}" for key in BLOCKERS if report[key]]
    if not report["opset_supported"]:
        found.insert(0, f"opset {report['opset']} outside {report['parser_opsets']}")
    return "; ".join(found)[:500] or "nothing"


def checker_error(model: onnx.ModelProto) -> str | None:
    """onnx.checker's complaint (full check: strict type inference) in one line, None if it has
    none. Catches graphs the parser may misread: per-channel Q/DQ (an `axis` attribute) below
    opset 13, a Cast whose target type contradicts the type recorded for its output."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        return " ".join(str(error).split())[:300]
    return None


def graph_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node, including those in If/Loop/Scan bodies (the parser imports those too)."""
    for graph_ in subgraphs(graph):
        yield from graph_.node


def subgraphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """`graph` and every graph nested in its nodes' attributes."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for body in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from subgraphs(body)


def tensor_types(model: onnx.ModelProto) -> dict[str, str]:
    """Element type name of every tensor whose type the (shape-inferred) model records."""
    import onnx

    types: dict[str, str] = {}
    for graph in subgraphs(model.graph):
        for info in [*graph.input, *graph.output, *graph.value_info]:
            if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
                types[info.name] = onnx.TensorProto.DataType.Name(info.type.tensor_type.elem_type)
        for init in graph.initializer:
            types[init.name] = onnx.TensorProto.DataType.Name(init.data_type)
    return types


def unsupported_ops(nodes: list[onnx.NodeProto]) -> dict[str, int]:
    """Node count per op the parser does not take: off its list, or in another domain (mmdeploy's
    custom ops, com.microsoft contrib ops), named `domain::Op` then."""
    found: dict[str, int] = {}
    for node in nodes:
        if node.domain in ("", "ai.onnx") and node.op_type in PARSER_OPS:
            continue
        name = f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        found[name] = found.get(name, 0) + 1
    return dict(sorted(found.items()))


def op_dtype_mismatches(nodes: list[onnx.NodeProto], types: dict[str, str]) -> list[dict[str, str]]:
    """Nodes of a supported op fed a type the parser lists no kernel for (e.g. Equal on BOOL)."""
    found = []
    for node in nodes:
        if node.domain not in ("", "ai.onnx") or node.op_type not in PARSER_OPS:
            continue
        listed = {TYPE_NAMES[t] for t in PARSER_OPS[node.op_type][0]} | {"DOUBLE"}  # cast down
        names = node.output if node.op_type in OUTPUT_TYPED or not node.input else node.input
        tensor = next((n for n in names if n), "")
        dtype = types.get(tensor)
        if dtype is not None and dtype not in listed:
            found.append({"node": node.name, "op": node.op_type, "tensor": tensor, "dtype": dtype})
    return found


def zero_point_violations(graph: onnx.GraphProto) -> list[dict[str, str]]:
    """Q/DQ nodes with a constant non-zero zero point: TensorRT quantizes symmetrically only."""
    import onnx.numpy_helper

    constants = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    found = []
    for node in graph_nodes(graph):
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zero = constants.get(node.input[2])
            if zero is not None and onnx.numpy_helper.to_array(zero).any():
                found.append({"node": node.name, "op": node.op_type, "zero_point": node.input[2]})
    return found


def dtype_findings(model: onnx.ModelProto) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(unsupported, limited): tensors whose element type the parser rejects or casts down."""
    import onnx

    graph = model.graph
    io = {info.name for info in [*graph.input, *graph.output]}
    rows: list[tuple[str, str, int]] = [(i.name, "input", i.type.tensor_type.elem_type) for i in graph.input]
    rows += [(o.name, "output", o.type.tensor_type.elem_type) for o in graph.output]
    for graph_ in subgraphs(graph):
        rows += [(t.name, "initializer", t.data_type) for t in graph_.initializer]
        rows += [(v.name, "value_info", v.type.tensor_type.elem_type) for v in graph_.value_info if v.name not in io]
    unsupported, limited = [], []
    for name, kind, elem_type in rows:
        if not elem_type:  # no type recorded (non-tensor or not inferred)
            continue
        dtype = onnx.TensorProto.DataType.Name(elem_type)
        row = {"tensor": name, "kind": kind, "dtype": dtype}
        if dtype in LIMITED_DTYPES:
            limited.append(row)
        elif dtype not in PARSER_DTYPES and not (dtype == "UINT8" and name in io):
            unsupported.append(row)
    return unsupported, limited


def profile_coverage(graph: onnx.GraphProto, profiles: dict[str, Profile]) -> tuple[list[dict[str, Any]], list[str]]:
    """(dynamic dims with their profile range, problems): a dynamic dim without a profile, a
    profile that contradicts a static dim or the graph's rank, bad min/opt/max, and dims that share
    a name (voxels_num) but get different ranges."""
    inputs = {i.name: list(i.type.tensor_type.shape.dim) for i in graph.input if i.type.HasField("tensor_type")}
    dynamic: list[dict[str, Any]] = []
    uncovered = [
        f"{name}: profile given for an input the graph does not have" for name in profiles if name not in inputs
    ]
    named: dict[str, tuple[str, int, tuple[int, ...]]] = {}  # dim name -> where first seen, its span
    for name, dims in inputs.items():
        profile = profiles.get(name)
        if profile is not None and not all(len(shape) == len(dims) for shape in profile):
            uncovered.append(f"{name}: profile rank {[len(s) for s in profile]} but the graph's is {len(dims)}")
            profile = None
        for axis, dim in enumerate(dims):
            static = dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None
            span = tuple(shape[axis] for shape in profile) if profile is not None else None
            if static is None:
                label = dim.dim_param or None
                dynamic.append(
                    {
                        "input": name,
                        "axis": axis,
                        "dim": label,
                        **dict(zip(("min", "opt", "max"), span or (None, None, None))),
                    }
                )
                if span is None:
                    uncovered.append(f"{name} axis {axis} ({label or 'unknown'}) is dynamic but has no profile")
                elif label:
                    first = named.setdefault(label, (name, axis, span))
                    if first[2] != span:
                        uncovered.append(
                            f"{name} axis {axis} ({label}) has min/opt/max {span} but "
                            f"{first[0]} axis {first[1]} has {first[2]}"
                        )
            elif span is not None and set(span) != {static}:
                uncovered.append(f"{name} axis {axis} is {static} in the graph but {span} in the profile")
            if span is not None and not 1 <= span[0] <= span[1] <= span[2]:
                uncovered.append(f"{name} axis {axis}: min/opt/max {span} is not 1 <= min <= opt <= max")
    return dynamic, uncovered
