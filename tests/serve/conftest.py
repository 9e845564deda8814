"""Fixtures for the service tests: one tiny pipeline, and two real services on 127.0.0.1 shared by the tests.

`live`: one generation worker, 30 API keys (a test takes fresh keys so per-key rate limits never
interfere), 5 creations per key per minute, callbacks only to 127.0.0.1.
`queue_only`: no workers, a queue bound of 3: tasks stay queued (for queue limits and fuzzing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serve_helpers import ServiceProcess, build_tiny_pipeline

LIVE_KEYS = tuple(f"live-key-{i}" for i in range(30))
QUEUE_KEY = "queue-key"
LIVE_RPM = 5


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("pipeline") / "tiny")


@pytest.fixture(scope="session")
def live(tiny_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    options = ["--workers", "1", "--threads", "1", "--rpm", str(LIVE_RPM), "--callback-host", "127.0.0.1"]
    for key in LIVE_KEYS:
        options += ["--api-key", key]
    service = ServiceProcess(tiny_pipeline, tmp_path_factory.mktemp("live") / "data", *options)
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def _live_keys() -> Iterator[str]:
    return iter(LIVE_KEYS)


@pytest.fixture
def new_key(_live_keys: Iterator[str]) -> Callable[[], str]:
    """A key of the live service no other test has used."""
    return lambda: next(_live_keys)


@pytest.fixture(scope="session")
def queue_only(tiny_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        tiny_pipeline, tmp_path_factory.mktemp("queue") / "data", "--workers", "0", "--max-queue", "3",
        "--rpm", "100000", "--query-rpm", "100000", "--api-key", QUEUE_KEY, "--callback-host", "127.0.0.1",
    )
    service.start()
    yield service
    service.stop()
