"""Helpers of the ingest function tests: sample CSVs, uploads, the CloudEvent of an upload, bucket snapshots."""

from __future__ import annotations

from typing import Any

from cloudevents.http import CloudEvent
from google.cloud import storage

EVENT_TYPE = "google.cloud.storage.object.v1.finalized"
VALID_CSV = (
    b"sepal_length,sepal_width,petal_length,petal_width,species\n"
    b"5.1,3.5,1.4,0.2,setosa\n"
    b"5.9,2.8,4.3,1.3,Iris-versicolor\n"
    b"6.7,3.1,5.8,2.2,virginica\n"
)
CANONICAL_CSV = (
    b"sepal_length,sepal_width,petal_length,petal_width,species\n"
    b"5.1,3.5,1.4,0.2,setosa\n"
    b"5.9,2.8,4.3,1.3,versicolor\n"
    b"6.7,3.1,5.8,2.2,virginica\n"
)
"""VALID_CSV as data/ stores it."""
MIXED_CSV = (
    b"sepal_length,sepal_width,petal_length,petal_width,species\n"
    b"5.1,3.5,1.4,0.2,setosa\n"
    b"abc,3.5,1.4,0.2,setosa\n"
    b"5.9,2.8,4.3,1.3,versicolor\n"
    b"6.7,3.1,5.8,2.2,tulip\n"
)


def upload(bucket: storage.Bucket, name: str, data: bytes, content_type: str = "text/csv") -> storage.Blob:
    blob = bucket.blob(name)
    blob.upload_from_string(data, content_type=content_type)
    return blob


def event_for(blob: storage.Blob, **overrides: Any) -> CloudEvent:
    """The CloudEvent GCS (via Eventarc) sends for a finalized object: data is the object resource."""
    data = {
        "kind": "storage#object",
        "bucket": blob.bucket.name,
        "name": blob.name,
        "generation": str(blob.generation),
        "size": str(blob.size),
        "contentType": blob.content_type,
        **overrides,
    }
    attributes = {
        "type": EVENT_TYPE,
        "source": f"//storage.googleapis.com/projects/_/buckets/{data['bucket']}",
        "subject": f"objects/{data['name']}",
        "id": f"{data['bucket']}/{data['name']}/{data['generation']}",
        "datacontenttype": "application/json",
    }
    return CloudEvent(attributes, data)


def snapshot(bucket: storage.Bucket) -> dict[str, tuple[int, bytes, dict[str, str]]]:
    """Every object of the bucket: generation, content, custom metadata."""
    blobs = bucket.client.list_blobs(bucket)
    return {b.name: (int(b.generation), b.download_as_bytes(), dict(b.metadata or {})) for b in blobs}


def names(bucket: storage.Bucket, prefix: str = "") -> list[str]:
    return sorted(b.name for b in bucket.client.list_blobs(bucket, prefix=prefix))
