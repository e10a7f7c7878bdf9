"""The local stand-in for the CronJob: run once now, then on TRAIN_SCHEDULE with APScheduler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)


def run_forever(settings: TrainerSettings, job: Callable[[], object]) -> int:
    """Block running `job` on the cron schedule (no overlapping runs); returns 0 on Ctrl-C / SIGTERM."""
    trigger = CronTrigger.from_crontab(settings.train_schedule, timezone=UTC)
    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_job(job, trigger, max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
    log.info("trainer scheduled", extra={"schedule": settings.train_schedule})
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=False)
    return 0
