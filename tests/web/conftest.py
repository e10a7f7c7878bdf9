"""Fixtures of the browser tests: headless Debian Chromium driven by Playwright, and a real `python -m predictor`."""

from __future__ import annotations

import copy
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from sklearn.datasets import load_iris
from sklearn.pipeline import Pipeline

from core import training_sample
from core.iris import CLASSES
from core.lineage import Lineage
from core.store import ModelStore
from devstack.emulators import Service, free_port, spawn

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "web"
START_TIMEOUT = 60.0
EXPECT_TIMEOUT_MS = 10_000
"""Playwright assertion timeout: generous, since CI machines run the emulators and the browser side by side."""
FIRST_METRICS = {"accuracy": 0.97, "f1_macro": 0.969}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: install Debian's chromium (apt-get install -y chromium)")
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def start_predictor(env: dict[str, str], log_path: Path) -> Service:
    """`python -m predictor` in its own process group, on a free port, ready once /readyz answers 200."""
    port = free_port()
    full_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env, "PORT": str(port)}
    service = spawn("predictor", [sys.executable, "-m", "predictor"], port, log_path, full_env, cwd=REPO)
    try:
        wait_ready(service)
    except BaseException:
        service.stop()
        raise
    return service


def wait_ready(service: Service) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(f"predictor exited with {service.process.returncode}:\n{service.log_tail()}")
        try:
            if requests.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"predictor not ready after {START_TIMEOUT:g} s:\n{service.log_tail()}")


@pytest.fixture(scope="session")
def fitted_model(fitted_model: Pipeline) -> Pipeline:
    """The shared fitted pipeline with its training sample attached, as the trainer publishes models now."""
    iris = load_iris()
    sampled = copy.deepcopy(fitted_model)
    training_sample.attach(sampled, iris.data, np.asarray(CLASSES)[iris.target])
    return sampled


@pytest.fixture
def first_model(store: ModelStore, fitted_model: Pipeline) -> Lineage:
    """The model the predictor starts with."""
    return store.publish(fitted_model, data_fingerprint="sha256:first", row_count=150, metrics=FIRST_METRICS)


@pytest.fixture
def predictor(common_env: dict[str, str], first_model: Lineage, tmp_path: Path) -> Iterator[Service]:
    """A predictor serving `first_model`, with events off and a 1 s reconcile poll."""
    env = {
        **common_env,
        "WEB_CONCURRENCY": "1",
        "MODEL_EVENTS_ENABLED": "false",
        "RECONCILE_INTERVAL_WITHOUT_EVENTS": "1",
    }
    service = start_predictor(env, tmp_path / "predictor.log")
    try:
        yield service
    finally:
        service.stop()


class Console:
    """What the page did: uncaught errors, HTTP error responses and the hosts it sent requests to."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.origins: set[str] = set()
        page.on("request", lambda r: self.origins.add(urlsplit(r.url).netloc))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("requestfailed", lambda r: self.failed.append(f"failed {r.url}"))


def screenshot(page: Page | Locator, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot (or one of a part of it) in the test's folder, copied to test-output/web/ at the repo
    root."""
    path = tmp_path / f"{name}.png"
    if isinstance(page, Locator):
        page.screenshot(path=path)
    else:
        page.screenshot(path=path, full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SCREENSHOTS / path.name)
    return path
