"""Local event delivery for the ingest function: Pub/Sub OBJECT_FINALIZE messages -> CloudEvents over HTTP.

In GCP, Eventarc calls the function. Locally fake-gcs-server sends every object's OBJECT_FINALIZE notification
to one Pub/Sub topic (INCOMING_EVENTS_TOPIC); this bridge subscribes to it, keeps the `incoming/` uploads of our
bucket and POSTs each as a structured-mode `google.cloud.storage.object.v1.finalized` CloudEvent (a JSON body, so object
names in any script travel as UTF-8, never in an HTTP header) to the functions-framework server. A message is acked
only on a 2xx answer; otherwise it comes back after `retry_delay` seconds (the platform's redelivery).

With `--subscription NAME` the subscription outlives the bridge: a bridge restarted after a crash gets the uploads
made while it was down. Without it, each bridge has its own subscription, deleted on the way out.

Notifications can still be lost: the emulator forgets everything when it restarts, and fake-gcs-server does not retry
a notification it failed to send while the emulator was down. So the bridge also sweeps `incoming/` (the function
moves every file it ingested out of it): at start, after its subscription was created again, and every
SWEEP_INTERVAL seconds for files older than SWEEP_AGE. The function is idempotent, so a file delivered twice is
ingested once.

    python -m devstack.bridge --function-url http://127.0.0.1:8081/ [--subscription ingest-bridge]
    (env: PUBSUB_EMULATOR_HOST, GOOGLE_CLOUD_PROJECT, INCOMING_EVENTS_TOPIC, GCS_BUCKET)
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import requests
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent
from google.api_core import exceptions as gexc
from google.cloud import storage

from core import gcs, layout, logs, notifications, pubsub
from core.errors import StoreRefused, StoreUnavailable
from core.settings import CommonSettings, load
from devstack import emulators

log = logging.getLogger(__name__)
EVENT_TYPE = "google.cloud.storage.object.v1.finalized"
POST_TIMEOUT = 330.0
"""Seconds to wait for the function's answer (a little over its deployed 300 s timeout)."""
IDLE_WAIT = 0.05
"""Seconds between pulls that returned nothing."""
SWEEP_INTERVAL = 60.0
"""Seconds between sweeps of incoming/ for files whose notification was lost."""
SWEEP_AGE = 30.0
"""A periodic sweep delivers only files older than this: younger ones are still on their way through Pub/Sub."""


class BridgeSettings(CommonSettings):
    """The bridge's settings (environment): the shared ones and the topic it reads."""

    incoming_events_topic: str = "incoming-events"
    """Topic that receives the bucket's OBJECT_FINALIZE notifications for incoming/ (the stack's one topic locally)."""


def to_cloud_event(attributes: Mapping[str, str], data: bytes, bucket: str) -> CloudEvent | None:
    """The CloudEvent for one GCS notification, or None unless it is an OBJECT_FINALIZE under incoming/ of `bucket`;
    Malformed if the attributes cannot be a GCS notification."""
    obj = notifications.finalized(attributes, bucket, layout.INCOMING)
    if obj is None:
        return None
    try:
        resource = json.loads(data)
    except ValueError:
        return None
    return cloud_event(bucket, obj.name, obj.generation, resource, attributes.get("eventTime"))


def cloud_event(bucket: str, name: str, generation: int, resource: Any, time: str | None = None) -> CloudEvent:
    """The `object.finalized` CloudEvent of object `name` at `generation`, its data the object resource."""
    event = {
        "type": EVENT_TYPE,
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "subject": f"objects/{name}",
        "id": f"{bucket}/{name}/{generation}",  # emulator message ids restart at 1; this names the event
        "datacontenttype": "application/json",
    }
    if time:
        event["time"] = time
    return CloudEvent(event, resource)


def post(session: requests.Session, url: str, event: CloudEvent, timeout: float = POST_TIMEOUT) -> bool:
    """POST the event in structured mode; True on a 2xx answer."""
    headers, body = to_structured(event)
    try:
        response = session.post(url, headers=headers, data=body, timeout=timeout)
    except requests.RequestException as e:
        log.warning("function unreachable: %s", e, extra={"event_id": event["id"]})
        return False
    if not response.ok:
        log.warning("function answered %s", response.status_code, extra={"event_id": event["id"]})
    return response.ok


class Bridge:
    """One subscription on the topic, pulled in a loop; every wanted message is delivered before it is acked."""

    def __init__(
        self, settings: BridgeSettings, function_url: str, retry_delay: int = 2, subscription: str | None = None
    ) -> None:
        if not settings.pubsub_emulator_host:
            raise ValueError("PUBSUB_EMULATOR_HOST must be set: the bridge is for the local emulators only")
        self.settings, self.url, self.retry_delay = settings, function_url, retry_delay
        self.subscriber = pubsub.subscriber_client(settings.pubsub_emulator_host)
        self.session = requests.Session()
        self.durable = subscription is not None
        name = subscription or f"ingest-bridge-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.subscription = self.subscriber.subscription_path(settings.google_cloud_project, name)
        self.swept_at = 0.0

    def open(self) -> str:
        """Create the topic and this bridge's subscription if missing (new: sees messages sent from now on)."""
        settings = self.settings
        topic = emulators.ensure_topic(
            str(settings.pubsub_emulator_host), settings.google_cloud_project, settings.incoming_events_topic
        )
        try:
            self.subscriber.create_subscription(name=self.subscription, topic=topic, ack_deadline_seconds=60)
        except gexc.AlreadyExists:
            log.info("resuming subscription %s", self.subscription)
        return str(self.subscription)

    def pump(self, timeout: float = 1.0) -> int:
        """Pull once and handle what arrived; returns how many messages arrived."""
        try:
            response = self.subscriber.pull(
                subscription=self.subscription, max_messages=20, timeout=timeout, retry=None
            )
        except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
            return 0
        except gexc.NotFound:  # the emulator restarted and lost the topic and the subscription
            log.warning("subscription %s vanished; creating it again", self.subscription)
            self.open()
            self.sweep()
            return 0
        for received in response.received_messages:
            self._handle(received)
        return len(response.received_messages)

    def _handle(self, received: Any) -> None:
        """Deliver one message (others are just acked); a failed delivery comes back after `retry_delay` s."""
        message = received.message
        try:
            event = to_cloud_event(dict(message.attributes), bytes(message.data), self.settings.gcs_bucket)
        except notifications.Malformed as e:
            log.warning("ignoring malformed notification %s: %s", message.message_id, e)
            event = None
        try:
            delivered = event is None or post(self.session, self.url, event)
        except Exception:  # one undeliverable event must not stop the delivery of the others
            log.exception("could not deliver message %s", message.message_id)
            delivered = False
        if delivered:
            self.subscriber.acknowledge(subscription=self.subscription, ack_ids=[received.ack_id])
        else:
            self.subscriber.modify_ack_deadline(
                subscription=self.subscription, ack_ids=[received.ack_id], ack_deadline_seconds=self.retry_delay
            )

    @functools.cached_property
    def bucket(self) -> storage.Bucket:
        return gcs.client(self.settings).bucket(self.settings.gcs_bucket)

    def sweep(self, min_age: float = 0.0) -> int:
        """Deliver every file under incoming/ at least `min_age` seconds old; returns how many were delivered."""
        self.swept_at = time.monotonic()
        try:
            blobs = gcs.call(gcs.retry(self.settings), gcs.listed, self.bucket, prefix=layout.INCOMING)
        except (StoreUnavailable, StoreRefused, gexc.GoogleAPICallError) as e:
            log.warning("could not list %s for lost notifications: %s", layout.INCOMING, e)
            return 0
        now = dt.datetime.now(dt.UTC)
        delivered = 0
        for blob in blobs:
            if blob.updated is not None and (now - blob.updated).total_seconds() < min_age:
                continue
            event = cloud_event(self.settings.gcs_bucket, blob.name, int(blob.generation or 0), blob._properties)
            log.warning("delivering %s, whose notification never arrived", blob.name, extra={"event_id": event["id"]})
            delivered += post(self.session, self.url, event)
        return delivered

    def sweep_due(self) -> bool:
        return time.monotonic() - self.swept_at >= SWEEP_INTERVAL

    def close(self) -> None:
        """Delete the subscription unless it is durable, and close the clients."""
        try:
            if not self.durable:
                self.subscriber.delete_subscription(subscription=self.subscription, timeout=5)
        except gexc.GoogleAPICallError as e:
            log.warning("could not delete subscription %s: %s", self.subscription, e)
        self.session.close()
        self.subscriber.close()


def run(
    settings: BridgeSettings,
    function_url: str,
    stop: threading.Event,
    retry_delay: int = 2,
    subscription: str | None = None,
) -> None:
    """Deliver events until `stop` is set (blocking); a subscription not named is deleted on the way out."""
    bridge = Bridge(settings, function_url, retry_delay, subscription)
    path = bridge.open()
    log.info("bridge listening", extra={"subscription": path, "function_url": function_url})
    try:
        bridge.sweep()  # uploads made while no bridge listened
        while not stop.is_set():
            if not bridge.pump():
                stop.wait(IDLE_WAIT)
            if bridge.sweep_due():
                bridge.sweep(SWEEP_AGE)
    finally:
        bridge.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.bridge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--function-url", required=True, help="functions-framework server, e.g. http://127.0.0.1:8081/")
    parser.add_argument("--retry-delay", type=int, default=2, help="seconds before a failed delivery is retried")
    parser.add_argument("--subscription", help="a named subscription that outlives the bridge (default: its own)")
    args = parser.parse_args(argv)
    settings = load(BridgeSettings)
    logs.setup(settings.log_level)
    if not settings.pubsub_emulator_host:
        print(
            "configuration error: PUBSUB_EMULATOR_HOST must be set (the bridge is for the local stack)", file=sys.stderr
        )
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(settings, args.function_url, stop, args.retry_delay, args.subscription)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
