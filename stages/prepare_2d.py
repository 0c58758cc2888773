"""Stage `prepare_2d` (camera loop): KITTI `label_2` + `image_2` as one COCO annotation file per split.

Reads params `data` (root, splits, known_classes) and `model.classes`; writes `<paths.prepared>/<split>.json`
(mmloop/camera/coco.py: the classes' boxes with KITTI's truncation, occlusion and difficulty, DontCare
and similar classes as crowd regions, images by path relative to data.root) and the report (images,
boxes per class and difficulty, ignore regions per split). Images are not copied: the config reads
them from data.root.
"""

from __future__ import annotations

from mmloop.core.paths import load_paths
from mmloop.core.stage import dataset_root, load_params, run_stage, write_json


def main() -> None:
    from mmloop.camera.coco import prepare  # numpy: only after run_stage has pinned the host

    data = load_params("data")
    classes = load_params("model")["classes"]
    paths = load_paths()
    root = dataset_root(data)
    summary = prepare(root, list(data["splits"]), classes, list(data["known_classes"]), paths.prepared)
    write_json(paths.prepare_report, summary)
    splits = "; ".join(
        f"{split} {info['images']} images ({', '.join(f'{n} {c}' for c, n in info['objects'].items())})"
        for split, info in summary["splits"].items()
    )
    print(f"mmloop prepare_2d: wrote {paths.prepared}/ ({splits}); report: {paths.prepare_report}")


if __name__ == "__main__":
    run_stage("prepare_2d", main)
