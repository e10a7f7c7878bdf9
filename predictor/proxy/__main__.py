"""``python -m predictor.proxy --upstream 127.0.0.1:8000 ...``: print the nginx configuration for the environment."""

from __future__ import annotations

import argparse

from core.settings import load
from predictor import workers
from predictor.proxy import ProxySettings, render
from predictor.settings import PredictorSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m predictor.proxy", description=__doc__)
    parser.add_argument("--upstream", required=True, help="host:port gunicorn listens on (PORT on BIND_HOST)")
    default_body = PredictorSettings.model_fields["max_body_bytes"].default
    parser.add_argument("--max-body-bytes", type=int, default=default_body, help="the predictor's MAX_BODY_BYTES")
    parser.add_argument("--admin-upstream", help="host:port of the predictor's ADMIN_PORT listener (on loopback)")
    parser.add_argument("--worker-sockets", help="the predictor's WORKER_SOCKETS_DIR")
    default_workers = PredictorSettings.model_fields["web_concurrency"].default
    parser.add_argument("--workers", type=int, default=default_workers, help="the predictor's WEB_CONCURRENCY")
    args = parser.parse_args(argv)
    sockets = workers.socket_paths(args.worker_sockets, args.workers) if args.worker_sockets else []
    config = render(load(ProxySettings), args.upstream, args.max_body_bytes, args.admin_upstream, sockets)
    print(config, end="")


if __name__ == "__main__":
    main()
