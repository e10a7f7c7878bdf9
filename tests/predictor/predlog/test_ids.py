"""Request ids: the client's when acceptable, else a new unguessable one; bad ones refused naming their source."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from core import uuid7
from predictor.predlog import ids


def test_body_id_wins_over_the_header() -> None:
    assert ids.resolve("body-1", "header-1") == "body-1"


def test_header_id_when_the_body_has_none() -> None:
    assert ids.resolve(None, "abc-123") == "abc-123"


@pytest.mark.parametrize("header", [None, ""])
def test_a_new_id_when_the_client_gives_none(header: str | None) -> None:
    first, second = ids.resolve(None, header), ids.resolve(None, header)
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


@pytest.mark.parametrize(
    ("body", "header", "source"),
    [
        ("", None, ids.BODY_FIELD),
        ("x" * (ids.MAX_LENGTH + 1), None, ids.BODY_FIELD),
        ("a b", None, ids.BODY_FIELD),
        (7, None, ids.BODY_FIELD),
        (None, "line\nbreak", ids.HEADER),
        (None, "é", ids.HEADER),
    ],
)
def test_unacceptable_ids_are_refused_naming_their_source(body: object, header: str | None, source: str) -> None:
    with pytest.raises(ids.InvalidRequestId) as refused:
        ids.resolve(body, header)
    assert refused.value.source == source
    assert str(refused.value).startswith(source)


def test_a_new_id_is_a_uuid7_that_tells_when_it_was_issued() -> None:
    before = time.time()
    made = [uuid7.new() for _ in range(1000)]
    after = time.time()
    assert len(set(made)) == 1000
    assert {uuid.UUID(hex=i).version for i in made} == {7}
    assert {uuid.UUID(hex=i).variant for i in made} == {uuid.RFC_4122}
    issued = [uuid7.issued_at(i) for i in made]
    assert all(t is not None and before - 0.001 <= t <= after + 0.001 for t in issued)
    assert issued == sorted(issued)  # type: ignore[type-var]


@pytest.mark.parametrize("other", ["abc-123", uuid.uuid4().hex, "0" * 32, "G" * 32])
def test_other_ids_have_no_issue_time(other: str) -> None:
    assert uuid7.issued_at(other) is None


def test_the_longest_acceptable_id() -> None:
    longest = "~" * ids.MAX_LENGTH
    assert ids.resolve(longest) == longest
