"""Hypothesis strategies for bad training CSVs whose fate is known by construction.

A file is either broken as a whole (fatal: nothing of it may reach data/) or a mix of good and bad rows; every
generated file has at least one problem. `expected_good` counts the rows that must end in data/ under the split
policy, `expected_bad` the rows that must be reported. Hypothesis draws the structure (header spellings and order,
row counts, line endings, kind of damage); the row values come from a PRNG seeded by hypothesis, which keeps 200
files to a second or two of generation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import strategies as st

from core.iris import CLASSES, FEATURES

COLUMNS = (*FEATURES, "species")
HEADER_SPELLINGS = {
    "sepal_length": ["sepal_length", "Sepal Length (cm)", "SepalLengthCm", "sepal.length"],
    "sepal_width": ["sepal_width", "Sepal Width (cm)", "SepalWidthCm", "sepal.width"],
    "petal_length": ["petal_length", "Petal Length (cm)", "PetalLengthCm", "petal.length"],
    "petal_width": ["petal_width", "Petal Width (cm)", "PetalWidthCm", "petal.width"],
    "species": ["species", "Species", "class", "variety"],
}
BAD_VALUES = ["abc", "", "-1", "-0.5", "100.5", "1e9", "nan", "inf", "-inf", "NaN", "0x10", "five", "1.2.3"]
BAD_SPECIES = ["rose", "", "setosa!", "iris", "versicolour", "virginica virginica", "42"]
BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xe2\x82", b"\x80"]
FATAL_FILES = [
    b"",
    b"\n\n\n",
    b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
    b"\xff\xfe\x00s\x00e\x00p\x00a\x00l\x00\n",
]
BROKEN = ["missing column", "duplicate column", "bad utf-8", "junk", "header only", "no header"]


@dataclass(frozen=True)
class BadCsv:
    """One generated upload and what must come of it."""

    name: str
    content: bytes
    expected_good: int
    expected_bad: int
    fatal: bool


def good_fields(rng: random.Random) -> list[str]:
    """Four measurements in [0, 100] written in several ways, and a species in any accepted spelling."""
    values = [rng.choice([repr(rng.uniform(0, 100)), str(rng.randint(0, 100)), f"{rng.uniform(0, 10):.1f}"])
              for _ in FEATURES]  # fmt: skip
    species = rng.choice(CLASSES)
    return [*values, rng.choice([species, species.upper(), f"Iris-{species}", f" {species} ", f"iris_{species}"])]


def bad_row(rng: random.Random, order: list[int]) -> str:
    """A row with exactly one kind of damage: a bad measurement, an unknown species or too few fields."""
    fields = good_fields(rng)
    kind = rng.choice(["value", "species", "short"])
    if kind == "short":
        return ",".join(fields[: rng.randint(1, len(fields) - 1)])
    if kind == "value":
        fields[rng.randrange(len(FEATURES))] = rng.choice(BAD_VALUES)
    else:
        fields[-1] = rng.choice(BAD_SPECIES)
    return ",".join(fields[i] for i in order)


@st.composite
def mixed_csv(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """A usable header (any spelling, any column order) and good and bad rows in any order."""
    order = draw(st.permutations(list(range(len(COLUMNS)))))
    names = [draw(st.sampled_from(HEADER_SPELLINGS[COLUMNS[i]])) for i in order]
    good, bad = draw(st.integers(0, 30)), draw(st.integers(1, 10))
    rng = random.Random(draw(st.integers(0, 2**32)))
    rows = [",".join(good_fields(rng)[i] for i in order) for _ in range(good)]
    rows += [bad_row(rng, order) for _ in range(bad)]
    rng.shuffle(rows)
    newline, bom = draw(st.sampled_from(["\n", "\r\n"])), draw(st.sampled_from(["", "\ufeff"]))
    text = bom + newline.join([",".join(names), *rows]) + draw(st.sampled_from(["", newline]))
    return text.encode(), good, bad


@st.composite
def broken_csv(draw: st.DrawFn) -> bytes:
    """A file no row of which may be used: unusable or missing header, invalid UTF-8 anywhere, junk, no rows."""
    names = [draw(st.sampled_from(HEADER_SPELLINGS[c])) for c in COLUMNS]
    rng = random.Random(draw(st.integers(0, 2**32)))
    rows = [",".join(good_fields(rng)) for _ in range(draw(st.integers(0, 10)))]
    kind = draw(st.sampled_from(BROKEN))
    if kind == "missing column":
        gone = draw(st.integers(0, len(names) - 1))
        names = names[:gone] + names[gone + 1 :]
    elif kind == "duplicate column":
        names.append(names[draw(st.integers(0, len(names) - 1))])
    elif kind == "header only":
        rows = []
    elif kind == "no header":
        names = good_fields(rng)
    text = "\n".join([",".join(names), *rows]).encode()
    if kind == "bad utf-8":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(BAD_UTF8)) + text[at:]
    elif kind == "junk":
        text = b"\xff" + draw(st.binary(max_size=300))
    return text


def bad_csvs() -> st.SearchStrategy[tuple[bytes, int, int, bool]]:
    """(content, good rows, bad rows, fatal): three in four mixed, the rest broken as a whole."""
    fatal = (st.sampled_from(FATAL_FILES) | broken_csv()).map(lambda c: (c, 0, 0, True))
    mixed = mixed_csv().map(lambda m: (m[0], m[1], m[2], False))
    return st.integers(0, 3).flatmap(lambda pick: fatal if pick == 0 else mixed)
