#!/usr/bin/env bash
# Stage the ingest function's deployable source folder:
#   OUT/main.py            the entry point (a copy of functions/main.py: ingest_upload)
#   OUT/functions/*.py     the function's modules
#   OUT/core/*.py          the shared core package (settings, iris, csvscan, logs, gcs, ...)
#   OUT/requirements.txt   requirements-ingest.lock (the `function` extra of pyproject.toml, every version pinned)
# Usage: bash functions/package.sh [OUT]   (OUT defaults to build/function; only the paths above are replaced)
# Then:  gcloud functions deploy iris-ingest --gen2 --runtime=python311 --source=OUT --entry-point=ingest_upload ...
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/build/function}"

mkdir -p "$out"
rm -rf "$out/functions" "$out/core" "$out/main.py" "$out/requirements.txt"
mkdir -p "$out/functions" "$out/core"
cp "$repo"/functions/*.py "$out/functions/"
cp "$repo"/core/*.py "$out/core/"
cp "$repo/functions/main.py" "$out/main.py"
cp "$repo/requirements-ingest.lock" "$out/requirements.txt"
echo "staged the ingest function in $out"
