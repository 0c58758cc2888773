"""Our one override of an mmdeploy rewriter: the pillar scatter, without a zero canvas in the graph.

mmdeploy 1.3.1's rewrite of `PointPillarsScatter.forward_batch` (mmdeploy/codebase/mmdet3d/models/
pillar_scatter.py) starts from `torch.zeros(channels, nx * ny)`: the tracer records constant
sizes, so the exporter folds the zeros into an initializer, a 55 MB zero canvas in the full-size
KITTI graph (74 MB for 19 MB of weights). Here the canvas width is computed from the voxel count,
a graph input dimension (0 * count + nx * ny), so it stays a ConstantOfShape of a computed shape,
made at run time: ops TensorRT's parser (mmloop/deploy/tensorrt/parser_ops.py), ONNX Runtime and
OpenVINO take. The values are the same: the scatter writes each voxel's features into a column
of zeros.

Registered for the ONNX IR, so it wins over mmdeploy's backend-agnostic default whatever the import
order (mmdeploy picks a rewriter whose checkers pass over a default one). Importing this module
registers it; mmloop.deploy.export does that before every export.
"""

from __future__ import annotations

from typing import Any

from mmdeploy.core import FUNCTION_REWRITER
from mmdeploy.utils import IR

SCATTER = "mmdet3d.models.middle_encoders.pillar_scatter.PointPillarsScatter.forward_batch"


@FUNCTION_REWRITER.register_rewriter(SCATTER, ir=IR.ONNX)  # the enum: its checker compares with ==
def pillar_scatter_runtime_canvas(self: Any, voxel_features: Any, coors: Any, batch_size: int = 1) -> Any:
    """mmdeploy's single-sample scatter (batch 1), with the canvas shaped from the voxel count."""
    cells = self.nx * self.ny
    voxels = voxel_features.shape[0]  # traced: the Shape of a dynamic graph input, never folded
    canvas = voxel_features.new_zeros((self.in_channels, voxels * 0 + cells))
    indices = (coors[:, 2] * self.nx + coors[:, 3]).long()
    canvas.scatter_(dim=1, index=indices.expand(canvas.shape[0], -1), src=voxel_features.t())
    return canvas.view(1, self.in_channels, self.ny, self.nx)
