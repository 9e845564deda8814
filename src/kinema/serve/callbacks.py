"""Callbacks as MiniMax sends them.

The protocol: the `callback_url` section of https://platform.minimax.io/docs/api-reference/video-generation-t2v.

1. When a task with `callback_url` is created, the service POSTs `{"challenge": "<random>"}` and the
   receiver must answer `{"challenge": "<same>"}` within 3 s, or the task is not created.
2. Each status change is then POSTed with the query answer's shape and a lower-case status:
   `processing`, `success`, `failed`. Pushes come from the store's outbox (`callbacks` table), written
   in the same transaction as the status change, so they survive a restart; a receiver that is down
   is retried with backoff, and each task's pushes arrive in order.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from urllib.parse import urlsplit

import httpx

from kinema.serve.store import CallbackEvent, TaskStore

log = logging.getLogger("kinema.serve.callbacks")

RETRY_BACKOFF_S = (1.0, 5.0, 30.0, 120.0, 600.0)  # then give up


def check_callback_url(url: str, allowed_hosts: tuple[str, ...] | None) -> str | None:
    """None if the service may call `url`, else why not (one sentence)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"callback_url {url[:200]!r} is not an http(s) URL"
    if allowed_hosts is not None and parts.hostname.lower() not in allowed_hosts:
        return f"callback_url host {parts.hostname!r} is not allowed on this server"
    return None


async def handshake(client: httpx.AsyncClient, url: str, timeout_s: float) -> str | None:
    """Send the challenge; None if the receiver echoed it in time, else why not."""
    challenge = secrets.token_urlsafe(18)
    try:
        resp = await client.post(url, json={"challenge": challenge}, timeout=timeout_s)
        echoed = resp.json().get("challenge") if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError) as e:
        return f"callback_url did not answer the challenge within {timeout_s:g} s ({type(e).__name__})"
    if echoed != challenge:
        return f"callback_url answered HTTP {resp.status_code} without echoing the challenge"
    return None


async def deliver_due(store: TaskStore, client: httpx.AsyncClient, timeout_s: float) -> int:
    """Send every push that is due (concurrently across tasks); returns how many were delivered."""
    events = store.due_callbacks()
    results = await asyncio.gather(*(_post(client, e, timeout_s) for e in events))
    for event, ok in zip(events, results):
        if ok:
            store.callback_sent(event.id)
        else:
            retry = RETRY_BACKOFF_S[event.attempts] if event.attempts < len(RETRY_BACKOFF_S) else None
            if retry is None:
                log.warning("giving up on callback %s for task %s after %d attempts", event.url, event.task_id,
                            event.attempts + 1)
            store.callback_failed(event.id, retry)
    return sum(results)


async def _post(client: httpx.AsyncClient, event: CallbackEvent, timeout_s: float) -> bool:
    try:
        resp = await client.post(event.url, json=event.body, timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return 200 <= resp.status_code < 300
