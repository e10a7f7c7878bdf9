"""``inference.GRPCInferenceService``: health, metadata and inference, answered by the data plane.

Each handler translates between protobuf and the transport-neutral data plane (predictor.dataplane) that the REST
routes call too; requests are checked as the REST V2 route checks them (predictor.infer_request, no Flask). A
ServiceError becomes the gRPC status matching its HTTP one, with the same message the REST route gives.
ModelInfer answers under the request's id (its `id`, else the ``x-request-id`` metadata, else a new one), recorded
in the prediction log with route ``grpc``, refusals too.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from core import uuid7
from core.errors import ServiceError
from predictor import infer_request
from predictor.dataplane import DataPlane
from predictor.errors import NotFound, bad_field
from predictor.grpc import convert
from predictor.predlog import ids
from predictor.protos import grpc_predict_v2_pb2 as pb
from predictor.protos import grpc_predict_v2_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
ROUTE = "grpc"
"""The route name of this transport's prediction log records."""
METADATA_KEY = ids.HEADER.lower()
"""The metadata key a client may send its request id in (gRPC metadata keys are lower case)."""
Reply = TypeVar("Reply")
Handler = Callable[[Any, Any, grpc.ServicerContext], Reply]


def _handler(method: Handler[Reply]) -> Handler[Reply]:
    @functools.wraps(method)
    def handle(self: InferenceService, request: Any, context: grpc.ServicerContext) -> Reply:
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
    """The V2 gRPC service of one process, over its data plane."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

    @_handler
    def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.ServicerContext) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=self.dataplane.live())

    @_handler
    def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.ServicerContext) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    @_handler
    def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.ServicerContext) -> pb.ModelReadyResponse:
        self.dataplane.check_model(request.name)
        version = self.dataplane.registry.version
        return pb.ModelReadyResponse(ready=version is not None and request.version in ("", version))

    @_handler
    def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ServerMetadataResponse:
        server = self.dataplane.server_metadata()
        return pb.ServerMetadataResponse(name=server["name"], version=server["version"])

    @_handler
    def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> pb.ModelMetadataResponse:
        meta = self.dataplane.model_metadata(request.name)
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
        header = next((str(v) for k, v in context.invocation_metadata() or () if k == METADATA_KEY), None)
        try:
            request_id = ids.resolve(request.id or None, header)
        except ids.InvalidRequestId as e:
            error = bad_field(e.source, e.message)
            self.dataplane.refused(uuid7.new(), ROUTE, error.message, error.status)
            raise error from e
        try:
            return self._infer(request, request_id)
        except ServiceError as e:
            self.dataplane.refused(request_id, ROUTE, e.message, e.status)
            raise

    def _infer(self, request: pb.ModelInferRequest, request_id: str) -> pb.ModelInferResponse:
        self.dataplane.check_model(request.model_name)
        body, binary_data = convert.request_body(request)
        body["id"] = request_id
        wanted, rows = infer_request.validate(body, self.dataplane.settings.max_batch_size, binary_data)
        model = self.dataplane.serving()  # once: the whole request is answered by this model, whatever swaps meanwhile
        version = model.loaded.version
        if request.model_version and request.model_version != version:
            raise NotFound(f"model {request.model_name} version {request.model_version[:100]!r} is not served; "
                           f"serving {version}")  # fmt: skip
        answer = self.dataplane.infer(rows, model, request_id=request_id, route=ROUTE)
        raw = convert.wants_raw(body, wanted, bool(request.raw_input_contents))
        return convert.response(
            body, wanted, (request.model_name, version), answer.class_ids, answer.probabilities, raw
        )
