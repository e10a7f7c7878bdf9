"""The Open Inference Protocol V2 gRPC interface (grpc_predict_v2.proto) and its stubs, generated in the build."""
