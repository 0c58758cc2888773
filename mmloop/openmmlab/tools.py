"""mmdet3d's own dataset tools, imported from the copy its wheel ships under `mmdet3d/.mim/tools`.

The wheel carries the converters but not as an importable package: they import each other as
`tools.dataset_converters.*`, so the `.mim` folder has to be on `sys.path`. We use them as they
are instead of rewriting them, so info files match what mmdet3d's `tools/create_data.py` makes.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType


def mim_dir() -> Path:
    """The `.mim` folder of the installed mmdet3d wheel (configs/ and tools/ live there)."""
    import mmdet3d

    return Path(mmdet3d.__file__).parent / ".mim"


def import_tool(module: str) -> ModuleType:
    """Import e.g. `dataset_converters.kitti_converter` from mmdet3d's shipped `tools/`."""
    root = str(mim_dir())
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(f"tools.{module}")
