"""The data plane of a serving process: liveness, readiness, server and model metadata, and inference.

Transport-neutral (as MLServer's DataPlane): the Flask routes (predictor.http) and the gRPC service
(predictor.grpc) both call it and only translate requests and answers. It reads the process's registry
(predictor.lifecycle.registry), which decides what serves; a request takes the serving model once, so a concurrent
swap never splits a batch. Every inference is recorded in the process's prediction log (predictor.predlog) under
the request's id and route; the transports record their refusals with `refused`. Feedback (true labels for logged
predictions) is judged and spooled by the process's feedback log (predictor.predlog.feedback).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.iris import CLASSES, FEATURES
from predictor.errors import ModelNotReady, NotFound
from predictor.lifecycle.registry import Registry, Serving
from predictor.metrics import Metrics
from predictor.predlog.feedback import FeedbackLog, Item, Verdict
from predictor.predlog.log import PredictionLog
from predictor.settings import PredictorSettings

SERVER_NAME = "iris-predictor"
SERVER_VERSION = "1.0.0"
EXTENSIONS = ("binary_tensor_data",)
"""The Open Inference Protocol extensions this server supports (the V2 binary tensor extension)."""

Rows = Sequence[Sequence[float]]


@dataclass(frozen=True)
class Inference:
    """What one model answered for a batch of rows."""

    version: str
    """The version that answered (every row by the same one)."""
    class_ids: list[int]
    """Per row, the index into CLASSES of the most probable class."""
    probabilities: list[list[float]]
    """Per row, the probability of each class in CLASSES order."""


class DataPlane:
    """One serving process's answers, over its registry."""

    def __init__(
        self,
        registry: Registry,
        settings: PredictorSettings,
        metrics: Metrics,
        log: PredictionLog | None = None,
        feedback_log: FeedbackLog | None = None,
    ) -> None:
        self.registry, self.settings, self.metrics = registry, settings, metrics
        self.log = log or PredictionLog(None)
        """The process's prediction log (disabled unless the composition root builds one)."""
        self.feedback_log = feedback_log or FeedbackLog(None, settings.feedback_max_age)
        """The process's feedback spool (every item `not_logged` unless the composition root builds one)."""

    def live(self) -> bool:
        """True while the process answers at all."""
        return True

    def ready(self) -> bool:
        """True once a verified model serves in this process."""
        return self.registry.ready

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": list(EXTENSIONS)}

    def check_model(self, name: str) -> None:
        """NotFound unless `name` is the model this server serves (MODEL_NAME)."""
        if name != self.settings.model_name:
            raise NotFound(f"unknown model {name[:100]!r}; this server serves {self.settings.model_name!r}")

    def model_metadata(self, name: str) -> dict[str, Any]:
        self.check_model(name)
        version = self.registry.version
        return {
            "name": name,
            "versions": [version] if version else [],
            "platform": "sklearn",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, len(FEATURES)]}],
            "outputs": [
                {"name": "predict", "datatype": "INT64", "shape": [-1]},
                {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(CLASSES)]},
            ],
        }

    def model_ready(self, name: str) -> bool:
        self.check_model(name)
        return self.registry.ready

    def serving(self) -> Serving:
        """The model that answers this request (read once); ModelNotReady before one is loaded."""
        serving = self.registry.serving
        if serving is None:
            raise ModelNotReady("no verified model is loaded yet; retry shortly")
        return serving

    def infer(
        self, rows: Rows, model: Serving | None = None, *, request_id: str | None = None, route: str = "none"
    ) -> Inference:
        """Class ids and probabilities of validated rows from one predict_proba call (of `model`, else the serving
        one), counted in the prediction metrics and recorded in the prediction log under `request_id` (none: not
        recorded) and `route`.

        The column order of predict_proba is ``model.classes_``, which the store's load checks equal CLASSES, so the
        argmax column is the schema's class id.
        """
        model = model or self.serving()
        features = np.array(rows, dtype=np.float64)
        proba = model.predict_proba(features)
        class_ids: list[int] = proba.argmax(axis=1).tolist()
        self.metrics.count_predictions(class_ids)
        version = model.loaded.version
        probabilities = proba.tolist()
        if request_id is not None:  # the log's writer thread serialises these later: nothing here touches them again
            self.log.log_answer(request_id, route, version, features, class_ids, probabilities)
        return Inference(version, class_ids, probabilities)

    def refused(self, request_id: str, route: str, reason: str, status: int) -> None:
        """Record a refused prediction request (its reason and status, never its body)."""
        self.log.log_refusal(request_id, route, reason, status, self.registry.version)

    def feedback(self, items: Sequence[Item], received_at: float) -> list[Verdict]:
        """A verdict per feedback item, in order (predictor.predlog.feedback); accepted ones are spooled as received
        at `received_at`. Never blocks, no I/O."""
        return self.feedback_log.judge(self.log, items, received_at)
