# The ONNX model converted to OpenVINO IR (end2end.xml + end2end.bin) and run by OpenVINO's CPU
# plugin: targets openvino-fp32 and openvino-int8. mmdeploy's converter (Model Optimizer) and its
# wrapper (openvino.inference_engine) are gone from OpenVINO 2026: mmloop/deploy/backends/openvino.py
# converts with openvino.convert_model and runs the IR with openvino.Core.
_base_ = ['./voxel-detection_onnx_dynamic.py']

backend_config = dict(type='openvino')
