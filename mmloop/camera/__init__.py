"""The camera loop's 2D task: KITTI image_2/label_2 as COCO (coco.py), params as mmdet cfg options
(config.py), CocoMetric and KITTI 2D AP (metric.py), pictures (pictures.py), and export/deploy
(deploy.py), reusing mmloop/deploy where it is generic."""
