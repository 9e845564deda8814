"""A fake MiniMax open-platform server on 127.0.0.1, written from MiniMax's API reference
(https://platform.minimax.io/docs/api-reference/video-generation-intro) and the behaviour its clients report.

A real HTTP server (stdlib `ThreadingHTTPServer` in a thread) speaking the native protocol:
`POST /v1/video_generation`, `GET /v1/query/video_generation`, `GET /v1/files/retrieve`, signed
expiring download URLs, `POST /v1/text/chatcompletion_v2` and the OpenAI-compatible
`POST /v1/chat/completions`. Business errors are HTTP 200 with a non-zero `base_resp`, every
response carries `Trace-Id`. A `Behavior` makes it misbehave the ways the real one does: slow
answers, 1002 rate limits, 1004/2049 for bad or wrong-region keys, tasks ending in `Fail` with 1027,
download URLs that are already expired, `file_id` as a JSON integer in retrieve, non-JSON gateway
pages, and chat replies that are not JSON or violate the requested schema.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

GOOD_KEY = "test-key-international"
WRONG_REGION_KEY = "test-key-mainland"  # a valid key for the other region's host -> 2049
_SECRET = b"fake-minimax-signing-secret"


@dataclass
class Behavior:
    """How the fake server behaves; tests change fields before (or between) calls.

    Attributes:
        delay_s: how long the first `slow_requests` API requests sleep before answering.
        slow_requests: how many API requests are slow.
        rate_limited_requests: how many API requests (after the slow ones) answer 1002.
        gateway_errors: how many API requests answer HTTP 502 with an HTML page.
        statuses: the status each successive query returns for a task; the last one repeats.
        status_case: "title" (`Success`) or "lower" (`success`) or "failed" (`failed` instead of `Fail`).
        fail_code: the `base_resp` code a failed task's query answers with.
        url_ttl_s: lifetime of download URLs.
        expired_urls: how many download URLs are issued already expired.
        video_bytes: the content every task produces.
        chat_replies: the assistant contents returned in order; the last one repeats.
        truncate_downloads: how many downloads send only half the bytes.
        broken_primary_url: `download_url` points at a missing object; `backup_download_url` works
            (the backup field ComfyUI's client knows).
        keyless: requests without an `Authorization` header are accepted, as `kinema serve` does on
            loopback without `--api-key` (a wrong key is still refused).
    """

    delay_s: float = 0.0
    slow_requests: int = 0
    rate_limited_requests: int = 0
    gateway_errors: int = 0
    statuses: list[str] = field(default_factory=lambda: ["Preparing", "Queueing", "Processing", "Success"])
    status_case: str = "title"
    fail_code: int = 1027  # base_resp code of a failed task's query
    url_ttl_s: float = 3600.0
    expired_urls: int = 0
    video_bytes: bytes = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
    chat_replies: list[str] = field(default_factory=lambda: ['{"answer": "ok"}'])
    truncate_downloads: int = 0
    broken_primary_url: bool = False
    keyless: bool = False


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: dict | None


@dataclass
class _Task:
    task_id: str
    prompt: str
    model: str
    polls: int = 0
    file_id: int = 0


class FakeMiniMax:
    """The server: `with FakeMiniMax() as fake: ... fake.url ...`."""

    def __init__(self, behavior: Behavior | None = None):
        self.behavior = behavior or Behavior()
        self.requests: list[Recorded] = []
        self.tasks: dict[str, _Task] = {}
        self.lock = threading.Lock()
        self._ids = itertools.count(106916112212032)
        self._api_calls = 0
        self._downloads = 0
        self._chat_index = 0
        self._urls_issued = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeMiniMax:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def calls(self, path: str) -> list[Recorded]:
        """The recorded requests to `path`."""
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def next_id(self) -> int:
        with self.lock:
            return next(self._ids)

    def sign(self, file_id: int, expires: float) -> str:
        return hmac.new(_SECRET, f"{file_id}:{expires:.3f}".encode(), hashlib.sha256).hexdigest()[:32]


def _make_handler(server: FakeMiniMax) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        # ------------------------------------------------------------ plumbing

        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            with server.lock:
                server.requests.append(Recorded(method, parts.path, query, headers, body))
            if parts.path.startswith("/download/"):
                return self._download(parts.path, query)
            routes = {
                ("POST", "/v1/video_generation"): self._create,
                ("GET", "/v1/query/video_generation"): self._query,
                ("GET", "/v1/files/retrieve"): self._retrieve,
                ("POST", "/v1/text/chatcompletion_v2"): self._chat,
                ("POST", "/v1/chat/completions"): self._chat,
            }
            route = routes.get((method, parts.path))
            if route is None:
                return self._send(404, {"error": "not found"})
            b = server.behavior
            with server.lock:
                n = server._api_calls
                server._api_calls += 1
            if n < b.slow_requests:
                time.sleep(b.delay_s)
            if n < b.gateway_errors:
                return self._send_raw(502, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            auth = self._auth(headers)
            if auth is not None and parts.path == "/v1/chat/completions":  # real HTTP errors on this path
                return self._send(401, {"type": "error", "error": {"type": "authentication_error",
                                                                    "message": f"invalid api key ({auth[0]})"}})
            if auth is not None:
                return self._base(*auth)
            if n < b.slow_requests + b.rate_limited_requests and n >= b.slow_requests:
                return self._base(1002, "Rate limit triggered, please try again later")
            route(query, body)

        def _auth(self, headers: dict[str, str]) -> tuple[int, str] | None:
            value = headers.get("authorization", "")
            if not value and server.behavior.keyless:
                return None
            key = value[len("Bearer "):] if value.startswith("Bearer ") else ""
            if key == GOOD_KEY:
                return None
            if key == WRONG_REGION_KEY:
                return 2049, "invalid api key"
            return 1004, "cookie is missing, log in again"

        def _send(self, code: int, payload: dict) -> None:
            self._send_raw(code, json.dumps(payload).encode(), "application/json")

        def _send_raw(self, code: int, data: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Trace-Id", hashlib.md5(str(time.time_ns()).encode()).hexdigest())
            self.end_headers()
            self.wfile.write(data)

        def _base(self, code: int, msg: str, **fields: object) -> None:
            self._send(200, {**fields, "base_resp": {"status_code": code, "status_msg": msg}})

        # ------------------------------------------------------------ video

        def _create(self, query: dict[str, str], body: dict | None) -> None:
            if not isinstance(body, dict) or not body.get("model"):
                return self._base(2013, "invalid params, model is required", task_id="")
            model, prompt = str(body["model"]), str(body.get("prompt") or "")
            if len(prompt) > 2000:
                return self._base(2013, "invalid params, prompt too long", task_id="")
            if model.startswith(("T2V-01", "I2V-01", "S2V-01")) and ("duration" in body or "resolution" in body):
                return self._base(2013, f"invalid params, {model} does not support duration/resolution", task_id="")
            if "sensitive prompt" in prompt:
                return self._base(1026, "Sensitive content detected in prompt", task_id="")
            task = _Task(task_id=str(server.next_id()), prompt=prompt, model=model)
            with server.lock:
                server.tasks[task.task_id] = task
            self._base(0, "success", task_id=task.task_id)

        def _status_text(self, status: str) -> str:
            case = server.behavior.status_case
            if case == "lower":
                return status.lower()
            if case == "failed" and status == "Fail":
                return "failed"
            return status

        def _query(self, query: dict[str, str], body: dict | None) -> None:
            with server.lock:
                task = server.tasks.get(query.get("task_id", ""))
                if task is not None:
                    statuses = server.behavior.statuses
                    status = statuses[min(task.polls, len(statuses) - 1)]
                    task.polls += 1
            if task is None:
                return self._base(2013, "invalid params, task not found")
            if status == "Success" and "forbidden" in task.prompt:
                status = "Fail"
            if status == "Fail":
                return self._base(server.behavior.fail_code, "Contains sensitive content in the generated video",
                                  task_id=task.task_id, status=self._status_text("Fail"))
            if status != "Success":
                return self._base(0, "success", task_id=task.task_id, status=self._status_text(status))
            if not task.file_id:
                task.file_id = server.next_id() + 70000000000
            self._base(0, "success", task_id=task.task_id, status=self._status_text("Success"),
                       file_id=str(task.file_id), video_width=1366, video_height=768)

        def _retrieve(self, query: dict[str, str], body: dict | None) -> None:
            raw = query.get("file_id", "")
            file_id = int(raw) if raw.isdigit() else -1
            with server.lock:
                known = any(t.file_id == file_id for t in server.tasks.values())
                expired = server._urls_issued < server.behavior.expired_urls
                server._urls_issued += 1
            if not known:
                return self._base(2013, "invalid params, file not found")
            expires = time.time() + (-1.0 if expired else server.behavior.url_ttl_s)
            url = f"{server.url}/download/{file_id}?expires={expires:.3f}&sig={server.sign(file_id, expires)}"
            file = {  # file_id is a JSON integer here, a string in query
                "file_id": file_id, "bytes": len(server.behavior.video_bytes), "created_at": int(time.time()),
                "filename": "output_aigc.mp4", "purpose": "video_generation", "download_url": url,
            }
            if server.behavior.broken_primary_url:
                file["download_url"] = f"{server.url}/download/missing-{file_id}"
                file["backup_download_url"] = url
            self._base(0, "success", file=file)

        def _download(self, path: str, query: dict[str, str]) -> None:
            tail = path[len("/download/"):]
            expires = float(query.get("expires") or 0)
            if not tail.isdigit() or not hmac.compare_digest(query.get("sig", ""), server.sign(int(tail), expires)):
                return self._send_raw(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>", "application/xml")
            if expires < time.time():
                return self._send_raw(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                                      "application/xml")
            data = server.behavior.video_bytes
            with server.lock:
                truncate = server._downloads < server.behavior.truncate_downloads
                server._downloads += 1
            if truncate:  # announce the full length, send half, close: a dropped connection
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self._send_raw(200, data, "video/mp4")

        # ------------------------------------------------------------ chat

        def _chat(self, query: dict[str, str], body: dict | None) -> None:
            if not isinstance(body, dict) or not body.get("messages"):
                return self._base(2013, "invalid params, messages is required")
            temperature = body.get("temperature", 0.1)
            if not 0 < float(temperature) <= 1:
                return self._base(2013, "invalid params, temperature must be in (0, 1]")
            with server.lock:
                replies = server.behavior.chat_replies
                content = replies[min(server._chat_index, len(replies) - 1)]
                server._chat_index += 1
            prompt_tokens = len(json.dumps(body["messages"])) // 4
            self._send(200, {
                "id": hashlib.md5(content.encode()).hexdigest(),
                "choices": [{"finish_reason": "stop", "index": 0,
                             "message": {"content": content, "role": "assistant", "name": "MiniMax AI"}}],
                "created": int(time.time()), "model": body.get("model", ""), "object": "chat.completion",
                "usage": {"total_tokens": prompt_tokens + len(content) // 4, "prompt_tokens": prompt_tokens,
                          "completion_tokens": len(content) // 4},
                "input_sensitive": False, "output_sensitive": False,
                "base_resp": {"status_code": 0, "status_msg": ""},
            })

    return Handler
