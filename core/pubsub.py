"""Pub/Sub client construction: every subscriber and publisher of the project is built here.

The emulator is reached through `PUBSUB_EMULATOR_HOST` from the settings (never the process environment), the real
service over TLS with default credentials. gRPC's reconnect backoff is capped by CHANNEL_OPTIONS: its default grows
to 120 s, far too slow after an emulator restart or a network blip.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]
"""gRPC channel options of every client (the library's defaults plus a capped reconnect backoff)."""


def channel(emulator_host: str | None) -> grpc.Channel:
    """An insecure channel to the emulator at `emulator_host`, else TLS to Pub/Sub with default credentials."""
    if emulator_host:
        return grpc.insecure_channel(emulator_host, options=CHANNEL_OPTIONS)
    target = f"{SubscriberGrpcTransport.DEFAULT_HOST}:443"
    return SubscriberGrpcTransport.create_channel(target, options=CHANNEL_OPTIONS)


def subscriber_client(emulator_host: str | None, on: grpc.Channel | None = None) -> pubsub_v1.SubscriberClient:
    """A subscriber client on channel `on` (by default a new channel(emulator_host))."""
    host = emulator_host or SubscriberGrpcTransport.DEFAULT_HOST
    transport = SubscriberGrpcTransport(host=host, channel=on or channel(emulator_host))
    return pubsub_v1.SubscriberClient(transport=transport)


def publisher_client(emulator_host: str | None) -> pubsub_v1.PublisherClient:
    """A publisher client for the emulator at `emulator_host`, else for Pub/Sub."""
    if not emulator_host:
        return pubsub_v1.PublisherClient()
    transport = PublisherGrpcTransport(host=emulator_host, channel=channel(emulator_host))
    return pubsub_v1.PublisherClient(transport=transport)
