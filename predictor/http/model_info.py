"""GET /v1/model: the serving version, its lineage, its pin, the recent swap history of this worker, and the pod's
model agent as this worker sees it (alive, heartbeat age, whether workers lag it: predictor.lifecycle.podhealth), and
the serving version's live accuracy from feedback; GET /v1/model/monitoring: live accuracy and drift
(predictor.http.monitoring)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from predictor.http import extensions, monitoring
from predictor.lifecycle import podhealth

bp = Blueprint("model_info", __name__)


@bp.get("/v1/model")
def model() -> dict[str, Any]:
    registry, follower = extensions.registry(), extensions.follower()
    serving = registry.serving
    current = serving.loaded if serving else None
    pod = podhealth.view(follower.directory, registry, extensions.metrics()) if follower else None
    return {
        "model_version": current.version if current else None,
        "lineage": current.lineage.as_dict() if current else None,
        "live_accuracy": monitoring.live_accuracy(current.version if current else None),
        "object": current.ref.name if current else None,
        "generation": current.ref.generation if current else None,
        "loaded_at": registry.loaded_at.isoformat() if registry.loaded_at else None,
        "loaded_trigger": registry.loaded_trigger,
        "pinned": registry.pinned,
        "ready": current is not None,
        "history": [record.as_dict() for record in registry.history()],
        "agent": pod["agent"] if pod else None,
        "behind": pod["behind"] if pod else None,
        "degraded": pod["degraded"] if pod else [],
    }


@bp.get("/v1/model/monitoring")
def model_monitoring() -> dict[str, Any]:
    return monitoring.answer()
