"""`python -m trainer [--force] [--trigger cron] [--schedule | --watch]`: one run, the cron loop or the data watcher.

A one-off run exits 0 when it published, skipped or was rejected (or found the data claimed by a live run), 1 when it
failed, so a Kubernetes Job retries failures only.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from core import logs, settings
from core.errors import ServiceError
from core.lineage import Trigger
from core.states import RunOutcome
from trainer.run import train_once
from trainer.settings import TrainerSettings

log = logging.getLogger("trainer")


def run_and_report(config: TrainerSettings, trigger: Trigger) -> RunOutcome:
    """One run; prints a JSON summary line on stdout and returns its outcome (failures included, never raised)."""
    try:
        summary = train_once(config, force=trigger is Trigger.FORCE, trigger=trigger)
    except ServiceError as e:  # StoreUnavailable once the retries are exhausted, StoreRefused, ...
        summary = {"status": RunOutcome.FAILED, "error": e.message}
    except Exception as e:
        log.exception("trainer run failed")
        summary = {"status": RunOutcome.FAILED, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(summary, default=str), flush=True)
    if summary["status"] is RunOutcome.FAILED:
        print(f"trainer failed: {summary['error']}", file=sys.stderr)
    return RunOutcome(summary["status"])


def watch(config: TrainerSettings) -> int:
    """Train on data events until SIGTERM / Ctrl-C (trainer.watch)."""
    from trainer.model import build  # noqa: F401  (scikit-learn imported once, before the first event)
    from trainer.watch import Watcher

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    watcher = Watcher(config, lambda trigger: run_and_report(config, trigger))
    if config.feedback_join_interval > 0:
        from core import gcs
        from trainer.feedback.join import Joiner, Metrics

        bucket = gcs.client(config).bucket(config.gcs_bucket)
        watcher.join = Joiner(config, bucket, Metrics(watcher.health.registry)).run_once
    if config.watch_health_port is not None:
        from core import observe

        observe.serve(
            config.watch_health_host, config.watch_health_port, watcher.probe, watcher.health.registry, "watcher"
        )
    log.info("watching for new data", extra={"subscription": watcher.subscription, "topic": watcher.topic})
    try:
        watcher.serve(stop)
    finally:
        watcher.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="retrain even when the data has not changed")
    triggers = [Trigger.CRON.value, Trigger.MANUAL.value]
    parser.add_argument("--trigger", choices=triggers, default=Trigger.MANUAL.value, help="recorded in the lineage")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--schedule", action="store_true", help="run now, then on TRAIN_SCHEDULE (cron) forever")
    mode.add_argument("--watch", action="store_true", help="train when new data lands under data/ (Pub/Sub)")
    args = parser.parse_args(argv)
    config = settings.load(TrainerSettings)
    logs.setup(config.log_level)
    if args.watch:
        return watch(config)
    trigger = Trigger.FORCE if args.force else Trigger.CRON if args.schedule else Trigger(args.trigger)
    if args.schedule:
        from trainer.schedule import run_forever

        return run_forever(config, lambda: run_and_report(config, trigger))
    return 1 if run_and_report(config, trigger) is RunOutcome.FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
