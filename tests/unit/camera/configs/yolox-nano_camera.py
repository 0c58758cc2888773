# A stand-in for configs/models/yolox-nano_kitti-camera.py (written beside this branch by the camera
# training work) for the export/deploy tests until it lands: mmdet's shipped YOLOX-nano with 3
# classes and the 192x640 (h x w) test pipeline the camera loop uses. The tests fill in the data
# (ann_file, classes) and use random weights.
_base_ = 'mmdet::yolox/yolox_nano_8xb8-300e_coco.py'

img_scale = (640, 192)  # width, height
classes = ('Car', 'Pedestrian', 'Cyclist')

model = dict(
    data_preprocessor=dict(batch_augments=None),
    bbox_head=dict(num_classes=3),
    test_cfg=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.65), max_per_img=100))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='Pad', size=img_scale, pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='CocoDataset',
        data_root='',
        ann_file='val.json',
        data_prefix=dict(img=''),
        metainfo=dict(classes=classes),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file='val.json', metric='bbox')
test_evaluator = val_evaluator
