"""The pod's model agent, ``python -m predictor.agent``: one process per pod owns the model-update machinery.

It holds the pod's one Pub/Sub subscription (subscription), deduplicates notifications, reconciles against models/
(reconcile), downloads and verifies each new artifact once, and hands it to the pod's serving processes over local
disk (predictor.lifecycle.handover), so they do nothing but serve; it alone decides admin pins, unpins and reloads,
once per pod (aspired). It runs as a sidecar container sharing an emptyDir with the serving container, or
as a child of ``python -m predictor`` (START_AGENT). Its metrics (swaps, rejections, swap latency) are written to
PROMETHEUS_MULTIPROC_DIR with the workers', so the pod's /metrics shows them.
"""
