"""Open Inference Protocol V2 over gRPC (``inference.GRPCInferenceService``): ``python -m predictor.grpc``.

One process on GRPC_PORT next to gunicorn (a second container of the predictor pod, same image). It follows the pod's
model agent as a gunicorn worker does (predictor.lifecycle.follower), so it serves the same verified, hot-swapped
model, and answers through the same transport-neutral data plane (predictor.dataplane); requests are validated by
the REST V2 route's checks (``predictor.infer_request``). Nothing here imports Flask.
"""
