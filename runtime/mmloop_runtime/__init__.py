"""mmloop-runtime: run a deployed mmloop LiDAR detector with numpy and ONNX Runtime (or TensorRT).

    from mmloop_runtime import Detector
    boxes, scores, labels = Detector("deploy/onnxruntime-fp32").predict(points)

Voxelization, anchors, box decoding, direction and rotated NMS are numpy twins of mmdet3d's,
checked against mmdeploy's backend model by mmloop's deploy stages; nothing here imports torch,
mmcv, mmengine or mmdet3d. Command line: `python -m mmloop_runtime predict --help`.
"""

from mmloop_runtime.detector import Detector
from mmloop_runtime.head import Detections
from mmloop_runtime.manifest import Manifest, load_manifest

__all__ = ["Detector", "Detections", "Manifest", "load_manifest"]
__version__ = "0.1.0"
