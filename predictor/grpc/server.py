"""The gRPC server: the V2 inference service over a data plane, and the health service Kubernetes probes.

Health (``grpc.health.v1``, what Kubernetes' gRPC probes ask): the service ``""`` is SERVING while the server runs
(liveness); ``inference.GRPCInferenceService`` is SERVING once a verified model is loaded (readiness).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from predictor.dataplane import DataPlane
from predictor.grpc.service import InferenceService
from predictor.lifecycle.follower import Follower
from predictor.protos import grpc_predict_v2_pb2_grpc as pb_grpc
from predictor.settings import PredictorSettings

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
POLL_S = 0.2


def build(dataplane: DataPlane, settings: PredictorSettings) -> tuple[grpc.Server, health.HealthServicer, int]:
    """The server (not started), its health servicer and the port it bound (GRPC_PORT on BIND_HOST)."""
    pool = ThreadPoolExecutor(max_workers=settings.grpc_threads, thread_name_prefix="grpc")
    options = [("grpc.max_receive_message_length", settings.max_body_bytes), ("grpc.so_reuseport", 0)]
    server = grpc.server(pool, options=options)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(dataplane), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(f"{settings.bind_host}:{settings.grpc_port}")
    return server, health_servicer, port


def serve(dataplane: DataPlane, follower: Follower, settings: PredictorSettings, stopping: threading.Event) -> None:
    """Serve until ``stopping`` is set, then drain in-flight calls and stop following the handover."""
    server, health_servicer, port = build(dataplane, settings)
    server.start()
    follower.start()
    log.info("gRPC V2 server listening", extra={"port": port, "threads": settings.grpc_threads})
    ready = False
    while not stopping.wait(POLL_S):
        if not ready and dataplane.ready():
            health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
            ready = True
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=settings.graceful_timeout / 2).wait()
    follower.stop()
    log.info("gRPC V2 server stopped")
