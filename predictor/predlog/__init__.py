"""The prediction log: every answered or refused prediction, recorded off the request path, shipped to the bucket.

Path of a record (no Flask, no gRPC here: the data plane calls it, whatever the transport):

1. request path (``PredictionLog.log_answer`` / ``log_refusal``, predictor.predlog.log): the sampling decision
   (CRC-32 of the request id against PREDICTION_LOG_SAMPLE_RATE: deterministic, so feedback can tell a sampled-out
   id from an unknown one), one small frozen object, one ``deque.append``. No lock, no I/O, no JSON; when the queue
   holds PREDICTION_LOG_QUEUE_SIZE records the new one is dropped and counted (a request never waits for the log,
   and a stalled disk cannot eat the worker's memory).
2. the process's writer thread (predictor.predlog.spool) serialises to JSON lines and appends, one ``write`` per
   drain, to its own spool file in PREDICTION_LOG_DIR, a local folder the pod's containers share. Files rotate by size,
   age and UTC day and become ready by an atomic rename, so the shipper only sees complete files. Writers hold a
   flock on their open file: the shipper recognises a dead writer's file by taking the lock, and ships it too.
   ``close()`` (worker exit) writes everything queued: a clean shutdown loses nothing.
3. the shipper (predictor.predlog.shipper), one per pod in the model agent's process, uploads each ready file as
   gzip-compressed JSON lines under PREDICTION_LOG_PREFIX, partitioned ``date=YYYY-MM-DD/``, create-only
   (``if_generation_match=0``) under a name derived from the file, and deletes the file only after the bucket has
   it: a restarted agent re-ships what it had not deleted, never twice. While the bucket is down, files wait on disk
   (at most PREDICTION_LOG_MAX_SPOOL_BYTES; beyond, the oldest is dropped and counted) and the shipper backs off.

In a pod: PREDICTION_LOG_DIR must be a folder of its own that the serving containers and the agent both mount
read-write (the handover emptyDir is memory-backed and read-only in the serving container), an emptyDir on disk whose
sizeLimit leaves room for PREDICTION_LOG_MAX_SPOOL_BYTES plus one open file (PREDICTION_LOG_ROTATE_BYTES) per
serving process; the agent's service account needs to create objects under PREDICTION_LOG_PREFIX (never to
overwrite or delete them). The agent stops after the serving processes (a native sidecar; the gunicorn master's
on_exit), so its last pass ships the files they closed on their way out; what it cannot ship in that pass stays in
the emptyDir for the agent's next start (lost only if the pod itself goes).

Why these choices: a per-process spool on local disk rather than a socket to the agent, because the agent is a
separate container that restarts independently (a restart must not lose or block anything); files per process
rather than one shared file, because appends from several processes would need a lock on the request path; the
object name from the spool file rather than from the first request id, because client-supplied ids may repeat
and a create-only upload under a repeated name would lose the second file. Outcomes are counted in
``predictor_prediction_log_records_total{outcome}`` (predictor.predlog.metrics). Records (predictor.predlog.record)
carry the request id (predictor.predlog.ids) that every answer returns, so feedback can name a prediction.
"""
