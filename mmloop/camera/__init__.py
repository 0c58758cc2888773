"""The camera loop's 2D task: KITTI `image_2` + `label_2` as COCO, an mmdet detector trained, evaluated and deployed.

- `coco.py`: KITTI labels -> one COCO annotation file per split (prepare_2d);
- `config.py`: the `model` and `train` params checked and applied to an mmdet config as cfg-options (train_2d);
- `metric.py`: mmdet's CocoMetric summary plus KITTI's 2D AP per class and difficulty (evaluate_2d);
- `pictures.py`: predictions and ground truth drawn over the images (evaluate_2d's DVC image plots);
- `deploy.py`: mmdeploy's ObjectDetection export, the runtime's manifest, and the parity checks
  (export_2d, deploy_2d), reusing mmloop/deploy where it is generic.

Heavy imports (torch, mmdet, mmdet3d, mmdeploy) stay inside functions, as everywhere in mmloop.
"""
