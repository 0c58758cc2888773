# YOLOX-nano (mmdet's shipped config) on KITTI's image_2, cut down to train in minutes on 2 CPU cores:
# a fixed 192x640 (h x w) input (KITTI's 375x1242 images resized keeping their ratio, then padded),
# the three KITTI classes, and none of YOLOX's mosaic / mixup / random-affine / multi-scale
# augmentation (built for 300 COCO epochs, they only slow convergence on a few hundred images).
# The camera pipeline's params (pipelines/kitti-camera/params.yaml) override classes, data paths,
# input size, epochs, lr and batch size as --cfg-options (mmloop/camera/config.py), printed by train_2d.
_base_ = ["mmdet::yolox/yolox_nano_8xb8-300e_coco.py"]

classes = ("Car", "Pedestrian", "Cyclist")
input_size = (192, 640)  # (height, width): multiples of 32, the largest stride
img_scale = (input_size[1], input_size[0])  # mmdet's transforms take (width, height)

# Paths as seen from pipelines/kitti-camera: images are named relative to the dataset root in the
# COCO files (prepare_2d), which data_prefix completes.
data_root = ""
image_root = "../../data/kitti-sample/"
train_ann = "work/coco/train.json"
val_ann = "work/coco/val.json"

model = dict(
    # A fixed input size: no BatchSyncRandomResize (YOLOX's multi-scale training).
    data_preprocessor=dict(batch_augments=None),
    bbox_head=dict(num_classes=len(classes)),
    # KITTI's AP needs the low-score tail (recall up to 1); mmdet's test-time settings otherwise.
    test_cfg=dict(score_thr=0.01, nms=dict(type="nms", iou_threshold=0.65), max_per_img=100),
)

train_pipeline = [
    dict(type="LoadImageFromFile", backend_args=None),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="Pad", size=img_scale, pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type="FilterAnnotations", min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile", backend_args=None),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="Pad", size=img_scale, pad_val=dict(img=(114.0, 114.0, 114.0))),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    # _delete_: the base wraps CocoDataset in MultiImageMixDataset (for mosaic and mixup).
    dataset=dict(
        _delete_=True,
        type="CocoDataset",
        data_root=data_root,
        ann_file=train_ann,
        data_prefix=dict(img=image_root),
        metainfo=dict(classes=classes),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline,
        backend_args=None,
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        ann_file=val_ann,
        data_prefix=dict(img=image_root),
        metainfo=dict(classes=classes),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader

val_evaluator = dict(type="CocoMetric", ann_file=val_ann, metric="bbox", classwise=True)
test_evaluator = val_evaluator

# Epoch-based, as mmdet's: train.epochs sets max_epochs and stretches the cosine schedule with it.
max_epochs = 30
train_cfg = dict(max_epochs=max_epochs, val_interval=10)

# AdamW: from few images it converges in far fewer steps than YOLOX's SGD (tuned for batch 64 x 300
# COCO epochs). No weight decay on norms and biases, as the base.
base_lr = 0.002
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(_delete_=True, type="AdamW", lr=base_lr, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10.0, norm_type=2),
)
# A short linear warm-up in iterations (not stretched with the epochs), then cosine to 5 % of lr.
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(
        type="CosineAnnealingLR",
        eta_min=base_lr * 0.05,
        begin=0,
        end=max_epochs,
        T_max=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True,
    ),
]

# The base's hooks switch mosaic off for the last epochs (YOLOXModeSwitchHook, which needs the
# MultiImageMixDataset) and keep an EMA of the weights the saved model would not carry: none here.
custom_hooks = []
