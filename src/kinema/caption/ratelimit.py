"""Client-side request pacing, so a captioning run stays under a provider's requests-per-minute limit.

MiniMax counts requests per minute per account and answers 1002 beyond it
(https://platform.minimax.io/docs/guides/rate-limits);
pacing requests evenly avoids the errors instead of retrying after them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from kinema.caption.vlm import ChatBackend
from kinema.clients.minimax import ChatCompletion, Message


class RateLimiter:
    """Spaces calls at least `60 / per_minute` seconds apart, across threads.

    Args:
        per_minute: the request budget per minute.
        clock: monotonic seconds (injectable for tests).
        sleep: how to wait (injectable for tests).
    """

    def __init__(
        self,
        per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if per_minute <= 0:
            raise ValueError(f"requests per minute must be positive, got {per_minute}")
        self.interval = 60.0 / per_minute
        self._clock = clock
        self._sleep = sleep
        self._next = -float("inf")
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for this call's slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait


class RateLimitedChat:
    """A `ChatBackend` that takes a `RateLimiter` slot before every request (retries included)."""

    def __init__(self, chat: ChatBackend, limiter: RateLimiter):
        self.chat = chat
        self.limiter = limiter

    def complete(self, messages: Sequence[Message], json_schema: dict, schema_name: str) -> ChatCompletion:
        self.limiter.acquire()
        return self.chat.complete(messages, json_schema, schema_name)
