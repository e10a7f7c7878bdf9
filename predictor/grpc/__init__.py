"""Open Inference Protocol V2 over gRPC (``inference.GRPCInferenceService``): ``python -m predictor.grpc``.

One process on GRPC_PORT next to gunicorn (a second container of the predictor pod, same image). It builds the Flask
app only for its model registry and runs the same background model updates as a gunicorn worker (following the
pod's model agent), so it serves the same verified, hot-swapped model; requests are validated and answered by the
REST V2 code (``predictor.v2``).
"""
