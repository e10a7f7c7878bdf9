"""Typed access to a predictor app's per-app state (kept in ``app.extensions``): settings, registry, metrics, the
data plane, and under gunicorn the handover follower and pod readiness.

`install` puts them there once, in the app factory; every reader goes through the accessors, which check the type, so
no module spells the keys or casts what it gets.
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import Flask, current_app

from predictor.dataplane import DataPlane
from predictor.lifecycle.follower import Follower
from predictor.lifecycle.readiness import PodReadiness
from predictor.lifecycle.registry import Registry
from predictor.metrics import Metrics
from predictor.settings import PredictorSettings

T = TypeVar("T")
SETTINGS, REGISTRY, METRICS, DATAPLANE = "settings", "registry", "metrics", "dataplane"
FOLLOWER, POD_READINESS = "follower", "pod_readiness"


def install(
    app: Flask,
    dataplane: DataPlane,
    follower: Follower | None = None,
    pod_readiness: PodReadiness | None = None,
) -> None:
    app.extensions.update({
        SETTINGS: dataplane.settings, REGISTRY: dataplane.registry, METRICS: dataplane.metrics, DATAPLANE: dataplane,
        FOLLOWER: follower, POD_READINESS: pod_readiness,
    })  # fmt: skip


def settings(app: Flask | None = None) -> PredictorSettings:
    """The app's settings (the current app's by default)."""
    return _get(app, SETTINGS, PredictorSettings)


def registry(app: Flask | None = None) -> Registry:
    """The app's model registry."""
    return _get(app, REGISTRY, Registry)


def metrics(app: Flask | None = None) -> Metrics:
    """The app's metric families."""
    return _get(app, METRICS, Metrics)


def dataplane(app: Flask | None = None) -> DataPlane:
    """The app's data plane (what the routes answer with)."""
    return _get(app, DATAPLANE, DataPlane)


def follower(app: Flask | None = None) -> Follower | None:
    """The app's handover follower; None without a handover (a test client on the bucket)."""
    return _optional(app, FOLLOWER, Follower)


def pod_readiness(app: Flask | None = None) -> PodReadiness | None:
    """The pod's readiness under gunicorn; None elsewhere (readiness is this process's)."""
    return _optional(app, POD_READINESS, PodReadiness)


def _get(app: Flask | None, key: str, kind: type[T]) -> T:
    found: Any = (app or current_app).extensions.get(key)
    if not isinstance(found, kind):
        raise RuntimeError(f"the app has no {kind.__name__} (built by predictor.http.app.create_app?)")
    return found


def _optional(app: Flask | None, key: str, kind: type[T]) -> T | None:
    found: Any = (app or current_app).extensions.get(key)
    return found if isinstance(found, kind) else None
