"""The table of artifact paths: params.yaml `paths`, which dvc.yaml reads as `${paths.*}` too."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from mmloop.core.stage import PARAMS_FILE, StageError, load_params


@dataclass(frozen=True)
class Paths:
    prepared: Path
    data_report: Path
    prepare_report: Path
    model: Path
    model_config: Path
    train_work: Path
    train_curves: Path
    eval: Path
    ap_plot: Path
    pr_plot: Path
    bev: Path
    onnx: Path
    export_report: Path
    deployed: Path
    deploy_metrics: Path
    # The `check` stage's marker (root pipeline only, so a pipeline's own paths table may omit it).
    checked: Path = Path("work/check.json")

    def deployed_dir(self, target: str) -> Path:
        """deploy/<target>/: one deployed model, a folder a device takes as it is."""
        return self.deployed / target

    def deploy_report(self, target: str) -> Path:
        """metrics/deploy/<target>.json: accuracy and parity, the same bits on every host."""
        return self.deploy_metrics / f"{target}.json"

    def latency_report(self, target: str) -> Path:
        """metrics/deploy/<target>.latency.json: milliseconds, which differ from run to run."""
        return self.deploy_metrics / f"{target}.latency.json"


def load_paths(params_file: Path = PARAMS_FILE) -> Paths:
    """params.yaml `paths`, every key present (dvc.yaml would fail on a missing one too)."""
    table = load_params("paths", params_file)
    names = [field.name for field in fields(Paths) if field.default is MISSING]
    missing = [name for name in names if not isinstance(table.get(name), str)]
    if missing:
        raise StageError(f"{params_file}: paths.{missing[0]} is missing; restore the paths section from git")
    optional = [field.name for field in fields(Paths) if field.default is not MISSING and field.name in table]
    return Paths(**{name: Path(table[name]) for name in names + optional})
