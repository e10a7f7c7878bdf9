"""Pub/Sub client construction: every subscriber and publisher of the project is built here.

The emulator is reached through `PUBSUB_EMULATOR_HOST` from the settings (never the process environment), the real
service over TLS with default credentials. gRPC's reconnect backoff is capped on both: its default grows to 120 s, far
too slow after an emulator restart or a network blip.

Keepalive pings must fit the server. Pub/Sub accepts the client library's own 30 s pings (its transports' channel
options, kept in SERVICE_OPTIONS). The emulator is a grpc-java server with that server's default policy: at most one
ping per 5 minutes on a connection with no call in flight. A client pinging more often is answered with
`GOAWAY too_many_pings` about a minute after its streaming pull goes idle, and messages then go to a dead stream, so
EMULATOR_OPTIONS send no keepalive pings at all (a loopback connection has no middlebox to keep open).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

_RECONNECT: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
_MESSAGES: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_metadata_size", 4 * 1024 * 1024),
]
SERVICE_OPTIONS: list[tuple[str, Any]] = [*_MESSAGES, ("grpc.keepalive_time_ms", 30000), *_RECONNECT]
"""Channel options for Pub/Sub itself: google-cloud-pubsub's transport defaults plus a capped reconnect backoff."""
EMULATOR_OPTIONS: list[tuple[str, Any]] = [*_MESSAGES, *_RECONNECT]
"""Channel options for the emulator: no keepalive pings (its server allows one per 5 minutes on an idle stream)."""


def channel_options(emulator_host: str | None) -> list[tuple[str, Any]]:
    """The channel options that fit the server: the emulator at `emulator_host`, else Pub/Sub."""
    return EMULATOR_OPTIONS if emulator_host else SERVICE_OPTIONS


def channel(emulator_host: str | None) -> grpc.Channel:
    """An insecure channel to the emulator at `emulator_host`, else TLS to Pub/Sub with default credentials."""
    if emulator_host:
        return grpc.insecure_channel(emulator_host, options=channel_options(emulator_host))
    target = f"{SubscriberGrpcTransport.DEFAULT_HOST}:443"
    return SubscriberGrpcTransport.create_channel(target, options=channel_options(None))


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
