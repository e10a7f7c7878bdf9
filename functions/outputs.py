"""Where ingest writes: create-only objects tagged with their source object, generation and role.

A destination name is derived from the source name; on a clash the source generation is added
(`data/iris-<generation>.csv`, then `-2`, `-3`...). Before writing, the folder is listed and an
object already written for the same source generation and role is reused, so a redelivered event
never writes a second copy and nothing is ever overwritten (`if_generation_match=0`).
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import storage

from core import gcs, layout
from core.errors import ServiceError

SOURCE_OBJECT, SOURCE_GENERATION, ROLE, POLICY = "source-object", "source-generation", "ingest-role", "ingest-policy"
REPORT_SUFFIX = ".error.json"
MAX_NAME_BYTES = 1024
MAX_CANDIDATES = 100
UPLOAD_TIMEOUT = (5.0, 120.0)
"""(connect, read) seconds of one upload: a 32 MiB body takes longer than a metadata call."""


class NameTaken(ServiceError):
    """Every candidate destination name is held by objects from other sources."""

    code = "name_taken"


class SourceGone(Exception):
    """The source generation disappeared while it was being ingested (a concurrent delivery finished it)."""


@dataclass(frozen=True)
class Source:
    """The uploaded object being ingested, pinned to the generation of its event."""

    bucket: storage.Bucket
    name: str
    generation: int
    retry: Retry

    @property
    def relative(self) -> str:
        return self.name.removeprefix(layout.INCOMING)

    def tags(self, role: str, policy: str) -> dict[str, str]:
        return {SOURCE_OBJECT: self.name, SOURCE_GENERATION: str(self.generation), ROLE: role, POLICY: policy}

    def owns(self, blob: storage.Blob, role: str | None = None) -> bool:
        """True if `blob` was written by ingest for this source generation (and `role`, if given)."""
        tags = blob.metadata or {}
        mine = tags.get(SOURCE_OBJECT) == self.name and tags.get(SOURCE_GENERATION) == str(self.generation)
        return mine and (role is None or tags.get(ROLE) == role)


def _stem(prefix: str, relative: str, generation: int, reserve: int) -> tuple[str, str]:
    """The name's stem (cut to fit a GCS name with the longest suffix and `reserve` more bytes) and extension."""
    stem, ext = posixpath.splitext(relative)
    worst = len(f"{prefix}-{generation}-{MAX_CANDIDATES}{ext}".encode()) + reserve
    return stem.encode()[: MAX_NAME_BYTES - worst].decode(errors="ignore"), ext


def candidates(prefix: str, relative: str, generation: int, reserve: int = len(REPORT_SUFFIX)) -> list[str]:
    """Destination names in order of preference: the plain name, then with the generation, then numbered."""
    stem, ext = _stem(prefix, relative, generation, reserve)
    numbered = (f"{prefix}{stem}-{generation}-{n}{ext}" for n in range(2, MAX_CANDIDATES))
    return [f"{prefix}{stem}{ext}", f"{prefix}{stem}-{generation}{ext}", *numbered]


class Folder:
    """The objects that could clash with one source's destinations under one prefix."""

    def __init__(self, source: Source, prefix: str, relative: str) -> None:
        self.source, self.prefix, self.relative = source, prefix, relative

    @functools.cached_property
    def blobs(self) -> dict[str, storage.Blob]:
        """The objects named like a candidate (listed on first use: one request)."""
        stem = _stem(self.prefix, self.relative, self.source.generation, len(REPORT_SUFFIX))[0]
        listing = gcs.call(self.source.retry, gcs.listed, self.source.bucket, prefix=self.prefix + stem, delimiter="/")
        return {b.name: b for b in listing}

    def written(self, role: str) -> str | None:
        """Name of the object this source generation already wrote in `role`, if any."""
        return next((n for n, b in sorted(self.blobs.items()) if self.source.owns(b, role)), None)

    def policy(self) -> str | None:
        """The invalid-rows policy an earlier delivery of this source generation committed to, if any."""
        return next(((b.metadata or {}).get(POLICY) for b in self.blobs.values() if self.source.owns(b)), None)

    def names(self, suffixes: tuple[str, ...] = ("",)) -> Iterator[str]:
        """Candidate names whose name + each suffix are all free (as listed)."""
        for name in candidates(self.prefix, self.relative, self.source.generation):
            if not any(name + s in self.blobs for s in suffixes):
                yield name

    def place(self, role: str, names: Iterable[str], write: Writer) -> str:
        """Write once under the first free name (or reuse this source's earlier write); return the name."""
        if (done := self.written(role)) is not None:
            return done
        for name in names:
            if write(name):
                return name
            blob = gcs.call(self.source.retry, self.source.bucket.get_blob, name)
            if blob is not None and self.source.owns(blob, role):
                return name  # a concurrent delivery of the same event won the race
        raise NameTaken(f"no free destination name for {self.source.name} under {self.prefix}")


class Writer:
    """Create-only writes of one payload (or of the source object itself) with the source's tags."""

    def __init__(self, source: Source, payload: bytes | None, content_type: str, tags: dict[str, str]) -> None:
        self.source, self.payload, self.content_type, self.tags = source, payload, content_type, tags

    def __call__(self, name: str) -> bool:
        """Write under `name` unless it exists; False if it did."""
        blob = self.source.bucket.blob(name)
        blob.metadata, blob.content_type = self.tags, self.content_type
        try:
            if self.payload is not None:
                gcs.call(
                    self.source.retry,
                    blob.upload_from_string,
                    self.payload,
                    self.content_type,
                    if_generation_match=0,
                    timeout=UPLOAD_TIMEOUT,
                )
            else:
                self._copy_source(blob)
        except gexc.PreconditionFailed:
            return False
        return True

    def _copy_source(self, blob: storage.Blob) -> None:
        """Server-side copy of the pinned source generation (the destination's tags apply)."""
        pinned = self.source.bucket.blob(self.source.name, generation=self.source.generation)
        token = None
        while True:
            try:
                token, _, _ = gcs.call(self.source.retry, blob.rewrite, pinned, token=token, if_generation_match=0)
            except gexc.NotFound as e:
                raise SourceGone(self.source.name) from e
            if token is None:
                return
