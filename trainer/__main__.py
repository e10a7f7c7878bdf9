"""`python -m trainer [--force] [--schedule]`: one run (exit 0 on publish or skip), or the cron scheduler."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import requests
from google.api_core import exceptions as gexc

from core import logs, settings
from core.errors import ServiceError
from trainer.run import train_once
from trainer.settings import TrainerSettings

log = logging.getLogger("trainer")


def run_and_report(config: TrainerSettings, force: bool) -> int:
    """One run; prints a JSON summary line on stdout; 0 on success or skip, 1 on failure."""
    try:
        summary = train_once(config, force=force)
    except ServiceError as e:
        summary = {"status": "failed", "error": e.message}
    except (gexc.GoogleAPIError, requests.RequestException) as e:  # retries exhausted or a non-retryable reply
        summary = {"status": "failed", "error": f"GCS unavailable: {e}"}
    except Exception as e:
        log.exception("trainer run failed")
        summary = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(summary, default=str), flush=True)
    if summary["status"] == "failed":
        print(f"trainer failed: {summary['error']}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    parser.add_argument("--force", action="store_true", help="retrain even when the data has not changed")
    parser.add_argument("--schedule", action="store_true", help="run now, then on TRAIN_SCHEDULE (cron) forever")
    args = parser.parse_args(argv)
    config = settings.load(TrainerSettings)
    logs.setup(config.log_level)
    if args.schedule:
        from trainer.schedule import run_forever

        return run_forever(config, lambda: run_and_report(config, args.force))
    return run_and_report(config, args.force)


if __name__ == "__main__":
    sys.exit(main())
