"""GET /v1/model: the serving version, its lineage, its pin, the recent swap history of this worker, and the pod's
model agent as this worker sees it (alive, heartbeat age, whether workers lag it: predictor.podhealth)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from predictor import extensions, podhealth

bp = Blueprint("model_info", __name__)


@bp.get("/v1/model")
def model() -> dict[str, Any]:
    registry = extensions.registry()
    current = registry.current
    pod = podhealth.view(current_app)
    return {
        "model_version": current.version if current else None,
        "lineage": current.lineage.as_dict() if current else None,
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
