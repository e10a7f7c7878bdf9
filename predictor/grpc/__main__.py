"""``python -m predictor.grpc``: the gRPC V2 server (see ``predictor.grpc.server``)."""

from __future__ import annotations

import os
import sys

# Before prometheus_client is imported: this process keeps its metrics to itself. The image sets the multiprocess
# directory for gunicorn's workers, whose /metrics aggregates it; this container does not mount it.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from predictor.grpc.server import main

if __name__ == "__main__":
    sys.exit(main())
