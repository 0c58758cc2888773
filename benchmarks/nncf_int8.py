"""Benchmark helper (not a test, not run by the pipeline): NNCF post-training int8 of an OpenVINO IR.

NNCF 3.4 needs numpy >= 1.24 and NNCF <= 2.15 OpenVINO's removed `openvino.runtime`, while the
project is pinned to numpy 1.23.5 (mmdet3d 1.4), so this runs in a venv of its own:

    python3.11 -m venv /tmp/nncf && /tmp/nncf/bin/pip install nncf==3.4.0 openvino==2026.4.1
    /tmp/nncf/bin/python benchmarks/nncf_int8.py FP32_XML CALIBRATION_NPZ OUT_DIR [--ignore PREFIX ...]

CALIBRATION_NPZ holds voxelized frames as `<frame>/<input name>` arrays (benchmarks/cpu_roof.py
--keep writes one). --ignore: node-name prefixes kept float, as params.yaml deploy.int8.keep_float.
Writes OUT_DIR/end2end.xml (+ .bin); time it with benchmarks/cpu_roof.py --nncf OUT_DIR.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path


def main() -> None:
    import nncf
    import numpy as np
    import openvino as ov

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32_xml", type=Path)
    parser.add_argument("calibration", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--ignore", nargs="*", default=[], help="node-name prefixes that stay float")
    options = parser.parse_args()
    stored = np.load(options.calibration)
    frames: dict[str, dict[str, np.ndarray]] = {}
    for key in stored.files:
        index, name = key.split("/", 1)
        frames.setdefault(index, {})[name] = stored[key]
    model = ov.Core().read_model(str(options.fp32_xml))
    ignored = nncf.IgnoredScope(patterns=[re.escape(prefix) + ".*" for prefix in options.ignore], validate=False)
    quantized = nncf.quantize(
        model, nncf.Dataset(list(frames.values())), subset_size=len(frames), ignored_scope=ignored
    )
    options.out.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(options.out / "end2end.xml"), compress_to_fp16=False)
    print(f"wrote {options.out / 'end2end.xml'} (NNCF {nncf.__version__}, {len(frames)} calibration frames)")


if __name__ == "__main__":
    main()
