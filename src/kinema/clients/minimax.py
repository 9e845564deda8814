"""A client for MiniMax's open platform: video generation and vision chat.

Written from MiniMax's API reference (https://platform.minimax.io/docs/api-reference/video-generation-intro
and the pages it links), and against the failures users report with the existing clients (requests
without timeouts, MiniMax-AI/MiniMax-MCP issue #64; polls that ignore `base_resp`): explicit timeouts on
every request; `base_resp` checked on every response, including every poll, so an expired key or a
rate limit never spins until the deadline; retries with backoff only where they are safe (a create is
not re-sent once it may have reached the server); statuses compared case-insensitively (`Fail`,
`failed`, ...); `file_id` a string in kinema's API whatever the server sends; per-model parameter
checks before sending (`video_params`); downloads streamed to a temporary file without the API key,
then renamed, with a fresh URL from `files/retrieve` on every retry.

    with MiniMaxClient(MiniMaxConfig.from_env()) as client:
        result = client.generate_video(VideoRequest(prompt="a red fox runs"), Path("fox.mp4"))
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from kinema.clients.errors import (
    CONTENT_CODES,
    RATE_LIMIT_CODES,
    MiniMaxAPIError,
    MiniMaxError,
    MiniMaxTaskFailed,
    MiniMaxTimeoutError,
    MiniMaxTransportError,
    error_for,
)
from kinema.clients.responses import (
    ChatCompletion,
    FileInfo,
    Message,
    TaskStatus,
    Usage,
    VideoResult,
    base_resp,
    id_or_none,
    json_or_none,
    parse_chat_completion,
)
from kinema.clients.video_params import VideoRequest, build_video_body
from kinema.fsutil import atomic_path

log = logging.getLogger(__name__)

INTERNATIONAL_HOST = "https://api.minimax.io"
MAINLAND_HOST = "https://api.minimaxi.com"
# MiniMax's own domains: the current hosts and the legacy `api.minimaxi.chat` / `api.minimax.chat`.
# Only these need a key; a self-hosted server (`kinema serve` on loopback) may take none.
MINIMAX_DOMAINS = ("minimax.io", "minimaxi.com", "minimax.chat", "minimaxi.chat")
CHAT_PATH = "/v1/text/chatcompletion_v2"
# The model MiniMax documents as taking both images and a json_schema (api-reference/text-post).
DEFAULT_CHAT_MODEL = "MiniMax-Text-01"


@dataclass(frozen=True)
class MiniMaxConfig:
    """How to reach MiniMax and how patient to be.

    Attributes:
        api_key: the platform key, sent as `Authorization: Bearer`. Required for MiniMax's own
            hosts; empty means no `Authorization` header, for a self-hosted server that needs none
            (`kinema serve` without `--api-key` on loopback).
        base_url: API host: the international `https://api.minimax.io` (default), the mainland
            `https://api.minimaxi.com`, or a self-hosted server such as `kinema serve`. A trailing
            `/v1` is accepted and dropped.
        group_id: appended as `GroupId=` only if set (older docs required it on file retrieval).
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for a create or chat response.
        query_timeout: seconds to wait for a query or retrieve response.
        download_timeout: seconds between bytes of a download.
        max_retries: retries of one request after transient failures.
        backoff_s: first backoff; doubles per retry up to `max_backoff_s` (with jitter).
        rate_limit_backoff_s: first backoff after a rate-limit code (MiniMax counts per minute).
        max_backoff_s: longest single wait between retries.
        poll_interval_s: first wait between status polls; grows by half per poll up to `max_poll_interval_s`.
        max_poll_interval_s: longest wait between polls.
        poll_deadline_s: give up waiting for a task after this long; None = 20 min for Hailuo
            models (1080P and 10 s clips can take 5+ min; MiniMax's MCP server allows 20 min
            for Hailuo-02) and 10 min for the rest.
        download_retries: extra download attempts, each with a freshly retrieved URL.
    """

    api_key: str = ""
    base_url: str = INTERNATIONAL_HOST
    group_id: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    query_timeout: float = 30.0
    download_timeout: float = 60.0
    max_retries: int = 4
    backoff_s: float = 1.0
    rate_limit_backoff_s: float = 10.0
    max_backoff_s: float = 60.0
    poll_interval_s: float = 5.0
    max_poll_interval_s: float = 30.0
    poll_deadline_s: float | None = None
    download_retries: int = 3

    def __post_init__(self) -> None:
        base = self.base_url.strip().rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"MiniMax base URL {self.base_url!r} must start with http:// or https://")
        object.__setattr__(self, "base_url", base)
        object.__setattr__(self, "api_key", self.api_key.strip())
        if not self.api_key and is_minimax_host(base):
            raise ValueError(
                f"no MiniMax API key for {base}: set MINIMAX_API_KEY (and MINIMAX_API_HOST=https://api.minimaxi.com "
                "for a mainland-China key)"
            )
        for name in ("connect_timeout", "read_timeout", "query_timeout", "download_timeout", "poll_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"MiniMaxConfig.{name} must be positive, got {getattr(self, name)}")
        if self.max_retries < 0 or self.download_retries < 0:
            raise ValueError("MiniMaxConfig retry counts must be >= 0")

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, api_key: str | None = None, base_url: str | None = None
    ) -> MiniMaxConfig:
        """Config from `MINIMAX_API_KEY`, `MINIMAX_API_HOST` and `MINIMAX_GROUP_ID` (`env`: default
        the process environment); `api_key` / `base_url` override them when given. Other fields keep
        their defaults: change them with `dataclasses.replace`.

        Raises:
            ValueError: when no API key is given either way and the host is MiniMax's.
        """
        env = os.environ if env is None else env
        key = api_key or env.get("MINIMAX_API_KEY", "")
        return cls(
            api_key=key,
            base_url=base_url or env.get("MINIMAX_API_HOST") or INTERNATIONAL_HOST,
            group_id=env.get("MINIMAX_GROUP_ID") or None,
        )

    def poll_deadline_for(self, model: str) -> float:
        """Seconds to wait for a task of `model` before giving up."""
        if self.poll_deadline_s is not None:
            return self.poll_deadline_s
        return 1200.0 if model.startswith("MiniMax-Hailuo") else 600.0


def is_minimax_host(base_url: str) -> bool:
    """Whether `base_url` points at one of MiniMax's own hosts (any subdomain of `MINIMAX_DOMAINS`)."""
    host = (urlsplit(base_url).hostname or "").lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in MINIMAX_DOMAINS)


class _DownloadRefused(Exception):
    """The download URL answered 401/403/404/410: expired or revoked; fetch a fresh one."""


class MiniMaxClient:
    """Synchronous MiniMax client; thread-safe (one pooled httpx client), use as a context manager."""

    def __init__(self, config: MiniMaxConfig):
        self.config = config
        headers = {"Accept": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout)
        self._api = httpx.Client(base_url=config.base_url, headers=headers, timeout=timeout)
        # Downloads go to pre-signed object-storage URLs: never send them the API key
        # (api-reference/video-generation-download).
        self._files = httpx.Client(
            timeout=httpx.Timeout(config.download_timeout, connect=config.connect_timeout),
            follow_redirects=True,
        )

    def __enter__(self) -> MiniMaxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._api.close()
        self._files.close()

    # ---------------------------------------------------------------- video generation

    def create_video(self, request: VideoRequest) -> str:
        """Create a generation task (`POST /v1/video_generation`); returns its task id.

        Raises:
            ValueError: the request is invalid for its model (checked before sending).
            MiniMaxAPIError: the API refused it (e.g. 2013 invalid params, 1008 balance, 1026 prompt).
        """
        body = build_video_body(request)
        data = self._call("POST", "/v1/video_generation", json=body, idempotent=False)
        task_id = str(data.get("task_id") or "")
        if not task_id:
            raise MiniMaxTransportError("MiniMax accepted the video request but returned no task_id")
        return task_id

    def query_video(self, task_id: str) -> TaskStatus:
        """One status query (`GET /v1/query/video_generation`).

        Raises:
            MiniMaxTaskFailed: the task failed, or its input/output was flagged (1026 / 1027).
            MiniMaxAPIError: any other terminal error (bad key, unknown task, ...).
        """
        data = self._call(
            "GET", "/v1/query/video_generation", params={"task_id": task_id},
            timeout=self.config.query_timeout, pass_codes=CONTENT_CODES,
            # A failed task carries its failure code in base_resp: that is the task's outcome, to be
            # raised as MiniMaxTaskFailed, not an API error to retry (a self-hosted server fails with 1000).
            final=lambda body: str(body.get("status", "")).lower() in ("fail", "failed"),
        )
        code, msg = base_resp(data)
        status = TaskStatus(
            task_id=str(data.get("task_id") or task_id),
            status=str(data.get("status") or ""),
            file_id=id_or_none(data.get("file_id")),
            video_width=int(data.get("video_width") or 0),
            video_height=int(data.get("video_height") or 0),
            status_code=code,
            status_msg=msg,
        )
        if status.state == "fail" or code in CONTENT_CODES:
            raise MiniMaxTaskFailed(task_id, code, msg if msg and msg != "success" else "")
        if status.state == "pending" and status.status.lower() not in ("preparing", "queueing", "processing", ""):
            log.warning("MiniMax task %s has an unknown status %r; treating it as pending", task_id, status.status)
        return status

    def wait_for_video(
        self, task_id: str, *, deadline_s: float, on_status: Callable[[TaskStatus], None] | None = None
    ) -> TaskStatus:
        """Poll until the task succeeds with a file id; returns the final status.

        Raises:
            MiniMaxTaskFailed: the task failed.
            MiniMaxTimeoutError: still pending after `deadline_s` seconds.
        """
        start = time.monotonic()
        interval = self.config.poll_interval_s
        while True:
            status = self.query_video(task_id)
            if on_status is not None:
                on_status(status)
            if status.state == "success" and status.file_id:
                return status
            if status.state == "success":
                log.warning("MiniMax task %s reports Success without a file_id; polling again", task_id)
            waited = time.monotonic() - start
            if waited + interval > deadline_s:
                raise MiniMaxTimeoutError(task_id, status.status, waited)
            time.sleep(interval)
            interval = min(interval * 1.5, self.config.max_poll_interval_s)

    def retrieve_file(self, file_id: str) -> FileInfo:
        """Fetch a file's metadata and a fresh download URL (`GET /v1/files/retrieve`)."""
        for attempt in range(self.config.max_retries + 1):
            data = self._call(
                "GET", "/v1/files/retrieve", params={"file_id": str(file_id)}, timeout=self.config.query_timeout
            )
            file = data.get("file")
            if isinstance(file, dict) and file.get("download_url"):
                return FileInfo(
                    file_id=str(file.get("file_id", file_id)),
                    download_url=str(file["download_url"]),
                    bytes=int(file.get("bytes") or 0),
                    filename=str(file.get("filename") or ""),
                    backup_download_url=file.get("backup_download_url") or None,
                )
            if attempt < self.config.max_retries:
                time.sleep(self._backoff(attempt, rate_limited=False))
        raise MiniMaxTransportError(f"MiniMax files/retrieve gave no download_url for file {file_id}")

    def download_file(self, file_id: str, dest: Path) -> FileInfo:
        """Download a file to `dest` (streamed to a temporary file in the same folder, then renamed).

        Every retry fetches a fresh URL first, since download URLs expire (1 h per the CN docs);
        the backup URL is tried when the main one fails.

        Raises:
            MiniMaxTransportError: every attempt failed; `dest` is left untouched.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        failures: list[str] = []
        for attempt in range(self.config.download_retries + 1):
            if attempt:
                time.sleep(self._backoff(attempt - 1, rate_limited=False))
            info = self.retrieve_file(file_id)
            for url in (info.download_url, info.backup_download_url):
                if not url:
                    continue
                try:
                    self._stream_to(self._download_url(url), dest, expected_bytes=info.bytes)
                    return info
                except _DownloadRefused as e:
                    failures.append(f"{e} (URL expired or refused)")
                except (httpx.HTTPError, OSError, MiniMaxTransportError) as e:
                    failures.append(str(e) or type(e).__name__)
        raise MiniMaxTransportError(
            f"could not download MiniMax file {file_id} after {len(failures)} attempts; last: {failures[-1]}"
        )

    def generate_video(
        self,
        request: VideoRequest,
        output: Path,
        *,
        deadline_s: float | None = None,
        on_status: Callable[[TaskStatus], None] | None = None,
    ) -> VideoResult:
        """Create a task, wait for it, and download the video to `output`."""
        task_id = self.create_video(request)
        deadline = deadline_s if deadline_s is not None else self.config.poll_deadline_for(request.model)
        status = self.wait_for_video(task_id, deadline_s=deadline, on_status=on_status)
        assert status.file_id is not None
        self.download_file(status.file_id, output)
        return VideoResult(
            task_id=task_id, file_id=status.file_id, path=Path(output),
            video_width=status.video_width, video_height=status.video_height, bytes=Path(output).stat().st_size,
        )

    # ---------------------------------------------------------------- vision chat

    def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str = DEFAULT_CHAT_MODEL,
        json_schema: dict | None = None,
        schema_name: str = "response",
        max_completion_tokens: int = 2048,
        temperature: float = 0.1,
    ) -> ChatCompletion:
        """One chat completion (`POST /v1/text/chatcompletion_v2`), images as `image_url` parts.

        Args:
            messages: OpenAI-style messages; user content may be a list of
                `{"type": "text", ...}` and `{"type": "image_url", "image_url": {"url": ...}}` parts.
            model: chat model; `MiniMax-Text-01` takes images and a JSON schema.
            json_schema: if given, sent as `response_format={"type": "json_schema", ...}`
                (MiniMax documents this for `MiniMax-Text-01` only).
            schema_name: the schema's name (`^\\w+$`, at most 64 characters).
            max_completion_tokens: set explicitly: Text-01's default is only 2048 (text-post page).
            temperature: in (0, 1]; MiniMax rejects 0.

        Raises:
            ValueError: temperature outside (0, 1].
            MiniMaxContentError: input or output flagged as sensitive.
            MiniMaxAPIError / MiniMaxTransportError: the call failed.
        """
        if not 0.0 < temperature <= 1.0:
            raise ValueError(f"MiniMax temperature must be in (0, 1], got {temperature}")
        body: dict[str, object] = {
            "model": model,
            "messages": list(messages),
            "max_completion_tokens": max_completion_tokens,
            "temperature": temperature,
        }
        if json_schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": schema_name, "schema": json_schema}}
        data = self._call("POST", CHAT_PATH, json=body, idempotent=True)
        return parse_chat_completion(data, endpoint=CHAT_PATH)

    # ---------------------------------------------------------------- transport

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict | None = None,
        timeout: float | None = None,
        idempotent: bool = True,
        pass_codes: frozenset[int] = frozenset(),
        final: Callable[[dict], bool] | None = None,
    ) -> dict:
        """Send one API request with retries; return the JSON body once `base_resp` says success.

        `idempotent=False` (creating a task) retries only failures that prove the server did not
        act: connection errors before sending, rate-limit and transient `base_resp` codes, HTTP
        429/503. A read timeout is not retried then: the task may exist, and a second one would bill twice.
        Codes in `pass_codes`, and bodies for which `final(body)` is true, are returned to the caller
        instead of raised or retried.
        """
        if self.config.group_id:
            params = {**(params or {}), "GroupId": self.config.group_id}
        request_timeout = httpx.Timeout(timeout or self.config.read_timeout, connect=self.config.connect_timeout)
        attempt = 0
        while True:
            try:
                resp = self._api.request(method, path, params=params, json=json, timeout=request_timeout)
            except httpx.TransportError as e:
                unsent = isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout))
                if (idempotent or unsent) and attempt < self.config.max_retries:
                    log.info("MiniMax %s: %s; retrying", path, type(e).__name__)
                    time.sleep(self._backoff(attempt, rate_limited=False))
                    attempt += 1
                    continue
                what = "" if idempotent or unsent else " (the task may have been created; check before resending)"
                raise MiniMaxTransportError(
                    f"MiniMax {path} at {self.config.base_url} failed: {type(e).__name__} {e}{what}"
                ) from e
            trace_id = resp.headers.get("trace-id", "")
            data = json_or_none(resp)
            if resp.status_code != 200 or data is None:
                err = self._http_error(resp, data, path, trace_id)
                retry_ok = idempotent or resp.status_code in (429, 503)
                if err is None:  # HTTP 200 with a non-JSON body: a proxy page or truncated reply
                    if idempotent and attempt < self.config.max_retries:
                        time.sleep(self._backoff(attempt, rate_limited=False))
                        attempt += 1
                        continue
                    raise MiniMaxTransportError(
                        f"MiniMax {path} returned a non-JSON body: {resp.text[:200]!r} (Trace-Id {trace_id or '-'})"
                    )
                if err.retryable and retry_ok and attempt < self.config.max_retries:
                    time.sleep(self._backoff(attempt, rate_limited=resp.status_code == 429))
                    attempt += 1
                    continue
                raise err
            code, msg = base_resp(data)
            if code == 0 or code in pass_codes or (final is not None and final(data)):
                return data
            err = error_for(code, msg, http_status=resp.status_code, trace_id=trace_id, endpoint=path)
            if err.retryable and attempt < self.config.max_retries:
                log.info("MiniMax %s: code %d (%s); retrying", path, code, msg)
                time.sleep(self._backoff(attempt, rate_limited=code in RATE_LIMIT_CODES))
                attempt += 1
                continue
            raise err

    @staticmethod
    def _http_error(resp: httpx.Response, data: dict | None, path: str, trace_id: str) -> MiniMaxAPIError | None:
        """The error for a non-200 answer (None for a 200 whose body is not JSON)."""
        if resp.status_code == 200:
            return None
        code, msg = base_resp(data) if data is not None else (0, "")
        if not msg and data is not None and isinstance(data.get("error"), dict):
            # The OpenAI/Anthropic-compatible paths answer real HTTP errors with an `error` body.
            msg = str(data["error"].get("message", ""))
        return error_for(code, msg or resp.reason_phrase, http_status=resp.status_code, trace_id=trace_id, endpoint=path)

    def _backoff(self, attempt: int, *, rate_limited: bool) -> float:
        first = self.config.rate_limit_backoff_s if rate_limited else self.config.backoff_s
        return min(first * 2**attempt, self.config.max_backoff_s) * random.uniform(0.75, 1.0)

    def _download_url(self, url: str) -> str:
        """The URL to fetch: absolute, and upgraded to https when the API itself is reached over https.

        The official CLI (MiniMax-AI/cli, `src/files/download.ts`) upgrades because some OSS regions
        block plain HTTP; a self-hosted server on plain http keeps its URLs, and a path-only URL is
        resolved against its host.
        """
        if url.startswith("/"):
            return self.config.base_url + url
        if url.startswith("http://") and self.config.base_url.startswith("https://"):
            return "https://" + url[len("http://"):]
        return url

    def _stream_to(self, url: str, dest: Path, *, expected_bytes: int) -> None:
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as out, self._files.stream("GET", url) as resp:
                if resp.status_code in (401, 403, 404, 410):
                    raise _DownloadRefused(f"HTTP {resp.status_code} from {urlsplit(url).netloc}")
                if resp.status_code != 200:
                    raise MiniMaxTransportError(f"download answered HTTP {resp.status_code}")
                for chunk in resp.iter_bytes(1 << 20):
                    out.write(chunk)
            size = tmp.stat().st_size
            if expected_bytes and size != expected_bytes:
                raise MiniMaxTransportError(f"download truncated: got {size} of {expected_bytes} bytes")


__all__ = [
    "ChatCompletion", "FileInfo", "MiniMaxAPIError", "MiniMaxClient", "MiniMaxConfig", "MiniMaxError",
    "TaskStatus", "Usage", "VideoRequest", "VideoResult",
]
