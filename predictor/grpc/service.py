"""``inference.GRPCInferenceService``: health, metadata and inference answered by the REST V2 code's own checks.

Every handler runs inside the Flask app's context (the registry, settings and metrics of ``predictor.app``). A
ServiceError becomes the gRPC status matching its HTTP one, with the same message the REST route gives.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from flask import Flask

from core.errors import ServiceError
from predictor import api, extensions, v2
from predictor.errors import NotFound
from predictor.grpc import convert
from predictor.protos import grpc_predict_v2_pb2 as pb
from predictor.protos import grpc_predict_v2_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
Reply = TypeVar("Reply")
Handler = Callable[[Any, Any, grpc.ServicerContext], Reply]


def _handler(method: Handler[Reply]) -> Handler[Reply]:
    @functools.wraps(method)
    def handle(self: InferenceService, request: Any, context: grpc.ServicerContext) -> Reply:
        with self.app.app_context():
            try:
                return method(self, request, context)
            except ServiceError as e:
                code, message = CODES.get(e.status, grpc.StatusCode.INTERNAL), e.message
                if code is grpc.StatusCode.INTERNAL:
                    log.exception("gRPC %s failed", method.__name__)
            except Exception:
                log.exception("gRPC %s failed", method.__name__)
                code, message = grpc.StatusCode.INTERNAL, "internal server error"
        context.abort(code, message)  # raises: the client gets the status and the message
        raise AssertionError("unreachable")

    return handle


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    """The V2 gRPC service of one process, over the registry of ``app``."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.registry, self.settings = extensions.registry(app), extensions.settings(app)

    def _check_name(self, name: str) -> None:
        if name != self.settings.model_name:
            raise NotFound(f"unknown model {name[:100]!r}; this server serves {self.settings.model_name!r}")

    @_handler
    def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.ServicerContext) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @_handler
    def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.ServicerContext) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.registry.ready)

    @_handler
    def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.ServicerContext) -> pb.ModelReadyResponse:
        self._check_name(request.name)
        version = self.registry.version
        return pb.ModelReadyResponse(ready=version is not None and request.version in ("", version))

    @_handler
    def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ServerMetadataResponse:
        server = v2.server_metadata()
        return pb.ServerMetadataResponse(name=server["name"], version=server["version"])

    @_handler
    def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ModelMetadataResponse:
        self._check_name(request.name)
        meta = v2.model_metadata(request.name)
        if request.version and request.version not in meta["versions"]:
            raise NotFound(f"model {request.name} has no version {request.version[:100]!r}: {meta['versions']}")
        tensors = {
            key: [pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta[key]] for key in ("inputs", "outputs")
        }
        return pb.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"], **tensors
        )

    @_handler
    def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.ServicerContext) -> pb.ModelInferResponse:
        self._check_name(request.model_name)
        body, binary = convert.request_body(request)
        wanted, rows = v2.validate(body, self.settings.max_batch_size, binary)
        model = api.serving()  # once: the whole request is answered by this model, whatever swaps meanwhile
        version = model.loaded.version
        if request.model_version and request.model_version != version:
            raise NotFound(f"model {request.model_name} version {request.model_version[:100]!r} is not served; "
                           f"serving {version}")  # fmt: skip
        class_ids, proba = api.run_model(model, rows)
        raw = convert.wants_raw(body, wanted, bool(request.raw_input_contents))
        return convert.response(body, wanted, (request.model_name, version), class_ids, proba, raw)
