"""The record and its JSON-lines form."""

from __future__ import annotations

import json

import numpy as np
import pytest

from predictor.predlog import record
from predictor.predlog.record import Answer, Refusal

MOMENT = 1796421907.123456  # 2026-12-04T22:05:07.123456Z


def test_an_answer_with_numpy_arrays_round_trips_as_lists() -> None:
    answer = Answer(
        "req-1", MOMENT, "v2", "20260101T000000000000Z", np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]),
        np.array(["setosa", "virginica"]), np.array([[0.98, 0.02, 0.0], [0.0, 0.1, 0.9]]),
    )  # fmt: skip
    line = record.to_line(answer)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    back = record.from_line(line)
    assert isinstance(back, Answer)
    assert back.features == [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    assert back.classes == ["setosa", "virginica"]
    assert back.probabilities == [[0.98, 0.02, 0.0], [0.0, 0.1, 0.9]]
    assert (back.id, back.route, back.version) == ("req-1", "v2", "20260101T000000000000Z")
    assert back.time == pytest.approx(MOMENT, abs=1e-6)
    assert json.loads(line)["time"] == "2026-12-04T22:05:07.123456Z"


def test_class_ids_are_written_as_names() -> None:
    answer = Answer("req-3", MOMENT, "api", "v1", [[5.1, 3.5, 1.4, 0.2]] * 3, [0, 2, 1], [[1.0, 0.0, 0.0]] * 3)
    back = record.from_line(record.to_line(answer))
    assert isinstance(back, Answer)
    assert back.classes == ["setosa", "virginica", "versicolor"]
    numpy_ids = Answer("req-4", MOMENT, "api", "v1", [[5.1, 3.5, 1.4, 0.2]], np.array([2]), [[0.0, 0.0, 1.0]])
    assert json.loads(record.to_line(numpy_ids))["classes"] == ["virginica"]


def test_a_refusal_keeps_its_reason_and_no_features() -> None:
    line = record.to_line(Refusal("req-2", MOMENT, "predict", "x" * 5000, 400, None))
    data = json.loads(line)
    assert data["kind"] == "refusal"
    assert data["status"] == 400
    assert len(data["reason"]) == record.REASON_MAX_CHARS
    assert not {"features", "classes", "probabilities"} & data.keys()
    back = record.from_line(line)
    assert back == Refusal("req-2", back.time, "predict", "x" * record.REASON_MAX_CHARS, 400, None)
    assert back.time == pytest.approx(MOMENT, abs=1e-6)


@pytest.mark.parametrize(
    "line",
    [b"[]", b'{"schema": 2, "kind": "answer"}', b'{"schema": 1, "kind": "answer"}', b"not json"],
)
def test_lines_that_are_not_records_are_refused(line: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        record.from_line(line)
