# The 2D detector's ONNX model converted to OpenVINO IR and run by OpenVINO's CPU plugin: camera
# targets openvino-fp32 and openvino-int8, built and run as the LiDAR loop's are
# (mmloop/deploy/backends/openvino.py); OpenVINO takes ONNX's NonMaxSuppression as it is.
_base_ = ['./detection_onnx_static.py']

backend_config = dict(type='openvino')
