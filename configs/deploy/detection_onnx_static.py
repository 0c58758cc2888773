# mmdeploy deploy config for mmdet 2D detectors (the camera loop's YOLOX): the ONNX the `export_2d`
# stage writes. mmdeploy 1.3.1's wheel ships no deploy configs; this follows its repo's
# configs/mmdet/detection/detection_onnxruntime_static.py. The graph takes one preprocessed image
# of a fixed size (input_shape is [width, height]; 192x640 here, and export_2d sets it from the
# model's test-time Pad size) and ends after NMS: mmdeploy's multiclass_nms rewriter puts ONNX's
# NonMaxSuppression in the graph, so it gives `dets` [1, N, 5] (x0, y0, x1, y1, score in the input's
# pixels) and `labels` [1, N]. Score and IoU thresholds and max_per_img come from the model's
# test_cfg (mmdeploy's YOLOX rewriter reads them there); post_processing below fills the rest.
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=-1,
        keep_top_k=100,
        background_label_id=-1,
    ))

onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=11,  # params.yaml deploy.opset overrides it
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['dets', 'labels'],
    input_shape=[640, 192],
    # mmdeploy's graph optimizer needs its TorchScript extension, which the wheel lacks; ONNX
    # Runtime and TensorRT optimize the graph themselves.
    optimize=False,
    # The input is static; the number of boxes NMS keeps is not (without this the exporter would
    # record the traced image's count and ONNX Runtime would warn about every other one).
    dynamic_axes={
        'dets': {1: 'num_dets'},
        'labels': {1: 'num_dets'},
    })
