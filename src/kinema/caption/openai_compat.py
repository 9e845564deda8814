"""The `openai` captioning backend: any OpenAI-compatible vision chat endpoint (e.g. a local vLLM).

`POST {base_url}/chat/completions` with `image_url` parts holding JPEG data URLs and, by default, a
`json_schema` response format (vLLM, SGLang and OpenAI accept it; choose `json_object` or `none`
for servers that do not). Transient failures (network errors, HTTP 408/429/5xx) are retried with
exponential backoff; anything else is raised with the server's message.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from kinema.clients.minimax import ChatCompletion, Message, parse_chat_completion

ResponseFormat = Literal["json_schema", "json_object", "none"]


class OpenAICompatError(RuntimeError):
    """The endpoint failed or refused the request."""

    def __init__(self, message: str, http_status: int = 0):
        super().__init__(message)
        self.http_status = http_status


class OpenAICompatAuthError(OpenAICompatError):
    """HTTP 401/403: the key was refused."""


@dataclass(frozen=True)
class OpenAIChatConfig:
    """Where the endpoint is and how to call it.

    Attributes:
        base_url: the API root including `/v1`, e.g. `http://127.0.0.1:8000/v1`.
        model: the served model name.
        api_key: sent as `Authorization: Bearer` when not empty.
        response_format: how to ask for JSON.
        max_tokens: reply budget.
        temperature: sampling temperature.
        timeout_s: read timeout of one request.
        connect_timeout_s: connect timeout.
        max_retries: retries after transient failures.
        backoff_s: first backoff, doubled per retry.
    """

    base_url: str
    model: str
    api_key: str = ""
    response_format: ResponseFormat = "json_schema"
    max_tokens: int = 1024
    temperature: float = 0.2
    timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    max_retries: int = 3
    backoff_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"OpenAI-compatible base URL {self.base_url!r} must start with http:// or https://")
        if not self.model:
            raise ValueError("the OpenAI-compatible backend needs a model name (--model)")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))


class OpenAIChat:
    """A `ChatBackend` for OpenAI-compatible chat completions; thread-safe."""

    def __init__(self, config: OpenAIChatConfig):
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http = httpx.Client(
            headers=headers, timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIChat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, messages: Sequence[Message], json_schema: dict, schema_name: str) -> ChatCompletion:
        c = self.config
        body: dict[str, object] = {
            "model": c.model, "messages": list(messages), "max_tokens": c.max_tokens, "temperature": c.temperature,
        }
        if c.response_format == "json_schema":
            body["response_format"] = {
                "type": "json_schema", "json_schema": {"name": schema_name, "schema": json_schema, "strict": True},
            }
        elif c.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        url = f"{c.base_url}/chat/completions"
        for attempt in range(c.max_retries + 1):
            last = attempt == c.max_retries
            try:
                resp = self._http.post(url, json=body)
            except httpx.TransportError as e:
                if last:
                    raise OpenAICompatError(f"{url} failed: {type(e).__name__} {e}") from e
            else:
                if resp.status_code == 200:
                    try:
                        data = resp.json()
                    except ValueError:
                        data = None
                    if isinstance(data, dict):
                        return parse_chat_completion(data, endpoint=url)
                    if last:
                        raise OpenAICompatError(f"{url} returned a non-JSON body: {resp.text[:200]!r}", 200)
                elif resp.status_code in (401, 403):
                    raise OpenAICompatAuthError(f"{url} refused the API key (HTTP {resp.status_code})", resp.status_code)
                elif resp.status_code not in (408, 429) and resp.status_code < 500 or last:
                    raise OpenAICompatError(
                        f"{url} answered HTTP {resp.status_code}: {resp.text[:300]}", resp.status_code
                    )
            time.sleep(c.backoff_s * 2**attempt * random.uniform(0.75, 1.0))
        raise AssertionError("unreachable")
