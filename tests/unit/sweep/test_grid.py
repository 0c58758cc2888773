"""The grid: `-S` values expanded as `dvc exp run --queue` does, checked against params.yaml, and
each point's experiment name (stable, one per point and stage targets, a valid DVC name)."""

from __future__ import annotations

import re
import subprocess

import pytest

from mmloop.core.stage import StageError
from mmloop.sweep.grid import expand, point_name
from tests.helpers import REPO


def overrides(set_params: list[str], targets: list[str] | None = None) -> list[tuple[str, ...]]:
    return [point.overrides for point in expand(set_params, REPO, targets or [])]


def test_comma_lists_make_the_product_in_order() -> None:
    assert overrides(["train.lr=0.001,0.003", "train.epochs=1,2"]) == [
        ("train.lr=0.001", "train.epochs=1"),
        ("train.lr=0.001", "train.epochs=2"),
        ("train.lr=0.003", "train.epochs=1"),
        ("train.lr=0.003", "train.epochs=2"),
    ]
    assert [point.index for point in expand(["train.lr=1,2,3"], REPO, [])] == [0, 1, 2]


def test_hydra_range_and_choice_and_fixed_values() -> None:
    assert overrides(["train.epochs=range(1,4)"]) == [("train.epochs=1",), ("train.epochs=2",), ("train.epochs=3",)]
    assert overrides(["train.epochs=choice(1,2)", "model.classes=[Car]"]) == [
        ("train.epochs=1", "model.classes=[Car]"),
        ("train.epochs=2", "model.classes=[Car]"),
    ]
    assert overrides(["train.lr=0.001"]) == [("train.lr=0.001",)]


def test_names_are_stable_distinct_and_valid_dvc_experiment_names() -> None:
    points = expand(["train.lr=0.001,0.003", "train.epochs=1,2"], REPO, ["evaluate"])
    names = [point.name for point in points]
    assert len(set(names)) == 4
    assert names == [point.name for point in expand(["train.lr=0.001,0.003", "train.epochs=1,2"], REPO, ["evaluate"])]
    for name in names:
        assert re.fullmatch(r"sweep-[0-9a-f]{8}", name)
        # DVC's own rule (dvc.repo.experiments.utils.check_ref_format): a valid git ref, no '/'.
        ref = f"refs/exps/ab/{'c' * 38}/{name}"
        assert subprocess.run(["git", "check-ref-format", ref]).returncode == 0


def test_a_name_depends_on_the_values_and_the_stages_not_on_how_they_are_written() -> None:
    base = point_name(("train.lr=0.001", "train.epochs=2"), ["evaluate"])
    assert point_name(("train.epochs=2", "train.lr=0.001"), ["evaluate"]) == base  # -S order
    assert point_name(("train.lr=0.0010", "train.epochs=2"), ["evaluate"]) == base  # same number
    assert point_name(("params.yaml:train.lr=0.001", "train.epochs=2"), ["evaluate"]) == base
    assert point_name(("train.lr=0.001", "train.epochs=3"), ["evaluate"]) != base
    assert point_name(("train.lr=0.001", "train.epochs=2"), ["train"]) != base
    assert point_name(("train.lr=0.001", "train.epochs=2"), []) != base


@pytest.mark.parametrize(
    ("set_params", "expected"),
    [
        (["train.lrate=0.1,0.2"], r"'train.lrate' is not in params.yaml .*fix the key"),
        (["trian.lr=0.1"], r"'trian.lr' is not in params.yaml \(sections: paths, data, model, train,"),
        (["train.lr=[0.1"], r"-S train.lr=\[0.1: no viable alternative .*; use values as in -S 'train.lr=0.001,0.003'"),
        (["train.lr=glob(*)"], r"Glob override .* is not supported"),
        ([], r"no -S given: name at least one param and its values, e.g. -S 'train.lr=0.001,0.003'"),
        (["train.epochs=range(1,1)"], r"the grid is empty \(no values\); give at least one"),
        (["other.yaml:train.lr=0.1"], r"other.yaml not found in .*; name a params file of the repository"),
    ],
)
def test_bad_grids_fail_in_one_line_naming_the_fix(set_params: list[str], expected: str) -> None:
    with pytest.raises(StageError) as caught:
        expand(set_params, REPO, [])
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(expected, message), message


def test_a_new_key_is_let_through_with_plus() -> None:
    assert overrides(["+train.warmup=1,2"]) == [("+train.warmup=1",), ("+train.warmup=2",)]
