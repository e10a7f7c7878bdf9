"""`make drop CSV=file`: upload a training CSV to incoming/ of the local stack's bucket, as a data scientist would."""

from __future__ import annotations

import sys
from pathlib import Path

from core import gcs, layout
from core.settings import CommonSettings, load


def drop(path: Path, settings: CommonSettings) -> str:
    """Upload `path` as incoming/<file name>; returns the object name."""
    bucket = gcs.client(settings).bucket(settings.gcs_bucket)
    name = layout.INCOMING + path.name
    gcs.call(gcs.retry(settings), bucket.blob(name).upload_from_filename, str(path), content_type="text/csv")
    return name


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_file():
        sys.exit("usage: python -m devstack.drop FILE.csv")
    print(f"uploaded {drop(Path(sys.argv[1]), load(CommonSettings))}")
