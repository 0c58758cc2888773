"""The sweep's points: `-S` overrides expanded into a grid, each point named after what it sets.

The grid is DVC's own: `dvc exp run --queue -S` expands comma lists and hydra's `range(...)` /
`choice(...)` with `dvc.utils.hydra.get_hydra_sweeps`, and so does this module, so a sweep accepts
exactly what `dvc exp run --queue` does and expands it the same way."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmloop.core.stage import StageError

DEFAULT_PARAMS = "params.yaml"  # DVC's default params file (ParamsDependency.DEFAULT_PARAMS_FILE)
EXAMPLE = "-S 'train.lr=0.001,0.003'"


@dataclass(frozen=True)
class Point:
    """One grid point: its place in the grid, its experiment's name and its `-S` overrides."""

    index: int
    name: str
    overrides: tuple[str, ...]

    def label(self) -> str:
        return " ".join(self.overrides)


def expand(set_params: list[str], root: Path, targets: list[str]) -> list[Point]:
    """The grid of `-S` values (comma lists, `range(...)`, `choice(...)`), checked against the
    params files under `root`, one Point per combination."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps
    from hydra.errors import HydraException

    if not set_params:
        raise StageError(f"no -S given: name at least one param and its values, e.g. {EXAMPLE}")
    path_overrides = to_path_overrides(set_params)
    for path, overrides in path_overrides.items():
        for override in overrides:
            check_key(root, path, override)
    try:
        sweeps = get_hydra_sweeps(path_overrides)
    except (HydraException, InvalidArgumentError) as error:
        raise StageError(f"-S {' '.join(set_params)}: {one_line(error)}; use values as in {EXAMPLE}") from None
    if not sweeps:
        raise StageError(f"-S {' '.join(set_params)}: the grid is empty (no values); give at least one, e.g. {EXAMPLE}")
    points = []
    for index, sweep in enumerate(sweeps):
        overrides = tuple(
            override if path == DEFAULT_PARAMS else f"{path}:{override}"
            for path, path_list in sweep.items()
            for override in path_list
        )
        points.append(Point(index, point_name(overrides, targets), overrides))
    return points


def point_name(overrides: tuple[str, ...] | list[str], targets: list[str]) -> str:
    """`sweep-<8 hex>`, from the values the point sets and the stages it runs: the same point of
    any sweep gets the same name, which is how a rerun finds the experiments already done. Values
    are compared parsed (0.0010 and 0.001 are one point) and in key order (-S order is free)."""
    canonical = json.dumps(
        {"set": sorted(parsed_override(override) for override in overrides), "targets": sorted(targets)},
        sort_keys=True,
        default=str,
    )
    return "sweep-" + hashlib.md5(canonical.encode()).hexdigest()[:8]


def parsed_override(override: str) -> list[Any]:
    """[file, key, kind, value] of one `[file:]key=value` override, value as hydra parses it."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import to_hydra_overrides

    ((path, (text,)),) = to_path_overrides([override]).items()
    (parsed,) = to_hydra_overrides([text])
    return [path, parsed.key_or_group, parsed.type.name, parsed.value()]


def check_key(root: Path, path: str, override: str) -> None:
    """The key an override changes must be in its params file (a typo would otherwise run the
    whole grid with the default value); `+key=...` adds a key and is let through, as in hydra."""
    from dvc.utils.hydra import to_hydra_overrides
    from hydra.errors import HydraException

    try:
        (parsed,) = to_hydra_overrides([override])
    except HydraException as error:
        raise StageError(f"-S {override}: {one_line(error)}; use values as in {EXAMPLE}") from None
    if parsed.is_add():
        return
    params_file = root / path
    if not params_file.is_file():
        raise StageError(f"-S {override}: {path} not found in {root}; name a params file of the repository")
    params = yaml.safe_load(params_file.read_text()) or {}
    if not has_key(params, parsed.key_or_group.split(".")):
        sections = ", ".join(str(key) for key in params) if isinstance(params, dict) else "none"
        raise StageError(
            f"-S {override}: '{parsed.key_or_group}' is not in {path} (sections: {sections}); "
            f"fix the key, or write +{parsed.key_or_group}=... to add it"
        )


def has_key(tree: Any, keys: list[str]) -> bool:
    for key in keys:
        if isinstance(tree, dict) and key in tree:
            tree = tree[key]
        elif isinstance(tree, list) and key.isdigit() and int(key) < len(tree):
            tree = tree[int(key)]
        else:
            return False
    return True


def one_line(error: Exception) -> str:
    """Hydra's and DVC's messages end with a line of links; the first line says what is wrong."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
