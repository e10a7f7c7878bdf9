"""`python -m trainer --watch`: a training run when new data lands under data/, from the bucket's notifications.

One durable subscription (WATCH_SUBSCRIPTION on DATA_EVENTS_TOPIC), pulled synchronously by one loop in one thread,
so runs never overlap. A CSV finalized under data/ of our bucket joins the open batch; the batch runs once nothing new
arrived for TRAIN_QUIET_PERIOD seconds, or TRAIN_MAX_DELAY seconds after it opened, so a burst of files is one run.
A batch's messages are acked only after its run settled (published, skipped or rejected). A busy or failed run hands
them back for TRAIN_RETRY_DELAY seconds, and a crash leaves them unacked: Pub/Sub redelivers either way. A duplicate,
late or vanished object costs one `skipped` run (the data fingerprint is unchanged), and the claims keep this path
and the CronJob from publishing the same data twice. At start, and whenever the subscription had to be created
again (an emulator restart loses it), a `reconcile` run covers events that nobody was subscribed to receive; it is
tried again every TRAIN_RETRY_DELAY seconds until it settles, so the data of a watcher killed mid-run (its claim
goes stale, its messages stay leased) is trained by the next one within about CLAIM_STALE_AFTER seconds.

The watcher watches itself (core.observe): its loop beats a heartbeat (WATCH_STALE_AFTER; the liveness probe on
WATCH_HEALTH_PORT fails when it goes stale), it counts its messages, and every WATCH_AUDIT_INTERVAL seconds it lists
data/: a CSV created after the subscription opened whose notification did not arrive within MISSED_EVENT_AFTER
seconds is a missed event. It is logged and counted, the pull channel is recycled and a reconcile run trains it.

Every FEEDBACK_JOIN_INTERVAL seconds (unless 0) the loop also runs the feedback joiner's pass (trainer.feedback), on
the same thread between pulls: its CSV reaches data/ through the ingest function and comes back as a data event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from core import gcs, layout, notifications, pubsub
from core.errors import ServiceError
from core.lineage import Trigger
from core.notifications import Finalized
from core.observe import Heartbeat, StreamHealth
from core.states import RunOutcome
from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)

LEASE_S = 600
"""Ack deadline of held messages (Pub/Sub's maximum): a run shorter than this is never redelivered meanwhile."""
PULL_TIMEOUT_S = 1.0
UNAVAILABLE_BACKOFF = (0.5, 10.0)
"""Initial and maximum sleep while Pub/Sub cannot be reached."""

PREFIX = "trainer_watch"
"""Prefix of the watcher's stream-health metrics (core.observe)."""

Run = Callable[[Trigger], RunOutcome]
Join = Callable[[], object]


@dataclass
class Batch:
    """Messages of data objects waiting for one run, and when the first and the latest arrived."""

    ack_ids: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    opened: float = 0.0
    latest: float = 0.0

    def add(self, ack_id: str, obj: str, now: float) -> None:
        self.opened = self.opened if self.ack_ids else now
        self.ack_ids.append(ack_id)
        self.objects.append(obj)
        self.latest = now

    def due_in(self, now: float, quiet: float, max_delay: float) -> float | None:
        """Seconds until this batch should run (0 when due); None when it is empty."""
        if not self.ack_ids:
            return None
        return max(0.0, min(self.latest + quiet, self.opened + max_delay) - now)


class Watcher:
    """Pulls data events, coalesces them into batches and runs `run` for each, acking after it settled."""

    def __init__(self, settings: TrainerSettings, run: Run, subscriber: pubsub_v1.SubscriberClient | None = None):
        self.settings, self.run = settings, run
        self.join: Join | None = None
        """The feedback joiner's pass, run every FEEDBACK_JOIN_INTERVAL seconds (never when that is 0)."""
        self.join_at = time.monotonic()
        self.subscriber = subscriber or pubsub.subscriber_client(settings.pubsub_emulator_host)
        project = settings.google_cloud_project
        self.subscription = self.subscriber.subscription_path(project, settings.watch_subscription)
        self.topic = f"projects/{project}/topics/{settings.data_events_topic}"
        self.batch = Batch()
        self.reconcile_at: float | None = None
        """When the next reconcile run is due (monotonic seconds), None when none is."""
        self.runs: list[tuple[Trigger, RunOutcome, int]] = []
        """(trigger, outcome, data objects in the batch) of every run so far."""
        self.heartbeat = Heartbeat(settings.watch_stale_after)
        self.health = StreamHealth(PREFIX, settings.missed_event_after, on_missed=self.recycle)
        self.opens = 0
        self.audit_at = time.monotonic() + settings.watch_audit_interval
        self._bucket: Any = None

    def ensure_subscription(self) -> bool:
        """Create the subscription if it is missing; True when it had to be created (events may have been missed)."""
        try:
            self.subscriber.create_subscription(name=self.subscription, topic=self.topic, ack_deadline_seconds=LEASE_S)
        except gexc.AlreadyExists:
            return False
        except gexc.PermissionDenied:  # in GCP deploy/setup-gcp.sh creates it; this account may only consume it
            log.info("subscription %s is managed outside this process", self.subscription)
            return False
        log.info("created subscription %s on %s", self.subscription, self.topic)
        return True

    def serve(self, stop: threading.Event) -> None:
        """Reconcile once, then pull, coalesce and train until `stop` is set."""
        delay, opened = UNAVAILABLE_BACKOFF[0], False
        while not stop.is_set():
            self.heartbeat.beat()
            self.joining()
            try:
                opened = opened or self._open()
                self.step()
                self.observe()
                delay = UNAVAILABLE_BACKOFF[0]
                continue
            except gexc.NotFound as e:  # the subscription (or, on create, the topic) is gone
                log.warning("subscription %s or its topic missing (%s); subscribing again", self.subscription, e)
                self.batch, opened = Batch(), False  # its ack ids died with it; the reconcile run covers them
            except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError) as e:
                log.warning("Pub/Sub unavailable, retrying in %.1f s: %s", delay, e)
            self.health.closed()
            stop.wait(delay)
            delay = min(delay * 2, UNAVAILABLE_BACKOFF[1])

    def step(self) -> None:
        """Pull what arrived (waiting at most until a run is due), then the due reconcile run and batch."""
        wait = self._due_in(time.monotonic())
        if wait is None or wait > 0:
            self.pull(min(PULL_TIMEOUT_S, wait if wait is not None else PULL_TIMEOUT_S))
        if self.reconcile_at is not None and self.reconcile_at <= time.monotonic():
            settled = self._train(Trigger.RECONCILE, []).settled
            self.reconcile_at = None if settled else time.monotonic() + self.settings.train_retry_delay
        cfg = self.settings
        if self.batch.due_in(time.monotonic(), cfg.train_quiet_period, cfg.train_max_delay) == 0:
            batch, self.batch = self.batch, Batch()
            self._run_batch(batch)

    def joining(self) -> None:
        """The feedback joiner's pass when it is due; its failure is logged, and it runs again next interval."""
        if self.join is None or self.settings.feedback_join_interval <= 0 or time.monotonic() < self.join_at:
            return
        self.join_at = time.monotonic() + self.settings.feedback_join_interval
        try:
            self.join()
        except ServiceError as e:
            log.warning("feedback joiner pass failed: %s", e.message)
        except Exception:
            log.exception("feedback joiner pass failed")

    def _due_in(self, now: float) -> float | None:
        """Seconds until the batch or the reconcile run is due (0 when one is); None when neither is pending."""
        cfg = self.settings
        waits = [self.batch.due_in(now, cfg.train_quiet_period, cfg.train_max_delay)]
        waits.append(None if self.reconcile_at is None else max(0.0, self.reconcile_at - now))
        pending = [w for w in waits if w is not None]
        return min(pending) if pending else None

    def pull(self, timeout: float) -> int:
        """One pull: data objects join the batch, other messages are acked at once; returns how many arrived."""
        try:
            response = self.subscriber.pull(
                subscription=self.subscription, max_messages=100, timeout=max(timeout, 0.05), retry=None
            )
        except gexc.DeadlineExceeded:
            return 0
        other = []
        for received in response.received_messages:
            obj = self._data_object(received.message)
            if obj is None:
                other.append(received.ack_id)
                self.health.message("other")
            else:
                self.batch.add(received.ack_id, obj.ref, time.monotonic())
                self.health.delivered(obj.key)
                self.health.message("data")
        if other:
            self._settle(other, ack=True)
        return len(response.received_messages)

    def _data_object(self, message: pubsub_v1.types.PubsubMessage) -> Finalized | None:
        """The data object a message announces; None (acked at once) for other and malformed messages."""
        try:
            return notifications.data_object(message.attributes, self.settings.gcs_bucket)
        except notifications.Malformed as e:
            log.warning("ignoring malformed data event %s: %s", message.message_id, e)
            self.health.message("malformed")
            return None

    def _open(self) -> bool:
        """Subscribe, and have a reconcile run due for whatever arrived while nobody was subscribed."""
        self.ensure_subscription()
        self.reconcile_at = time.monotonic()
        self.opens += 1
        self.health.opened(first=self.opens == 1)
        return True

    def observe(self) -> None:
        """Every WATCH_AUDIT_INTERVAL, list data/ for objects whose notification never came; act on overdue ones."""
        if time.monotonic() >= self.audit_at:
            self.audit_at = time.monotonic() + self.settings.watch_audit_interval
            self.audit()
        self.health.check()

    def audit(self) -> None:
        """Expect a notification for every CSV under data/ (the listing's failures only delay the check)."""
        try:
            if self._bucket is None:
                self._bucket = gcs.client(self.settings).bucket(self.settings.gcs_bucket)
            blobs = gcs.call(gcs.retry(self.settings), gcs.listed, self._bucket, prefix=layout.DATA)
        except ServiceError as e:
            log.warning("listing data/ for missed events failed: %s", e.message)
            return
        bucket = self.settings.gcs_bucket
        self.health.found(
            ((bucket, blob.name, int(blob.generation or 0)), blob.time_created)
            for blob in blobs
            if blob.name.lower().endswith(".csv")
        )

    def recycle(self, missed: object = None) -> None:
        """A notification did not arrive: pull on a new channel and have a reconcile run train what it missed."""
        log.warning("recycling the data events channel", extra={"subscription": self.subscription})
        old, self.subscriber = self.subscriber, pubsub.subscriber_client(self.settings.pubsub_emulator_host)
        old.close()
        self.health.opened(first=False)
        self.reconcile_at = time.monotonic()

    def probe(self) -> tuple[bool, dict[str, Any]]:
        """Liveness: the loop went round within WATCH_STALE_AFTER seconds (a training run counts as one turn)."""
        age = self.heartbeat.age()
        return self.heartbeat.fresh(), {"heartbeat_age_s": round(age, 3), **self.health.status()}

    def _run_batch(self, batch: Batch) -> None:
        self._extend(batch.ack_ids, LEASE_S)
        outcome = self._train(Trigger.EVENT, batch.objects)
        self._settle(batch.ack_ids, ack=outcome.settled)

    def _train(self, trigger: Trigger, objects: list[str]) -> RunOutcome:
        log.info("training run", extra={"trigger": trigger.value, "objects": objects[:20], "count": len(objects)})
        outcome = self.run(trigger)
        self.runs.append((trigger, outcome, len(objects)))
        if not outcome.settled:
            log.warning("run %s; the data events come back in %s s", outcome.value, self.settings.train_retry_delay)
        return outcome

    def _settle(self, ack_ids: list[str], ack: bool) -> None:
        if ack:
            self._call(self.subscriber.acknowledge, ack_ids=ack_ids)
        else:
            self._extend(ack_ids, self.settings.train_retry_delay)

    def _extend(self, ack_ids: list[str], seconds: int) -> None:
        self._call(self.subscriber.modify_ack_deadline, ack_ids=ack_ids, ack_deadline_seconds=seconds)

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> None:
        """Ack / modify in chunks; a failure only means the messages come back (a duplicate run skips)."""
        ids = kwargs.pop("ack_ids")
        for start in range(0, len(ids), 1000):
            try:
                method(subscription=self.subscription, ack_ids=ids[start : start + 1000], **kwargs, timeout=10)
            except gexc.GoogleAPICallError as e:
                log.warning("could not settle %d messages (they will be redelivered): %s", len(ids), e)

    def close(self) -> None:
        self.subscriber.close()
