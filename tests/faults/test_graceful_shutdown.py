"""Check 9: SIGTERM to a pod with batch requests in flight completes them and deletes the pod's subscription."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from core.iris import EXAMPLES, FEATURES
from tests.faults.load import Answer, call
from tests.faults.report import Row
from tests.faults.stack import Pod, Stack
from tests.polling import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.e2e]
MAX_BATCH_SIZE, GRACEFUL_TIMEOUT, SENDERS = 1000, 15, 8
CHUNKS, CHUNK_PAUSE = 8, 0.03
"""Each batch body is trickled in 8 chunks 30 ms apart: a request stays in flight for a quarter second or more."""
PRE_STOP = 0.05
"""Seconds between the last new request and SIGTERM: the preStop sleep in miniature. Without it, a connection that
is still in gunicorn's listen backlog when SIGTERM arrives is reset (never accepted, so never in flight)."""
BATCH = {"instances": [dict(zip(FEATURES, EXAMPLES[s], strict=True)) for s in list(EXAMPLES) * 334][:MAX_BATCH_SIZE]}


def test_sigterm_completes_in_flight_and_unsubscribes(main_stack: Stack, pods: list[Pod], row: Row) -> None:
    version = pods[0].model()["model_version"]
    pod = main_stack.start_pod("term", GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT), MAX_BATCH_SIZE=str(MAX_BATCH_SIZE))
    try:
        pod.wait_ready(90)
        pod.wait_serving(version, 60)
        before = main_stack.emu.subscriptions()
        ours = [s for s in before if "-term-" in s]
        stop, answers, lock, sending = threading.Event(), list[Answer](), threading.Lock(), set[int]()

        def send(index: int) -> None:
            session = requests.Session() if index % 2 == 0 else None
            while True:
                with lock:  # no request starts once `stop` is set
                    if stop.is_set():
                        return
                    sending.add(index)
                answer = call(session, pod.url + "/predict", BATCH, chunks=CHUNKS, pause=CHUNK_PAUSE)
                with lock:
                    answers.append(answer)
                    sending.discard(index)

        senders = [threading.Thread(target=send, args=(i,)) for i in range(SENDERS)]
        for sender in senders:
            sender.start()
        wait_for(lambda: len(answers) >= 4 * SENDERS, 60, "batch requests flowing")
        with lock:
            stop.set()
        time.sleep(PRE_STOP)
        assert sending, "no request in flight"
        pod.terminate()
        term_at = time.monotonic()
        for sender in senders:
            sender.join(30)
        exit_code = pod.service.process.wait(GRACEFUL_TIMEOUT + 15)
        shutdown_s = time.monotonic() - term_at
        after = main_stack.emu.subscriptions()
    finally:
        main_stack.stop_pod(pod)
    in_flight = [a for a in answers if a.started < term_at < a.started + a.latency]
    row.add_load(len(answers), sum(not a.ok for a in answers), sorted({a.header_version or "" for a in answers}))
    row.note(f"{len(in_flight)} batch requests of {MAX_BATCH_SIZE} (bodies trickled over "
             f"{CHUNKS * CHUNK_PAUSE:.2f} s) in flight at SIGTERM (new requests stopped "
             f"{PRE_STOP * 1000:.0f} ms before), all answered; exit "
             f"{exit_code} after {shutdown_s:.1f} s; subscriptions {len(before)} -> {len(after)}")  # fmt: skip
    assert len(ours) == 1  # the pod's model agent's
    assert in_flight
    assert [(a.started - term_at, a.fresh, a.error) for a in answers if not a.ok] == []
    assert exit_code == 0
    assert sorted(after) == sorted(set(before) - set(ours))
