"""Model events: the pod's model agent has one Pub/Sub subscription and streaming-pull subscriber.

One subscription per pod, held by the model agent (predictor.agent): it hears every OBJECT_FINALIZE of a new
artifact, loads it once and hands it to the pod's serving processes over local disk, so no serving process runs
gRPC streams or callback threads. The subscription is created when the agent starts and deleted on graceful exit; a
crashed pod's expires after SUBSCRIPTION_TTL_DAYS of inactivity. The reconcile job (predictor.agent.reconcile) lists
models/ periodically and after every reconnect, so an event lost while no subscription existed only delays a swap,
never loses it.

The client library runs the stream and our callback in its own threads; a supervisor thread of ours resubscribes
(recreating the subscription when it vanished, e.g. after an emulator restart) with capped backoff. gRPC's own
reconnect backoff is capped in core.pubsub (its default grows to 120 s).

Retries have one owner per layer: each GCS call is retried by google-api-core for GCS_RETRY_DEADLINE seconds; if
the store is still unavailable the message is nacked at once and Pub/Sub redelivers it with the subscription's
retry policy (5 s growing to 60 s). The callback never sleeps or loops around a failed offer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

import grpc
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

from core import layout, pubsub
from core.errors import StoreUnavailable
from core.notifications import Malformed, ModelEvent, model_event
from core.observe import StreamHealth
from core.states import SkipReason, SwapTrigger
from predictor.settings import PredictorSettings

log = logging.getLogger(__name__)

ACK_DEADLINE_S = 30
SEEN_SIZE = 1024
RESUBSCRIBE_BACKOFF = (0.25, 5.0)
"""Initial and maximum delay between resubscribe attempts."""
RETIRE_TIMEOUT_S = 15.0
"""How long a replaced client waits for its old stream to shut down before closing the channel anyway."""
PROBE_INTERVAL_S = 1.0
"""While the channel is failing, how often the supervisor checks that the subscription still exists."""


class Offers(Protocol):
    """What the subscriber needs from the registry."""

    def offer(self, name: str, generation: int | None, trigger: str, finalized_at: datetime | None = None) -> Any: ...


class SubscriptionGone(Exception):
    """The service no longer has this pod's subscription."""


class SeenEvents:
    """A bounded, thread-safe LRU set of (bucket, object, generation) keys already handled."""

    def __init__(self, size: int = SEEN_SIZE) -> None:
        self._keys: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._size, self._lock = size, threading.Lock()

    def __contains__(self, key: tuple[str, str, int]) -> bool:
        with self._lock:
            if key in self._keys:
                self._keys.move_to_end(key)
                return True
            return False

    def add(self, key: tuple[str, str, int]) -> None:
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)


def subscription_id(settings: PredictorSettings, pid: int | None = None) -> str:
    """`{prefix}-{pod_name}-{pid}-{random}`, made a valid Pub/Sub id (starts with a letter, 3-255 chars)."""
    tail = f"-{pid or os.getpid()}-{secrets.token_hex(4)}"
    head = re.sub(r"[^A-Za-z0-9._~+%-]", "-", f"{settings.subscription_prefix}-{settings.pod_name}")
    if not head[:1].isalpha() or head.lower().startswith("goog"):
        head = "s" + head
    return head[: 255 - len(tail)] + tail


class ModelEvents:
    """The pod's subscription and streaming pull, kept alive by a supervisor thread."""

    def __init__(
        self,
        registry: Offers,
        settings: PredictorSettings,
        on_reconnect: Callable[[], None],
        health: StreamHealth | None = None,
        on_rate_limited: Callable[[], None] | None = None,
    ) -> None:
        """`on_reconnect` asks for a reconcile at once (events may have been missed); `on_rate_limited` asks for one
        soon (an offer was refused a lookup by NOTIFICATION_LOOKUP_RATE, so the listing must decide)."""
        self._registry, self._settings, self._on_reconnect = registry, settings, on_reconnect
        self._on_rate_limited = on_rate_limited
        self.health = health
        self._trouble = threading.Event()  # the channel failed since the last successful probe
        self._client = self._new_client()
        self.subscription = self._client.subscription_path(settings.google_cloud_project, subscription_id(settings))
        self._seen, self._stop, self._lock = SeenEvents(), threading.Event(), threading.Lock()
        self._future: pubsub_v1.subscriber.futures.StreamingPullFuture | None = None
        self._thread = threading.Thread(target=self._supervise, name="model-events", daemon=True)
        self.connects, self.last_error, self.counts = 0, "", Counter[str]()

    def start(self) -> None:
        """Create the subscription and start pulling, in the background (never blocks)."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the stream, delete the subscription and close the client, all within about `timeout` s."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        with self._lock:
            future = self._future
        if future is not None:
            future.cancel()
            try:
                future.result(timeout=max(0.1, deadline - time.monotonic()))
            except Exception as e:  # the stream's own error, or a timeout: nothing left to do about it
                log.info("model events stream ended: %s", e)
        if self._thread.ident is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))
        with self._lock:
            client = self._client
        with client:
            self._delete_subscription(client, max(0.5, deadline - time.monotonic()))

    def status(self) -> dict[str, Any]:
        with self._lock:
            connected = self._future is not None and not self._future.done()
            counts = dict(self.counts)
        return {
            "subscription": self.subscription,
            "connected": connected,
            "connects": self.connects,
            "last_error": self.last_error or None,
            "messages": counts,
            **(self.health.status() if self.health else {}),
        }

    def alive(self) -> bool:
        """Whether the supervisor thread still keeps a stream open (or is about to)."""
        return self._thread.is_alive() and not self._stop.is_set()

    def recycle(self, *_: object) -> None:
        """End the current stream: the supervisor opens a new one on a new channel and reconciles."""
        with self._lock:
            future = self._future
        if future is not None and not future.done():
            log.warning("model events: recycling the stream", extra={"subscription": self.subscription})
            self.last_error = "recycled: a notification did not arrive in time"
            future.cancel()

    def _supervise(self) -> None:
        delay, catch_up = RESUBSCRIBE_BACKOFF[0], False
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._ensure_subscription()
                self._stream(catch_up)
            except Exception as e:  # NotFound after an emulator restart, Unavailable, PermissionDenied, ...
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("model events: %s; resubscribing in %.2f s", self.last_error, delay)
            if self._stop.is_set():
                return
            catch_up = True
            self._renew_client()
            delay = RESUBSCRIBE_BACKOFF[0] if time.monotonic() - started > 30 else delay
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, RESUBSCRIBE_BACKOFF[1])

    def _stream(self, catch_up: bool) -> None:
        """Subscribe and block until the stream ends; the first time after a gap, ask for a reconcile."""
        scheduler = ThreadScheduler(ThreadPoolExecutor(max_workers=2, thread_name_prefix="model-events-callback"))
        flow = pubsub_v1.types.FlowControl(max_messages=10)
        future = self._client.subscribe(self.subscription, self._handle, flow_control=flow, scheduler=scheduler)
        with self._lock:
            self._future = future
        if self._stop.is_set():
            future.cancel()
        self.connects += 1
        if self.health is not None:
            self.health.opened(first=self.connects == 1)
        log.info("model events: subscribed", extra={"subscription": self.subscription, "connects": self.connects})
        if catch_up:
            self._catch_up(self._on_reconnect, "reconnect")
        try:
            while True:
                try:
                    future.result(timeout=PROBE_INTERVAL_S)
                    return
                except TimeoutError:
                    if self._trouble.is_set() and not self._subscription_exists():
                        future.cancel()
                        raise SubscriptionGone(f"{self.subscription} is gone") from None
        finally:
            if self.health is not None:
                self.health.closed()

    def _new_client(self) -> pubsub_v1.SubscriberClient:
        channel = pubsub.channel(self._settings.pubsub_emulator_host)
        channel.subscribe(self._on_connectivity, try_to_connect=False)
        return pubsub.subscriber_client(self._settings.pubsub_emulator_host, channel)

    def _renew_client(self) -> None:
        """A fresh channel for the next stream. Measured: on the old channel a new stream stalls while the old
        stream's throttled reopen loop sleeps (up to 10 s after a restart), and so does closing the channel,
        so the old client is closed in the background once its stream has shut down."""
        with self._lock:
            old, future = self._client, self._future
            self._client, self._future = self._new_client(), None
        self._trouble.clear()
        threading.Thread(target=_retire, args=(old, future), name="model-events-retire", daemon=True).start()

    def _on_connectivity(self, state: grpc.ChannelConnectivity) -> None:
        if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            self._trouble.set()

    def _subscription_exists(self) -> bool:
        """After a connection failure: has the service lost our subscription (restart)? True while unknown.

        The client library reopens the stream on its own, but throttled (5 tries per 10 s), and a vanished
        subscription only shows once it does; this probe makes us resubscribe as soon as the service is back.
        """
        try:
            self._client.get_subscription(subscription=self.subscription, timeout=2, retry=None)
        except gexc.NotFound:
            return False
        except gexc.GoogleAPICallError:
            return True
        self._trouble.clear()
        return True

    def _catch_up(self, request: Callable[[], None], why: str) -> None:
        try:
            request()
        except Exception:
            log.exception("model events: reconcile after %s failed to start", why)

    def _ensure_subscription(self) -> None:
        settings = self._settings
        request = {
            "name": self.subscription,
            "topic": f"projects/{settings.google_cloud_project}/topics/{settings.model_events_topic}",
            "filter": f'hasPrefix(attributes.objectId, "{layout.MODELS}")',
            "ack_deadline_seconds": ACK_DEADLINE_S,
            "expiration_policy": {"ttl": timedelta(days=settings.subscription_ttl_days)},
            "message_retention_duration": timedelta(minutes=10),  # GCP: must not exceed the TTL
            "retry_policy": {"minimum_backoff": timedelta(seconds=5), "maximum_backoff": timedelta(seconds=60)},
        }
        try:
            self._client.create_subscription(request=request, timeout=10, retry=None)
            log.info("model events: created subscription", extra={"subscription": self.subscription})
        except gexc.AlreadyExists:
            pass

    def _delete_subscription(self, client: pubsub_v1.SubscriberClient, timeout: float) -> None:
        try:
            client.delete_subscription(subscription=self.subscription, timeout=timeout, retry=None)
            log.info("model events: deleted subscription", extra={"subscription": self.subscription})
        except gexc.NotFound:
            pass
        except Exception as e:  # its TTL removes it eventually
            log.warning("model events: could not delete %s: %s", self.subscription, e)

    def _handle(self, message: Message) -> None:
        """Streaming-pull callback (client thread): offer a new artifact, then ack; nack if the store stays down."""
        try:
            event = model_event(message.attributes, message.data, message.publish_time, self._settings.gcs_bucket)
        except Malformed as e:
            log.warning("model events: ignoring malformed message %s: %s", message.message_id, e)
            return self._settle(message, "malformed", ack=True)
        except Exception:  # a parsing bug: ack the poison message, or it would be redelivered forever
            attributes = dict(message.attributes)
            log.exception("model events: cannot parse message %s", message.message_id, extra={"attributes": attributes})
            return self._settle(message, "unparsable", ack=True)
        if event is None:
            return self._settle(message, "ignored", ack=True)
        if self.health is not None:
            self.health.delivered(event.key)
        if event.key in self._seen:
            return self._settle(message, "duplicate", ack=True)
        try:
            done = self._offer(event)
        except Exception:  # a bug in the registry must not kill the subscriber; reconcile catches up
            log.exception("model events: offering %s failed", event.name)
            done = True
        if done:
            self._seen.add(event.key)
        return self._settle(message, "offered" if done else "nacked", ack=done)

    def _settle(self, message: Message, outcome: str, ack: bool) -> None:
        with self._lock:
            self.counts[outcome] += 1
        if self.health is not None:
            self.health.message(outcome)
        if ack:
            message.ack()
        else:
            message.nack()

    def _offer(self, event: ModelEvent) -> bool:
        """Offer `event` to the registry once. False when the store stayed unavailable through its own retries:
        the message is nacked and Pub/Sub's redelivery is the only retry."""
        try:
            record = self._registry.offer(event.name, event.generation, SwapTrigger.NOTIFICATION, event.finalized_at)
        except StoreUnavailable as e:
            log.warning("model events: store unavailable, nacking %s: %s", event.name, e)
            return False
        log.info("model events: offered %s", event.name, extra={"outcome": getattr(record, "outcome", None)})
        if getattr(record, "reason", None) == SkipReason.RATE_LIMITED and self._on_rate_limited is not None:
            self._catch_up(self._on_rate_limited, "a rate-limited offer")
        return True


def _retire(client: pubsub_v1.SubscriberClient, future: Future[Any] | None) -> None:
    """Close a replaced client after its (cancelled or failed) stream has shut down."""
    if future is not None:
        future.cancel()
        with contextlib.suppress(Exception):
            future.result(timeout=RETIRE_TIMEOUT_S)
    client.close()
