"""The gRPC servicer in process, over a real channel with the generated stub: the answers the two client libraries
cannot ask for (no model yet, version-specific readiness and metadata, the repository extension)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from sklearn.pipeline import Pipeline

from devstack.emulators import free_port
from predictor.dataplane import DataPlane
from predictor.grpc.server import build
from predictor.protos import grpc_predict_v2_pb2 as pb
from predictor.protos import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.predictor.conftest import VERSION, install


@pytest.fixture
def stub(dataplane: DataPlane) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    settings = dataplane.settings.model_copy(update={"grpc_port": free_port(), "bind_host": "127.0.0.1"})
    server, _, port = build(dataplane, settings)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pb_grpc.GRPCInferenceServiceStub(channel)
    finally:
        server.stop(grace=None)


def infer_request() -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="iris")
    message.inputs.add(name="x", datatype="FP64", shape=[1, 4]).contents.fp64_contents.extend([5.1, 3.5, 1.4, 0.2])
    return message


def code_and_details(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_before_a_model_loads(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest()).live is True
    assert stub.ServerReady(pb.ServerReadyRequest()).ready is False
    assert stub.ModelReady(pb.ModelReadyRequest(name="iris")).ready is False
    assert stub.ModelMetadata(pb.ModelMetadataRequest(name="iris")).versions == []
    code, details = code_and_details(lambda: stub.ModelInfer(infer_request()))
    assert code is grpc.StatusCode.UNAVAILABLE
    assert "no verified model" in details


def test_versions_metadata_and_the_repository_extension(
    dataplane: DataPlane, fitted_model: Pipeline, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    install(dataplane, fitted_model)
    assert stub.ServerReady(pb.ServerReadyRequest()).ready is True
    assert stub.ModelReady(pb.ModelReadyRequest(name="iris", version=VERSION)).ready is True
    assert stub.ModelReady(pb.ModelReadyRequest(name="iris", version="19990101T000000000000Z")).ready is False
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="iris", version=VERSION))
    assert (list(meta.versions), meta.platform) == ([VERSION], "sklearn")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        ("predict", "INT64", [-1]),
        ("predict_proba", "FP64", [-1, 3]),
    ]
    server = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert (server.name, list(server.extensions)) == ("iris-predictor", [])
    code, details = code_and_details(lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="iris", version="v9")))
    assert (code, "has no version 'v9'" in details) == (grpc.StatusCode.NOT_FOUND, True)
    code, _ = code_and_details(lambda: stub.ModelReady(pb.ModelReadyRequest(name="tulip")))
    assert code is grpc.StatusCode.NOT_FOUND
    code, _ = code_and_details(lambda: stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris")))
    assert code is grpc.StatusCode.UNIMPLEMENTED
    answer = stub.ModelInfer(infer_request())
    assert (answer.model_version, list(answer.outputs[0].contents.int64_contents)) == (VERSION, [0])
