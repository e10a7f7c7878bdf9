"""core.iris: the measurement rule and the example flowers."""

from __future__ import annotations

import math

import pytest

from core import iris


@pytest.mark.parametrize(
    ("value", "problem"), [(1.0, None), (0.0, None), (-0.1, "negative"), (math.nan, "not a finite"), (101.0, "larger")]
)
def test_check_measurement(value: float, problem: str | None) -> None:
    result = iris.check_measurement(value)
    assert result == problem if problem is None else result is not None and result.startswith(problem)


def test_examples_cover_every_class_with_valid_measurements() -> None:
    assert tuple(iris.EXAMPLES) == iris.CLASSES
    assert all(iris.check_measurement(v) is None for values in iris.EXAMPLES.values() for v in values)
